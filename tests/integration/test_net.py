"""oci-net against the real kernel: namespaces, bridges, veths, nftables, made and removed here."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import run
from tests.integration.netutil import Lab, connect_tcp, free_port, links, nft_table

pytestmark = pytest.mark.root


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def add(lab: Lab, network: str, netns: str, *extra: str) -> dict:
    return json.loads(lab.net("add", network, "--netns", netns, *extra).stdout)


def address(lease: dict, version: int = 4) -> str:
    return next(c.split("/")[0] for c in lease["addresses"] if (":" in c) == (version == 6))


def test_two_containers_ping_each_other_by_ip_and_by_name(lab, tmp_path):
    net = lab.create_network()
    hosts_a, hosts_b = tmp_path / "a.hosts", tmp_path / "b.hosts"
    hosts_a.write_text("127.0.0.1\tlocalhost\n10.0.0.99\tkept-line\n")
    hosts_b.write_text("127.0.0.1\tlocalhost\n")
    ns_a, ns_b = lab.netns("a"), lab.netns("b")
    a = add(lab, net["name"], ns_a, "--id", "ca", "--name", "alpha", "--alias", "db", "--hosts-file", str(hosts_a))
    inode_a = os.stat(hosts_a).st_ino
    b = add(lab, net["name"], ns_b, "--id", "cb", "--name", "beta", "--alias", "db", "--hosts-file", str(hosts_b))

    assert lab.ping(ns_a, address(b)) and lab.ping(ns_b, address(a))
    assert lab.ping(ns_a, address(b, 6)) and lab.ping(ns_b, address(a, 6))
    # names resolve through the managed hosts file, bind-mounted on /etc/hosts as a bundle does
    assert lab.ping(ns_a, "beta", str(hosts_a)) and lab.ping(ns_b, "alpha", str(hosts_b))
    assert lab.ping(ns_a, "db", str(hosts_a))  # an alias both containers share
    text = hosts_a.read_text()
    assert "kept-line" in text and f"{address(b)}\tbeta db" in text and f"{address(a)}\talpha db" in text
    assert os.stat(hosts_a).st_ino == inode_a  # updated in place, the bind mount keeps seeing it

    lab.net("del", net["name"], "--id", "cb")
    assert "beta" not in hosts_a.read_text() and "beta" not in hosts_b.read_text()
    assert not lab.ping(ns_a, "beta", str(hosts_a))


def test_add_by_pid_sets_mtu_mac_loopback_and_default_route(lab):
    net = lab.create_network(ipv6=False)
    pid = lab.sleeper()
    lease = json.loads(lab.net("add", net["name"], "--pid", str(pid), "--mac", "02:42:aa:bb:cc:dd").stdout)
    show = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr"], capture_output=True, text=True)
    ifaces = {i["ifname"]: i for i in json.loads(show.stdout)}
    assert ifaces["lo"]["operstate"] in ("UNKNOWN", "UP") and "UP" in ifaces["lo"]["flags"]
    assert ifaces["eth0"]["address"] == "02:42:aa:bb:cc:dd" and ifaces["eth0"]["mtu"] == 1500
    route = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "route"], capture_output=True, text=True)
    assert {"dst": "default", "gateway": net["gateway"]}.items() <= json.loads(route.stdout)[0].items()
    assert lease["addresses"][0].startswith(net["gateway"].rsplit(".", 1)[0])


def test_published_port_answers_on_host_loopback_and_hairpin(lab):
    net = lab.create_network(ipv6=False)
    ns_srv, ns_cli = lab.netns("srv"), lab.netns("cli")
    port = free_port()
    srv = add(lab, net["name"], ns_srv, "--id", "srv", "-p", f"127.0.0.1:{port}:8000")
    add(lab, net["name"], ns_cli, "--id", "cli")
    lab.tcp_server(ns_srv, 8000, "hello")
    assert connect_tcp("127.0.0.1", port).startswith("hello from ")
    # hairpin: the other container and the server itself reach the port through the host's bridge address
    port2 = free_port()
    lab.net("del", net["name"], "--id", "srv")
    srv = add(lab, net["name"], ns_srv, "--id", "srv", "-p", f"{port2}:8000")
    assert connect_tcp("127.0.0.1", port2).startswith("hello")
    probe = f"import socket; print(socket.create_connection(('{net['gateway']}', {port2}), timeout=3).recv(99))"
    for ns in (ns_cli, ns_srv):
        out = lab.exec(ns, "python3", "-c", probe)
        assert "hello from" in out.stdout, out.stderr
    assert address(srv)


def test_published_ports_answer_on_a_host_ipv6_address(lab):
    net = lab.create_network()
    ns = lab.netns("srv6")
    every, only6 = free_port(), free_port()
    srv = add(lab, net["name"], ns, "--id", "srv6", "-p", f"{every}:8000", "-p", f"[{net['gateway6']}]:{only6}:8000")
    lab.tcp_server(ns, 8000, "hello", dual_stack=True)
    # a port without a host address answers on both families, one on an IPv6 address on that one only
    assert connect_tcp(net["gateway6"], every) == f"hello from {net['gateway6']}"
    assert connect_tcp("127.0.0.1", every).startswith("hello from ")
    assert connect_tcp(net["gateway6"], only6) == f"hello from {net['gateway6']}"
    with pytest.raises(OSError):
        connect_tcp("127.0.0.1", only6, timeout=1)
    assert json.loads(lab.net("check", net["name"], "--id", "srv6").stdout)["addresses"] == srv["addresses"]
    refused = lab.net("add", net["name"], "--netns", lab.netns("lo6"), "--id", "lo6", "-p", f"[::1]:{every}:80",
                      check=False)
    assert refused.returncode == 2 and "::1" in refused.stderr


def test_published_ports_survive_a_table_removed_behind_our_back(lab):
    net = lab.create_network(ipv6=False)
    add(lab, net["name"], lab.netns("first"), "--id", "first")
    subprocess.run(["nft", "delete", "table", "inet", lab.table], check=True)
    port = free_port()
    add(lab, net["name"], lab.netns("second"), "--id", "second", "-p", f"{port}:80")
    assert f"tcp dport {port} dnat ip to" in nft_table(lab.table)


def test_twenty_concurrent_adds_get_twenty_distinct_addresses(lab):
    net = lab.create_network(ipv6=False)
    spaces = [lab.netns(f"c{i}") for i in range(20)]

    def one(i: int) -> dict:
        return add(lab, net["name"], spaces[i], "--id", f"c{i}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        leases = list(pool.map(one, range(20)))
    addresses = {address(lease) for lease in leases}
    assert len(addresses) == 20 and net["gateway"] not in addresses
    stored = json.loads(lab.net("inspect", net["name"]).stdout)["attachments"]
    assert len(stored) == 20


def test_delete_leaves_no_link_address_or_rule(lab):
    net = lab.create_network()
    ns = lab.netns("x")
    lease = add(lab, net["name"], ns, "--id", "cx", "-p", f"{free_port()}:80", "-p", f"{free_port()}:53/udp")
    assert lease["hostIfname"] in links()
    rules = nft_table(lab.table)
    # two ports, each for IPv4 and IPv6, in prerouting and output
    assert rules.count("ocikit port") == 8 and "dnat ip to" in rules and "dnat ip6 to" in rules
    check = lab.net("check", net["name"], "--id", "cx")
    assert check.returncode == 0

    lab.net("del", net["name"], "--id", "cx")
    assert lease["hostIfname"] not in links()
    inside = lab.exec(ns, "ip", "-o", "addr").stdout
    assert "eth0" not in inside and address(lease) not in inside
    assert "ocikit port" not in nft_table(lab.table)
    assert json.loads(lab.net("inspect", net["name"]).stdout)["attachments"] == {}
    assert lab.net("check", net["name"], "--id", "cx", check=False).returncode == 3
    lab.net("del", net["name"], "--id", "cx")  # idempotent

    lab.net("rm", net["name"])
    lab.networks.remove(net["name"])
    assert net["bridge"] not in links()
    assert subprocess.run(["nft", "list", "table", "inet", lab.table], capture_output=True).returncode != 0


def test_gc_reclaims_the_address_of_a_vanished_namespace(lab):
    net = lab.create_network(ipv6=False)
    ns = lab.netns("gone")
    lease = add(lab, net["name"], ns, "--id", "leaky", "-p", f"{free_port()}:80")
    subprocess.run(["ip", "netns", "del", os.path.basename(ns)], check=True)  # no oci-net del: a leak
    assert lab.net("check", net["name"], "--id", "leaky", check=False).returncode == 3
    released = json.loads(lab.net("gc").stdout)
    assert [r["containerId"] for r in released] == ["leaky"]
    assert "ocikit port" not in nft_table(lab.table)
    again = add(lab, net["name"], lab.netns("new"), "--id", "fresh")
    assert address(again) == address(lease)


def test_networks_are_isolated_from_each_other(lab):
    one, two = lab.create_network("a", ipv6=False), lab.create_network("b", ipv6=False)
    a1, a2, b1 = lab.netns("a1"), lab.netns("a2"), lab.netns("b1")
    la2 = add(lab, one["name"], a2, "--id", "a2")
    add(lab, one["name"], a1, "--id", "a1")
    lb1 = add(lab, two["name"], b1, "--id", "b1")
    assert lab.ping(a1, address(la2))
    assert lab.ping(a1, one["gateway"]) and lab.ping(b1, two["gateway"])
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == "1"  # the host routes between bridges: only our rule stops it
    assert not lab.ping(a1, address(lb1), wait=1)
    assert not lab.ping(b1, address(la2), wait=1)
    # a container on both networks (eth0 and eth1) reaches both; its default route stays the first one
    both = lab.netns("both")
    add(lab, one["name"], both, "--id", "both")
    add(lab, two["name"], both, "--id", "both", "--ifname", "eth1")
    assert lab.ping(both, address(la2)) and lab.ping(both, address(lb1))
    assert f"default via {one['gateway']} dev eth0" in lab.exec(both, "ip", "route").stdout


def test_network_objects_create_ls_inspect_rm(lab):
    net = lab.create_network()
    assert [n["name"] for n in json.loads(lab.net("ls").stdout)] == [net["name"]]
    again = lab.net("create", net["name"], "--subnet", "10.213.3.0/24", check=False)
    assert again.returncode == 7
    overlap = lab.net("create", "other", "--subnet", net["subnet"], "--bridge", f"ocit{lab.tag}o", check=False)
    assert overlap.returncode == 7 and "overlaps" in overlap.stderr
    taken = lab.net("create", "other", "--subnet", "10.213.3.0/24", "--bridge", "lo", check=False)
    assert taken.returncode == 7 and "lo exists" in taken.stderr
    bad = lab.net("create", "bad", "--subnet", "10.213.3.7/24", check=False)
    assert bad.returncode == 2 and "10.213.3.7/24" in bad.stderr
    host = lab.net("add", net["name"], "--pid", str(os.getpid()), check=False)
    assert host.returncode == 2 and "host's own network namespace" in host.stderr
    path = os.path.join(lab.state, "networks", f"{net['name']}.json")
    doc = json.loads(open(path).read())
    doc["mtu"] = 12
    with open(path, "w") as f:
        json.dump(doc, f)
    broken = lab.net("inspect", net["name"], check=False)
    assert broken.returncode == 2 and f"{path}: /mtu: " in broken.stderr
    assert lab.net("inspect", "nope", check=False).returncode == 3


def test_hook_connects_on_create_runtime_and_disconnects_on_poststop(lab, tmp_path):
    net = lab.create_network(ipv6=False)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "hosts").write_text("127.0.0.1\tlocalhost\n")
    pid = lab.sleeper()
    state = {"ociVersion": "1.2.0", "id": f"hook{lab.tag}", "status": "created", "pid": pid, "bundle": str(bundle)}
    result = run("net", "--state-dir", lab.state, "hook", "connect", net["name"], "--name", "web", "--alias", "www",
                 input=json.dumps(state).encode())
    assert result.returncode == 0, result.stderr
    attachments = json.loads(lab.net("inspect", net["name"]).stdout)["attachments"]
    lease = attachments[f"hook{lab.tag}/eth0"]
    assert f"{address(lease)}\tweb www" in (bundle / "hosts").read_text()
    ping = subprocess.run(["busybox", "ping", "-c1", "-W2", address(lease)], capture_output=True)
    assert ping.returncode == 0
    stopped = {**state, "status": "stopped"}
    result = run("net", "--state-dir", lab.state, "hook", "disconnect", net["name"], input=json.dumps(stopped).encode())
    assert result.returncode == 0, result.stderr
    assert json.loads(lab.net("inspect", net["name"]).stdout)["attachments"] == {}
    assert "web" not in (bundle / "hosts").read_text()
    bad = run("net", "--state-dir", lab.state, "hook", "connect", net["name"], input=b'{"id": 3}')
    assert bad.returncode == 2 and bad.stderr.startswith("oci-net: <stdin>: /")
