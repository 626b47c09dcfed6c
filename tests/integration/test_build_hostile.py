"""oci-build against hostile input, faults and kills, with real components.

* Kills: oci-build SIGKILLed at random moments (mid-RUN included) leaves no process, mount,
  cgroup, runtime record, scratch folder or temporary blob that outlives the next build, and
  the rerun gives the digest an uninterrupted build gives (`oci.dockerfile.lifetime`).
* Hostile contexts, Dockerfiles, archives and servers: each refusal is one line naming
  FILE:LINE, a documented exit code, no traceback, and the layout as it was.

Where Docker (BuildKit) and buildah 1.28 part ways, oci-build follows the one that stays
in bounds; each choice, with what the peers do:

* `COPY ../x`: BuildKit and buildah clean it to the context's `x` (so does oci-build);
  Docker's legacy builder refused it.
* A symlink to `/etc/shadow`, a symlink loop, a dangling symlink a wildcard matches:
  resolved inside the context and refused by name, as buildah does.
* An ADD archive entry `../x`: refused, as Docker's Untar refuses a "breakout"; buildah
  writes it inside the root. An entry through the archive's own symlink (`s -> /etc`, then
  `s/x`): written in the image's /etc, inside its root (Docker follows it inside its chroot;
  buildah refuses). A `.wh.` name: refused; buildah writes it, and its layer then deletes a
  file for whoever unpacks the image (`ADD` of `.wh.bin` to `/` deletes /bin).
* A pax header over 1 MiB: not an archive (Go's tar refuses it too: buildah copies the file).
* A Dockerfile line over 65535 bytes: refused with BuildKit's message; buildah silently
  ignores that line and the rest of the file.
* `ENV A=$A$A` repeated: refused past 1 MiB; buildah grows it until memory runs out (more
  than 10 minutes for 24 doublings).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import random
import secrets
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from .build_env import ROOT, base_image, busybox_rootfs, oci_build, read_config, unpack

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


def test_a_killed_build_on_an_oci_net_network_gives_its_lease_back(tmp_path: Path, base_ref: str) -> None:
    """The reaper's `oci-run delete --force` runs the step's poststop hooks: oci-net's
    disconnect releases the address the killed step held."""
    from .netutil import Lab

    lab = Lab(tmp_path / "lab")
    try:
        network = lab.create_network(ipv6=False)["name"]
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text("ARG BASE\nFROM $BASE\nRUN echo started; sleep 60\n")
        process = subprocess.Popen(argv(tmp_path, context, "layout", "--network", network, "--state-dir", lab.state,
                                        "--build-arg", f"BASE={base_ref}"), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        seen, deadline = "", time.monotonic() + 120
        while "\nstarted\n" not in seen and time.monotonic() < deadline:
            seen += process.stderr.readline()
        leases = Path(lab.state) / "leases" / f"{network}.json"
        assert json.loads(leases.read_text()), "the step holds an address"
        process.kill()
        process.wait(timeout=60)
        process.stderr.close()
        quick = tmp_path / "quick"
        quick.mkdir()
        (quick / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
        reaper = build(tmp_path, quick, layout="other")  # any build, any layout, reaps
        # A build of another suite on this machine may be reaping the same root (its reaper holds the
        # root's lock, so this one passes it by): the lease then goes a moment later.
        deadline = time.monotonic() + 30
        while json.loads(leases.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not json.loads(leases.read_text()), reaper.stderr
    finally:
        lab.close()


# -- hostile input: the conventions of a refusal --------------------------------------------


@pytest.fixture(scope="session")
def trap_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox image (oci:LAYOUT:base) whose /app is a symlink to /etc and /gone one to
    nothing: paths through them must stay in the image's root."""
    work = tmp_path_factory.mktemp("trap-base")
    rootfs = busybox_rootfs(work / "rootfs")
    (rootfs / "app").symlink_to("/etc")
    (rootfs / "up").symlink_to("../../../../../../etc")
    subprocess.run([sys.executable, str(ROOT / "bin" / "oci_commit.py"), "-q", "--from-dir", str(rootfs),
                    "--cmd", "/bin/sh", f"{work / 'layout'}:base"], check=True, capture_output=True,
                   env={**os.environ, **EPOCH})
    return f"oci:{work / 'layout'}:base"


