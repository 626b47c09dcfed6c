"""What a SIGKILLed build leaves and the next one reaps (oci.dockerfile.lifetime): runtime
roots locked while their build runs; and the Dockerfile, ignore file and sources read with
symlinks resolved inside the context."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oci.dockerfile import lifetime
from oci.dockerfile.context import SourceRoot, open_in
from oci.errors import InvalidInput, NotFound

FAKE_RUNTIME = """\
import os, shutil, sys
args = sys.argv[1:]
root = args[args.index("--root") + 1]
with open(os.path.join(os.path.dirname(root), "deleted"), "a") as f:
    f.write(args[-1] + "\\n")
shutil.rmtree(os.path.join(root, args[-1]))
"""


@pytest.fixture
def no_cgroups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    removed: list[str] = []
    monkeypatch.setattr(lifetime, "_remove_cgroup", lambda path: removed.append(path))
    return removed


def fake_runtime(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake-oci-run.py"
    script.write_text(FAKE_RUNTIME)
    return [sys.executable, str(script)]


def root_of_a_build_gone(parent: Path) -> Path:
    """A runtime root whose build exited without a word: the lock went with it."""
    made = subprocess.run([sys.executable, "-c", "from oci.dockerfile.lifetime import RuntimeRoot; "
                           f"print(RuntimeRoot([], {str(parent)!r}).path)"], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    return Path(made.stdout.strip())


def test_a_root_is_reaped_only_once_its_build_is_gone(tmp_path: Path, no_cgroups: list[str]) -> None:
    parent = tmp_path / "builds"
    runtime = fake_runtime(tmp_path)
    live = lifetime.RuntimeRoot(runtime, str(parent))
    (Path(live.path) / "ocibuild-live").mkdir()
    dead = root_of_a_build_gone(parent)
    (dead / "ocibuild-dead").mkdir()
    assert lifetime.reap(lambda: runtime, print, str(parent)) == 1
    assert not dead.exists() and os.path.isdir(live.path)
    assert (parent / "deleted").read_text() == "ocibuild-dead\n"
    assert no_cgroups == ["/oci-build/ocibuild-dead"]
    live.close()  # deletes what is left in it, then the root
    assert not os.path.exists(live.path)
    assert (parent / "deleted").read_text() == "ocibuild-dead\nocibuild-live\n"


def test_a_root_being_made_is_left_alone(tmp_path: Path, no_cgroups: list[str]) -> None:
    parent = tmp_path / "builds"
    (parent / ".new-1234").mkdir(parents=True)  # made a moment ago, not locked yet
    assert lifetime.reap(lambda: [], print, str(parent)) == 0
    assert (parent / ".new-1234").is_dir()
    os.utime(parent / ".new-1234", (0, 0))  # a maker killed between mkdir and flock, long ago
    assert lifetime.reap(lambda: [], print, str(parent)) == 1
    assert not (parent / ".new-1234").exists()


def test_tied_commands_die_with_their_parent() -> None:
    assert lifetime.tied(["oci-run", "run"])[:3] == ["setpriv", "--pdeathsig", "KILL"]
    assert "--kill-child=KILL" in lifetime.tied([]) and "--pid" in lifetime.tied([])


def test_files_of_the_context_are_opened_inside_it(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    (context / "etc").mkdir(parents=True)
    (context / "Dockerfile").symlink_to("/etc/hostname")
    (context / "inner").symlink_to("etc/real")
    (context / "etc" / "real").write_text("real")
    (context / "loop").symlink_to("loop")
    with pytest.raises(FileNotFoundError):
        open_in(str(context), str(context / "Dockerfile"))  # the context's /etc/hostname: none
    with open_in(str(context), str(context / "inner")) as f:
        assert f.read() == b"real"
    with pytest.raises(IsADirectoryError):
        open_in(str(context), str(context / "etc"))
    with pytest.raises(OSError):
        open_in(str(context), str(context / "loop"))
    outside = tmp_path / "outside"
    outside.write_text("mine")
    with open_in(str(context), str(outside)) as f:  # a file the user named outside the context: as it is
        assert f.read() == b"mine"


def test_sources_name_why_they_are_missing(tmp_path: Path) -> None:
    (tmp_path / "abs").symlink_to("/etc/shadow")
    (tmp_path / "loop").symlink_to("loop")
    root = SourceRoot(str(tmp_path))
    assert root.select("abs") == []
    assert root.why_missing("abs") == "a symlink to /etc/shadow, which is not in the build context " \
                                      "(symlinks resolve inside it)"
    assert root.why_missing("none") == "no such file or directory in the build context"
    with pytest.raises(NotFound, match="abs: a symlink to /etc/shadow"):
        root.select("a*")
    with pytest.raises(InvalidInput, match="symlink loop"):
        root.select("loop")


def test_openat2_asked_again_when_a_rename_raced_its_walk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """EAGAIN: a rename or mount anywhere on the host raced a `..` of RESOLVE_IN_ROOT's walk."""
    import errno

    from oci.dockerfile import tree

    real = tree.kernel()
    calls = []

    class Racing:
        def openat2(self, *args: object) -> int:
            calls.append(args)
            if len(calls) < 3:
                raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            return real.openat2(*args)  # type: ignore[arg-type]

    (tmp_path / "f").write_text("x")
    (tmp_path / "a").mkdir()
    monkeypatch.setattr(tree, "kernel", lambda: Racing())
    root = os.open(tmp_path, os.O_PATH)
    try:
        os.close(tree.open_in_root(root, "a/../f", os.O_RDONLY))
    finally:
        os.close(root)
    assert len(calls) == 3


def test_what_a_delete_that_worked_warned_about_is_told(tmp_path: Path, no_cgroups: list[str]) -> None:
    """A poststop hook that failed (oci-net's disconnect: a lease kept) is a warning of the reaping build."""
    parent = tmp_path / "builds"
    dead = root_of_a_build_gone(parent)
    (dead / "ocibuild-hooked").mkdir()
    script = tmp_path / "warning-oci-run.py"
    script.write_text(FAKE_RUNTIME + "sys.stderr.write('poststop hook oci-net: exited 1\\n')\n")
    warned: list[str] = []
    assert lifetime.reap(lambda: [sys.executable, str(script)], warned.append, str(parent)) == 1
    assert len(warned) == 1 and "ocibuild-hooked: oci-run delete --force: poststop hook oci-net" in warned[0]
