"""oci-build with real components: base images from the test registry, RUN steps in real
containers through oci-run, the step cache, reproducible digests, networking, errors,
interruption, and the README's CI recipe (build, then push)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from .build_env import ROOT, base_image, manifest_digest, oci_build, read_config, snapshot, unpack
from .netutil import Lab

pytestmark = pytest.mark.root


@pytest.fixture(scope="session")
def base_ref(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    return base_image(registry, tmp_path_factory.mktemp("build-base"))


def build(tmp: Path, context: Path, *extra: str, tag: str = "t", check: bool = True,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return oci_build("--insecure", "--cache", str(tmp / "layers"), "-t", f"{tmp / 'layout'}:{tag}", *extra,
                     str(context), check=check, env=env)


def context_with(tmp: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    context = tmp / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text(text)
    return context


def step_results(stderr: str) -> dict[str, str]:
    """STEP text -> "cache" or "ran" for each filesystem step, from the progress lines."""
    found: dict[str, str] = {}
    current = None
    for line in stderr.splitlines():
        if match := re.match(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: (.*)$", line):
            current = match.group(1)
        elif line.startswith("COMMIT "):
            current = None
        elif line.startswith("--> Using cache") and current:
            found[current] = "cache"
        elif line.startswith("--> ") and current and not line.startswith("--> executing"):
            found[current] = "ran"
    return found


CACHE_DOCKERFILE = """\
ARG BASE
FROM $BASE
RUN echo before > /before.txt
COPY a.txt /a.txt
RUN cat /a.txt > /after-a.txt
COPY b.txt /b.txt
RUN cat /b.txt > /after-b.txt && echo ran-after-b
CMD ["cat", "/after-b.txt"]
"""


def test_unchanged_rebuild_runs_no_step_and_one_changed_file_reruns_from_its_copy(tmp_path: Path,
                                                                                  base_ref: str) -> None:
    context = context_with(tmp_path, CACHE_DOCKERFILE, {"a.txt": "a\n", "b.txt": "b\n"})
    args = ("--build-arg", f"BASE={base_ref}")
    first = build(tmp_path, context, *args)
    assert set(step_results(first.stderr).values()) == {"ran"} and "ran-after-b" in first.stderr
    digest = json.loads(first.stdout)["digest"]

    again = build(tmp_path, context, *args)
    assert set(step_results(again.stderr).values()) == {"cache"}, again.stderr
    assert "\nran-after-b\n" not in again.stderr and "0 steps run, 5 from cache" in again.stderr
    assert json.loads(again.stdout)["digest"] == digest  # the very same image, dates included

    (context / "b.txt").write_text("changed\n")
    changed = build(tmp_path, context, *args)
    assert step_results(changed.stderr) == {
        "RUN echo before > /before.txt": "cache", "COPY a.txt /a.txt": "cache",
        "RUN cat /a.txt > /after-a.txt": "cache", "COPY b.txt /b.txt": "ran",
        "RUN cat /b.txt > /after-b.txt && echo ran-after-b": "ran"}
    rootfs = unpack(f"{tmp_path / 'layout'}:t", tmp_path / "rootfs")
    assert (rootfs / "after-b.txt").read_text() == "changed\n"

    os.utime(context / "a.txt", (1, 1))  # a touched file is the same file
    assert set(step_results(build(tmp_path, context, *args).stderr).values()) == {"cache"}
    bumped = build(tmp_path, context, *args, "--build-arg", "BASE=" + base_ref, "--no-cache")
    assert set(step_results(bumped.stderr).values()) == {"ran"}


def test_prune_empties_the_cache(tmp_path: Path, base_ref: str) -> None:
    context = context_with(tmp_path, CACHE_DOCKERFILE, {"a.txt": "a\n", "b.txt": "b\n"})
    args = ("--build-arg", f"BASE={base_ref}")
    build(tmp_path, context, *args)
    pruned = oci_build("--prune", "-t", str(tmp_path / "layout"))
    assert "cache records" in pruned.stderr
    assert set(step_results(build(tmp_path, context, *args).stderr).values()) == {"ran"}


def test_reproducible_digests_with_source_date_epoch_and_timestamp(tmp_path: Path, base_ref: str) -> None:
    dockerfile = CACHE_DOCKERFILE + "RUN mkdir -p /var/data && echo x > /var/data/x && ln -s x /var/data/link\n"
    context = context_with(tmp_path, dockerfile, {"a.txt": "a\n", "b.txt": "b\n"})
    digests = []
    for name in ("one", "two"):
        out = tmp_path / name
        out.mkdir()
        done = build(out, context, "--build-arg", f"BASE={base_ref}", env={"SOURCE_DATE_EPOCH": "1700000000"})
        digests.append(json.loads(done.stdout)["digest"])
        os.utime(context / "a.txt")  # a later mtime is clamped to the epoch
    assert digests[0] == digests[1]
    config = read_config(tmp_path / "one" / "layout", "t")
    assert config["created"] == "2023-11-14T22:13:20Z"
    stamped = []
    for name in ("three", "four"):
        out = tmp_path / name
        out.mkdir()
        stamped.append(json.loads(build(out, context, "--build-arg", f"BASE={base_ref}", "--timestamp",
                                        "1600000000").stdout)["digest"])
    assert stamped[0] == stamped[1] != digests[0]


def test_failing_run_names_file_line_instruction_and_shows_output(tmp_path: Path, base_ref: str) -> None:
    context = context_with(tmp_path, "ARG BASE\nFROM $BASE\nRUN echo visible-output; echo to-stderr >&2; exit 3\n")
    for quiet in ((), ("-q",)):
        done = build(tmp_path, context, *quiet, "--build-arg", f"BASE={base_ref}", check=False)
        assert done.returncode == 1 and done.stdout == ""
        assert f"{context / 'Dockerfile'}:3: RUN echo visible-output; echo to-stderr >&2; exit 3: exit status 3" \
            in done.stderr
        assert "visible-output" in done.stderr and "to-stderr" in done.stderr
        assert "Traceback" not in done.stderr
    assert not os.listdir(tmp_path / "layout" / ".ocikit" / "build-cache" / "work")


@pytest.mark.parametrize("dockerfile, code, message", [
    ("ARG BASE\nFROM $BASE\nCOPY missing.txt /x\n", 3, "Dockerfile:3: COPY missing.txt /x: missing.txt: no such file"),
    ("ARG BASE\nFROM $BASE\nBOGUS x\n", 2, "Dockerfile:3: unknown instruction: BOGUS"),
    ("ARG BASE\nFROM $BASE\nUSER nosuchuser\nRUN true\n", 3, "Dockerfile:4: RUN true: user 'nosuchuser' not found"),
    ("ARG BASE\nFROM $BASE\nRUN --mount=type=cache,target=/c true\n", 8, "Dockerfile:3: RUN --mount is not supported"),
    ("FROM 127.0.0.1:9/none/such:tag\n", 5, "Dockerfile:1: FROM 127.0.0.1:9/none/such:tag:"),
])
def test_errors(tmp_path: Path, base_ref: str, dockerfile: str, code: int, message: str) -> None:
    context = context_with(tmp_path, dockerfile)
    done = build(tmp_path, context, "--build-arg", f"BASE={base_ref}", "--retries", "0", check=False)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def interfaces(tmp: Path, context: Path, base_ref: str, *extra: str) -> list[str]:
    done = build(tmp, context, "--no-cache", "--build-arg", f"BASE={base_ref}", *extra)
    rootfs = unpack(f"{tmp / 'layout'}:t", tmp / f"rootfs-{len(list(tmp.glob('rootfs-*')))}")
    assert done.returncode == 0
    return (rootfs / "net.txt").read_text().split()


def test_run_network_host_none_and_an_oci_net_network(tmp_path: Path, base_ref: str) -> None:
    context = context_with(tmp_path, "ARG BASE\nFROM $BASE\nRUN ls /sys/class/net > /net.txt\n")
    before = set(os.listdir("/sys/class/net"))
    host = set(interfaces(tmp_path, context, base_ref))
    after = set(os.listdir("/sys/class/net"))  # other tests of the host make and remove links meanwhile
    assert before & after <= host <= before | after  # the host's network, as docker build
    assert interfaces(tmp_path, context, base_ref, "--network", "none") == ["lo"]
    lab = Lab(tmp_path / "lab")
    try:
        network = lab.create_network(ipv6=False)
        assert sorted(interfaces(tmp_path, context, base_ref, "--network", network["name"], "--state-dir",
                                 lab.state)) == ["eth0", "lo"]
    finally:
        lab.close()
    per_step = context_with(tmp_path, "ARG BASE\nFROM $BASE\nRUN --network=none ls /sys/class/net > /net.txt\n")
    assert interfaces(tmp_path, per_step, base_ref) == ["lo"]


def test_run_sees_env_user_workdir_shell_and_build_args(tmp_path: Path, base_ref: str) -> None:
    dockerfile = """\
