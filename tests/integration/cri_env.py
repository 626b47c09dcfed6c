"""A private containerd 1.6 (Debian) with its CRI plugin, driven over gRPC as the kubelet drives it.

`session(base, registry, column)` starts one containerd in `base` (its own root, state, gRPC and
ttrpc sockets, opt path, CNI bin and conf folders, host-local data, oci-net state), with the CRI
plugin enabled and one runtime handler, `column.handler`, the default:

* `RUNC`: Debian's runc as the runc v2 shim's BinaryName, and the Debian CNI plugins
  bridge + host-local, then portmap (`capabilities: {"portMappings": true}`): the reference;
* `OCIKIT`: the checkout's oci-run as BinaryName and oci-net as the pod network's only CNI
  plugin (a file `ocikit` in the CNI bin folder: the venv's launcher, as installed).

The runtime root is the shim's default, /run/containerd/runc/k8s.io (the CRI namespace), the
one a kubelet's containerd uses, so its path lengths are the real ones. The CNI bin folder
also holds `loopback` (containerd's CRI sets up the pod's lo with it). The sandbox ("pause")
image and the workload image come from the tests' docker-registry (`push_images`), both made
with oci-commit from busybox-static: pause's entrypoint only sleeps.

    with cri_env.session(tmp / "cri-runc", registry, cri_env.RUNC, images) as cri:
        cri.runtime.Version(cri.api.VersionRequest())

Names on the host are unique per session: bridge `ocicri` + 6 hex, nftables table
`ocikit_cri` + 6 hex, a free /24 of 10.213.0.0/16, cgroup parent `/ocikitcri` + 6 hex, network
`cri` + 6 hex. At the end every pod is stopped and removed (so the runtime and the CNI plugins
undo their work), containerd is stopped by PID, the shims it started are ended by PID, and
the cgroup parent, bridge, table and session folder are removed.

Global state containerd 1.6's CRI touches and that cannot be redirected: the runtime root
above, the shims' sockets in /run/containerd/s, the pods' network namespaces
/var/run/netns/cni-UUID and libcni's result cache /var/lib/cni/results (all removed with the
pod).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.integration import cri_api, podman_env
from tests.integration.netutil import free_subnet

ROOT = Path(__file__).resolve().parents[2]
CNI_PLUGINS = Path("/usr/lib/cni")
RUNTIME_ROOT = "/run/containerd/runc/k8s.io"
PAUSE_REPO, WORKLOAD_REPO = "ocikit/cri-pause", "ocikit/cri-busybox"
DISABLED_PLUGINS = ("io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing")


@dataclass(frozen=True)
class Column:
    """One engine column of the matrix: a runtime handler and the pod network's CNI plugins."""

    name: str
    handler: str
    ocikit: bool


RUNC = Column("runc + bridge/host-local/portmap", "runc", ocikit=False)
OCIKIT = Column("oci-run + oci-net", "ocikit", ocikit=True)
COLUMNS = (RUNC, OCIKIT)


def missing_tools() -> list[str]:
    """What the CRI tests need that is not installed (.ci/install installs all of it)."""
    need = [shutil.which(t) is None and t for t in ("containerd", "containerd-shim-runc-v2", "runc", "nft",
                                                     "iptables")]
    need += [not (CNI_PLUGINS / p).exists() and f"{CNI_PLUGINS}/{p}" for p in ("bridge", "host-local", "portmap",
                                                                               "loopback")]
    need += [not os.path.exists(podman_env.BUSYBOX) and podman_env.BUSYBOX]
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        need.append("grpcio, grpcio-tools (the test extras)")
    return [n for n in need if n]


def ocikit_command(name: str) -> str:
    """The installed launcher of `oci-NAME` beside the test interpreter (what `make install` writes)."""
    launcher = Path(sys.executable).parent / f"oci-{name}"
    if not launcher.exists():
        raise FileNotFoundError(f"{launcher} is missing: run `make install`")
    return str(launcher)


@dataclass(frozen=True)
class Images:
    """The references pushed to the tests' registry."""

    registry: str  # 127.0.0.1:PORT
    pause: str
    workload: str


