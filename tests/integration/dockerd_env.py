"""A private Docker 20.10 (Debian's docker.io, as root) for ocikit's integration tests.

`session(tmp_path_factory, registry)` starts, in a temporary directory STATE:

* a containerd of its own (Debian's 1.6: root, state, gRPC and ttrpc sockets under STATE, the
  CRI plugin off), started and stopped by PID;
* `dockerd --config-file STATE/daemon.json`: data-root, pidfile and socket under STATE,
  `--bridge none --iptables=false` (no host network setting changes), the private containerd,
  `runtimes` naming each runtime the test gives (default: Debian's runc and the checkout's
  oci-run as `ocikit`) and `default-runtime` (oci-run unless told otherwise), the session
  registry as an insecure registry, lowered default ulimits (no CAP_SYS_RESOURCE here);
* an exec-root of the same length as Docker's `/var/run/docker` (15 characters) and unique
  (`/run/ocikitXXXX`), so that runtimes see the runtime root Docker gives them in production:
  `EXECROOT/runtime-runc/moby` with 64-hex container IDs, for added runtimes too
  (`DockerEnv.runtime_root`);
* IMAGE: a busybox-static image (podman_env's layout, made with the checkout's oci-commit)
  pushed to the session's test registry with skopeo and pulled by this dockerd.

    with dockerd_env.session(tmp_path_factory, registry) as docker:
        done = docker.docker("run", "--rm", docker.image, "true")   # default runtime: oci-run
        done = docker.docker("run", "--rm", "--runtime", "runc", docker.image, "true")

Other helpers reuse it with `exec_root=` (another unique path of 15 characters) or other
`runtimes=`. `docker.docker(...)` runs Debian's client (/usr/bin/docker, not whatever else is
on PATH) against the private socket, with a private DOCKER_CONFIG.

Swarm: `docker.swarm_init()` makes this daemon a single-node manager listening on 127.0.0.1
only (a random free port), and the teardown leaves the swarm before the daemon stops.

Containers' cgroups live under a parent of their own (`cgroup-parent`, /ocikit-docker-XXXXXX),
removed at the end; Docker's trust key goes to STATE/key.json (`deprecated-key-path`).
Global state Docker 20.10 touches and that cannot be redirected: the shims' sockets in
/run/containerd/s (removed when a shim exits) and the empty plugin folder /run/docker/plugins.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import secrets
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import images, podman_env
from tests.integration.registry_server import Registry

ROOT = Path(__file__).resolve().parents[2]
DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"  # Debian's 20.10 client: /usr/local/bin may hold another
DOCKER_INIT = "/usr/bin/docker-init"
REPOSITORY = "ocikit/busybox"
EXEC_ROOT_LENGTH = len("/var/run/docker")
DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing")


def docker_available() -> bool:
    return all(os.access(path, os.X_OK) for path in (DOCKERD, DOCKER, DOCKER_INIT)) \
        and shutil.which("containerd") is not None and os.path.exists(podman_env.BUSYBOX)


def unique_exec_root(prefix: str = "/run/ocikit") -> str:
    """A path nobody uses, as long as Docker's /var/run/docker (prefix + random hex)."""
    while True:
        path = prefix + secrets.token_hex(8)[:EXEC_ROOT_LENGTH - len(prefix)]
        if len(path) == EXEC_ROOT_LENGTH and not os.path.exists(path):
            return path


def oci_run_path() -> str:
    """The checkout's installed oci-run (what an engine would name in `runtimes`)."""
    installed = ROOT / ".venv" / "bin" / "oci-run"
    assert os.access(installed, os.X_OK), "oci-run is not installed (make install)"
    return str(installed)


