"""A RUN step's container never outlives its build, even when the build is SIGKILLed.

SIGTERM and Ctrl-C unwind the build (the step's container is killed and deleted, the
overlays unmounted, the scratch folder removed). SIGKILL leaves no chance to clean up, so
the kernel and the next build do it:

* The container dies with the build. `oci-run run` starts under
  `setpriv --pdeathsig KILL unshare --pid --fork --kill-child=KILL --mount-proc`: oci-run
  is the init of a pid namespace of its own, and its parent (unshare) gets SIGKILL when
  oci-build dies. unshare's death SIGKILLs oci-run, and when a pid namespace's init dies
  the kernel kills every process in it, the step's container included (its own pid
  namespace is nested in that one). The overlays live in the build's private mount
  namespace (`mounts`), which goes with the last of these processes.
* The records die with the next build. oci-run keeps its state under a runtime root of
  the build's own, `/run/oci-build/builds/HEX`, a directory the build holds an flock on while it
  runs: a "build in progress" record. Every build first reaps the roots whose lock is
  free (their build is gone): `oci-run delete --force` of each container in them (its
  processes, should any have escaped, its cgroup, its state), then the root itself. The
  build's scratch folder (`cache.BuildCache.work_dir`) is swept the same way, and the
  layout's stray temporaries by its next session (`oci.layout`).

Between the fork of the wrapper and its prctl there is a window of a few instructions
where a SIGKILL of the build leaves the container running; the next build reaps it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import subprocess
import time
from typing import Callable

RUNTIME_PARENT = "/run/oci-build/builds"  # (the folder above it held unlocked roots before)
TIED = ("setpriv", "--pdeathsig", "KILL", "--", "unshare", "--pid", "--fork", "--kill-child=KILL", "--mount-proc",
        "--")
_HIDDEN_GRACE = 60.0  # seconds a half-made root (hidden name, lock free) may be younger than and still be in use


def remove_tree(path: str) -> None:
    """Remove a folder of any depth, quietly (shutil.rmtree recurses: a RUN's `mkdir -p` of
    2,000 levels exceeds Python's recursion limit; rm(1) walks it with fts)."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tied(argv: list[str]) -> list[str]:
    """`argv` run so that it and every process it starts die when this process dies."""
    return [*TIED, *argv]


class RuntimeRoot:
    """oci-run's state folder for one build, locked while the build runs (see the module doc)."""

    def __init__(self, runtime: list[str], parent: str = RUNTIME_PARENT) -> None:
        self.runtime = runtime  # the oci-run command, without --root
        os.makedirs(parent, mode=0o700, exist_ok=True)
        # Made under a hidden name and locked before it is renamed into sight, so that a
        # concurrent reaper never finds it unlocked.
        hidden = os.path.join(parent, f".new-{secrets.token_hex(4)}")
        os.mkdir(hidden, 0o700)
        self.fd = os.open(hidden, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        # Short: oci-run's sockets live below it and a socket path must fit in 108 bytes.
        self.path = os.path.join(parent, secrets.token_hex(4))
        os.rename(hidden, self.path)

    def command(self) -> list[str]:
        """oci-run with this root."""
        return [*self.runtime, "--root", self.path]

    def close(self) -> None:
        """Delete what is left in the root (the container of an interrupted step), then the root."""
        if self.fd < 0:
            return
        _delete_containers(self.runtime, self.path)
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self.fd)
        self.fd = -1


def cgroup_path(container: str) -> str:
    """The cgroup of a step's container (set in its config, so that a reaper knows it)."""
    return f"/oci-build/{container}"


def _delete_containers(runtime: list[str], root: str, warn: Callable[[str], None] | None = None) -> list[str]:
    """`oci-run --root ROOT delete --force` every container in `root`, and its cgroup (which
    oci-run, like runc, leaves when killed before the container's record was written); the
    ones that stayed. What a delete that worked said (its poststop hooks' failures) goes to `warn`."""
    stayed = []
    for name in sorted(os.listdir(root)):
        if not os.path.isdir(os.path.join(root, name)) or name.startswith("."):
            continue
        try:
            done = subprocess.run([*runtime, "--root", root, "delete", "--force", name], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        except subprocess.TimeoutExpired:
            stayed.append(f"{name}: oci-run delete --force took more than 60 s")
            continue
        said = done.stderr.decode(errors="replace").strip()
        if done.returncode != 0 and os.path.isdir(os.path.join(root, name)):
            stayed.append(f"{name}: {said}")
            continue
        if said and warn is not None:  # deleted, with warnings (a poststop hook failed: a network lease kept?)
            warn(f"{os.path.join(root, name)}: oci-run delete --force: {' '.join(said.splitlines())}")
        problem = _remove_cgroup(cgroup_path(name))
        if problem:
            stayed.append(f"{name}: {problem}")
    return stayed


def _remove_cgroup(path: str) -> str | None:
    """Kill what is left in cgroup `path` and remove it; a problem, or None."""
    from oci.errors import OciError
    from oci.linux import cgroups

    try:
        manager = cgroups.manager(path)
        for _ in range(3):
            pids = manager.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        manager.destroy()
    except (OciError, OSError) as err:
        return str(err)
    return None


def reap(runtime: Callable[[], list[str]], warn: Callable[[str], None], parent: str = RUNTIME_PARENT) -> int:
    """Delete the containers and roots of builds that are gone (their lock is free); how many
    roots were reaped. `runtime` gives the oci-run command (called only when there is work)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return 0
    reaped = 0
    for name in sorted(names):
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue  # a running build's
                raise
            if name.startswith(".") and time.time() - os.fstat(fd).st_mtime < _HIDDEN_GRACE:
                continue  # being made: its maker locks it next
            stayed = _delete_containers(runtime(), path, warn)
            if stayed:
                warn(f"{path}: could not delete the containers of an interrupted build: {'; '.join(stayed)}")
                continue
            shutil.rmtree(path, ignore_errors=True)
            reaped += 1
        finally:
            os.close(fd)
    return reaped
