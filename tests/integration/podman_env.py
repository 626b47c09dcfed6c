"""A private, offline podman for ocikit's integration tests (podman 4.3 from Debian, as root).

Each test session gets its own podman world in a temporary directory, chosen through the
environment of every podman call, so nothing in /etc/containers, /var/lib/containers or
/run/libpod is read for settings or written:

* CONTAINERS_CONF (containers.conf): `default_ulimits = []` (podman's default nofile/nproc
  limits would make the runtime raise hard rlimits, which fails with EPERM here: there is no
  CAP_SYS_RESOURCE); `netns = "none"` (containers get no network unless a test asks with
  `--network NAME`); `pull_policy = "never"` (an image that is not in the store is an error,
  never a registry lookup); cgroupfs cgroups; events in a file of our own; conmon, tmp_dir,
  static_dir and volume_path in the session directory; the CNI backend with
  `cni_plugin_dirs = [SESSION/cni, /usr/lib/cni]` and `network_config_dir = SESSION/networks`.
* CONTAINERS_STORAGE_CONF (storage.conf): overlay driver, graphroot and runroot in the session.
* CONTAINERS_REGISTRIES_CONF (registries.conf): no registry is searched for short names.

The image, `localhost/ocikit/busybox:test` (IMAGE), is a busybox-static rootfs (every applet
linked in /bin) made with the checkout's oci-commit and pulled from an OCI layout
(`podman pull oci:LAYOUT:TAG`) once per session: no network.

Use it from a test file of tests/integration/ (the folder is on sys.path):

    import podman_env

    @pytest.fixture(scope="session")
    def podman(tmp_path_factory):
        with podman_env.session(tmp_path_factory) as env:
            yield env

    @pytest.mark.root
    def test_true(podman):
        done = podman.run("run", "--rm", podman_env.IMAGE, "true", runtime=podman.runtime("oci-run"))
        assert done.returncode == 0, done.stderr

Several test files share one session (the setup is reference-counted). `runtime("runc")` is
Debian's runc, `runtime("oci-run")` a wrapper that runs the checkout's bin/oci_run.py with the
test interpreter. `install_cni_plugin("ocikit", "net")` does the same for the CNI plugin and
`add_network(...)` writes a conflist. Container names from `unique()` keep tests apart; at the
end every container is removed (so runtimes and CNI plugins undo their work) and the session
directory is unmounted and deleted.

Global state podman 4.3 still touches and that cannot be redirected: the runtime's state
directory (runc: /run/runc, oci-run: /run/oci-run), the cgroups /libpod_parent/libpod-ID
(removed with the container), network namespaces /run/netns/cni-UUID and the CNI result cache
in /var/lib/cni (both removed on CNI DEL).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pty
import secrets
import select
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/ocikit/busybox:test"
BUSYBOX = "/bin/busybox"


def unique(prefix: str = "ocikit") -> str:
    """A name nobody else uses (containers, networks, bridges: keep prefix + 6 <= 15 for links)."""
    return f"{prefix}{secrets.token_hex(3)}"


def podman_available() -> bool:
    return shutil.which("podman") is not None and os.path.exists(BUSYBOX)


@dataclass
class PodmanEnv:
    """One podman world in `base`; `run` calls podman with it."""

    base: Path

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ,
                "CONTAINERS_CONF": str(self.base / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(self.base / "storage.conf"),
                "CONTAINERS_REGISTRIES_CONF": str(self.base / "registries.conf")}

    @property
    def cni_dir(self) -> Path:
        return self.base / "cni"

    @property
    def network_dir(self) -> Path:
        return self.base / "networks"

    def argv(self, *args: str, runtime: str | None = None) -> list[str]:
        """The podman command line: `--runtime PATH` (when given) goes before the verb."""
        return ["podman", *(["--runtime", runtime] if runtime else []), *args]

    def run(self, *args: str, runtime: str | None = None, env: dict[str, str] | None = None,
            input: str | None = None, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        """Run podman (with `env` added to its environment), capturing stdout and stderr as text."""
        done = subprocess.run(self.argv(*args, runtime=runtime), env={**self.environ, **(env or {})}, input=input,
                              text=True, capture_output=True, timeout=timeout, cwd=self.base)  # conmon leaves
        # an `oom` file in its working directory when a container's process is OOM-killed
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def run_in_terminal(self, *args: str, keys: bytes, runtime: str | None = None, prompt: bytes = b"# ",
                        timeout: float = 30) -> tuple[int, bytes]:
        """Run podman on a new pty, type `keys` once `prompt` shows; its exit code and all it printed."""
        pid, fd = pty.fork()
        if pid == 0:  # the child: podman with the pty as its controlling terminal
            try:
                os.execvpe("podman", self.argv(*args, runtime=runtime), self.environ)
            finally:
                os._exit(127)
        out, typed, deadline = b"", False, time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if select.select([fd], [], [], 0.2)[0]:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:  # EIO: podman is gone and the pty closed
                        break
                    if not data:
                        break
                    out += data
                if not typed and prompt in out:
                    os.write(fd, keys)
                    typed = True
            else:
                os.kill(pid, 9)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def started(self, *run_args: str, runtime: str | None = None, command: tuple[str, ...] = ("sleep", "60"),
                ) -> Iterator[tuple[str, int]]:
        """A detached container (`podman run -d RUN_ARGS IMAGE COMMAND`): its name and host pid; removed after."""
        name = unique("ock")
        self.run("run", "-d", "--name", name, *run_args, IMAGE, *command, runtime=runtime, check=True)
        try:
            pid = self.run("inspect", "--format", "{{.State.Pid}}", name, check=True).stdout.strip()
            yield name, int(pid)
        finally:
            self.run("rm", "-f", "-t", "0", name, runtime=runtime)

    def runtime(self, name: str) -> str:
        """Path of a runtime for `--runtime`: `runc` (Debian) or `oci-run` (this checkout)."""
        if name.startswith("oci-"):
            return str(self._ocikit_wrapper(name.removeprefix("oci-"), self.base / "bin" / name))
        path = shutil.which(name)
        if path is None:
            raise FileNotFoundError(name)
        return path

    def install_cni_plugin(self, plugin: str, command: str) -> Path:
        """Make the checkout's `oci-COMMAND` the CNI plugin `PLUGIN` (a file of that name in cni_dir)."""
        return self._ocikit_wrapper(command, self.cni_dir / plugin)

    def add_network(self, name: str, plugins: list[dict], cni_version: str = "1.0.0") -> Path:
        """Write the conflist NAME (podman reads network_dir on every command)."""
        path = self.network_dir / f"{name}.conflist"
        path.write_text(json.dumps({"cniVersion": cni_version, "name": name, "plugins": plugins}, indent=1))
        return path

    def _ocikit_wrapper(self, command: str, path: Path) -> Path:
        script = ROOT / "bin" / f"oci_{command.replace('-', '_')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} \"$@\"\n")
        path.chmod(0o755)
        return path

    def setup(self) -> None:
        """Write the configuration files and import IMAGE."""
        for sub in ("cni", "networks", "tmp", "bin"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        b = self.base
        (b / "containers.conf").write_text(f"""\
[containers]
default_ulimits = []
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{b}/events.log"
conmon_path = ["/usr/bin/conmon"]
pull_policy = "never"
runtime = "runc"
tmp_dir = "{b}/tmp"
static_dir = "{b}/storage/libpod"
volume_path = "{b}/storage/volumes"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{b}/cni", "/usr/lib/cni"]
network_config_dir = "{b}/networks"
""")
        (b / "storage.conf").write_text(f"""\
[storage]
driver = "overlay"
graphroot = "{b}/storage"
runroot = "{b}/run"
""")
        (b / "registries.conf").write_text("unqualified-search-registries = []\n")
        layout = self._busybox_layout()
        image_id = self.run("pull", "-q", f"oci:{layout}:busybox", check=True).stdout.split()[-1]
        self.run("tag", image_id, IMAGE, check=True)

    def _busybox_layout(self) -> Path:
        rootfs, layout = self.base / "rootfs", self.base / "layout"
        for sub in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
            (rootfs / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (rootfs / "bin" / applet).symlink_to("busybox")
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
        (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        subprocess.run([sys.executable, str(ROOT / "bin" / "oci_commit.py"), "-q", "--from-dir", str(rootfs),
                        "--owner", "0:0", "--cmd", "/bin/sh", "--env", "PATH=/bin", f"{layout}:busybox"],
                       capture_output=True, check=True, timeout=60, env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
        return layout

    def teardown(self) -> None:
        """Remove every container (runtimes and CNI plugins undo their work), then the session directory."""
        self.run("rm", "-a", "-f", "-t", "0", timeout=120)
        self._wait_for_cleanups()
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for target in reversed(mounts):
            if target == str(self.base) or target.startswith(f"{self.base}/"):
                subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def _wait_for_cleanups(self, timeout: float = 20) -> None:
        """Wait until no process of this world is left: conmon runs `podman container cleanup` after a
        container exits, which would otherwise remount the storage after the session directory is gone."""
        marker = str(self.base).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = False
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        busy = marker in f.read()
                except OSError:
                    continue
                if busy:
                    break
            if not busy:
                return
            time.sleep(0.1)


_shared: dict[str, object] = {"env": None, "users": 0}


@contextlib.contextmanager
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanEnv]:
    """The session's PodmanEnv, made on first use and torn down when its last user is done."""
    if not podman_available():  # in CI a skip would hide that .ci/install lacks them
        (pytest.fail if os.environ.get("CI") else pytest.skip)("podman or busybox-static is not installed")
    if os.geteuid() != 0:
        pytest.skip("podman tests run as root")
    if _shared["env"] is None:
        env = PodmanEnv(tmp_path_factory.mktemp("podman"))
        try:
            env.setup()
        except BaseException:
            env.teardown()
            raise
        _shared["env"] = env
    _shared["users"] += 1
    try:
        yield _shared["env"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["env"].teardown()
            _shared["env"] = None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.X.Y.0/24 (X from 200) that overlaps no route of the host, in any routing table."""
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True,
                                       text=True, check=True).stdout)
    taken = [ipaddress.ip_network(r["dst"], strict=False) for r in routes if r.get("dst", "default") != "default"]
    for _ in range(100):
        subnet = ipaddress.ip_network(f"10.{secrets.choice(range(200, 255))}.{secrets.randbelow(256)}.0/24")
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise LookupError("no free 10.x subnet")


def host_cgroup_file(pid: int, controller: str, name: str) -> Path:
    """The file NAME of PID's cgroup of CONTROLLER as the host sees it (cgroup v1, or v2 for controller '')."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(",") or (controller == "" and controllers == ""):
                mount = f"/sys/fs/cgroup/{controller}" if controller else "/sys/fs/cgroup"
                return Path(mount + path) / name
    raise LookupError(f"pid {pid} has no {controller or 'v2'} cgroup")