class Case:
    """A context for one hostile case, built into a layout that already holds an image."""

    def __init__(self, tmp: Path, base: str) -> None:
        self.tmp, self.base = tmp, base
        self.context = tmp / "ctx"
        self.context.mkdir()
        self.layout = tmp / "layout"
        good = tmp / "good"
        good.mkdir()
        (good / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
        build(tmp, good)

    def file(self, name: str, data: bytes | str = b"x", mode: int | None = None) -> Path:
        path = self.context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            path.chmod(mode)
        return path

    def dockerfile(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        (self.context / "Dockerfile").write_bytes(data.replace(b"$BASE_IMAGE", self.base.encode()))

    def run(self, *extra: str, stdin: bytes | None = None, context: str | None = None) -> subprocess.CompletedProcess:
        argv = [sys.executable, str(ROOT / "bin" / "oci_build.py"), "--no-cache", "--cache", str(self.tmp / "layers"),
                "-t", f"{self.layout}:t", *extra, context or str(self.context)]
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=300,
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    def refused(self, code: int, where: str, message: str, *extra: str, stdin: bytes | None = None,
                context: str | None = None) -> str:
        """Build, and hold the refusal to the conventions: one line `FILE:LINE: ...` (or
        `where` as given) with `message`, exit `code`, no traceback, the layout as it was."""
        index = (self.layout / "index.json").read_bytes()
        done = self.run(*extra, stdin=stdin, context=context)
        err = done.stderr.decode(errors="replace")
        assert done.returncode == code, err
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.startswith("oci-build: ")]
        assert len(lines) == 1, err
        assert where in lines[0] and message in lines[0], lines[0]
        assert done.stdout == b""
        assert (self.layout / "index.json").read_bytes() == index
        work = self.layout / ".ocikit" / "build-cache" / "work"
        assert not os.listdir(work)
        tmp = self.layout / ".ocikit" / "tmp"
        assert not tmp.is_dir() or not os.listdir(tmp)
        return lines[0]

    def accepted(self, *extra: str, stdin: bytes | None = None, context: str | None = None) -> Path:
        """Build; the image's root filesystem."""
        done = self.run(*extra, stdin=stdin, context=context)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        rootfs = self.tmp / f"rootfs-{len(list(self.tmp.glob('rootfs-*')))}"
        return unpack(f"{self.layout}:t", rootfs)


@pytest.fixture
def case(tmp_path: Path, trap_base: str) -> Case:
    return Case(tmp_path, trap_base)


# -- hostile Dockerfiles -------------------------------------------------------------------


LONG = "x" * 70_000


@pytest.mark.parametrize("text, code, line, message", [
    (b"FROM scratch\nLABEL a=b\0c\n", 2, ":2: ", "a NUL byte"),
    (f"FROM scratch\nLABEL a={LONG}\n".encode(), 2, ":2: ", "dockerfile line greater than max allowed size of 65535"),
    (b"FROM scratch\nRUN <<EOF\necho\n", 2, ":2: ", "unterminated heredoc"),
    (b"FROM scratch\nENV A=${B\n", 2, ":2: ", "missing '}'"),
    (b"FROM scratch\nENV A=" + b"${A:-" * 100 + b"x" + b"}" * 100 + b"\n", 2, ":2: ", "nested more than 64 deep"),
    (b"FROM scratch\nENV A=0123456789abcdef\n" + b"ENV A=$A$A\n" * 20, 2, ":19: ",
     "expands to more than 1048576 characters"),
    (b"FROM scratch\nENV A=${A/\n", 2, ":2: ", "missing '/'"),
    (b"# only a comment\n\n", 2, ":2: ", "file with no instructions"),
    (b"\xef\xbb\xbf# escape=x\nFROM scratch\n", 2, ":1: ", "invalid escape token"),
    (b"FROM scratch\nCOPY --chmod=99999 Dockerfile /\n", 2, ":2: ", "invalid --chmod"),
    (b"FROM scratch\nBOGUS\n", 2, ":2: ", "unknown instruction"),
    (b"FROM scratch\nADD https://127.0.0.1:9/x/repo.git#main /src\n", 8, ":2: ", "ADD of a git repository"),
    (b"FROM scratch\nADD git@127.0.0.1:x/repo.git /src\n", 8, ":2: ", "ADD of a git repository"),
])
def test_hostile_dockerfile_is_refused_in_one_line(case: Case, text: bytes, code: int, line: str,
                                                   message: str) -> None:
    case.dockerfile(text)
    case.refused(code, "Dockerfile" + line, message)


def test_dockerfile_that_is_a_directory_missing_endless_or_a_symlink_out_of_the_context(case: Case) -> None:
    (case.context / "adir").mkdir()
    case.refused(2, "adir", "is a directory, not a Dockerfile", "-f", str(case.context / "adir"))
    case.refused(3, "nothing", "no such file", "-f", str(case.context / "nothing"))
    case.refused(3, str(case.context), "no Dockerfile or Containerfile")
    case.refused(2, "/dev/zero", "larger than 16 MiB", "-f", "/dev/zero")
    # A context's Dockerfile that links to the host's files reads the context's own: none here.
    (case.context / "Dockerfile").symlink_to("/etc/hostname")
    case.refused(3, str(case.context), "no Dockerfile or Containerfile")
    (case.context / "etc").mkdir()
    (case.context / "etc" / "hostname").write_text("FROM scratch\nCOPY etc /etc\n")
    assert (case.accepted() / "etc" / "hostname").read_text().startswith("FROM scratch")


def test_crlf_bom_invalid_utf8_and_long_patterns_are_read_as_buildkit_reads_them(case: Case) -> None:
    dockerfile = ("\ufeffFROM $BASE_IMAGE\r\nCOPY <<EOF /crlf.txt\r\none\r\ntwo\r\nEOF\r\n"
                  "LABEL bad=\"\udcff\" \\\r\n  ok=yes\r\n"
                  "ENV LONG=" + "a" * 60_000 + "\r\nENV CUT=${LONG##*a*a*a*a*b}\r\n"
                  "RUN printf '%s' \"${#CUT}\" > /len.txt\r\n")
    case.dockerfile(dockerfile.encode("utf-8", "surrogateescape"))
    started = time.monotonic()
    rootfs = case.accepted()
    assert time.monotonic() - started < 120  # a backtracking matcher takes hours on that pattern
    assert (rootfs / "crlf.txt").read_bytes() == b"one\ntwo\n"  # CRLF ends lines, here-documents too
    assert (rootfs / "len.txt").read_text() == "60000"
    labels = read_config(case.layout, "t")["config"]["Labels"]
    assert labels == {"bad": "\ufffd", "ok": "yes"}  # invalid UTF-8 as Go's JSON writes it


# -- hostile contexts ------------------------------------------------------------------------


def test_sources_stay_in_the_context(case: Case) -> None:
    case.file("x", "inside\n")
    case.file("etc/passwd", "the context's own\n")
    (case.context / "abs").symlink_to("/etc/shadow")
    (case.context / "rel").symlink_to("../../../../../../etc/passwd")
    (case.context / "loop1").symlink_to("loop2")
    (case.context / "loop2").symlink_to("loop1")
    case.dockerfile("FROM scratch\nCOPY ../../x /x\nCOPY /x /y\nCOPY rel /rel\n")
    rootfs = case.accepted()  # `..` stops at the context's root, as BuildKit and buildah clean it
    assert (rootfs / "x").read_text() == (rootfs / "y").read_text() == "inside\n"
    assert (rootfs / "rel").read_text() == "the context's own\n"  # resolved inside the context
    case.dockerfile("FROM scratch\nCOPY abs /abs\n")
    case.refused(3, "Dockerfile:2: ", "abs: a symlink to /etc/shadow, which is not in the build context")
    case.dockerfile("FROM scratch\nCOPY loop1 /l\n")
    case.refused(2, "Dockerfile:2: ", "loop1: too many levels of symbolic links")
    case.dockerfile("FROM scratch\nCOPY a* /d/\n")
    case.refused(3, "Dockerfile:2: ", "abs: a symlink to /etc/shadow")  # a wildcard match too, as buildah
    case.dockerfile("FROM scratch\nCOPY . /all/\n")
    rootfs = case.accepted()  # a directory's symlinks are copied as symlinks, never followed
    assert os.readlink(rootfs / "all" / "abs") == "/etc/shadow"
    assert os.readlink(rootfs / "all" / "loop1") == "loop2"


def test_a_symlinked_context_root_and_a_whiteout_name(case: Case) -> None:
    case.file("x", "x\n")
    case.dockerfile("FROM scratch\nCOPY x /x\n")
    link = case.tmp / "link-to-ctx"
    link.symlink_to(case.context)
    assert (case.accepted(context=str(link)) / "x").read_text() == "x\n"
    case.file(".wh.bin", "")
    case.dockerfile("FROM scratch\nCOPY .wh.bin /\n")
    case.refused(4, "Dockerfile:2: ", "a name starting with .wh. is a whiteout in a layer")


def test_destinations_through_the_images_symlinks_stay_in_its_root(case: Case) -> None:
    marker = f"oci-build-trap-{secrets.token_hex(4)}"
    case.file("x", "x\n")
    case.dockerfile(f"FROM $BASE_IMAGE\nCOPY x /app/{marker}\nCOPY x /up/{marker}-up\n"
                    f"COPY x /app/../../../../etc/{marker}-dots\nWORKDIR /app\nCOPY x ./{marker}-rel\n")
    rootfs = case.accepted()
    for name in (marker, f"{marker}-up", f"{marker}-dots", f"{marker}-rel"):
        assert (rootfs / "etc" / name).read_text() == "x\n", name  # /app is /etc of the image
        assert not os.path.exists(f"/etc/{name}"), name  # never the host's


def test_dockerignore_exceptions_double_star_and_an_ignored_dockerfile(case: Case) -> None:
    for name in ("keep.txt", "drop.txt", "dir/a", "dir/keep", "logs/x.log", "dir/deep/y.log",
                 "dir/deep/important.log", "src/important.log"):
        case.file(name, name)
    case.file(".dockerignore", "Dockerfile\n.dockerignore\ndrop.txt\n**/*.log\n!**/important.log\ndir\n"
                               "!dir/keep\n")
    case.dockerfile("FROM scratch\nCOPY . /c/\n")
    rootfs = case.accepted()
    found = sorted(str(p.relative_to(rootfs / "c")) for p in (rootfs / "c").rglob("*"))
    assert found == ["dir", "dir/keep", "keep.txt", "logs", "src", "src/important.log"]  # buildah's tree too
    case.dockerfile("FROM scratch\nCOPY Dockerfile /d\n")  # the build reads it; COPY cannot (BuildKit, buildah)
    case.refused(3, "Dockerfile:2: ", "Dockerfile: excluded by the ignore file")
    (case.context / ".dockerignore").unlink()
    (case.context / ".dockerignore").symlink_to("/etc/shadow")  # read inside the context: missing, no patterns
    case.dockerfile("FROM scratch\nCOPY keep.txt /k\n")
    assert (case.accepted() / "k").read_text() == "keep.txt"


def test_trees_deeper_than_pythons_recursion_limit(case: Case) -> None:
    """A context, an archive and a RUN each make a tree 1,200 folders deep: walked, written,
    committed and removed by loops, not recursion (no RecursionError, no folder left)."""
    try:
        _deep_trees(case)
    finally:  # pytest's own clean-up of old temporary folders recurses: it must never meet these
        subprocess.run(["rm", "-rf", "--", str(case.tmp)], check=True)


def _deep_trees(case: Case) -> None:
    folder = case.context / "deep"
    folder.mkdir()
    here = os.open(folder, os.O_RDONLY)
    for _ in range(1200):  # relative to an fd: the host path would pass PATH_MAX soon after
        os.mkdir("d", dir_fd=here)
        inner = os.open("d", os.O_RDONLY, dir_fd=here)
        os.close(here)
        here = inner
    with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=here), "w") as f:
        f.write("bottom")
    os.close(here)
    case.file("deep.tar", tar_bytes([{"name": "d/" * 1200 + "f", "data": b"bottom"}]))
    case.dockerfile("FROM $BASE_IMAGE\nCOPY deep /c/\nADD deep.tar /a/\n"
                    "RUN d=/r; i=0; while [ $i -lt 1200 ]; do d=$d/d; i=$((i+1)); done; mkdir -p $d && echo x > $d/f\n")
    rootfs = case.accepted()
    for top in ("c", "a", "r"):
        here, depth = os.open(rootfs / top, os.O_RDONLY), 0
        while os.path.isdir(f"/proc/self/fd/{here}/d"):  # down by fds (pathlib and os.walk recurse)
            inner = os.open("d", os.O_RDONLY, dir_fd=here)
            os.close(here)
            here, depth = inner, depth + 1
        assert os.path.isfile(f"/proc/self/fd/{here}/f")
        os.close(here)
        assert depth == 1200, top
    assert not os.listdir(case.layout / ".ocikit" / "build-cache" / "work")


