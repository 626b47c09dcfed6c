"""The CNI protocol (spec 1.1.0): ADD, DEL, CHECK, VERSION, STATUS and GC of the `ocikit` plugin.

The runtime runs the plugin with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
CNI_ARGS and CNI_PATH in the environment and the network configuration on stdin; the
result (or an error object `{"cniVersion", "code", "msg", "details"}`) goes to stdout,
messages to stderr (runtimes pass it to their log: containerd's, podman's stderr).

Configuration keys (validated by `cni-config.schema.json`):

=====================  ==============================================================
`name`                 network name; leases are kept per name
`type`                 the plugin's file name (`ocikit`)
`bridge`               host bridge, default `oci0`
`mtu`                  MTU of the bridge and veths, default 1500
`ipMasq`               masquerade the subnet towards other interfaces, default true
`nftTable`             nftables table (family inet) for the rules, default `ocikit`
`stateDir`             where leases are kept, default /var/lib/ocikit/net (or $OCIKIT_NET_STATE_DIR)
`ipam.subnet`          IPv4 subnet (required); `ipam.gateway` default: its first address
`ipam.subnet6`         optional IPv6 subnet; `ipam.gateway6` likewise
`ports`                published ports, as the `portMappings` capability
`dns`                  copied into the result
`runtimeConfig`        the capabilities: `portMappings` (list of {hostPort, containerPort,
                       protocol, hostIP}), `aliases` ({NETWORK: [names]}), `ips` (static
                       addresses, CIDR or bare) and `mac`
=====================  ==============================================================

CNI_ARGS understood: `IP=ADDRESS` (a static address, as host-local takes it) and
`K8S_POD_NAME=NAME` (the name other members see in their hosts files); others are ignored.

What runtimes hand over is read as the Go plugins read it (oci.gojson, Go's encoding/json
rules): keys match fields ignoring case (containerd's `portMappings` come as `HostPort`,
`ContainerPort`, `Protocol`, `HostIP`: go-cni hands its untagged Go struct), a later key
overrides an earlier one, null leaves a field unset, and keys that match nothing, in the
configuration, its `ipam` or its `runtimeConfig` (capabilities oci-net does not use, such
as `bandwidth`), are ignored and named in one line on stderr. DEL is best effort, as the spec asks: it needs only the
network's name (and `stateDir`); a netns that is gone, a lease that is missing, a network
never seen, a malformed `prevResult` or a configuration that no longer validates still
succeed, releasing whatever the records name. The last DEL of a network (or a GC that
releases its last lease) removes its bridge and its nftables rules (networks.cni_record).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from oci.errors import Conflict, InvalidDocument, InvalidInput, NotFound, OciError

SPEC_VERSION = "1.1.0"
SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
# Well-known error codes of the spec
INCOMPATIBLE_VERSION, UNSUPPORTED_FIELD, UNKNOWN_CONTAINER, INVALID_ENV = 1, 2, 3, 4
IO_FAILURE, DECODE_FAILURE, INVALID_CONFIG, TRY_AGAIN = 5, 6, 7, 11
NOT_AVAILABLE = 50
PLUGIN_FAILURE = 100  # plugin-specific codes start at 100


class CniError(Exception):
    """An error the plugin reports as the spec's error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def error_object(err: CniError, version: str = SPEC_VERSION) -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": version, "code": err.code, "msg": err.msg}
    if err.details:
        out["details"] = err.details
    return out


def from_oci_error(err: OciError) -> CniError:
    """The CNI error code that fits an ocikit exception."""
    if isinstance(err, InvalidDocument):
        return CniError(INVALID_CONFIG, "invalid network configuration", "; ".join(err.lines()))
    if isinstance(err, InvalidInput):
        return CniError(INVALID_CONFIG, err.message)
    if isinstance(err, NotFound):
        return CniError(UNKNOWN_CONTAINER, err.message)
    if isinstance(err, Conflict):
        return CniError(TRY_AGAIN if "no free address" in err.message else PLUGIN_FAILURE, err.message)
    return CniError(PLUGIN_FAILURE, err.message)


def parse_args(text: str) -> dict[str, str]:
    """CNI_ARGS, `K=V;K=V`."""
    out = {}
    for part in filter(None, text.split(";")):
        if "=" not in part:
            raise CniError(INVALID_ENV, f"CNI_ARGS: {part!r} is not KEY=VALUE")
        key, value = part.split("=", 1)
        out[key] = value
    return out