ARG BASE
FROM $BASE
ARG STAGE_ARG=from-arg
ENV FROM_ENV=env-value
USER app
WORKDIR /work
SHELL ["/bin/sh", "-xc"]
RUN echo "$(id -un) $(pwd) $FROM_ENV $STAGE_ARG $http_proxy" > /work/seen.txt
"""
    context = context_with(tmp_path, dockerfile)
    done = build(tmp_path, context, "--build-arg", f"BASE={base_ref}", "--build-arg", "http_proxy=http://proxy:3128")
    assert "+ id -un" in done.stderr  # the SHELL's -x
    rootfs = unpack(f"{tmp_path / 'layout'}:t", tmp_path / "rootfs")
    assert (rootfs / "work" / "seen.txt").read_text() == "app /work env-value from-arg http://proxy:3128\n"
    assert (rootfs / "work").stat().st_uid == 1000  # WORKDIR made it for the USER of the time
    env = read_config(tmp_path / "layout", "t")["config"]["Env"]
    assert not [item for item in env if item.startswith(("STAGE_ARG", "http_proxy"))]


def test_squash_keeps_the_base_and_merges_the_rest(tmp_path: Path, base_ref: str) -> None:
    dockerfile = "ARG BASE\nFROM $BASE\nRUN echo 1 > /one && rm /bin/vi\nRUN echo 2 > /two && rm /one\n"
    context = context_with(tmp_path, dockerfile)
    build(tmp_path, context, "--build-arg", f"BASE={base_ref}", tag="plain")
    build(tmp_path, context, "--build-arg", f"BASE={base_ref}", "--squash", tag="squashed")
    plain = unpack(f"{tmp_path / 'layout'}:plain", tmp_path / "plain")
    squashed = unpack(f"{tmp_path / 'layout'}:squashed", tmp_path / "squashed")
    assert snapshot(plain) == snapshot(squashed)
    assert not (squashed / "one").exists() and not (squashed / "bin" / "vi").exists()
    config = read_config(tmp_path / "layout", "squashed")
    assert len(config["rootfs"]["diff_ids"]) == 2  # the base's layer and one more
    assert sum(1 for entry in config["history"] if not entry.get("empty_layer")) == 2


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def test_add_url_with_checksum(tmp_path: Path, base_ref: str, http_files: tuple[str, Path]) -> None:
    url, folder = http_files
    (folder / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    good = hashlib.sha256((folder / "tool.sh").read_bytes()).hexdigest()
    context = context_with(tmp_path, f"ARG BASE\nFROM $BASE\nADD --checksum=sha256:{good} {url}/tool.sh /opt/\n"
                                     f"ADD {url}/tool.sh /opt/renamed\n")
    build(tmp_path, context, "--build-arg", f"BASE={base_ref}")
    rootfs = unpack(f"{tmp_path / 'layout'}:t", tmp_path / "rootfs")
    assert (rootfs / "opt" / "tool.sh").read_text() == "#!/bin/sh\necho tool\n"
    assert oct((rootfs / "opt" / "tool.sh").stat().st_mode & 0o777) == "0o600"  # as Docker: ADD of a URL is 0600
    assert (rootfs / "opt" / "renamed").exists()
    bad = context_with(tmp_path, f"ARG BASE\nFROM $BASE\nADD --checksum=sha256:{'0' * 64} {url}/tool.sh /opt/\n")
    done = build(tmp_path, bad, "--build-arg", f"BASE={base_ref}", check=False)
    assert done.returncode == 4 and "does not match --checksum" in done.stderr and "Dockerfile:3" in done.stderr


def test_copy_from_an_image_stdin_dockerfile_iidfile_and_two_layouts(tmp_path: Path, base_ref: str) -> None:
    context = context_with(tmp_path, "", {"x.txt": "x\n"})
    dockerfile = f"FROM scratch\nCOPY --from={base_ref} /etc/passwd /passwd\nCOPY x.txt /\n"
    done = oci_build("--insecure", "--cache", str(tmp_path / "layers"), "-t", f"{tmp_path / 'a'}:one", "-t",
                     f"{tmp_path / 'b'}:two", "--iidfile", str(tmp_path / "iid"), "-f", "-", str(context),
                     input=dockerfile)
    digest = json.loads(done.stdout)["digest"]
    assert (tmp_path / "iid").read_text() == digest
    assert manifest_digest(tmp_path / "a", "one") == manifest_digest(tmp_path / "b", "two") == digest
    rootfs = unpack(f"{tmp_path / 'b'}:two", tmp_path / "rootfs")  # every blob copied to the second layout
    assert "app:x:1000" in (rootfs / "passwd").read_text() and (rootfs / "x.txt").read_text() == "x\n"


def processes_with(marker: str) -> list[str]:
    """The processes whose environment holds `marker` (a step's container and its children)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


def test_interrupted_build_leaves_nothing_behind(tmp_path: Path, base_ref: str) -> None:
    marker = f"STEP_MARKER={secrets.token_hex(8)}"
    context = context_with(tmp_path, "ARG BASE\nFROM $BASE\nARG STEP_MARKER\nRUN echo started; sleep 60\n")
    argv = [sys.executable, str(ROOT / "bin" / "oci_build.py"), "--insecure", "--cache", str(tmp_path / "layers"),
            "-t", f"{tmp_path / 'layout'}:t", "--build-arg", f"BASE={base_ref}", "--build-arg", marker, str(context)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    assert process.stderr is not None
    seen = ""
    while "\nstarted\n" not in seen and time.monotonic() < deadline:  # the RUN's own output: it runs
        seen += process.stderr.readline()
    assert processes_with(marker), "the step's container runs"
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130, seen + rest
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
    assert not processes_with(marker)  # the step's container went with the build
    work = tmp_path / "layout" / ".ocikit" / "build-cache" / "work"
    assert not [name for name in os.listdir(work)]
    fixed = context_with(tmp_path, "ARG BASE\nFROM $BASE\nRUN echo done\n")
    assert build(tmp_path, fixed, "--build-arg", f"BASE={base_ref}").returncode == 0


def test_readme_ci_recipe_runs_as_written(tmp_path: Path, base_ref: str, registry: Any) -> None:
    """The README's CI recipe (build, then push), run by sh with the test registry."""
    readme = (ROOT / "README.md").read_text()
    recipe = re.search(r"<!-- ci-recipe -->\n```sh\n(.*?)```", readme, re.S)
    assert recipe, "README.md has no CI recipe block"
    workdir = tmp_path / "ci"
    (workdir / "app").mkdir(parents=True)
    (workdir / "app" / "Dockerfile").write_text("ARG BASE\nFROM $BASE\nCOPY . /app\nCMD [\"ls\", \"/app\"]\n")
    (workdir / "app" / "main.sh").write_text("echo main\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "REGISTRY": registry.host, "BASE_IMAGE": base_ref, "CI_COMMIT": "abc123"}
    done = subprocess.run(["sh", "-ec", recipe.group(1)], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    pulled = subprocess.run([sys.executable, str(ROOT / "bin" / "oci_fetch.py"), "--insecure",
                             f"{registry.host}/ci/app:abc123", str(tmp_path / "pulled")], capture_output=True,
                            text=True)
    assert pulled.returncode == 0, pulled.stderr
