"""podman's CNI backend with oci-net as the plugin (`ocikit`), and Debian's plugins as the reference.

Issue 8's "podman --network with oci-net as its CNI plugin gives a container an address and a
working published port". Each test makes its own network: a unique name and bridge, a 10.x/24
that overlaps no host route, and removes the bridge (and oci-net's nftables table) after.
Traffic goes only between the host and the containers' namespaces (no masquerade).
"""

import contextlib
import ipaddress
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration import podman_env
from tests.integration.podman_env import IMAGE

pytestmark = pytest.mark.root

PLUGINS = [
    pytest.param("debian", id="bridge+host-local+portmap"),
    pytest.param("ocikit", id="oci-net"),
]


@dataclass
class Network:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    plugin: str
    nft_table: str


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    with podman_env.session(tmp_path_factory) as env:
        yield env


def conflist(net: Network, state_dir: str) -> list[dict]:
    """The plugins of the network: the ocikit plugin alone, or the reference bridge + host-local + portmap."""
    if net.plugin == "ocikit":
        return [{"type": "ocikit", "bridge": net.bridge, "ipMasq": False, "nftTable": net.nft_table,
                 "stateDir": state_dir, "ipam": {"subnet": str(net.subnet)},
                 "capabilities": {"portMappings": True}}]
    return [{"type": "bridge", "bridge": net.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": state_dir, "ranges": [[{"subnet": str(net.subnet)}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]


@contextlib.contextmanager
def made_network(podman, plugin: str, state_dir: str) -> Iterator[Network]:
    """A network of its own for PLUGIN; its bridge (and oci-net's nftables table) removed after."""
    name = podman_env.unique("ockp")
    net = Network(name, bridge=name, subnet=podman_env.free_subnet(), plugin=plugin, nft_table=name)
    if plugin == "ocikit":
        podman.install_cni_plugin("ocikit", "net")
    path = podman.add_network(name, conflist(net, state_dir))
    try:
        yield net
    finally:
        path.unlink()
        subprocess.run(["ip", "link", "del", net.bridge], capture_output=True)
        if plugin == "ocikit":
            subprocess.run(["nft", "delete", "table", "inet", net.nft_table], capture_output=True)


@pytest.fixture(params=PLUGINS)
def network(request, podman, tmp_path):
    with made_network(podman, request.param, str(tmp_path / "state")) as net:
        yield net


def get(url: str, timeout: float = 15) -> bytes:
    """GET url, retrying while the server in the container starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_container_gets_an_address_in_the_subnet(podman, network):
    done = podman.run("run", "--rm", "--network", network.name, IMAGE, "ip", "-o", "-4", "addr", "show", "eth0",
                      runtime=podman.runtime("runc"))
    assert done.returncode == 0, done.stderr
    address = ipaddress.ip_interface(done.stdout.split()[3])
    assert address.network == network.subnet and address.ip != next(network.subnet.hosts()), done.stdout


def test_published_port_reaches_a_server_in_the_container(podman, network):
    port = podman_env.free_port()
    server = ("sh", "-c", "echo served-by-busybox > /tmp/index.html; exec httpd -f -p 80 -h /tmp")
    with podman.started("--network", network.name, "-p", f"127.0.0.1:{port}:80", command=server,
                        runtime=podman.runtime("runc")) as (name, _):
        networks = json.loads(podman.run("inspect", "--format", "{{json .NetworkSettings.Networks}}", name,
                                         check=True).stdout)
        ip = ipaddress.ip_address(networks[network.name]["IPAddress"])
        assert ip in network.subnet
        assert get(f"http://127.0.0.1:{port}/") == b"served-by-busybox\n"
        assert get(f"http://{ip}:80/") == b"served-by-busybox\n"


def test_oci_net_removes_the_port_rule_with_the_container(podman, tmp_path):
    """When podman removes the container (CNI DEL), no rule of its published port is left."""
    with made_network(podman, "ocikit", str(tmp_path / "state")) as net:
        port = podman_env.free_port()
        with podman.started("--network", net.name, "-p", f"127.0.0.1:{port}:80", runtime=podman.runtime("runc")):
            assert f"dport {port} " in nft_rules(net.nft_table)
        assert f"dport {port} " not in nft_rules(net.nft_table)
        assert json.loads((tmp_path / "state" / "leases" / f"{net.name}.json").read_text()) == {}


def nft_rules(table: str) -> str:
    return subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True).stdout


def test_oci_run_and_oci_net_together(podman, tmp_path):
    """ocikit's runtime and ocikit's network under podman: a published port answers."""
    with made_network(podman, "ocikit", str(tmp_path / "state")) as net:
        port = podman_env.free_port()
        server = ("sh", "-c", "echo ocikit > /tmp/index.html; exec httpd -f -p 80 -h /tmp")
        with podman.started("--network", net.name, "-p", f"127.0.0.1:{port}:80", command=server,
                            runtime=podman.runtime("oci-run")):
            assert get(f"http://127.0.0.1:{port}/") == b"ocikit\n"