# -- hostile archives (ADD) ----------------------------------------------------------------


def tar_bytes(members: list[dict[str, Any]], compress: bool = False) -> bytes:
    """A tar of `members`: name, and type, link, data, mode, dev, pax as wanted."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member["name"])
            info.type = member.get("type", tarfile.REGTYPE)
            info.linkname = member.get("link", "")
            data = member.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            info.mode = member.get("mode", 0o644)
            info.devmajor, info.devminor = member.get("dev", (0, 0))
            info.pax_headers = member.get("pax", {})
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    data = buf.getvalue()
    return gzip.compress(data) if compress else data


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def bomb(size: int) -> bytes:
    """A gzip'd tar of one `size`-byte file of zeros (about a thousandth of that, compressed)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as compressed:
        with tarfile.open(fileobj=compressed, mode="w|") as tar:
            info = tarfile.TarInfo("zeros")
            info.size = size
            tar.addfile(info, io.BufferedReader(_Zeros(size)))
    return out.getvalue()


def huge_declared_size() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("huge")
        info.size = 5
        info.pax_headers = {"size": str(1 << 40)}
        tar.addfile(info, io.BytesIO(b"12345"))
    return buf.getvalue()


R, S, L = tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
MARK = f"oci-build-{secrets.token_hex(4)}"


