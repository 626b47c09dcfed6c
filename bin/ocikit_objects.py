"""ocikit's volume and network verbs: volume create/ls/inspect/rm/prune, network
create/ls/inspect/rm/connect/disconnect/prune (oci-net's networks, in the state root)."""

from __future__ import annotations

import os
from typing import Any

from ocikit import Context, parser, print_documents, remove_each

from oci.errors import Conflict, NotFound, Unsupported


def _volume_users(context: Context) -> dict[str, list[str]]:
    """volume name -> IDs of the containers that mount it."""
    found: dict[str, list[str]] = {}
    for record in context.engine.containers.records():
        for mount in record.get("Mounts", []):
            if mount.get("Type") == "volume" and mount.get("Name"):
                found.setdefault(mount["Name"], []).append(record["Id"])
    return found


def cmd_volume_create(context: Context, argv: list[str]) -> int:
    p = parser("volume create", "Create a named volume (shared by every container that mounts it)",
               "ocikit volume create [OPTIONS] [VOLUME]")
    p.add_argument("-d", "--driver", default="local", help="local (the only driver)")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-o", "--opt", action="append", default=[], help="not supported")
    p.add_argument("name", nargs="?")
    args = p.parse_args(argv)

    if args.driver != "local" or args.opt:
        raise Unsupported("only the local driver without options is supported")
    import secrets

    name = args.name or secrets.token_hex(32)
    labels = dict(item.partition("=")[::2] for item in args.label)
    context.engine.volumes.create(name, labels)
    context.out(name + "\n")
    return 0


def cmd_volume_ls(context: Context, argv: list[str]) -> int:
    p = parser("volume ls", "List volumes")
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("-f", "--filter", action="append", default=[], help="dangling=true|false, name=, label=")
    p.add_argument("--format", help="table (default), json, or a Go template ({{.Name}} {{.Driver}})")
    args = p.parse_args(argv)
    from oci.engine.formatting import emit, table

    volumes = context.engine.volumes
    used = _volume_users(context)
    rows = []
    for name in volumes.names():
        doc = volumes.inspect(name)
        keep = True
        for text in args.filter:
            key, _, value = text.partition("=")
            if key == "dangling" and (value.lower() == "true") == bool(used.get(name)):
                keep = False
            if key == "name" and value not in name:
                keep = False
            if key == "label" and value.partition("=")[0] not in (doc.get("Labels") or {}):
                keep = False
        if keep:
            rows.append({"Name": name, "Driver": doc.get("Driver", "local"), "Scope": "local",
                         "Mountpoint": doc.get("Mountpoint", ""), "Labels": ",".join(
                             f"{k}={v}" for k, v in sorted((doc.get("Labels") or {}).items()))})
    context.out(emit(rows, args.format, lambda r: table(["DRIVER", "VOLUME NAME"],
                                                        [[x["Driver"], x["Name"]] for x in r]), "Name", args.quiet))
    return 0


def cmd_volume_inspect(context: Context, argv: list[str]) -> int:
    p = parser("volume inspect", "Display detailed information on one or more volumes")
    p.add_argument("-f", "--format", help="a Go template, or json")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    args = p.parse_args(argv)

    return print_documents(context, args, context.engine.volumes.inspect)


def cmd_volume_rm(context: Context, argv: list[str]) -> int:
    p = parser("volume rm", "Remove one or more volumes (not while a container uses them)")
    p.add_argument("-f", "--force", action="store_true", help="no error for a volume that does not exist")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    args = p.parse_args(argv)

    used = _volume_users(context)
    return remove_each(context, args.names, lambda name: context.engine.volumes.remove(name, used.get(name, [])),
                       args.force)


def cmd_volume_prune(context: Context, argv: list[str]) -> int:
    p = parser("volume prune", "Remove volumes no container uses")
    p.add_argument("-a", "--all", action="store_true", help="accepted (every unused volume is removed)")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (ocikit never asks)")
    p.parse_args(argv)
    used = _volume_users(context)
    removed = []
    for name in context.engine.volumes.names():
        if not used.get(name):
            context.engine.volumes.remove(name, [])
            removed.append(name)
    if removed:
        context.out("Deleted Volumes:\n" + "".join(f"{n}\n" for n in removed) + "\n")
    context.out("Total reclaimed space: 0B\n")
    return 0


def cmd_network_create(context: Context, argv: list[str]) -> int:
    p = parser("network create", "Create a network (a bridge of oci-net; its containers reach each other by name)",
               "ocikit network create [OPTIONS] NETWORK")
    p.add_argument("-d", "--driver", default="bridge", help="bridge (the only driver)")
    p.add_argument("--subnet", help="IPv4 subnet in CIDR form (default: a free /24 of 10.89.0.0/16)")
    p.add_argument("--gateway", help="the bridge's address (default: the first of the subnet)")
    p.add_argument("--internal", action="store_true", help="no masquerading towards other networks")
    p.add_argument("--label", action="append", default=[], help="accepted")
    p.add_argument("name")
    args = p.parse_args(argv)
    from oci.engine import networks

    if args.driver != "bridge":
        raise Unsupported(f"network driver {args.driver!r} is not supported (bridge)")
    networks.create(context.engine.root, args.name, args.subnet, gateway=args.gateway, internal=args.internal)
    context.out(args.name + "\n")
    return 0


