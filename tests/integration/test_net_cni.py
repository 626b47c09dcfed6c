"""oci-net as a CNI plugin: the spec's environment protocol, results and errors, against the real kernel."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from tests.conftest import command
from tests.integration.netutil import Lab, connect_tcp, free_port, free_subnet, links, nft_table

pytestmark = pytest.mark.root

MAC = {"type": "string", "pattern": "^([0-9a-f]{2}:){5}[0-9a-f]{2}$"}
# The Result of the CNI spec 1.0/1.1 ("Success" section): ips without "version", interface indexes.
RESULT_SCHEMA = {
    "type": "object",
    "required": ["cniVersion"],
    "additionalProperties": False,
    "properties": {
        "cniVersion": {"enum": ["1.0.0", "1.1.0"]},
        "interfaces": {"type": "array", "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1}, "mac": MAC, "mtu": {"type": "integer"},
                           "sandbox": {"type": "string"}, "socketPath": {"type": "string"},
                           "pciID": {"type": "string"}}}},
        "ips": {"type": "array", "items": {
            "type": "object", "required": ["address"], "additionalProperties": False,
            "properties": {"address": {"type": "string", "pattern": "^[0-9a-fA-F:.]+/[0-9]+$"},
                           "gateway": {"type": "string", "pattern": "^[0-9a-fA-F:.]+$"},
                           "interface": {"type": "integer", "minimum": 0}}}},
        "routes": {"type": "array", "items": {
            "type": "object", "required": ["dst"], "additionalProperties": False,
            "properties": {"dst": {"type": "string"}, "gw": {"type": "string"}, "mtu": {"type": "integer"},
                           "advmss": {"type": "integer"}, "priority": {"type": "integer"},
                           "table": {"type": "integer"}, "scope": {"type": "integer"}}}},
        "dns": {"type": "object", "additionalProperties": False,
                "properties": {"nameservers": {"type": "array", "items": {"type": "string"}},
                               "domain": {"type": "string"},
                               "search": {"type": "array", "items": {"type": "string"}},
                               "options": {"type": "array", "items": {"type": "string"}}}},
    },
}
ERROR_SCHEMA = {
    "type": "object", "required": ["cniVersion", "code", "msg"], "additionalProperties": False,
    "properties": {"cniVersion": {"type": "string"}, "code": {"type": "integer", "minimum": 1},
                   "msg": {"type": "string"}, "details": {"type": "string"}},
}
VERSION_SCHEMA = {
    "type": "object", "required": ["cniVersion", "supportedVersions"], "additionalProperties": False,
    "properties": {"cniVersion": {"type": "string"},
                   "supportedVersions": {"type": "array", "items": {"type": "string"}, "contains": {"const": "1.1.0"}}},
}


def valid(doc, schema) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in Draft7Validator(schema).iter_errors(doc)]


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


class Plugin:
    """Runs the plugin as a runtime does: a file named `ocikit` in a CNI plugin directory."""

    def __init__(self, lab: Lab, tmp: Path, subnet: str | None = None, **conf) -> None:
        self.lab = lab
        self.dir = tmp / "cni-bin"
        self.dir.mkdir(exist_ok=True)
        script = Path(sys.executable).parent / "oci-net"  # the installed console script
        argv = [str(self.dir / "ocikit")]
        if script.exists():
            if not (self.dir / "ocikit").exists():
                (self.dir / "ocikit").symlink_to(script)
        else:  # a checkout without `make install`
            argv = command("net")
        self.argv = argv
        self.stderr = ""
        bridge = f"ocit{lab.tag}c"
        lab.bridges.append(bridge)
        self.subnet = subnet or free_subnet(lab.subnets)
        lab.subnets.append(self.subnet)
        self.conf = {"cniVersion": "1.1.0", "name": f"cni{lab.tag}", "type": "ocikit", "bridge": bridge,
                     "nftTable": lab.table, "stateDir": lab.state, "ipam": {"type": "ocikit", "subnet": self.subnet},
                     **conf}

    def __call__(self, cmd: str, netns: str = "", cid: str = "", ifname: str = "eth0", conf: dict | None = None,
                 args: str = "", stdin: bytes | None = None) -> tuple[int, dict | None]:
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": cmd, "CNI_PATH": str(self.dir)}
        if cid:
            env.update(CNI_CONTAINERID=cid, CNI_IFNAME=ifname)
        if netns:
            env["CNI_NETNS"] = netns
        if args:
            env["CNI_ARGS"] = args
        data = stdin if stdin is not None else json.dumps(conf or self.conf).encode()
        proc = subprocess.run(self.argv, input=data, capture_output=True, env=env, timeout=60)
        self.stderr = proc.stderr.decode(errors="replace")
        assert "Traceback" not in self.stderr, self.stderr
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, out


def test_add_check_del_results_follow_the_spec(lab, tmp_path):
    plugin = Plugin(lab, tmp_path)
    ns = lab.netns("cni")
    port = free_port()
    conf = {**plugin.conf, "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 8000,
                                                               "protocol": "tcp", "hostIP": "127.0.0.1"}]}}
    code, result = plugin("ADD", ns, "ctr1", conf=conf)
    assert code == 0, result
    assert valid(result, RESULT_SCHEMA) == []
    assert result["cniVersion"] == "1.1.0"
    sandbox = result["interfaces"][result["ips"][0]["interface"]]
    assert sandbox == {"name": "eth0", "mac": sandbox["mac"], "sandbox": ns}
    address = result["ips"][0]["address"].split("/")[0]
    assert lab.ping(ns, result["ips"][0]["gateway"])
    lab.tcp_server(ns, 8000, "cni")
    assert connect_tcp("127.0.0.1", port).startswith("cni from")

    code, out = plugin("CHECK", ns, "ctr1", conf={**conf, "prevResult": result})
    assert (code, out) == (0, None)
    wrong = {**result, "ips": [{"address": "10.213.0.250/24"}]}
    code, out = plugin("CHECK", ns, "ctr1", conf={**conf, "prevResult": wrong})
    assert code != 0 and valid(out, ERROR_SCHEMA) == []

    code, out = plugin("DEL", ns, "ctr1", conf={**conf, "prevResult": result})
    assert (code, out) == (0, None)
    assert result["interfaces"][1]["name"] not in links()
    assert address not in lab.exec(ns, "ip", "-o", "addr").stdout
    assert plugin("DEL", ns, "ctr1")[0] == 0  # DEL of what is gone succeeds
    assert plugin("DEL", "", "ctr1")[0] == 0  # and without a netns


def test_older_config_versions_get_their_result_shape(lab, tmp_path):
    plugin = Plugin(lab, tmp_path)
    ns = lab.netns("old")
    static = str(ipaddress.ip_network(plugin.subnet).network_address + 10)
    old = {**plugin.conf, "cniVersion": "0.4.0"}
    code, result = plugin("ADD", ns, "old1", conf=old, args=f"IgnoreUnknown=1;IP={static}")
    assert code == 0, result
    assert result["cniVersion"] == "0.4.0" and result["ips"][0]["version"] == "4"
    assert result["ips"][0]["address"].split("/")[0].endswith(".10")  # the static address of CNI_ARGS IP=


def test_version_status_and_gc(lab, tmp_path):
    plugin = Plugin(lab, tmp_path, subnet=free_subnet(lab.subnets).replace("/24", "/30"))
    code, out = plugin("VERSION", stdin=b'{"cniVersion": "1.0.0"}')
    assert code == 0 and valid(out, VERSION_SCHEMA) == [] and out["cniVersion"] == "1.0.0"
    assert plugin("STATUS") == (0, None)

    keep, drop = lab.netns("keep"), lab.netns("drop")
    assert plugin("ADD", keep, "keep")[0] == 0
    code, out = plugin("STATUS")  # a /30 has one address besides the gateway: none left
    assert code != 0 and out["code"] == 50 and valid(out, ERROR_SCHEMA) == []
    code, out = plugin("ADD", drop, "drop")
    assert code != 0 and out["code"] == 11  # try again later: no free address

    gc_conf = {**plugin.conf, "cni.dev/valid-attachments": []}
    assert plugin("GC", conf=gc_conf) == (0, None)
    assert plugin("STATUS") == (0, None)  # the stale attachment's address came back
    code, result = plugin("ADD", drop, "drop")
    assert code == 0, result
    gc_conf = {**plugin.conf, "cni.dev/valid-attachments": [{"containerID": "drop", "ifname": "eth0"}]}
    assert plugin("GC", conf=gc_conf) == (0, None)
    code, out = plugin("CHECK", drop, "drop", conf={**plugin.conf, "prevResult": result})
    assert code == 0, out
    code, out = plugin("CHECK", drop, "drop")  # the spec: CHECK consults prevResult, which the runtime must give
    assert code != 0 and out["code"] == 7, out


def test_errors_are_spec_error_objects(lab, tmp_path):
    plugin = Plugin(lab, tmp_path)
    ns = lab.netns("err")
    cases = [
        ({**plugin.conf, "cniVersion": "9.9.9"}, "ADD", "c", 1),
        ({**plugin.conf, "bridge": "a-bridge-name-too-long"}, "ADD", "c", 7),
        ({k: v for k, v in plugin.conf.items() if k != "ipam"}, "ADD", "c", 7),
        (plugin.conf, "ADD", "", 4),
        (plugin.conf, "CHECK", "never-added", 3),
        (plugin.conf, "FROB", "c", 4),
    ]
    for conf, cmd, cid, want in cases:
        code, out = plugin(cmd, ns, cid, conf=conf)
        assert code != 0 and valid(out, ERROR_SCHEMA) == [] and out["code"] == want, (cmd, out)
    code, out = plugin("ADD", ns, "c", stdin=b"{not json")
    assert code != 0 and out["code"] == 6
    code, out = plugin("ADD", ns, "c", conf={**plugin.conf, "bridge": "x" * 20})
    assert "/bridge" in out.get("details", "")


def test_oci_net_gc_reclaims_cni_leases_after_a_missed_del(lab, tmp_path):
    plugin = Plugin(lab, tmp_path)
    ns = lab.netns("lost")
    port = free_port()
    conf = {**plugin.conf, "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80}]}}
    code, result = plugin("ADD", ns, "lost", conf=conf)
    assert code == 0, result
    subprocess.run(["ip", "netns", "del", os.path.basename(ns)], check=True)  # as after a reboot: no DEL came
    released = json.loads(lab.net("gc").stdout)
    assert [(r["network"], r["containerId"]) for r in released] == [(plugin.conf["name"], "lost")]
    rules = subprocess.run(["nft", "list", "table", "inet", lab.table], capture_output=True, text=True).stdout
    assert "ocikit port" not in rules
    code, again = plugin("ADD", lab.netns("next"), "next")
    assert code == 0 and again["ips"][0]["address"] == result["ips"][0]["address"]


# -- what real runtimes send (issue 13) ---------------------------------------------------


def test_containerd_capitalised_port_mappings_add_and_del(lab, tmp_path):
    """containerd (go-cni) marshals its PortMapping struct without JSON tags: HostPort, ContainerPort,
    Protocol, HostIP, as Go plugins read them (case-insensitively); a pod with a hostPort must start and go."""
    plugin = Plugin(lab, tmp_path)
    ns = lab.netns("ctd")
    port, local = free_port(), free_port()
    runtime = {"portMappings": [{"HostPort": port, "ContainerPort": 8000, "Protocol": "tcp", "HostIP": ""},
                                {"HostPort": local, "ContainerPort": 8000, "Protocol": "tcp", "HostIP": "127.0.0.1"}],
               "io.kubernetes.cri.pod-annotations": {"kubernetes.io/config.source": "api"}}
    conf = {**plugin.conf, "runtimeConfig": runtime}
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=ctd1;K8S_POD_UID=u1"
    code, result = plugin("ADD", ns, "ctd1", conf=conf, args=args)
    assert code == 0, result
    lab.tcp_server(ns, 8000, "ctd")
    assert connect_tcp("127.0.0.1", port).startswith("ctd from")
    assert connect_tcp("127.0.0.1", local).startswith("ctd from")
    assert "/runtimeConfig/io.kubernetes.cri.pod-annotations" in plugin.stderr  # ignored, and said so
    assert "HostPort" not in plugin.stderr  # matched, not ignored

    code, out = plugin("DEL", ns, "ctd1", conf={**conf, "prevResult": result}, args=args)
    assert (code, out) == (0, None), plugin.stderr
    assert "ocikit port" not in nft_table(lab.table)
    with pytest.raises(OSError):
        connect_tcp("127.0.0.1", port, timeout=1)


def test_del_succeeds_whatever_is_missing_or_odd(lab, tmp_path):
    """CNI spec, DEL: best effort, success even if resources or state are missing."""
    plugin = Plugin(lab, tmp_path)
    # a network never seen, in a state directory that does not exist, a container never added, no netns
    never = {**plugin.conf, "name": f"never{lab.tag}", "stateDir": str(tmp_path / "nothing-here")}
    assert plugin("DEL", "", "ghost", conf=never) == (0, None), plugin.stderr
    assert plugin("DEL", "/run/netns/ocikit-test-gone", "ghost", conf=never) == (0, None), plugin.stderr

    ns = lab.netns("odd")
    code, result = plugin("ADD", ns, "odd1")
    assert code == 0, result
    address = result["ips"][0]["address"]
    subprocess.run(["ip", "netns", "del", os.path.basename(ns)], check=True)  # the netns is gone before DEL
    odd = {**plugin.conf, "prevResult": "not a result", "runtimeConfig": ["not", "an", "object"]}
    del odd["ipam"]  # and the configuration no longer validates (an edited conflist)
    assert plugin("DEL", ns, "odd1", conf=odd) == (0, None), plugin.stderr
    assert "/prevResult" in plugin.stderr
    assert plugin("DEL", ns, "odd1", conf=odd) == (0, None)  # and again: nothing left, still success
    leases = json.loads(lab.net("inspect", plugin.conf["name"], check=False).stdout or "{}")
    assert not leases.get("attachments")
    code, again = plugin("ADD", lab.netns("next"), "next")  # the address came back
    assert code == 0 and again["ips"][0]["address"] == address


def test_unknown_properties_are_ignored_and_logged(lab, tmp_path):
    """The runtime spec's rule, which the CNI plugins follow: unknown keys are ignored, never refused."""
    plugin = Plugin(lab, tmp_path)
    conf = {**plugin.conf, "isGateway": True, "hairpinMode": True, "Bridge": plugin.conf["bridge"],
            "ipam": {**plugin.conf["ipam"], "ranges": [[{"subnet": plugin.subnet}]], "dataDir": "/nowhere"},
            "runtimeConfig": {"bandwidth": {"IngressRate": 1000}, "portMappings": []}}
    del conf["bridge"]  # spelt `Bridge`: Go's decoder matches it to the bridge field
    ns = lab.netns("unk")
    code, result = plugin("ADD", ns, "unk1", conf=conf)
    assert code == 0, result
    assert result["interfaces"][0]["name"] == plugin.conf["bridge"]
    lines = [line for line in plugin.stderr.splitlines() if "ignored" in line]
    assert len(lines) == 1, plugin.stderr
    for pointer in ("/isGateway", "/hairpinMode", "/ipam/ranges", "/ipam/dataDir", "/runtimeConfig/bandwidth"):
        assert pointer in lines[0]
    assert "/Bridge" not in lines[0]
    code, out = plugin("CHECK", ns, "unk1", conf={**conf, "prevResult": result})
    assert (code, out) == (0, None), out
    assert plugin("DEL", ns, "unk1", conf=conf) == (0, None)