@pytest.mark.parametrize("name, archive, extra, code, message", [
    ("dotdot.tar", lambda: tar_bytes([{"name": f"../../../../tmp/{MARK}", "data": b"x"}]), (), 4,
     "path leaves the destination"),
    ("hardout.tar", lambda: tar_bytes([{"name": "h", "type": L, "link": "../../../../etc/passwd"}]), (), 4,
     "hard-link target leaves the destination"),
    ("hardmissing.tar", lambda: tar_bytes([{"name": "h", "type": L, "link": "/etc/passwd"}]), (), 4,
     "which is not there"),
    ("whiteout.tar", lambda: tar_bytes([{"name": ".wh.bin"}]), (), 4, "is a whiteout in a layer"),
    ("huge.tar", huge_declared_size, (), 4, "1099511627776 bytes, more than"),
    ("bomb.tar.gz", lambda: bomb(64 << 20), ("--max-size", "16M"), 4, "(--max-size)"),
    ("many.tar", lambda: tar_bytes([{"name": f"f{i}"} for i in range(300)]), ("--max-entries", "100"), 4,
     "more than 100 tar entries (--max-entries)"),
    ("truncated.tar", lambda: tar_bytes([{"name": "a", "type": S, "link": "b"}, {"name": "c", "data": b"x"}])[:700],
     (), 2, "a truncated or damaged tar header"),
    ("cut.tar.gz", lambda: tar_bytes([{"name": "a", "data": random.Random(1).randbytes(8000)}], compress=True)[:3000],
     (), 2, "cannot decompress (gzip)"),
])
def test_hostile_archive_is_refused(case: Case, name: str, archive: Any, extra: tuple[str, ...], code: int,
                                    message: str) -> None:
    case.file(name, archive())
    case.dockerfile(f"FROM scratch\nADD {name} /opt/\n")
    case.refused(code, "Dockerfile:2: ", f"{name}: ", *extra)
    case.refused(code, "Dockerfile:2: ", message, *extra)
    assert not os.path.exists(f"/tmp/{MARK}")