def _network_rows(context: Context) -> list[dict[str, Any]]:
    from oci.engine import networks

    rows = [{"ID": n["name"], "Name": n["name"], "Driver": "bridge", "Scope": "local", "IPv6": "subnet6" in n,
             "Internal": not n.get("masquerade", True), "Subnet": n["subnet"]}
            for n in networks.list_all(context.engine.root)]
    rows += [{"ID": n, "Name": n, "Driver": n if n != "none" else "null", "Scope": "local", "IPv6": False,
              "Internal": False, "Subnet": ""} for n in ("host", "none")]
    return rows


def cmd_network_ls(context: Context, argv: list[str]) -> int:
    p = parser("network ls", "List networks")
    p.add_argument("-q", "--quiet", action="store_true", help="only names")
    p.add_argument("-f", "--filter", action="append", default=[], help="name=")
    p.add_argument("--format", help="table (default), json, or a Go template ({{.Name}})")
    p.add_argument("--no-trunc", action="store_true", help="accepted")
    args = p.parse_args(argv)
    from oci.engine.formatting import emit, table

    rows = [r for r in _network_rows(context)
            if all(f.partition("=")[2] in r["Name"] for f in args.filter if f.startswith("name="))]
    context.out(emit(rows, args.format, lambda r: table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                                                        [[x["ID"], x["Name"], x["Driver"], x["Scope"]] for x in r]),
                     "ID", args.quiet))
    return 0


def cmd_network_inspect(context: Context, argv: list[str]) -> int:
    p = parser("network inspect", "Display detailed information on one or more networks")
    p.add_argument("-f", "--format", help="a Go template, or json")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    args = p.parse_args(argv)

    from oci.engine import inspection

    return print_documents(context, args, lambda name: inspection.network(context.engine, name))


def cmd_network_rm(context: Context, argv: list[str]) -> int:
    p = parser("network rm", "Remove one or more networks (bridge, rules and state)")
    p.add_argument("-f", "--force", action="store_true", help="no error for a network that does not exist")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    args = p.parse_args(argv)
    from oci.engine import networks

    return remove_each(context, args.names, lambda name: networks.remove(context.engine.root, name), args.force)


def cmd_network_prune(context: Context, argv: list[str]) -> int:
    p = parser("network prune", "Remove networks no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (ocikit never asks)")
    p.parse_args(argv)
    from oci.engine import networks

    removed = []
    for net in networks.list_all(context.engine.root):
        if not networks.attachments(context.engine.root, net):
            networks.remove(context.engine.root, net["name"])
            removed.append(net["name"])
    if removed:
        context.out("Deleted Networks:\n" + "".join(f"{n}\n" for n in removed))
    return 0


def cmd_network_connect(context: Context, argv: list[str]) -> int:
    p = parser("network connect", "Connect a running container to one more network",
               "ocikit network connect [OPTIONS] NETWORK CONTAINER")
    p.add_argument("--alias", action="append", default=[], help="another DNS name on the network")
    p.add_argument("network")
    p.add_argument("container")
    args = p.parse_args(argv)
    from oci.engine import networks, status

    engine = context.engine
    cid = engine.containers.resolve(args.container)
    record = status.refresh(engine, engine.containers.load(cid), context.monitor())
    if record["State"]["Status"] not in ("running", "paused"):
        raise Conflict(f"container {record['Name']} is not running")
    attached = networks.leases_of(engine.root, cid)
    if args.network in attached:
        raise Conflict(f"endpoint with name {record['Name']} already exists in network {args.network}")
    folder = engine.containers.folder(cid)

    networks.connect(engine.root, args.network, cid, record["State"]["Pid"], ifname=f"eth{len(attached)}",
                     hostname=record["Name"], aliases=[cid[:12], *args.alias],
                     hosts_file=os.path.join(folder, "hosts"))
    return 0


def cmd_network_disconnect(context: Context, argv: list[str]) -> int:
    p = parser("network disconnect", "Disconnect a container from a network",
               "ocikit network disconnect [OPTIONS] NETWORK CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="accepted")
    p.add_argument("network")
    p.add_argument("container")
    args = p.parse_args(argv)
    from oci.engine import networks
    from oci.net import endpoint

    engine = context.engine
    cid = engine.containers.resolve(args.container)
    net = networks.load(engine.root, args.network)
    if not endpoint.disconnect(engine.root.net, net, cid):
        raise NotFound(f"container {args.container} is not connected to network {args.network}")
    return 0
