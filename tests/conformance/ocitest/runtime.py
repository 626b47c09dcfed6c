"""Drivers of the runtimes under test, through runc's command line.

Every runtime is driven the same way: `RUNTIME --root DIR create --bundle B ID`, `start ID`,
`state ID`, `kill ID SIG`, `delete [--force] ID`, `run --bundle B ID`.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_RUNTIMES = "runc,crun,oci-run"
TIMEOUT = 30

# crun 1.8.1 refuses the hybrid cgroup layout of this machine: give it a private mount
# namespace where the cgroup2 mount holding only hugetlb is gone.
CRUN_WRAPPER = ["unshare", "-m", "sh", "-c", "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"", "crun"]

# What a runtime from Debian does not implement, by feature name -> reason. Tests ask with
# `runtime.require(feature)`, which skips for that runtime only.
UNSUPPORTED: dict[str, dict[str, str]] = {
    "runc": {
        "time-namespace": "runc 1.1.5 has no time namespace (runc 1.2)",
        "personality": "runc 1.1.5 ignores linux.personality (runc 1.2)",
        "ioPriority": "runc 1.1.5 ignores process.ioPriority (runc 1.2)",
        "domainname": "runc 1.1.5 ignores domainname (runc 1.2)",
        "poststart-at-start": "runc 1.1.5 runs poststart hooks during create, before the user process",
        "create-hooks-status-created": "runc 1.1.5 gives prestart and createRuntime hooks status creating",
        "create-without-process": "runc 1.1.5 refuses to create a container whose config has no process",
        "capabilities-not-held-left-out": "runc 1.1.5 fails on capabilities it does not hold (spec 1.1: a warning)",
        "device-over-a-file-error": "runc 1.1.5 leaves a file at a device's path as it is, without an error",
        "recursive-atime": "runc 1.1.5 leaves rnoatime in place after ratime",
        "idmap": "runc 1.1.5 ignores idmap, ridmap and a mount's uidMappings and gidMappings (runc 1.2)",
        "poststart-after-exec": "runc 1.1.5 runs poststart hooks during create, before the user process",
        "poststop-failure-continues": "runc 1.1.5 stops at the first failing poststop hook",
        "init-not-dumpable": "runc 1.1.5's init waiting for start can be ptraced from a container sharing its pid ns",
        "seccomp-errnoRet-check": "runc 1.1.5 accepts errnoRet on actions without an errno",
        "rootfsPropagation-shared": "runc 1.1.5 leaves / private with rootfsPropagation shared",
        "rootfsPropagation-unbindable": "runc 1.1.5 fails on rootfsPropagation unbindable (EINVAL)",
        "mount-label-without-selinux": "runc 1.1.5 hands linux.mountLabel to the kernel as context= without "
                                       "SELinux (EINVAL)",
    },
    "crun": {
        "ioPriority": "crun 1.8.1 ignores process.ioPriority",
        "features": "crun 1.8.1 has no features command",
        "poststart-after-exec": "crun 1.8.1 runs poststart hooks before the user process is executed",
        "createContainer-state-pid": "crun 1.8.1 gives createContainer hooks pid 0 with status created",
        "startContainer-state-bundle": "crun 1.8.1 gives startContainer hooks \"/\" as the bundle",
        "time-namespace": "crun 1.8.1 fails to make a time namespace (write to sync socket: Broken pipe)",
        "duplicate-namespace-error": "crun 1.8.1 accepts a namespace type listed twice",
        "create-without-process": "crun 1.8.1 refuses to create a container whose config has no process",
        "capabilities-not-held-left-out": "crun 1.8.1 fails on capabilities it does not hold (spec 1.1: a warning)",
        "device-over-a-file-error": "crun 1.8.1 leaves a file at a device's path as it is, without an error",
        "poststart-failure-error": "crun 1.8.1 takes a failing poststart hook for a warning (spec 1.3: an error)",
        "recursive-atime": "crun 1.8.1 fails on ratime and rnostrictatime (mount_setattr: EINVAL)",
    },
    "oci-run": {},
}


def oci_run_command() -> tuple[list[str], dict[str, str]]:
    """argv prefix and extra environment for oci-run: $OCI_RUN (a .py path or a command), else this
    checkout's as `make install` installs it (.venv/bin/oci-run, which starts Python with -S), else
    bin/oci_run.py run by this interpreter."""
    override = os.environ.get("OCI_RUN")
    if not override:
        installed = ROOT / ".venv" / "bin" / "oci-run"
        if os.access(installed, os.X_OK):
            return [str(installed)], {}
        return [sys.executable, str(ROOT / "bin" / "oci_run.py")], {}
    argv = shlex.split(override)
    if len(argv) == 1 and argv[0].endswith(".py"):
        # Another checkout's bin/oci_run.py: import that checkout's `oci` package, not ours.
        checkout = Path(argv[0]).resolve().parent.parent
        pythonpath = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
        return [sys.executable, argv[0]], {"PYTHONPATH": pythonpath}
    return argv, {}


def runtime_command(name: str) -> tuple[list[str], dict[str, str]]:
    if name == "runc":
        return ["runc"], {}
    if name == "crun":
        return list(CRUN_WRAPPER), {}
    if name == "oci-run":
        return oci_run_command()
    raise ValueError(f"unknown runtime {name!r} (known: runc, crun, oci-run)")


def selected_runtimes() -> list[str]:
    """Runtimes named by $OCI_CONFORMANCE_RUNTIMES (comma list), runc,crun,oci-run by default."""
    names = os.environ.get("OCI_CONFORMANCE_RUNTIMES", DEFAULT_RUNTIMES)
    return [name.strip() for name in names.split(",") if name.strip()]


def unavailable_reason(name: str) -> str | None:
    """Why runtime NAME cannot be tested here (it is not installed), or None when it can."""
    import shutil

    argv, _env = runtime_command(name)
    program = argv[0] if name != "crun" else "crun"
    if os.path.sep not in program and shutil.which(program) is None:
        return f"{name} is not installed"
    return None


_counter = itertools.count()


def skip_peer_gap(reason: str) -> None:
    """Skip because a peer runtime (never oci-run) lacks a feature: the one skip CI allows."""
    import pytest

    try:
        pytest.skip(reason)
    except pytest.skip.Exception as skip:
        skip.allowed_in_ci = True  # type: ignore[attr-defined]  # read by tests/conftest.py
        raise


@dataclass
class Result:
    """What a runtime command did: exit status and its output as text."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        if self.returncode != 0:
            raise AssertionError(f"{shlex.join(self.argv)} exited {self.returncode}\n{self.stderr}{self.stdout}")
        return self

    def json(self) -> Any:
        self.check()
        return json.loads(self.stdout)