def test_archive_entries_stay_in_the_image_root(case: Case) -> None:
    case.file("abs.tar", tar_bytes([{"name": f"/etc/{MARK}-abs", "data": b"abs"}]))
    case.file("symfile.tar", tar_bytes([{"name": "s", "type": S, "link": "/etc"},
                                        {"name": f"s/{MARK}-sym", "data": b"sym"}]))
    case.file("symrel.tar", tar_bytes([{"name": "r", "type": S, "link": "../../../../../../../etc"},
                                       {"name": f"r/{MARK}-rel", "data": b"rel"}]))
    case.file("links.tar", tar_bytes([{"name": "f", "data": b"linked"}, {"name": "h", "type": L, "link": "f"},
                                      {"name": "h2", "type": L, "link": "/f"}]))
    case.file("dev.tar", tar_bytes([{"name": "sda", "type": tarfile.BLKTYPE, "dev": (8, 0), "mode": 0o666},
                                    {"name": "fifo", "type": tarfile.FIFOTYPE}]))
    plain = case.file("plain.gz", gzip.compress(b"just text\n")).read_bytes()  # not a tar: copied as it is (Docker)
    case.file("bigpax.tar", tar_bytes([{"name": "x", "pax": {"comment": "c" * (2 << 20)}}]))  # Go refuses it too
    case.dockerfile("FROM $BASE_IMAGE\nADD abs.tar symfile.tar symrel.tar /opt/\nADD links.tar dev.tar /srv/\n"
                    "ADD plain.gz bigpax.tar /copied/\n")
    rootfs = case.accepted()
    assert (rootfs / "opt" / "etc" / f"{MARK}-abs").read_text() == "abs"  # a leading / is below the destination
    assert (rootfs / "etc" / f"{MARK}-sym").read_text() == "sym"  # through the archive's symlink: the image's /etc
    assert (rootfs / "etc" / f"{MARK}-rel").read_text() == "rel"
    for name in ("abs", "sym", "rel"):
        assert not os.path.exists(f"/etc/{MARK}-{name}")
    assert os.stat(rootfs / "srv" / "h").st_ino == os.stat(rootfs / "srv" / "f").st_ino == \
        os.stat(rootfs / "srv" / "h2").st_ino
    st = os.lstat(rootfs / "srv" / "sda")
    assert stat_kind(st.st_mode) == "blk" and os.major(st.st_rdev) == 8  # as Docker and buildah make it
    assert (rootfs / "copied" / "plain.gz").read_bytes() == plain
    assert (rootfs / "copied" / "bigpax.tar").stat().st_size > 2 << 20
    cache = case.layout / ".ocikit" / "build-cache"
    assert os.stat(cache).st_mode & 0o077 == 0  # the device node in its trees is root's alone


