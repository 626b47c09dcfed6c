"""podman's CNI backend with oci-net as its plugin: an address, a name and a published port.

podman runs with a private configuration (CONTAINERS_CONF naming a temporary CNI config
directory and plugin directory holding `ocikit`), a private storage root and runroot, and
an image imported from a busybox-static root filesystem, so nothing of the host's podman
set-up is read or changed and no registry is contacted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.netutil import Lab, connect_tcp, free_port, free_subnet

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")]

# CAP_SYS_RESOURCE is not ours: podman's default rlimits (raised to the maximum) would fail in runc
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture
def podman(tmp_path):
    lab = Lab(tmp_path)
    root = Path(tempfile.mkdtemp(prefix="ocikit-pm-", dir="/tmp"))  # podman wants a runroot under 50 characters
    for sub in ("cni-bin", "net.d", "rootfs/bin", "root", "runroot"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    script = Path(sys.executable).parent / "oci-net"
    (root / "cni-bin" / "ocikit").symlink_to(script)
    shutil.copy("/bin/busybox", root / "rootfs/bin/busybox")
    for app in ("sh", "nc", "ip", "cat", "echo", "sleep"):
        (root / "rootfs/bin" / app).symlink_to("busybox")
    (root / "containers.conf").write_text(
        "[network]\nnetwork_backend = \"cni\"\n"
        f"cni_plugin_dirs = [\"{root / 'cni-bin'}\", \"/usr/lib/cni\"]\n"
        f"network_config_dir = \"{root / 'net.d'}\"\n"
        "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n")
    env = {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf")}
    argv = ["podman", "--root", str(root / "root"), "--runroot", str(root / "runroot"), "--storage-driver", "vfs"]

    def run(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(argv + list(args), capture_output=True, env=env, input=input, timeout=90)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {args}: {proc.stderr.decode(errors='replace')}")
        return proc

    tar = subprocess.run(["tar", "-C", str(root / "rootfs"), "-c", "."], capture_output=True, check=True).stdout
    run("import", "-", "localhost/ocikit-bb:latest", input=tar)
    name, bridge = f"pn{lab.tag}", f"ocit{lab.tag}p"
    lab.bridges.append(bridge)
    conflist = {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "ocikit", "bridge": bridge, "nftTable": lab.table, "stateDir": lab.state,
         "ipam": {"subnet": free_subnet([])}, "capabilities": {"portMappings": True, "aliases": True}}]}
    (root / "net.d" / f"{name}.conflist").write_text(json.dumps(conflist))
    try:
        yield run, name, lab
    finally:
        run("rm", "-af", "-t", "0", check=False)
        run("rmi", "-af", check=False)
        with open("/proc/mounts") as f:
            for line in reversed(f.read().splitlines()):
                if line.split()[1].startswith(str(root)):
                    subprocess.run(["umount", "-l", line.split()[1]], capture_output=True)
        lab.close()
        shutil.rmtree(root, ignore_errors=True)


def test_podman_with_oci_net_as_cni_plugin(podman):
    run, network, lab = podman
    out = run("run", "--rm", *LIMITS, "--network", network, "localhost/ocikit-bb:latest",
              "sh", "-c", "ip -4 -o addr show eth0; ip route").stdout.decode()
    assert "eth0" in out and "inet 10.213." in out and "default via 10.213." in out, out

    port = free_port()
    run("run", "-d", "--name", f"web{lab.tag}", *LIMITS, "--network", network, "-p", f"127.0.0.1:{port}:8000",
        "localhost/ocikit-bb:latest", "sh", "-c", "while true; do echo hello-from-podman | nc -l -p 8000; done")
    answer = ""
    for _ in range(50):
        with contextlib.suppress(OSError):
            answer = connect_tcp("127.0.0.1", port, timeout=1)
            break
        time.sleep(0.1)
    assert answer == "hello-from-podman"
    leases = json.loads((Path(lab.state) / "leases" / f"{network}.json").read_text())
    assert [lease["ports"][0]["hostPort"] for lease in leases.values()] == [port]

    run("rm", "-f", "-t", "0", f"web{lab.tag}")
    assert json.loads((Path(lab.state) / "leases" / f"{network}.json").read_text()) == {}
    rules = subprocess.run(["nft", "list", "table", "inet", lab.table], capture_output=True, text=True).stdout
    assert "ocikit port" not in rules