_PORT = {"hostPort": None, "containerPort": None, "protocol": None, "hostIP": None}
# The fields of the configuration (oci.gojson shapes): what oci-net reads, and the keys the
# CNI spec reserves for the runtime (args, prevResult, capabilities, cni.dev/...)
FIELDS: dict[str, Any] = {
    "cniVersion": None, "name": None, "type": None, "bridge": None, "mtu": None, "ipMasq": None,
    "nftTable": None, "stateDir": None, "dns": None, "capabilities": None, "args": None, "prevResult": None,
    "ipam": {"type": None, "subnet": None, "gateway": None, "subnet6": None, "gateway6": None},
    "ports": [_PORT],
    "runtimeConfig": {"portMappings": [_PORT], "aliases": None, "ips": None, "mac": None},
    "cni.dev/valid-attachments": [{"containerID": None, "ifname": None}],
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def version_at_least(version: str, least: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split("."))

    return parts(version) >= parts(least)


def parse_config(data: bytes, command: str = "") -> dict[str, Any]:
    """The configuration on stdin, keys matched as Go plugins match them; what is ignored goes to stderr."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise CniError(DECODE_FAILURE, f"configuration on stdin is not JSON: {err}") from None
    if not isinstance(raw, dict):
        raise CniError(DECODE_FAILURE, "configuration on stdin is not a JSON object")
    from oci import gojson

    unknown: list[str] = []
    conf = gojson.decode(raw, FIELDS, unknown=unknown)
    version = conf.get("cniVersion")
    if version not in SUPPORTED:
        raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {version!r} is not supported",
                       f"supported: {', '.join(SUPPORTED)}")
    if unknown:
        log(f"{command or 'CNI'} {conf.get('name', '')}: ignored what the ocikit plugin does not use: "
            + ", ".join(unknown[:20]) + (f" (and {len(unknown) - 20} more)" if len(unknown) > 20 else ""))
    return conf


def log(message: str) -> None:
    """One line on stderr, which runtimes keep in their logs (the CNI spec: stderr is for logs)."""
    try:
        sys.stderr.write(f"oci-net: {message}\n")
    except (OSError, ValueError):  # no stderr: the message only informs
        pass


def load_config(data: bytes, command: str = "") -> dict[str, Any]:
    """Parse and validate the configuration on stdin (validation remembered per state dir)."""
    from oci.net import networks, validation

    conf = parse_config(data, command)
    state = networks.state_dir(conf.get("stateDir"))
    # What changes per container stays out of the remembered digest (see validation.CNI_VOLATILE)
    stable = {k: v for k, v in conf.items() if k not in validation.CNI_VOLATILE}
    validation.validate(stable, "cni-config", "<stdin>", memo_dir=os.path.join(state, "validated"))
    if not validation.plainly_valid_volatile(conf):
        validation.validate(conf, "cni-config", "<stdin>")
    return conf


def network_of(conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The state directory and the network document the configuration describes (a CNI network)."""
    from oci.net import networks

    ipam_conf = conf["ipam"]
    state = networks.state_dir(conf.get("stateDir"))
    net = networks.build(conf["name"], ipam_conf["subnet"], subnet6=ipam_conf.get("subnet6"),
                         bridge=conf.get("bridge", "oci0"), gateway=ipam_conf.get("gateway"),
                         gateway6=ipam_conf.get("gateway6"), mtu=conf.get("mtu", networks.DEFAULT_MTU),
                         masquerade=conf.get("ipMasq", True), nft_table=conf.get("nftTable", networks.DEFAULT_TABLE),
                         memo_dir=os.path.join(state, "validated"))
    return state, {**net, "cni": True}


def result(conf: dict[str, Any], net: dict[str, Any], lease: dict[str, Any]) -> dict[str, Any]:
    """The CNI result of an attachment, in the configuration's cniVersion, after any prevResult's."""
    version = conf["cniVersion"]
    prev = conf.get("prevResult")
    prev = prev if type(prev) is dict else {}
    interfaces = [i for i in prev.get("interfaces", []) if type(i) is dict] if type(prev.get("interfaces")) is list \
        else []
    ips = [ip for ip in prev.get("ips", []) if type(ip) is dict] if type(prev.get("ips")) is list else []
    routes = [r for r in prev.get("routes", []) if type(r) is dict] if type(prev.get("routes")) is list else []
    sandbox = len(interfaces) + 2
    for cidr, gateway in zip(lease["addresses"], lease["gateways"], strict=True):
        entry: dict[str, Any] = {"address": cidr, "gateway": gateway, "interface": sandbox}
        if version.startswith("0."):
            entry["version"] = "6" if ":" in cidr else "4"
        ips.append(entry)
    routes += [{"dst": "::/0" if ":" in gw else "0.0.0.0/0", "gw": gw} for gw in lease["gateways"]]
    interfaces += [
        {"name": net["bridge"], "mac": lease.get("bridgeMac", "")},
        {"name": lease["hostIfname"], "mac": lease.get("hostMac", "")},
        {"name": lease["ifname"], "mac": lease["mac"], "sandbox": lease["netns"]},
    ]
    return {"cniVersion": version, "interfaces": interfaces, "ips": ips, "routes": routes,
            "dns": conf.get("dns") or prev.get("dns") or {}}


def _env(name: str, required: bool = True) -> str:
    value = os.environ.get(name, "")
    if required and not value:
        raise CniError(INVALID_ENV, f"{name} is not set")
    return value


def run(command: str, stdin: bytes) -> dict[str, Any] | None:
    """Carry out one CNI command; the document for stdout, if any."""
    if command == "VERSION":  # the spec: cniVersion is the one on input
        try:
            version = json.loads(stdin or b"{}").get("cniVersion") or SPEC_VERSION
        except (ValueError, AttributeError):
            version = SPEC_VERSION
        return {"cniVersion": version if type(version) is str else SPEC_VERSION, "supportedVersions": SUPPORTED}
    if command not in ("ADD", "DEL", "CHECK", "STATUS", "GC"):
        raise CniError(INVALID_ENV, f"CNI_COMMAND {command!r} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC")
    if command == "DEL":
        _del(parse_config(stdin, command))
        return None
    conf = load_config(stdin, command)
    least = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}.get(command)
    if least and not version_at_least(conf["cniVersion"], least):  # as the spec's skel refuses them
        raise CniError(INCOMPATIBLE_VERSION, f"config version {conf['cniVersion']} does not allow {command}",
                       f"{command} needs cniVersion {least} or later")
    state, net = network_of(conf)
    from oci.net import endpoint

    if command == "STATUS":
        _status(state, net)
        return None
    if command == "GC":
        valid = {endpoint.key_of(a["containerID"], a["ifname"]) for a in conf.get("cni.dev/valid-attachments", [])}
        endpoint.gc(state, net, valid)
        return None
    container_id, ifname = _env("CNI_CONTAINERID"), _env("CNI_IFNAME")
    netns = _env("CNI_NETNS")
    if command == "CHECK":
        _check(conf, state, net, container_id, ifname)
        return None
    return _add(conf, state, net, container_id, ifname, netns)