def stat_kind(mode: int) -> str:
    import stat

    return "blk" if stat.S_ISBLK(mode) else "chr" if stat.S_ISCHR(mode) else "other"


# -- hostile servers (ADD of a URL) -------------------------------------------------------------


class _Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        if path.startswith("/loop"):
            number = int(path[5:] or 0)
            self._redirect(f"/loop{number + 1}")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/to-ok":
            self._redirect("/ok.txt")
        elif path == "/ok.txt":
            self._send(b"ok\n")
        elif path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 40))
            self.end_headers()
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"z" * 65536
            try:
                for _ in range(64):  # 4 MiB
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"only a part")
            self.close_connection = True
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def hostile_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path, extra, code, message", [
    ("/loop0", (), 5, "more than 10 redirects"),
    ("/to-file", (), 5, "only http and https URLs are followed"),
    ("/big-declared", (), 4, "1099511627776 bytes, more than"),
    ("/big-chunked", ("--max-size", "1M"), 4, "larger than 1048576 bytes (--max-size)"),
    ("/short", ("--retries", "0"), 5, ""),
    ("/missing", ("--retries", "0"), 5, "HTTP 404"),
])
def test_hostile_server_is_refused(case: Case, hostile_server: str, path: str, extra: tuple[str, ...], code: int,
                                   message: str) -> None:
    case.dockerfile(f"FROM scratch\nADD {hostile_server}{path} /f\n")
    case.refused(code, "Dockerfile:2: ", message, *extra)