@dataclass
class Runtime:
    """One runtime under test, with its own --root and the containers it must clean up."""

    name: str
    root: Path
    workdir: Path
    ids: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)  # where each created container's stdout goes
    prefix: list[str] = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.prefix, self.env = runtime_command(self.name)

    @property
    def oci_version(self) -> str:
        """The ociVersion written in configs (crun 1.8.1 refuses anything above 1.1.x)."""
        return "1.1.0" if self.name == "crun" else "1.2.0"

    def require(self, feature: str) -> None:
        """Skip the running test for this runtime if it lacks FEATURE (see UNSUPPORTED)."""

        reason = UNSUPPORTED.get(self.name, {}).get(feature)
        if reason:
            skip_peer_gap(reason)

    def lacks(self, feature: str) -> bool:
        return feature in UNSUPPORTED.get(self.name, {})

    def new_id(self) -> str:
        cid = f"ocikit-conf-{uuid.uuid4().hex[:10]}-{next(_counter)}"
        self.ids.append(cid)
        return cid

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, "--root", str(self.root), *args]

    def call(self, *args: str, input: str | None = None, timeout: float = TIMEOUT,
             pass_fds: tuple[int, ...] = ()) -> Result:
        argv = self.argv(*args)
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, pass_fds=pass_fds,
                              env={**os.environ, **self.env}, stdin=None if input is not None else subprocess.DEVNULL)
        return Result(argv, proc.returncode, proc.stdout, proc.stderr)

    def create(self, bundle: Path, cid: str | None = None, *extra: str) -> tuple[str, Result]:
        """`create`: the container's stdio goes to files (a pipe would be held open by the container)."""
        cid = cid or self.new_id()
        argv = self.argv("create", "--bundle", str(bundle), *extra, cid)
        out = self.workdir / f"{cid}.{next(_counter)}.out"
        err = out.with_suffix(".err")
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, timeout=TIMEOUT,
                                  env={**os.environ, **self.env})
        self.outputs[cid] = out
        return cid, Result(argv, proc.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def created(self, bundle: Path) -> str:
        """`create`, which must succeed; the container's id."""
        cid, result = self.create(bundle)
        result.check()
        return cid

    def started(self, bundle: Path) -> str:
        """`create` then `start`, which must both succeed; the container's id."""
        cid = self.created(bundle)
        self.start(cid).check()
        return cid

    def output(self, cid: str) -> str:
        return self.outputs[cid].read_text(errors="replace")

    def start(self, cid: str) -> Result:
        return self.call("start", cid)

    def state(self, cid: str) -> Result:
        return self.call("state", cid)

    def kill(self, cid: str, signal: str = "KILL") -> Result:
        return self.call("kill", cid, signal)

    def delete(self, cid: str, force: bool = False) -> Result:
        return self.call("delete", *(["--force"] if force else []), cid)

    def run(self, bundle: Path, cid: str | None = None, timeout: float = TIMEOUT,
            pass_fds: tuple[int, ...] = ()) -> Result:
        """`run` in the foreground: the exit status is the container's."""
        return self.call("run", "--bundle", str(bundle), cid or self.new_id(), timeout=timeout, pass_fds=pass_fds)

    def run_json(self, bundle: Path) -> Any:
        """`run` a checker command and parse its JSON report."""
        result = self.run(bundle)
        if result.returncode != 0 or not result.stdout.strip():
            raise AssertionError(f"{self.name} run exited {result.returncode}\n{result.stderr}{result.stdout}")
        return json.loads(result.stdout)

    def run_lines(self, bundle: Path) -> list[Any]:
        """`run` a container that prints one JSON document per line (several checker calls)."""
        result = self.run(bundle)
        if result.returncode != 0:
            raise AssertionError(f"{self.name} run exited {result.returncode}\n{result.stderr}{result.stdout}")
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def wait_stopped(self, cid: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(cid).json()
            if state["status"] == "stopped" or time.monotonic() > deadline:
                return state
            time.sleep(0.02)

    def cleanup(self) -> None:
        while self.ids:
            self.call("delete", "--force", self.ids.pop())