def test_cni_networks_in_ls_and_inspect_and_the_last_del_removes_bridge_and_table(lab, tmp_path):
    plugin = Plugin(lab, tmp_path)
    name, bridge = plugin.conf["name"], plugin.conf["bridge"]
    one, two = lab.netns("one"), lab.netns("two")
    first = plugin("ADD", one, "one")[1]
    second = plugin("ADD", two, "two")[1]
    listed = {n["name"]: n for n in json.loads(lab.net("ls").stdout)}
    assert listed[name]["cni"] is True and listed[name]["bridge"] == bridge
    assert listed[name]["subnet"] == plugin.subnet and listed[name]["nftTable"] == lab.table
    shown = json.loads(lab.net("inspect", name).stdout)
    assert sorted(shown["attachments"]) == ["one/eth0", "two/eth0"]
    assert shown["attachments"]["one/eth0"]["addresses"] == [first["ips"][0]["address"]]

    assert plugin("DEL", one, "one", conf={**plugin.conf, "prevResult": first}) == (0, None)
    assert f" {bridge}:" in links() and nft_table(lab.table)  # another container still uses them
    assert plugin("DEL", two, "two", conf={**plugin.conf, "prevResult": second}) == (0, None)
    assert f" {bridge}:" not in links()  # the last DEL removed the bridge
    assert nft_table(lab.table) == ""  # and the table (no other network in it)
    assert name not in {n["name"] for n in json.loads(lab.net("ls").stdout)}

    # `oci-net rm` of a CNI network whose containers are gone (no DEL came): bridge and table go too
    three = lab.netns("three")
    port = free_port()
    conf = {**plugin.conf, "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80}]}}
    assert plugin("ADD", three, "three", conf=conf)[0] == 0
    assert lab.net("rm", name, check=False).returncode == 7  # refused while attached
    subprocess.run(["ip", "netns", "del", os.path.basename(three)], check=True)
    lab.net("rm", name)
    assert f" {bridge}:" not in links() and nft_table(lab.table) == ""
    assert name not in {n["name"] for n in json.loads(lab.net("ls").stdout)}
