"""oci-build against hostile input, faults and kills, with real components.

* Kills: oci-build SIGKILLed at random moments (mid-RUN included) leaves no process, mount,
  cgroup, runtime record, scratch folder or temporary blob that outlives the next build, and
  the rerun gives the digest an uninterrupted build gives (`oci.dockerfile.lifetime`).
* Hostile contexts, Dockerfiles, archives and servers: each refusal is one line naming
  FILE:LINE, a documented exit code, no traceback, and the layout as it was.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .build_env import ROOT, base_image, oci_build

pytestmark = pytest.mark.root

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
BUILDS = "/run/oci-build/builds"


@pytest.fixture(scope="session")
def base_ref(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    return base_image(registry, tmp_path_factory.mktemp("build-base"))


def argv(tmp: Path, context: Path, layout: str, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "bin" / "oci_build.py"), "--insecure", "--cache", str(tmp / "layers"),
            "-t", f"{tmp / layout}:t", *extra, str(context)]


def build(tmp: Path, context: Path, *extra: str, layout: str = "layout", check: bool = True,
          env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return oci_build("--insecure", "--cache", str(tmp / "layers"), "-t", f"{tmp / layout}:t", *extra, str(context),
                     check=check, env=env, input=input)


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment holds `text` (this one aside)."""
    found = []
    needle = text.encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    if needle in f.read():
                        found.append(pid)
                        break
            except OSError:
                continue
    return found


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(path) in line]


def runtime_roots_of(pid: int) -> set[str]:
    """The runtime roots a build holds open (and locked)."""
    found = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith(BUILDS + "/"):
            found.add(target)
    return found


def cgroups_named(name: str) -> list[str]:
    """The cgroup folders (v1 or v2) of a container, wherever its parent."""
    found = []
    for parent, dirs, _ in os.walk("/sys/fs/cgroup"):
        if parent.count("/") > 6:
            dirs.clear()
        elif name in dirs:
            found.append(os.path.join(parent, name))
    return found


KILL_DOCKERFILE = """\
ARG BASE
FROM $BASE
ARG STEP_MARKER
COPY big.bin /big.bin
RUN echo started; sleep 1; echo data > /data.txt; echo ran-first
COPY small.txt /small.txt
RUN cat /small.txt /data.txt > /both.txt && head -c 3000000 /big.bin > /again.bin && echo finished
CMD ["cat", "/both.txt"]
"""


def kill_context(tmp: Path) -> Path:
    context = tmp / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(KILL_DOCKERFILE)
    (context / "big.bin").write_bytes(random.Random(7).randbytes(4 << 20))  # its layer takes a moment to compress
    (context / "small.txt").write_text("small\n")
    return context


def test_sigkill_at_random_moments_then_rerun_gives_the_same_digest_and_nothing_is_left(
        tmp_path: Path, base_ref: str) -> None:
    seed = int(os.environ.get("OCIKIT_TEST_SEED") or secrets.randbelow(1 << 30))
    rng = random.Random(seed)
    context = kill_context(tmp_path)
    marker = f"STEP_MARKER={secrets.token_hex(8)}"
    args = ("--build-arg", f"BASE={base_ref}", "--build-arg", marker)
    reference = build(tmp_path, context, *args, layout="reference", env=EPOCH)
    digest = json.loads(reference.stdout)["digest"]
    layout = tmp_path / "layout"
    stale_roots: set[str] = set()
    containers: set[str] = set()
    # Kill points: mid-RUN (seen by its output), then random moments over a build's length.
    moments: list[float | str] = ["mid-run", *(rng.uniform(0.05, 3.0) for _ in range(4))]
    for moment in moments:
        process = subprocess.Popen(argv(tmp_path, context, "layout", "--no-cache", *args),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, **EPOCH})
        assert process.stderr is not None
        if moment == "mid-run":
            seen = ""
            deadline = time.monotonic() + 120
            while "\nstarted\n" not in seen and time.monotonic() < deadline:
                seen += process.stderr.readline()
            assert processes_mentioning(marker), f"seed {seed}: the RUN step runs"
        else:
            assert isinstance(moment, float)
            time.sleep(moment)
        roots = runtime_roots_of(process.pid)
        for root in roots:
            containers.update(os.listdir(root) if os.path.isdir(root) else [])
        stale_roots |= roots
        process.kill()
        process.wait(timeout=60)
        process.stderr.close()
        time.sleep(0.2)  # the kernel tears the pid namespace down
        where = f"seed {seed}, killed at {moment}"
        assert not processes_mentioning(marker), f"{where}: the step's container died with the build"
        assert not processes_mentioning(str(tmp_path / "layout")), f"{where}: oci-run and its wrapper are gone"
        assert not mounts_under(tmp_path), where

    again = build(tmp_path, context, *args, env=EPOCH)
    assert json.loads(again.stdout)["digest"] == digest, f"seed {seed}: {again.stderr}"
    cache = layout / ".ocikit" / "build-cache"
    assert not os.listdir(cache / "work"), f"seed {seed}: scratch folders were swept"
    assert not os.path.isdir(layout / ".ocikit" / "tmp") or not os.listdir(layout / ".ocikit" / "tmp"), seed
    for root in stale_roots:
        assert not os.path.exists(root), f"seed {seed}: {root} was reaped"
    for container in containers:
        assert not cgroups_named(container), f"seed {seed}: the cgroup of {container} was removed"
    assert not mounts_under(tmp_path)


def test_a_killed_builds_container_that_escaped_is_reaped_by_the_next_build(tmp_path: Path, base_ref: str) -> None:
    """The window between the wrapper's fork and its prctl: a container whose build is gone,
    in a runtime root nobody holds, dies at the next build (any layout)."""
    from .ocirun_bundle import Bundle, make_rootfs

    made = subprocess.run([sys.executable, "-c", "from oci.dockerfile.lifetime import RuntimeRoot; "
                           "print(RuntimeRoot(['true']).path)"], cwd=ROOT, capture_output=True, text=True, check=True)
    root = made.stdout.strip()  # its maker exited: the lock is free, as after a SIGKILL
    marker = f"ESCAPED={secrets.token_hex(8)}"
    bundle = Bundle(tmp_path / "bundle", make_rootfs(tmp_path / "rootfs")).args("sleep", "300")
    bundle.config["process"]["env"].append(marker)
    container = f"escaped-{secrets.token_hex(4)}"
    runtime = [sys.executable, str(ROOT / "bin" / "oci_run.py"), "--root", root]
    try:
        subprocess.run([*runtime, "run", "-d", "--bundle", bundle.write(), container], check=True, timeout=60,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert processes_mentioning(marker)
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
        build(tmp_path, context)
        assert not processes_mentioning(marker)
        assert not os.path.exists(root)
        assert not cgroups_named(container)
    finally:
        subprocess.run([*runtime, "delete", "--force", container], capture_output=True)
