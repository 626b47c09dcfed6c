"""The Dockerfile corpus (tests/integration/build_corpus/) built by oci-build and by buildah bud.

Every case is built by both from the same context and the same base image (a busybox
image in the test registry, named by the build argument BASE); the two root filesystems are
compared tree for tree (type, mode, owner, size and content, symlink targets, hard links,
xattrs; not times) and the configs field by field (Env, Cmd, Entrypoint, WorkingDir, User,
ExposedPorts, Labels, Volumes, StopSignal, Healthcheck, OnBuild, Shell).

They must be equal, except where buildah 1.28 (Debian bookworm) is wrong; each such
difference is listed below with what Docker does:

* BUILDAH_MOUNT_POINTS: buildah leaves the mount points of its RUN containers in the image
  (/etc/hosts, /etc/hostname, /etc/resolv.conf as empty files, /run) when the base image
  lacks them; Docker's builders never commit them. oci-build takes them out again.
* WORKDIR: buildah 1.28 makes a WORKDIR's directory only when a later RUN needs it; Docker
  (classic builder and BuildKit) makes it at the WORKDIR step, and so does oci-build.
* Env order: buildah moves a variable that ENV sets again to the end of Env; Docker replaces
  it where it was, as oci-build does. Env is compared as a mapping.
* The escape directive: with a backtick escape character, buildah still takes an unquoted
  backslash as an escape in ENV values (`a\b` becomes `ab`) and keeps a doubled backtick
  doubled; Docker keeps the backslash and reads the backtick pair as one, as oci-build
  does (tests/unit/test_dockerfile_words.py holds that). The corpus quotes its backslashes.
* EXPOSE ranges: buildah stores `8000-8002/tcp` as one port; Docker exposes each port of the
  range (8000/tcp, 8001/tcp, 8002/tcp), as oci-build does.
* Here-documents: buildah 1.28 predates them (buildah 1.33): the `heredocs` case is checked
  against the files BuildKit's rules give instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from .build_env import CORPUS, Buildah, base_image, config_fields, oci_build, read_config, snapshot, unpack

pytestmark = [pytest.mark.root, pytest.mark.slow]

BUILDAH_MOUNT_POINTS = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv"}


def make_archives(context: Path) -> None:
    """tree.tar{,.gz,.bz2,.xz,.zst}: owners 1234:5678, a 0700 directory, a symlink, a hard link."""
    import zstandard

    tree = context / "tree-src"
    (tree / "top" / "private").mkdir(parents=True)
    (tree / "top" / "file.txt").write_text("archived\n")
    (tree / "top" / "private" / "secret").write_text("s\n")
    os.chmod(tree / "top" / "private", 0o700)
    os.symlink("file.txt", tree / "top" / "link")
    os.link(tree / "top" / "file.txt", tree / "top" / "hard")
    for path in [tree / "top", tree / "top" / "private", tree / "top" / "private" / "secret",
                 tree / "top" / "file.txt"]:
        os.chown(path, 1234, 5678)
    os.lchown(tree / "top" / "link", 1234, 5678)
    plain = context / "tree.tar"
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(tree / "top", arcname="top")
    for suffix, mode in (("gz", "w:gz"), ("bz2", "w:bz2"), ("xz", "w:xz")):
        with tarfile.open(context / f"tree.tar.{suffix}", mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore
            tar.add(tree / "top", arcname="top")
    (context / "tree.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    shutil.rmtree(tree)


def copy_extras(context: Path) -> None:
    """What git does not keep: a hard link, xattrs, unusual modes."""
    os.link(context / "tree" / "hardlinks" / "first", context / "tree" / "hardlinks" / "second")
    os.setxattr(context / "single.txt", "user.origin", b"corpus")
    os.chmod(context / "tree" / "top.txt", 0o640)
    os.chmod(context / "tree" / "sub", 0o750)


def user_modes(context: Path) -> None:
    os.chmod(context / "files" / "b.sh", 0o755)


@dataclass
class Case:
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    dockerfile: str | None = None
    setup: Callable[[Path], None] | None = None
    buildah: bool = True
    # documented differences: paths only oci-build has, with the reason
    ours_only: dict[str, str] = field(default_factory=dict)
    # documented differences: config fields where buildah is wrong, with what Docker (and oci-build) write
    config_expected: dict[str, Any] = field(default_factory=dict)


WORKDIR_REASON = "buildah 1.28 makes a WORKDIR only for a later RUN; Docker makes it at once"
CASES = {
    "basic": Case(),
    "multistage": Case(),
    "dockerignore": Case(),
    "args": Case(build_args={"VERSION": "2.0", "FROM_CLI": "from the command line"}),
    "add_archives": Case(setup=make_archives),
    "chown_chmod": Case(setup=user_modes),
    "user_workdir": Case(),
    "onbuild": Case(),
    "heredocs": Case(buildah=False),
    "shell_entrypoint": Case(),
    "escape_continuations": Case(),
    "copy_semantics": Case(setup=copy_extras),
    "scratch": Case(ours_only={"/data": WORKDIR_REASON}),
    "env_expansion": Case(config_expected={"ExposedPorts": {"8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {},
                                                            "7000/tcp": {}}}),
    "run_effects": Case(),
    "target_stage": Case(target="test"),
    "containerfile": Case(dockerfile="Containerfile"),
}


@pytest.fixture(scope="session")
def base_ref(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    return base_image(registry, tmp_path_factory.mktemp("build-base"))


@pytest.fixture(scope="session")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if shutil.which("buildah") is None:
        pytest.fail("buildah is not installed (.ci/install installs it)")
    env = Buildah(tmp_path_factory.mktemp("buildah"))
    yield env
    env.close()


def prepare(name: str, tmp: Path) -> Path:
    context = tmp / "context"
    shutil.copytree(CORPUS / name, context, symlinks=True)
    case = CASES[name]
    if case.setup:
        case.setup(context)
    return context


def build_ours(name: str, context: Path, tmp: Path, base_ref: str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    case = CASES[name]
    args = ["-q", "--insecure", "--cache", str(tmp / "layers"), "-t", f"{tmp / 'ours'}:{name}",
            "--build-arg", f"BASE={base_ref}"]
    for key, value in case.build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if case.target:
        args += ["--target", case.target]
    if case.dockerfile:
        args += ["-f", str(context / case.dockerfile)]
    oci_build(*args, str(context))
    rootfs = unpack(f"{tmp / 'ours'}:{name}", tmp / "ours-rootfs")
    return snapshot(rootfs), read_config(tmp / "ours", name), rootfs


def build_theirs(name: str, context: Path, tmp: Path, base_ref: str, buildah: Buildah
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    case = CASES[name]
    image = f"localhost/corpus/{name}:test"
    buildah.bud(context, image, context / case.dockerfile if case.dockerfile else None,
                {"BASE": base_ref, **case.build_args}, case.target)
    buildah.export(image, tmp / "theirs", name)
    rootfs = unpack(f"{tmp / 'theirs'}:{name}", tmp / "theirs-rootfs")
    return snapshot(rootfs), buildah.config(image)


def tree_differences(ours: dict[str, Any], theirs: dict[str, Any], case: Case) -> list[str]:
    found = []
    for path in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(path), theirs.get(path)
        if mine == other:
            continue
        if mine is None and path in BUILDAH_MOUNT_POINTS and other is not None and \
                (other["type"] == "dir" or other.get("size") == 0):
            continue  # buildah leaves its RUN mount points behind
        if other is None and path in case.ours_only:
            continue
        found.append(f"{path}: oci-build {mine} != buildah {other}")
    return found


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.buildah))
def test_corpus_against_buildah(name: str, tmp_path: Path, base_ref: str, buildah: Buildah) -> None:
    context = prepare(name, tmp_path)
    ours, our_config, _ = build_ours(name, context, tmp_path, base_ref)
    theirs, their_config = build_theirs(name, context, tmp_path, base_ref, buildah)
    differences = tree_differences(ours, theirs, CASES[name])
    assert not differences, "\n".join(differences)
    mine, other = config_fields(our_config.get("config", {})), config_fields(their_config)
    for fields in (mine, other):
        fields["Env"] = dict(item.partition("=")[::2] for item in fields.get("Env", []))
    for key, expected in CASES[name].config_expected.items():
        assert mine.pop(key) == expected
        other.pop(key, None)
    assert mine == other


def test_corpus_heredocs(tmp_path: Path, base_ref: str) -> None:
    """buildah 1.28 has no here-documents: the files BuildKit's rules give."""
    context = prepare("heredocs", tmp_path)
    _, config, rootfs = build_ours("heredocs", context, tmp_path, base_ref)
    read = lambda path: (rootfs / path.lstrip("/")).read_text()  # noqa: E731
    assert read("/hello.txt") == "hello world\nsecond line\n"
    assert read("/chomped.txt") == "tabs removed\n"
    assert read("/one.txt") == "first\n" and read("/two.txt") == "second\n"
    assert read("/etc/app.conf") == "name=world\n"
    assert read("/etc/literal.conf") == "name=$NAME\n"
    assert read("/docs/A") == "alpha\n" and read("/docs/B") == "beta\n"
    assert read("/script.txt").startswith("script ran as /")
    assert "NAME" not in " ".join(config["config"].get("Env", []))


def test_corpus_has_every_instruction() -> None:
    """The corpus covers every instruction and the features the issue names."""
    text = "\n".join(p.read_text() for p in CORPUS.glob("*/*file"))
    for keyword in ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "CMD", "ENTRYPOINT", "EXPOSE",
                    "LABEL", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD", "MAINTAINER"):
        assert f"\n{keyword} " in text, keyword
    for feature in ("COPY --from=", "--chown=", "--chmod=", "<<EOF", "# escape=`", "AS builder"):
        assert feature in text, feature
    assert len(CASES) >= 15 and all((CORPUS / name).is_dir() for name in CASES)


def test_buildah_runs(buildah: Buildah) -> None:
    assert subprocess.run(["buildah", "--version"], capture_output=True).returncode == 0
