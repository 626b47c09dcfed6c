"""oci-net's parsing: published ports, hosts blocks, network documents, CNI arguments and errors."""

from __future__ import annotations

import json
import os

import pytest

from oci.errors import InvalidDocument, InvalidInput
from oci.net import cni, hosts, nat, networks
from tests.conftest import run


@pytest.mark.parametrize("text, port", [
    ("8080:80", nat.Port(8080, 80, "tcp", "")),
    ("127.0.0.1:5353:53/udp", nat.Port(5353, 53, "udp", "127.0.0.1")),
    ("[fd00::1]:8443:443/tcp", nat.Port(8443, 443, "tcp", "fd00::1")),
    ("3868:3868/sctp", nat.Port(3868, 3868, "sctp", "")),  # Kubernetes ports may be SCTP
])
def test_published_ports(text, port):
    assert nat.parse_port(text) == port


@pytest.mark.parametrize("text", ["80", "0:80", "8080:70000", "8080:80/icmp", "1.2.3:80:80", "a:b", "[::1]:8443:443"])
def test_bad_published_ports(text):
    with pytest.raises(InvalidInput):
        nat.parse_port(text)


def test_ports_without_a_host_address_follow_the_container_families():
    any_host, six = nat.Port(8080, 80), nat.Port(8080, 80, "tcp", "fd00::1")
    assert nat.port_targets(any_host, "10.0.0.2", None) == ["10.0.0.2"]
    assert nat.port_targets(any_host, "10.0.0.2", "fd00::2") == ["10.0.0.2", "fd00::2"]
    assert nat.port_targets(six, "10.0.0.2", "fd00::2") == ["fd00::2"]
    with pytest.raises(InvalidInput, match="needs an IPv6 address"):
        nat.port_targets(six, "10.0.0.2", None)


def test_port_from_cni_port_mapping():
    port = nat.Port.from_json({"hostPort": 8080, "containerPort": 80, "protocol": "UDP", "hostIP": "0.0.0.0"})
    assert port == nat.Port(8080, 80, "udp", "")


def test_hosts_block_is_replaced_and_the_rest_kept():
    text = "127.0.0.1\tlocalhost\n10.0.0.9\tmine\n"
    one = hosts.replace_block(text, "web", hosts.render_block("web", [("10.1.0.2", ["a", "db"])]))
    assert one == text + "# oci-net web begin\n10.1.0.2\ta db\n# oci-net web end\n"
    two = hosts.replace_block(one, "web", hosts.render_block("web", [("10.1.0.3", ["b", "db"])]))
    assert "10.1.0.2" not in two and "10.1.0.3\tb db" in two and two.startswith(text)
    other = hosts.replace_block(two, "back", hosts.render_block("back", [("10.2.0.2", ["x"])]))
    assert hosts.replace_block(other, "web", None) == text + "# oci-net back begin\n10.2.0.2\tx\n# oci-net back end\n"


def test_hosts_update_in_place(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1\tlocalhost\n")
    inode = os.stat(path).st_ino
    hosts.update(str(path), "n", [("10.1.0.2", ["a", "shared"]), ("10.1.0.3", ["b", "shared"])])
    assert os.stat(path).st_ino == inode
    assert "10.1.0.2\ta shared\n10.1.0.3\tb shared\n" in path.read_text()
    hosts.update(str(path), "n", None)
    assert path.read_text() == "127.0.0.1\tlocalhost\n"


@pytest.mark.parametrize("name", ["web", "api.internal", "db_1", "a-b"])
def test_good_names(name):
    assert hosts.check_name(name) == name


@pytest.mark.parametrize("name", ["", "two words", "new\nline", "-x", "a..b", "x" * 64, "tab\there"])
def test_bad_names_never_reach_a_hosts_file(name):
    with pytest.raises(InvalidInput):
        hosts.check_name(name)


def test_network_documents_are_checked():
    doc = networks.build("web", "10.213.5.0/24", subnet6="fd00:213:5::/64")
    assert doc["gateway"] == "10.213.5.1" and doc["gateway6"] == "fd00:213:5::1" and doc["bridge"] == "web"
    with pytest.raises(InvalidInput, match="longer than 15"):
        networks.build("a-very-long-network-name", "10.213.5.0/24")
    with pytest.raises(InvalidInput):
        networks.build("web", "fd00::/64")
    with pytest.raises(InvalidInput):
        networks.build("web", "10.213.5.0/24", gateway="10.213.6.1")
    with pytest.raises(InvalidDocument) as err:
        networks.build("bad name", "10.213.5.0/24", bridge="br0", mtu=10)
    assert {line.split(": ")[1] for line in err.value.lines()} == {"/mtu", "/name"}


def test_networks_store_round_trip(tmp_path):
    state = str(tmp_path)
    networks.create(state, networks.build("one", "10.213.5.0/24"))
    assert [n["name"] for n in networks.list_all(state)] == ["one"]
    assert networks.load(state, "one")["subnet"] == "10.213.5.0/24"
    networks.delete(state, "one")
    assert networks.list_all(state) == []


def test_cni_args():
    assert cni.parse_args("IgnoreUnknown=1;IP=10.0.0.2;") == {"IgnoreUnknown": "1", "IP": "10.0.0.2"}
    with pytest.raises(cni.CniError) as err:
        cni.parse_args("nonsense")
    assert err.value.code == cni.INVALID_ENV


def test_cni_version_and_bad_input_without_root(tmp_path):
    env = {"CNI_COMMAND": "VERSION"}
    result = run("net", input=b'{"cniVersion": "1.0.0"}', env=env)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"cniVersion": "1.0.0", "supportedVersions": cni.SUPPORTED}
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "ocikit", "stateDir": str(tmp_path), "ipam": {"subnet": "x"}}
    result = run("net", input=json.dumps(conf).encode(), env={"CNI_COMMAND": "STATUS"})
    out = json.loads(result.stdout)
    assert result.returncode == 1 and out["code"] == cni.INVALID_CONFIG and "/ipam/subnet" in out["details"]


def test_cli_usage_errors():
    assert run("net", "add", "web").returncode == 2
    bad = run("net", "add", "web", "--netns", "/x", "--pid", "1")
    assert bad.returncode == 2 and bad.stderr.startswith("oci-net ")
    assert "examples:" in run("net", "--help").stdout