def _del(conf: dict[str, Any]) -> None:
    """Release the attachment, whatever is missing or odd: DEL needs only the network's name.

    The network's record (written by ADD) says which bridge and table hold its rules; without
    one, the configuration does, as far as it can be read. Nothing here validates what DEL
    does not use: a prevResult or runtimeConfig that would not validate is ignored (and said).
    """
    from oci.net import endpoint, networks

    container_id, ifname = _env("CNI_CONTAINERID"), _env("CNI_IFNAME")
    name, state_dir = conf.get("name"), conf.get("stateDir")
    if type(name) is not str or not NAME_RE.match(name):
        log(f"DEL {container_id}: network name {name!r} is not one oci-net could have attached to: nothing to do")
        return None
    state = networks.state_dir(state_dir if type(state_dir) is str and state_dir else None)
    for key in ("prevResult", "runtimeConfig"):
        if key in conf and type(conf[key]) is not dict:
            log(f"DEL {container_id}: ignored /{key}, not an object")
    net = networks.cni_record(state, name)
    if net is None:
        table, bridge = conf.get("nftTable"), conf.get("bridge")
        net = {"name": name, "nftTable": table if type(table) is str and table else networks.DEFAULT_TABLE,
               "bridge": bridge if type(bridge) is str and bridge else "oci0"}
    endpoint.disconnect(state, net, container_id, ifname)
    return None