def push_images(work: Path, registry_host: str) -> Images:
    """Make the pause and workload images with oci-commit (busybox-static rootfs) and push them with oci-push."""
    rootfs, layout = work / "rootfs", work / "layout"
    for sub in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "www"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(podman_env.BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([podman_env.BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        if applet != "busybox" and not (rootfs / "bin" / applet).exists():
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (rootfs / "www" / "index.html").write_text("ocikit cri\n")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}
    commit = [ocikit_command("commit"), "-q", "--from-dir", str(rootfs), "--owner", "0:0", "--env", "PATH=/bin"]
    subprocess.run([*commit, "--cmd", "/bin/sh", f"{layout}:busybox"], check=True, capture_output=True, env=env)
    subprocess.run([*commit, "--entrypoint", "/bin/sleep", "--entrypoint", "2147483647", f"{layout}:pause"],
                   check=True, capture_output=True, env=env)
    refs = {}
    for tag, repo in (("pause", PAUSE_REPO), ("busybox", WORKLOAD_REPO)):
        refs[tag] = f"{registry_host}/{repo}:latest"
        subprocess.run([ocikit_command("push"), "-q", "--insecure", f"{layout}:{tag}", refs[tag]], check=True,
                       capture_output=True, timeout=120)
    return Images(registry_host, refs["pause"], refs["busybox"])


@dataclass
class Cri:
    """One containerd with the CRI plugin in `base`, for `column`."""

    base: Path
    column: Column
    images: Images
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    process: subprocess.Popen | None = None
    api: ModuleType | None = None
    grpc_api: ModuleType | None = None
    channel: Any = None
    runtime: Any = None  # runtime.v1.RuntimeService stub
    image: Any = None  # runtime.v1.ImageService stub
    subnet: str = ""

    @property
    def address(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def network(self) -> str:
        return f"cri{self.tag}"

    @property
    def bridge(self) -> str:
        return f"ocicri{self.tag}"

    @property
    def nft_table(self) -> str:
        return f"ocikit_cri{self.tag}"

    @property
    def cgroup_parent(self) -> str:
        return f"/ocikitcri{self.tag}"

    @property
    def net_state(self) -> Path:
        """oci-net's state directory (the conflist's stateDir)."""
        return self.base / "net"

    @property
    def runtime_binary(self) -> str:
        return ocikit_command("run") if self.column.ocikit else shutil.which("runc") or "runc"

    def conflist(self) -> dict[str, Any]:
        """The pod network: oci-net alone, or bridge + host-local then portmap."""
        if self.column.ocikit:
            plugins: list[dict[str, Any]] = [
                {"type": "ocikit", "bridge": self.bridge, "nftTable": self.nft_table,
                 "stateDir": str(self.net_state), "capabilities": {"portMappings": True},
                 "ipam": {"subnet": self.subnet}}]
        else:
            plugins = [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.base / "host-local")}},
                {"type": "portmap", "capabilities": {"portMappings": True}}]
        return {"cniVersion": "1.0.0", "name": self.network, "plugins": plugins}

    def config(self) -> str:
        b, handler = self.base, self.column.handler
        return f"""\
version = 2
root = "{b}/root"
state = "{b}/state"
disabled_plugins = [{", ".join(f'"{name}"' for name in DISABLED_PLUGINS)}]

[grpc]
  address = "{self.address}"
[ttrpc]
  address = "{self.address}.ttrpc"
[debug]
  address = ""
  level = "debug"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{b}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.images.pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "{handler}"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}.options]
        BinaryName = "{self.runtime_binary}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{b}/cni-bin"
    conf_dir = "{b}/cni-conf"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{self.images.registry}"]
    endpoint = ["http://{self.images.registry}"]
"""

    def setup(self, stubs: Path) -> None:
        """Write the CNI folders and the config, start containerd, wait until the CRI says ready."""
        import grpc

        self.api, self.grpc_api = cri_api.load(stubs)
        self.subnet = free_subnet([])
        bin_dir, conf_dir = self.base / "cni-bin", self.base / "cni-conf"
        for folder in (bin_dir, conf_dir, self.base / "pods", self.net_state):
            folder.mkdir(parents=True, exist_ok=True)
        for plugin in ("loopback", "bridge", "host-local", "portmap"):
            (bin_dir / plugin).symlink_to(CNI_PLUGINS / plugin)
        if self.column.ocikit:
            (bin_dir / "ocikit").symlink_to(ocikit_command("net"))
        (conf_dir / f"10-{self.network}.conflist").write_text(json.dumps(self.conflist(), indent=1))
        (self.base / "config.toml").write_text(self.config())
        log = open(self.base / "containerd.log", "wb")  # noqa: SIM115 - containerd keeps it
        self.process = subprocess.Popen(["containerd", "--config", str(self.base / "config.toml")], stdout=log,
                                        stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.channel = grpc.insecure_channel(f"unix://{self.address}")
        self.runtime = self.grpc_api.RuntimeServiceStub(self.channel)
        self.image = self.grpc_api.ImageServiceStub(self.channel)
        deadline = time.monotonic() + 30
        while True:
            try:
                status = self.runtime.Status(self.api.StatusRequest(), timeout=5)
                if all(c.status for c in status.status.conditions):
                    return
            except grpc.RpcError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"containerd's CRI did not become ready: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.base / "containerd.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def teardown(self) -> None:
        """Stop and remove every pod, stop containerd and its shims by PID, remove what the session made."""
        if self.process is not None and self.process.poll() is None and self.runtime is not None:
            with contextlib.suppress(Exception):
                for pod in self.runtime.ListPodSandbox(self.api.ListPodSandboxRequest(), timeout=30).items:
                    with contextlib.suppress(Exception):
                        self.runtime.StopPodSandbox(self.api.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=60)
                    with contextlib.suppress(Exception):
                        self.runtime.RemovePodSandbox(self.api.RemovePodSandboxRequest(pod_sandbox_id=pod.id),
                                                      timeout=60)
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            for pid in self.shims():  # started for this containerd only (their -address is ours)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "inet", self.nft_table], capture_output=True)
        remove_cgroup_tree(self.cgroup_parent)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for target in reversed(mounts):
            if target == str(self.base) or target.startswith(f"{self.base}/"):
                subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def shims(self) -> list[int]:
        """PIDs of the runc v2 shims serving this containerd."""
        marker = str(self.address).encode()
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and marker in argv:
                found.append(int(pid))
        return found


def remove_cgroup_tree(parent: str) -> None:
    """Remove the cgroup `parent` and everything below it, in every hierarchy (v1 and v2)."""
    root = Path("/sys/fs/cgroup")
    tops = [root] if (root / "cgroup.controllers").exists() else [p for p in root.iterdir() if p.is_dir()]
    for top in tops:
        base = top / parent.lstrip("/")
        if not base.is_dir():
            continue
        for folder in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


@contextlib.contextmanager
def session(base: Path, column: Column, images: Images, stubs: Path) -> Iterator[Cri]:
    """A started Cri for `column`; everything it made is removed afterwards."""
    cri = Cri(base, column, images)
    try:
        cri.setup(stubs)
        yield cri
    finally:
        cri.teardown()
