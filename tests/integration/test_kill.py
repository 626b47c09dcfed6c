"""SIGKILL at random moments: oci-fetch, oci-push, oci-unpack (plain and --overlay) and oci-commit
are each killed at 20 moments spread over their uninterrupted run time; every rerun succeeds,
gives the uninterrupted result and leaves no temporary behind (nor a marker, nor a lock in a
layout it only reads). A command the kill came too late for must have finished its work.

The moments come from a seeded generator: `OCIKIT_KILL_SEED=N` replays a run (the seed is in
every assertion message)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest

from oci.layout import Layout
from tests.conftest import command, run

from . import images
from .push_support import environment

KILLS = 20
WORKERS = 2  # kills run two at a time: the suite's run time stays reasonable
SEED = int(os.environ.get("OCIKIT_KILL_SEED") or random.randrange(1 << 30))
LAYERS = [images.random_layer(1 << 20, f"kill-{i}", f"data/{i}.bin") for i in range(4)]
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def leftovers(path: str) -> list[str]:
    """Temporaries and markers under (and beside) `path`: what a killed command may leave."""
    found = []
    parent = os.path.dirname(os.path.abspath(path))
    for name in os.listdir(parent):
        if name.endswith(".unpacking"):
            found.append(os.path.join(parent, name))
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(folder, d))]  # an overlay's content
        for name in files:
            full = os.path.join(folder, name)
            if name.startswith(".tmp-") or f"{os.sep}.ocikit{os.sep}tmp{os.sep}" in full or \
                    f"{os.sep}tmp{os.sep}" in full.removeprefix(path):
                found.append(full)
    return found


def timed(argv: list[str], env: dict | None = None) -> float:
    """Run a command to its end; how long it took."""
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, env={**os.environ, **(env or {})}, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return time.monotonic() - start


def kill_at(argv: list[str], moment: float, env: dict | None = None) -> int | None:
    """Start a command and SIGKILL it `moment` seconds later; its exit code if it ended first
    (0 too when it printed its result before the kill: its work was done)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    try:
        proc.communicate(timeout=moment)
        return proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=30)
    try:
        json.loads(out)
    except ValueError:
        return None
    return 0


def each_moment(name: str, span: float, trial: Callable[[int, float], None]) -> None:
    """Run `trial(i, moment)` for KILLS moments spread over `span` (a little beyond it too)."""
    rng = random.Random(f"{SEED}-{name}")
    moments = sorted(rng.uniform(0.0, span * 1.1) for _ in range(KILLS))
    with ThreadPoolExecutor(WORKERS) as pool:
        for future in [pool.submit(trial, i, moment) for i, moment in enumerate(moments)]:
            future.result()


@pytest.fixture(scope="module")
def source(tmp_path_factory, registry):
    """A four-layer image (4 MiB) in a layout and in the registry."""
    base = tmp_path_factory.mktemp("kill")
    layout = str(base / "src")
    desc = images.build_image(layout, "v1", layers=LAYERS)
    ref = images.push_layout(layout, "v1", registry, "kill/source")
    return layout, desc, ref


def test_fetch_killed(tmp_path, source):
    _layout, _desc, ref = source
    want = str(tmp_path / "want")
    span = timed(command("fetch") + ["--insecure", ref, want])
    expected = {"index": Path(want, "index.json").read_bytes(), "blobs": sorted(os.listdir(f"{want}/blobs/sha256"))}

    def trial(i: int, moment: float) -> None:
        out = str(tmp_path / f"out{i}")
        kill_at(command("fetch") + ["--insecure", ref, out], moment)
        again = run("fetch", "--insecure", ref, out)
        where = f"seed {SEED}, kill {i} at {moment:.3f}s"
        assert again.returncode == 0, (where, again.stderr)
        assert Path(out, "index.json").read_bytes() == expected["index"], where
        assert sorted(os.listdir(f"{out}/blobs/sha256")) == expected["blobs"], where
        assert leftovers(out) == [], where

    each_moment("fetch", span, trial)


