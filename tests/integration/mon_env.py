"""oci-mon under test: a private state root, a runtime (oci-run, runc, or crun through this
machine's wrapper), busybox bundles, and a cleanup that removes every container and stops the
monitor it started (by the pid in ROOT/monitor.pid, never by name).

crun 1.8.1 refuses this machine's hybrid cgroup layout and ociVersion above 1.1.x: it runs in a
private mount namespace without the cgroup2 mount (the conformance tests' wrapper, as a script,
since oci-mon takes a runtime's path), and its bundles say ociVersion 1.1.0.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from tests.conftest import command
from tests.integration.ocirun_bundle import APPLETS, BUSYBOX, Bundle

RUNTIMES = ("oci-run", "runc", "crun")
MORE_APPLETS = ["usleep", "stty", "printf", "tty", "seq", "yes", "env"]
TIMEOUT = 60


def make_rootfs(path: Path) -> Path:
    """busybox-static with the applets the tests use, /bin on PATH."""
    (path / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in sorted(set(APPLETS + MORE_APPLETS)):
        os.symlink("busybox", path / "bin" / applet)
    for folder in ("proc", "sys", "dev", "tmp", "etc"):
        (path / folder).mkdir()
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return path


def unique_id(prefix: str = "mon") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def runtime_path(name: str, folder: Path) -> str:
    """What --runtime gets for runtime `name`: oci-run and runc by name, crun as a wrapper script."""
    if name != "crun":
        return name
    wrapper = folder / "crun-wrapper"
    wrapper.write_text("#!/bin/sh\nexec unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; "
                       "exec crun \"$@\"' crun \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


class MonEnv:
    """One state root with its runtime; `mon(...)` runs oci-mon on it."""

    def __init__(self, base: Path, runtime: str, rootfs: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.runtime_name = runtime
        self.runtime = runtime_path(runtime, base)
        self.runtime_root = base / "rt"
        self.rootfs = rootfs
        self.started_monitors: set[int] = set()

    def argv(self, *args: str) -> list[str]:
        return [*command("mon"), "--root", str(self.root), *args]

    def mon(self, *args: str, timeout: float = TIMEOUT, check: bool = False) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        self._note_monitor()
        if check and done.returncode != 0:
            raise AssertionError(f"oci-mon {shlex.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def _note_monitor(self) -> None:
        pid = self.monitor_pid()
        if pid:
            self.started_monitors.add(pid)

    def monitor_pid(self) -> int | None:
        try:
            return int(json.loads((self.root / "monitor.pid").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def bundle(self, *args: str, tty: bool = False, annotations: dict[str, str] | None = None,
               pid_namespace: bool = True, memory: int | None = None) -> str:
        path = self.base / f"bundle-{uuid.uuid4().hex[:8]}"
        b = Bundle(path, self.rootfs)
        b.args(*args)
        b.config["process"]["terminal"] = tty
        b.config["process"]["env"] = ["PATH=/bin", "TERM=xterm"]
        if self.runtime_name == "crun":
            b.config["ociVersion"] = "1.1.0"
        if annotations:
            b.config["annotations"] = annotations
        if not pid_namespace:
            b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "pid"]
        if memory:
            b.config["linux"].setdefault("resources", {})["memory"] = {"limit": memory, "swap": memory}
        return b.write()

    def run(self, container_id: str, bundle: str, *flags: str) -> dict[str, Any]:
        done = self.mon("run", "--runtime", self.runtime, "--runtime-root", str(self.runtime_root), "-b", bundle,
                        *flags, container_id, check=True)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def record(self, container_id: str) -> dict[str, Any]:
        return json.loads((self.root / "containers" / container_id / "record.json").read_text())  # type: ignore

    def state(self, container_id: str) -> dict[str, Any]:
        return self.record(container_id)["state"]  # type: ignore[no-any-return]

    def events(self) -> list[dict[str, Any]]:
        lines = []
        for name in ("events.log.1", "events.log"):
            path = self.root / name
            if path.exists():
                lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return lines

    def log_text(self, container_id: str) -> str:
        return (self.root / "containers" / container_id / "ctr.log").read_text(errors="replace")

    def runtime_has(self, container_id: str) -> bool:
        """Whether the runtime still knows the container."""
        argv = [self.runtime, "--root", str(self.runtime_root), "state", container_id]
        if self.runtime_name == "oci-run":
            argv[0] = str(Path(command("run")[1]).parent.parent / ".venv" / "bin" / "oci-run")
        return subprocess.run(argv, capture_output=True, timeout=TIMEOUT).returncode == 0

    def cleanup(self) -> None:
        """Remove every container (through the monitor), then stop the monitors this test saw."""
        if (self.root / "containers").is_dir():
            for container_id in os.listdir(self.root / "containers"):
                try:
                    self.mon("rm", "-f", container_id, timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
        self._note_monitor()
        for pid in self.started_monitors:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            wait_for(lambda: not alive(pid), 10, "the monitor to stop")  # noqa: B023 (called at once)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_for(predicate: Callable[[], Any], timeout: float = 30, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
