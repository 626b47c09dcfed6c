"""The CNI protocol (spec 1.1.0): ADD, DEL, CHECK, VERSION, STATUS and GC of the `ocikit` plugin.

The runtime runs the plugin with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
CNI_ARGS and CNI_PATH in the environment and the network configuration on stdin; the
result (or an error object `{"cniVersion", "code", "msg", "details"}`) goes to stdout.

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
`runtimeConfig`        `portMappings` (list of {hostPort, containerPort, protocol, hostIP})
                       and `aliases` ({NETWORK: [names]}), the capabilities podman passes
=====================  ==============================================================

CNI_ARGS understood: `IP=ADDRESS` (a static address, as host-local takes it) and
`K8S_POD_NAME=NAME` (the name other members see in their hosts files).
"""

from __future__ import annotations

import json
import os
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


def load_config(data: bytes) -> dict[str, Any]:
    """Parse and validate the configuration on stdin (validation remembered per state dir)."""
    from oci.net import networks, validation

    try:
        conf = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise CniError(DECODE_FAILURE, f"configuration on stdin is not JSON: {err}") from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "configuration on stdin is not a JSON object")
    version = conf.get("cniVersion")
    if version not in SUPPORTED:
        raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {version!r} is not supported",
                       f"supported: {', '.join(SUPPORTED)}")
    state = networks.state_dir(conf.get("stateDir"))
    # What changes per container stays out of the remembered digest (see validation.CNI_VOLATILE)
    stable = {k: v for k, v in conf.items() if k not in validation.CNI_VOLATILE}
    validation.validate(stable, "cni-config", "<stdin>", memo_dir=os.path.join(state, "validated"))
    if not validation.plainly_valid_volatile(conf):
        validation.validate(conf, "cni-config", "<stdin>")
    return conf


def network_of(conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The state directory and the network document the configuration describes."""
    from oci.net import networks

    ipam_conf = conf["ipam"]
    state = networks.state_dir(conf.get("stateDir"))
    net = networks.build(conf["name"], ipam_conf["subnet"], subnet6=ipam_conf.get("subnet6"),
                         bridge=conf.get("bridge", "oci0"), gateway=ipam_conf.get("gateway"),
                         gateway6=ipam_conf.get("gateway6"), mtu=conf.get("mtu", networks.DEFAULT_MTU),
                         masquerade=conf.get("ipMasq", True), nft_table=conf.get("nftTable", networks.DEFAULT_TABLE),
                         memo_dir=os.path.join(state, "validated"))
    return state, net


def result(conf: dict[str, Any], net: dict[str, Any], lease: dict[str, Any]) -> dict[str, Any]:
    """The CNI result of an attachment, in the configuration's cniVersion."""
    version = conf["cniVersion"]
    ips = []
    for cidr, gateway in zip(lease["addresses"], lease["gateways"], strict=True):
        entry: dict[str, Any] = {"address": cidr, "gateway": gateway, "interface": 2}
        if version.startswith("0."):
            entry["version"] = "6" if ":" in cidr else "4"
        ips.append(entry)
    routes = [{"dst": "::/0" if ":" in gw else "0.0.0.0/0", "gw": gw} for gw in lease["gateways"]]
    return {
        "cniVersion": version,
        "interfaces": [
            {"name": net["bridge"], "mac": lease.get("bridgeMac", "")},
            {"name": lease["hostIfname"], "mac": lease.get("hostMac", "")},
            {"name": lease["ifname"], "mac": lease["mac"], "sandbox": lease["netns"]},
        ],
        "ips": ips,
        "routes": routes,
        "dns": conf.get("dns", {}),
    }


def _env(name: str, required: bool = True) -> str:
    value = os.environ.get(name, "")
    if required and not value:
        raise CniError(INVALID_ENV, f"{name} is not set")
    return value


def run(command: str, stdin: bytes) -> dict[str, Any] | None:
    """Carry out one CNI command; the document for stdout, if any."""
    if command == "VERSION":
        try:
            version = json.loads(stdin or b"{}").get("cniVersion") or SPEC_VERSION
        except (ValueError, AttributeError):
            version = SPEC_VERSION
        return {"cniVersion": version, "supportedVersions": SUPPORTED}
    if command not in ("ADD", "DEL", "CHECK", "STATUS", "GC"):
        raise CniError(INVALID_ENV, f"CNI_COMMAND {command!r} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC")
    conf = load_config(stdin)
    state, net = network_of(conf)
    from oci.net import endpoint

    if command == "STATUS":
        return _status(state, net)
    if command == "GC":
        valid = {endpoint.key_of(a["containerID"], a["ifname"]) for a in conf.get("cni.dev/valid-attachments", [])}
        endpoint.gc(state, net, valid)
        return None
    container_id, ifname = _env("CNI_CONTAINERID"), _env("CNI_IFNAME")
    if command == "DEL":
        endpoint.disconnect(state, net, container_id, ifname)
        return None
    netns = _env("CNI_NETNS")
    if command == "CHECK":
        lease = endpoint.check(state, net, container_id, ifname)
        prev = conf.get("prevResult")
        if prev is not None:
            want = sorted(ip.get("address") for ip in prev.get("ips", []))
            if want != sorted(lease["addresses"]):
                raise CniError(PLUGIN_FAILURE, f"addresses {lease['addresses']} differ from prevResult's {want}")
        return None
    return _add(conf, state, net, container_id, ifname, netns)


def _add(conf: dict[str, Any], state: str, net: dict[str, Any], container_id: str, ifname: str,
         netns: str) -> dict[str, Any]:
    from oci.net import endpoint, links, nat

    args = parse_args(os.environ.get("CNI_ARGS", ""))
    runtime = conf.get("runtimeConfig", {})
    ports = [nat.Port.from_json(p) for p in conf.get("ports", []) + runtime.get("portMappings", [])]
    aliases = runtime.get("aliases", {}).get(conf["name"], [])
    req = endpoint.Request(container_id, links.netns_path(netns), ifname, ip=args.get("IP"), ports=ports,
                           name=args.get("K8S_POD_NAME"), aliases=list(aliases))
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
        return 0, run(command, stdin)
    except CniError as err:
        return 1, error_object(err, version)
    except OciError as err:
        return 1, error_object(from_oci_error(err), version)
