"""A private, offline containerd (Debian's 1.6, as root) for ocikit's integration tests.

`session(tmp_path_factory)` starts one containerd in a temporary directory: its own --config
(root, state, gRPC and ttrpc sockets, the opt plugin's path all in that directory; the cri
plugin and the snapshotters this machine lacks disabled, so nothing listens on the network and
no CNI is set up), and imports `IMAGE`, a busybox-static image made with the checkout's
oci-commit (podman_env's layout), from an OCI archive: no registry is ever asked.

Containers run through the runc v2 shim with the checkout's oci-run as its binary
(`Containerd.run_flags()` gives `--runc-binary`, a private `--runc-root` and `--fifo-dir`):

    with containerd_env.session(tmp_path_factory) as ctd:
        done = ctd.ctr("run", "--rm", *ctd.run_flags(), containerd_env.IMAGE, "t1", "true")

Every containerd call goes to a containerd namespace of its own (`ocikit` + random), so the
cgroups ctr asks for are /NAMESPACE/ID, unique on the host; they are removed at the end.

Global state containerd 1.6 touches and that cannot be redirected: the shims' sockets in
/run/containerd/s (removed when a shim exits).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import podman_env

IMAGE = "localhost/ocikit/busybox:busybox"
DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing")


def containerd_available() -> bool:
    return all(shutil.which(tool) for tool in ("containerd", "ctr", "containerd-shim-runc-v2")) \
        and os.path.exists(podman_env.BUSYBOX)


@dataclass
class Containerd:
    """One containerd in `base`, serving the namespace `namespace`."""

    base: Path
    namespace: str = field(default_factory=lambda: podman_env.unique("ocikit"))
    process: subprocess.Popen | None = None

    @property
    def address(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        """The shim's --runc-root: it adds the namespace, so oci-run's --root is runc_root/namespace."""
        return self.base / "runc"

    @property
    def oci_run(self) -> Path:
        return self.base / "bin" / "oci-run"

    def ctr(self, *args: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        """Run `ctr --address SOCK --namespace NS ARGS`, capturing stdout and stderr as text."""
        done = subprocess.run(self.ctr_argv(*args), text=True, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def ctr_argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.address), "--namespace", self.namespace, *args]

    def run_flags(self) -> list[str]:
        """`ctr run` flags for oci-run through the runc v2 shim."""
        return ["--runc-binary", str(self.oci_run), "--runc-root", str(self.runc_root),
                "--fifo-dir", str(self.base / "fifo")]

    def exec_flags(self) -> list[str]:
        """`ctr task exec` flags: its fifos in the session directory too."""
        return ["--fifo-dir", str(self.base / "fifo")]

    def task_pid(self, container_id: str) -> int:
        for line in self.ctr("task", "ls", check=True).stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return int(fields[1])
        raise LookupError(f"no task {container_id}")

    def task_status(self, container_id: str) -> str | None:
        for line in self.ctr("task", "ls", check=True).stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return fields[2]
        return None

    def wait_status(self, container_id: str, status: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.task_status(container_id) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"task {container_id} is {self.task_status(container_id)}, not {status}")
            time.sleep(0.05)

    def remove(self, container_id: str) -> None:
        """Kill, delete and remove a container, whatever state it is in."""
        if self.task_status(container_id) is not None:
            self.ctr("task", "kill", "-s", "KILL", container_id)
            with contextlib.suppress(AssertionError):
                self.wait_status(container_id, "STOPPED", timeout=5)
            self.ctr("task", "delete", "--force", container_id)
        self.ctr("container", "rm", container_id)

    def setup(self) -> None:
        """Write the config, start containerd, import IMAGE."""
        (self.base / "fifo").mkdir(parents=True, exist_ok=True)
        podman = podman_env.PodmanEnv(self.base)  # its oci-run wrapper and busybox layout, unchanged
        podman._ocikit_wrapper("run", self.oci_run)
        config = self.base / "config.toml"
        config.write_text(f"""\
version = 2
root = "{self.base}/root"
state = "{self.base}/state"
disabled_plugins = [{", ".join(f'"{name}"' for name in DISABLED_PLUGINS)}]

[grpc]
  address = "{self.address}"
[ttrpc]
  address = "{self.address}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base}/opt"
""")
        log = open(self.base / "containerd.log", "wb")  # noqa: SIM115 - containerd keeps it
        self.process = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while self.ctr("version").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"containerd did not start: {(self.base / 'containerd.log').read_text()}")
            time.sleep(0.05)
        archive = self.base / "busybox.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(podman._busybox_layout(), arcname=".")
        self.ctr("images", "import", "--base-name", IMAGE.rsplit(":", 1)[0], str(archive), timeout=60, check=True)

    def teardown(self) -> None:
        """Remove every container (so oci-run undoes its work), stop containerd, delete cgroups and files."""
        if self.process is not None and self.process.poll() is None:
            listed = self.ctr("containers", "ls", "-q")
            for container_id in listed.stdout.split():
                self.remove(container_id)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        cgroups = Path("/sys/fs/cgroup")
        for hierarchy in (cgroups, *cgroups.iterdir()):  # cgroup v2 is the top itself, v1 one folder each
            with contextlib.suppress(OSError):
                (hierarchy / self.namespace).rmdir()
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for target in reversed(mounts):
            if target == str(self.base) or target.startswith(f"{self.base}/"):
                subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A started Containerd with IMAGE imported; stopped and removed afterwards."""
    if not containerd_available():  # in CI a skip would hide that .ci/install lacks them
        (pytest.fail if os.environ.get("CI") else pytest.skip)("containerd or busybox-static is not installed")
    if os.geteuid() != 0:
        pytest.skip("containerd tests run as root")
    env = Containerd(tmp_path_factory.mktemp("containerd"))
    try:
        env.setup()
        yield env
    finally:
        env.teardown()