def _check(conf: dict[str, Any], state: str, net: dict[str, Any], container_id: str, ifname: str) -> None:
    """The attachment is whole (endpoint.check) and is the one prevResult describes (the spec requires it)."""
    import ipaddress

    from oci.net import endpoint

    lease = endpoint.check(state, net, container_id, ifname)
    prev = conf.get("prevResult")
    if type(prev) is not dict:
        raise CniError(INVALID_CONFIG, "CHECK needs prevResult, the result of the ADD (the CNI spec)")
    subnets = [ipaddress.ip_network(net[k]) for k in ("subnet", "subnet6") if k in net]
    listed = []
    for ip in prev.get("ips", []) if type(prev.get("ips")) is list else []:
        address = ip.get("address") if type(ip) is dict else None
        try:
            if type(address) is str and any(ipaddress.ip_interface(address).ip in s for s in subnets):
                listed.append(address)
        except ValueError:
            raise CniError(INVALID_CONFIG, f"prevResult: bad address {address!r}") from None
    if sorted(listed) != sorted(lease["addresses"]):
        raise CniError(PLUGIN_FAILURE, f"addresses {lease['addresses']} differ from prevResult's {sorted(listed)}")
    for iface in prev.get("interfaces", []) if type(prev.get("interfaces")) is list else []:
        if type(iface) is dict and iface.get("name") == ifname and iface.get("sandbox"):
            if str(iface.get("mac", "")).lower() not in ("", lease["mac"].lower()):
                raise CniError(PLUGIN_FAILURE, f"{ifname} has MAC {lease['mac']}, prevResult says {iface['mac']}")
    return None


def _add(conf: dict[str, Any], state: str, net: dict[str, Any], container_id: str, ifname: str,
         netns: str) -> dict[str, Any]:
    from oci.net import endpoint, links, nat

    args = parse_args(os.environ.get("CNI_ARGS", ""))
    runtime = conf.get("runtimeConfig", {})
    ports = [nat.Port.from_json(p) for p in conf.get("ports", []) + runtime.get("portMappings", [])]
    aliases = runtime.get("aliases", {}).get(conf["name"], [])
    ip, ip6 = args.get("IP"), None
    for address in runtime.get("ips", []):  # the `ips` capability: CIDR or bare addresses
        bare = address.split("/")[0]
        if ":" in bare:
            ip6 = ip6 or bare
        else:
            ip = ip or bare
    req = endpoint.Request(container_id, links.netns_path(netns), ifname, ip=ip, ip6=ip6, mac=runtime.get("mac"),
                           ports=ports, name=args.get("K8S_POD_NAME"), aliases=list(aliases))
    lease = endpoint.connect(state, net, req)
    return result(conf, net, lease)


def _status(state: str, net: dict[str, Any]) -> None:
    import ipaddress

    from oci.net import ipam

    try:
        os.makedirs(state, exist_ok=True)
    except OSError as err:
        raise CniError(NOT_AVAILABLE, f"state directory {state} cannot be created: {err.strerror}") from None
    if not os.access(state, os.W_OK):
        raise CniError(NOT_AVAILABLE, f"state directory {state} is not writable")
    subnet = ipaddress.ip_network(net["subnet"])
    used = len(ipam.used_addresses(ipam.LeaseStore(state, net["name"]).read(), 4))
    if used + 3 >= subnet.num_addresses:  # network, gateway and broadcast are never leased
        raise CniError(NOT_AVAILABLE, f"no free address left in {subnet}")
    return None


def main(stdin: bytes, environ: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None]:
    """The exit code and the stdout document of one plugin run."""
    command = (environ or os.environ).get("CNI_COMMAND", "")
    version = SPEC_VERSION
    try:
        try:
            version = json.loads(stdin).get("cniVersion") or SPEC_VERSION
        except (ValueError, AttributeError, TypeError):
            pass
        version = version if type(version) is str else SPEC_VERSION
        return 0, run(command, stdin)
    except CniError as err:
        return 1, error_object(err, version)
    except OciError as err:
        return 1, error_object(from_oci_error(err), version)
    except Exception as err:  # a bug of ours: still the spec's error object, never a traceback
        return 1, error_object(CniError(PLUGIN_FAILURE, f"internal error: {type(err).__name__}: {err}"), version)