def test_push_killed(tmp_path, registry, source):
    layout, desc, _ref = source
    env = environment(tmp_path)
    before = snapshot_all(layout)
    span = timed(command("push") + ["--insecure", f"{layout}:v1", registry.ref("kill/push-timing", "v1")], env)

    def trial(i: int, moment: float) -> None:
        target = registry.ref(f"kill/push-{SEED}-{i}", "v1")
        kill_at(command("push") + ["--insecure", f"{layout}:v1", target], moment, env)
        again = run("push", "--insecure", f"{layout}:v1", target, env=env)
        where = f"seed {SEED}, kill {i} at {moment:.3f}s"
        assert again.returncode == 0, (where, again.stderr)
        assert images.skopeo_manifest_digest(target, registry) == str(desc.digest), where

    each_moment("push", span, trial)
    assert snapshot_all(layout) == before  # nothing written into the layout, not even a lock


def snapshot_all(path: str) -> dict[str, bytes]:
    found = {}
    for folder, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, path)] = Path(full).read_bytes()
    return found


def tree(path: str) -> dict[str, tuple]:
    from tests.unit.unpack_util import snapshot

    return snapshot(path, with_root=True)


@pytest.mark.parametrize("mode", ["plain", "overlay"])
def test_unpack_killed(tmp_path, source, mode):
    if mode == "overlay" and os.geteuid() != 0:
        pytest.fail("--overlay needs root")
    layout, _desc, _ref = source
    flags = [] if mode == "plain" else ["--overlay"]

    def argv(out: str, cache: str) -> list[str]:
        return command("unpack") + flags + ["--cache", cache, f"{layout}:v1", out]

    want = str(tmp_path / "want")
    span = timed(argv(want, str(tmp_path / "want-cache")))
    expected = tree(want)
    try:
        def trial(i: int, moment: float) -> None:
            out, cache = str(tmp_path / f"c{i}" / "rootfs"), str(tmp_path / f"cache{i}")
            os.makedirs(os.path.dirname(out))
            code = kill_at(argv(out, cache), moment)
            where = f"seed {SEED}, kill {i} at {moment:.3f}s (exit {code})"
            if code != 0:  # killed before it finished: the rerun starts over by itself
                again = subprocess.run(argv(out, cache), capture_output=True, text=True, timeout=120)
                assert again.returncode == 0, (where, again.stderr)
            assert tree(out) == expected, where
            assert leftovers(os.path.dirname(out)) == [] and leftovers(cache) == [], where

        each_moment(f"unpack-{mode}", span, trial)
    finally:  # whatever the outcome, no overlay stays mounted
        for path in [want] + [str(p) for p in tmp_path.glob("c*/rootfs")]:
            while os.path.ismount(path):
                subprocess.run(["umount", path], check=True)


def test_commit_killed(tmp_path):
    src = tmp_path / "src"
    for i, files in enumerate(LAYERS):
        for name, data in files.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data + bytes([i]))
    argv = command("commit") + ["--from-dir", str(src), "--owner", "0:0"]
    want = str(tmp_path / "want")
    span = timed(argv + [f"{want}:v1"], EPOCH)
    expected = Layout.open(want).resolve("v1").digest

    def trial(i: int, moment: float) -> None:
        out = str(tmp_path / f"out{i}")
        kill_at(argv + [f"{out}:v1"], moment, EPOCH)
        again = run("commit", *argv[len(command("commit")):], f"{out}:v1", env=EPOCH)
        where = f"seed {SEED}, kill {i} at {moment:.3f}s"
        assert again.returncode == 0, (where, again.stderr)
        assert json.loads(again.stdout)["digest"] == str(expected), where
        assert leftovers(out) == [], where

    each_moment("commit", span, trial)
    shutil.rmtree(src)