def free_port(kind: int = socket.SOCK_STREAM, low: int = 1024, high: int = 49151) -> int:
    """A port in [low, high] free on 127.0.0.1 now (Swarm's VXLAN port must lie below 49152)."""
    while True:
        port = low + secrets.randbelow(high - low + 1)
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass
class DockerEnv:
    """One dockerd (and its containerd) in `base`."""

    base: Path
    registry: Registry
    exec_root: str = field(default_factory=unique_exec_root)
    runtimes: dict[str, str] = field(default_factory=lambda: {"ocikit": oci_run_path()})
    default_runtime: str = "ocikit"
    containerd: subprocess.Popen | None = None
    dockerd: subprocess.Popen | None = None
    swarm: bool = False
    cgroup_parent: str = field(default_factory=lambda: "/" + podman_env.unique("ocikit-docker-"))

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def image(self) -> str:
        return self.registry.ref(REPOSITORY, "test")

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.base / "client")}

    @property
    def runtime_root(self) -> str:
        """Where Docker 20.10 tells every runtime (runc or added) to keep its state, its --root."""
        return f"{self.exec_root}/runtime-runc/moby"

    def argv(self, *args: str) -> list[str]:
        return [DOCKER, *args]

    def docker(self, *args: str, timeout: float = 60, check: bool = False, input: str | None = None,
               ) -> subprocess.CompletedProcess:
        """Run Debian's docker client against this daemon, capturing stdout and stderr as text."""
        done = subprocess.run(self.argv(*args), env=self.environ, text=True, capture_output=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def run_in_terminal(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        """Run the docker client on a new pty (`docker run -it ...`): its exit code and all it printed."""
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(DOCKER, self.argv(*args), self.environ)
            finally:
                os._exit(127)
        out, deadline = b"", time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if select.select([fd], [], [], 0.2)[0]:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:  # EIO: the client is gone and the pty closed
                        break
                    if not data:
                        break
                    out += data
            else:
                os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out.decode(errors="replace")
        finally:
            os.close(fd)

    def inspect(self, name: str, template: str) -> str:
        """`docker inspect --format TEMPLATE NAME`, stripped."""
        return self.docker("inspect", "--format", template, name, check=True).stdout.strip()

    def reload(self, **changes: object) -> None:
        """Change daemon.json (`default_runtime=...`) and have dockerd reload it (SIGHUP), as an admin would."""
        for key, value in changes.items():
            setattr(self, key, value)
        (self.base / "daemon.json").write_text(json.dumps(self.daemon_config(), indent=1))
        assert self.dockerd is not None
        self.dockerd.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while self.docker("info", "--format", "{{.DefaultRuntime}}").stdout.strip() != self.default_runtime:
            if time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not reload its default runtime:\n{self.log()[-2000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        """dockerd's log so far (for assertion messages)."""
        try:
            return (self.base / "dockerd.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- start and stop ------------------------------------------------------------------

    def setup(self) -> None:
        (self.base / "client").mkdir(parents=True, exist_ok=True)
        self._start_containerd()
        self._start_dockerd()
        self._pull_image()

    def _start_containerd(self) -> None:
        b = self.base / "containerd"
        b.mkdir(parents=True, exist_ok=True)
        config = b / "config.toml"
        config.write_text(f"""\
version = 2
root = "{b}/root"
state = "{b}/state"
disabled_plugins = [{", ".join(f'"{name}"' for name in DISABLED_PLUGINS)}]

[grpc]
  address = "{b}/containerd.sock"
[ttrpc]
  address = "{b}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{b}/opt"
""")
        with open(b / "containerd.log", "wb") as log:
            self.containerd = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log,
                                               stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while not (b / "containerd.sock").exists():
            if self.containerd.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"containerd did not start: {(b / 'containerd.log').read_text()}")
            time.sleep(0.05)

    def daemon_config(self) -> dict:
        b = self.base
        return {
            "data-root": str(b / "data"), "exec-root": self.exec_root, "pidfile": str(b / "dockerd.pid"),
            "hosts": [f"unix://{self.socket}"], "containerd": str(b / "containerd" / "containerd.sock"),
            "bridge": "none", "iptables": False, "ip6tables": False, "ip-forward": False, "ip-masq": False,
            "userland-proxy": False, "storage-driver": "overlay2", "init-path": DOCKER_INIT,
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 1024}},
            "insecure-registries": [self.registry.host],
            "runtimes": {name: {"path": path} for name, path in self.runtimes.items()},
            "default-runtime": self.default_runtime,
            "features": {"buildkit": False}, "experimental": False, "debug": True,
            "deprecated-key-path": str(b / "key.json"), "cgroup-parent": self.cgroup_parent,
        }

    def _start_dockerd(self) -> None:
        config = self.base / "daemon.json"
        config.write_text(json.dumps(self.daemon_config(), indent=1))
        with open(self.base / "dockerd.log", "wb") as log:
            self.dockerd = subprocess.Popen([DOCKERD, "--config-file", str(config)], stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            env={**os.environ, "DOCKER_CONFIG": str(self.base / "client")})
        deadline = time.monotonic() + 60
        while self.docker("version", timeout=10).returncode != 0:
            if self.dockerd.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not start:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def _pull_image(self) -> None:
        """IMAGE into the test registry (skopeo from podman_env's OCI layout), then `docker pull`."""
        layout = podman_env.PodmanEnv(self.base / "image")._busybox_layout()
        images.skopeo_copy(f"oci:{layout}:busybox", f"docker://{self.image}", None, self.registry)
        self.docker("pull", "-q", self.image, timeout=120, check=True)

    def swarm_init(self) -> None:
        """A single-node swarm on 127.0.0.1 (a free port for the control plane and one for VXLAN)."""
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1",
                    "--listen-addr", f"127.0.0.1:{free_port()}", "--data-path-port", str(free_port(socket.SOCK_DGRAM)),
                    timeout=120, check=True)
        self.swarm = True

    def teardown(self) -> None:
        """Remove every container and service (runtimes undo their work), leave the swarm, stop both daemons
        by PID, remove the exec-root and the session directory."""
        if self.dockerd is not None and self.dockerd.poll() is None:
            if self.swarm:
                for service in self.docker("service", "ls", "-q").stdout.split():
                    self.docker("service", "rm", service)
                self.docker("swarm", "leave", "--force", timeout=60)
            listed = self.docker("ps", "-aq").stdout.split()
            if listed:
                self.docker("rm", "-f", *listed, timeout=120)
            _stop(self.dockerd, 30)
        if self.containerd is not None:
            _stop(self.containerd, 15)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for target in reversed(mounts):
            if any(target == p or target.startswith(p + "/") for p in (str(self.base), self.exec_root)):
                subprocess.run(["umount", "-l", target], capture_output=True)
        cgroups = Path("/sys/fs/cgroup")
        for hierarchy in (cgroups, *cgroups.iterdir()):
            with contextlib.suppress(OSError):
                (hierarchy / self.cgroup_parent.strip("/")).rmdir()
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)


def _stop(process: subprocess.Popen, timeout: float) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def session(tmp_path_factory: pytest.TempPathFactory, registry: Registry, **options: object) -> Iterator[DockerEnv]:
    """A started DockerEnv with IMAGE pulled (options: exec_root, runtimes, default_runtime); stopped after."""
    if not docker_available():  # in CI a skip would hide that .ci/install lacks them
        (pytest.fail if os.environ.get("CI") else pytest.skip)("docker.io, containerd or busybox-static is missing")
    if os.geteuid() != 0:
        pytest.skip("Docker tests run as root")
    env = DockerEnv(tmp_path_factory.mktemp("docker"), registry, **options)  # type: ignore[arg-type]
    try:
        env.setup()
        yield env
    finally:
        env.teardown()