def test_add_url_follows_redirects_and_checks_the_checksum(case: Case, hostile_server: str) -> None:
    good = hashlib.sha256(b"ok\n").hexdigest()
    case.dockerfile(f"FROM scratch\nADD --checksum=sha256:{good} {hostile_server}/to-ok /f\n")
    assert (case.accepted() / "f").read_text() == "ok\n"
    case.dockerfile(f"FROM scratch\nADD --checksum=sha256:{'0' * 64} {hostile_server}/to-ok /f\n")
    case.refused(4, "Dockerfile:2: ", "does not match --checksum")


# -- the context on stdin -----------------------------------------------------------------------


def test_context_as_a_tar_on_stdin(case: Case) -> None:
    dockerfile = b"FROM scratch\nCOPY . /ctx/\n"
    members = [{"name": "Dockerfile", "data": dockerfile}, {"name": "sub/a.txt", "data": b"a"},
               {"name": ".dockerignore", "data": b"drop.txt\n"}, {"name": "drop.txt", "data": b"d"},
               {"name": "docker/Other", "data": b"FROM scratch\nCOPY sub /sub\n"}]
    rootfs = case.accepted(stdin=tar_bytes(members, compress=True), context="-")
    assert (rootfs / "ctx" / "sub" / "a.txt").read_text() == "a" and not (rootfs / "ctx" / "drop.txt").exists()
    rootfs = case.accepted("-f", "docker/Other", stdin=tar_bytes(members), context="-")  # -f: a path in the archive
    assert (rootfs / "sub" / "a.txt").read_text() == "a"
    rootfs = case.accepted(stdin=b"FROM $BASE\nLABEL lone=yes\n".replace(b"$BASE", case.base.encode()),
                           context="-")  # a lone Dockerfile: an empty context
    assert read_config(case.layout, "t")["config"]["Labels"] == {"lone": "yes"}
    case.refused(4, "<stdin>: ", "tar entry '../evil': path leaves the destination",
                 stdin=tar_bytes([{"name": "../evil", "data": b"x"}]), context="-")
    case.refused(2, "<stdin>: ", "a truncated or damaged tar header",
                 stdin=tar_bytes(members)[:1500], context="-")
    case.refused(4, "<stdin>: ", "(--max-size)", "--max-size", "1M", stdin=bomb(8 << 20), context="-")
    case.refused(3, "<stdin>/Dockerfile", "no such file", "-f", "Dockerfile",
                 stdin=tar_bytes([{"name": "a", "data": b"a"}]), context="-")
    case.refused(3, "<stdin>/Dockerfile:2: ", "nothing: no such file or directory in the build context",
                 stdin=tar_bytes([{"name": "Dockerfile", "data": b"FROM scratch\nCOPY nothing /\n"}]), context="-")
    case.refused(2, "", "stdin cannot hold both", "-f", "-", stdin=b"", context="-")
