#!/usr/bin/env python3
"""oci-net: container networking as a command, an OCI hook and a CNI plugin.

With CNI_COMMAND in the environment it is a CNI plugin (configuration on stdin, result on
stdout); otherwise a command with verbs create, ls, inspect, rm, add, del, check, gc, hook.
"""

from __future__ import annotations

import os
import sys

import ocisite  # noqa: F401  (the checkout, and site's folders under -S)

DESCRIPTION = """Connect containers to bridge networks: addresses, NAT, published ports, names.

Networks are named objects stored as JSON in the state directory (--state-dir, else
$OCIKIT_NET_STATE_DIR, else /var/lib/ocikit/net). A container is a network namespace,
given by path (--netns) or by the pid of a process in it (--pid).

Three ways in, one implementation:
  commands    oci-net add|del|check NETWORK --netns PATH|--pid PID ...
  OCI hook    oci-net hook connect|disconnect NETWORK (container state on stdin;
              createRuntime connects state.pid's netns, poststop disconnects by id;
              BUNDLE/hosts, when it exists, is kept as the managed /etc/hosts)
  CNI plugin  run with CNI_COMMAND set (ADD, DEL, CHECK, VERSION, STATUS, GC): link or copy
              the oci-net executable as `ocikit` into the CNI plugin directory and use
              {"type": "ocikit", "bridge": "oci0", "ipam": {"subnet": "10.88.0.0/16"}}"""

EXAMPLES = """  oci-net create web --subnet 10.213.5.0/24 --subnet6 fd00:213:5::/64
  ip netns add c1 && oci-net add web --netns /run/netns/c1 --id c1 --name api --alias backend -p 8080:80
  # c2.pid: a process in the container's netns (as `oci-run create --pid-file c2.pid` writes it)
  oci-net add web --pid "$(cat c2.pid)" --id c2 --ip 10.213.5.20 -p 127.0.0.1:5353:53/udp --hosts-file ./c2/hosts
  oci-net check web --id c2
  oci-net del web --id c2 && oci-net del web --id c1
  oci-net gc                          # release what containers whose netns is gone left
  oci-net rm web
  # as OCI hooks in config.json (hooks get no environment: a state directory goes in the args):
  #   createRuntime: ["oci-net", "hook", "connect", "web", "--state-dir", "/srv/net", "-p", "8080:80"]
  #   poststop:      ["oci-net", "hook", "disconnect", "web", "--state-dir", "/srv/net"]
  CNI_COMMAND=VERSION oci-net </dev/null"""


STATE_HELP = "state directory (default: $OCIKIT_NET_STATE_DIR, else /var/lib/ocikit/net)"


def cni_main() -> None:
    """The CNI plugin: imports only what the protocol needs (runtimes start it per container)."""
    import json

    from oci.net import cni

    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    code, document = cni.main(stdin)
    if document is not None:
        sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is on disk and on stdout: skip the interpreter's teardown of every module
    # (~10 ms with pyroute2's message classes loaded), which a runtime waits for per container.
    os._exit(code)


VERBS = ("create", "ls", "inspect", "rm", "add", "del", "check", "gc", "hook")


def build_parser(only: str | None = None):
    """The command line parser; with `only`, one verb's (the OCI hook runs twice per container)."""
    import argparse

    import ocicli

    class VerbParser(argparse.ArgumentParser):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.add_argument("--state-dir", default=argparse.SUPPRESS, metavar="DIR", help=STATE_HELP)

        def error(self, message: str):
            sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
            sys.exit(2)

    parser = ocicli.Parser("oci-net", DESCRIPTION, EXAMPLES)
    parser.add_argument("--state-dir", metavar="DIR", help=STATE_HELP)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=VerbParser)
    for verb in VERBS if only is None else (only,):
        _VERB_FLAGS[verb](verbs)
    return parser


def _create(verbs) -> None:
    create = verbs.add_parser("create", help="create a named network")
    create.add_argument("name")
    create.add_argument("--subnet", required=True, help="IPv4 subnet, e.g. 10.213.5.0/24")
    create.add_argument("--subnet6", help="IPv6 subnet, e.g. fd00:213:5::/64")
    create.add_argument("--gateway", help="IPv4 address of the bridge (default: first of the subnet)")
    create.add_argument("--gateway6", help="IPv6 address of the bridge (default: first of subnet6)")
    create.add_argument("--bridge", help="host bridge name (default: the network name)")
    create.add_argument("--mtu", type=int, default=1500, help="MTU (default 1500)")
    create.add_argument("--no-masquerade", action="store_true", help="do not masquerade the subnet")
    create.add_argument("--nft-table", default="ocikit", help="nftables table (family inet) for the rules")


def _ls(verbs) -> None:
    verbs.add_parser("ls", help="list networks (JSON), those made through the CNI plugin with \"cni\": true")


def _inspect(verbs) -> None:
    inspect = verbs.add_parser("inspect", help="a network and its attachments (JSON)")
    inspect.add_argument("name")


def _rm(verbs) -> None:
    rm = verbs.add_parser("rm", help="remove a network, its bridge and rules (a CNI network's too)")
    rm.add_argument("name")


def _add(verbs) -> None:
    add = verbs.add_parser("add", help="connect a container (netns) to a network")
    _container_flags(add)
    add.add_argument("--ip", help="static IPv4 address")
    add.add_argument("--ip6", help="static IPv6 address")
    add.add_argument("--mac", help="MAC address of the container interface")
    _connect_flags(add)
    add.add_argument("--hosts-file", help="the container's hosts file, kept up to date in place")


def _del(verbs) -> None:
    _container_flags(verbs.add_parser("del", help="disconnect a container"))


def _check(verbs) -> None:
    _container_flags(verbs.add_parser("check", help="verify a container's attachment"))


def _gc(verbs) -> None:
    gc = verbs.add_parser("gc", help="release addresses and rules of containers whose netns is gone "
                                     "(CNI networks of the state directory included)")
    gc.add_argument("networks", nargs="*", metavar="NETWORK", help="networks to collect (default: all)")


def _hook(verbs) -> None:
    hook = verbs.add_parser("hook", help="OCI hook: container state on stdin")
    hook.add_argument("action", choices=("connect", "disconnect"))
    hook.add_argument("network")
    hook.add_argument("--ip", help="static IPv4 address")
    hook.add_argument("--ifname", default="eth0", help="interface name in the container (default eth0)")
    _connect_flags(hook)


_VERB_FLAGS = {"create": _create, "ls": _ls, "inspect": _inspect, "rm": _rm, "add": _add, "del": _del,
               "check": _check, "gc": _gc, "hook": _hook}


def _verb_of(argv: list[str]) -> str | None:
    """The verb of a command line whose only option before it is --state-dir DIR, else None."""
    rest = list(argv)
    while rest[:1] == ["--state-dir"] and len(rest) > 1:
        rest = rest[2:]
    return rest[0] if rest and rest[0] in VERBS else None


def _container_flags(sub) -> None:
    sub.add_argument("network")
    where = sub.add_mutually_exclusive_group()
    where.add_argument("--netns", help="path of the network namespace (e.g. /run/netns/NAME)")
    where.add_argument("--pid", type=int, help="pid of a process in the network namespace")
    sub.add_argument("--id", help="container id (default: derived from the namespace)")
    sub.add_argument("--ifname", default="eth0", help="interface name in the container (default eth0)")


def _connect_flags(sub) -> None:
    sub.add_argument("-p", "--publish", action="append", default=[], metavar="[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]",
                     help="publish a container port on the host (repeatable)")
    sub.add_argument("--name", help="name the other containers of the network resolve")
    sub.add_argument("--alias", action="append", default=[], help="another name (repeatable; may be shared)")


def _netns(args) -> str | None:
    """The network namespace --netns or --pid names, if any."""
    from oci.net import links

    return links.netns_path(args.netns, args.pid) if args.netns or args.pid else None


def _container(args, netns: str | None) -> str:
    """The container's ID: --id, else one made from its network namespace."""
    from oci.errors import UsageError

    if args.id:
        return args.id
    if netns is None:
        raise UsageError("give --netns PATH or --pid PID or --id ID")
    return f"netns-{os.stat(netns).st_ino}"


def main_body(argv: list[str], messages) -> int:
    args = build_parser(_verb_of(argv)).parse_args(argv)  # --help and --version need nothing more
    messages.quiet = args.quiet
    import ocicli

    from oci.net import endpoint, nat, networks

    state = networks.state_dir(args.state_dir)
    if os.path.lexists(state) and not os.path.isdir(state):
        from oci.errors import InvalidInput

        raise InvalidInput(f"{state}: exists and is not a directory (expected oci-net's state directory)")
    if args.verb == "create":
        doc = networks.build(args.name, args.subnet, subnet6=args.subnet6, bridge=args.bridge, gateway=args.gateway,
                             gateway6=args.gateway6, mtu=args.mtu, masquerade=not args.no_masquerade,
                             nft_table=args.nft_table)
        ocicli.emit(networks.create(state, doc))
    elif args.verb == "ls":
        ocicli.emit(networks.list_all(state))
    elif args.verb == "inspect":
        net = networks.load(state, args.name)
        ocicli.emit({**net, "attachments": endpoint.attached(state, net)})
    elif args.verb == "rm":
        net = networks.load(state, args.name)
        endpoint.teardown(state, net)
        if net.get("cni"):  # a CNI network's record may have gone with its last lease already
            networks.forget_cni_record(state, args.name)
        else:
            networks.delete(state, args.name)
        messages.info(f"removed network {args.name}")
    elif args.verb == "add":
        netns = _netns(args)
        if netns is None:
            from oci.errors import UsageError

            raise UsageError("give --netns PATH or --pid PID")
        container_id = _container(args, netns)
        net = networks.load(state, args.network)
        req = endpoint.Request(container_id, netns, args.ifname, ip=args.ip, ip6=args.ip6, mac=args.mac,
                               ports=[nat.parse_port(p) for p in args.publish], name=args.name,
                               aliases=args.alias, hosts_file=args.hosts_file and os.path.abspath(args.hosts_file))
        ocicli.emit({"network": net["name"], **endpoint.connect(state, net, req)})
    elif args.verb == "del":
        container_id = _container(args, _netns(args))
        net = networks.load(state, args.network)
        released = endpoint.disconnect(state, net, container_id, args.ifname)
        if not released:
            messages.warn(f"{container_id}/{args.ifname} was not connected to {net['name']}")
    elif args.verb == "check":
        container_id = _container(args, _netns(args))
        net = networks.load(state, args.network)
        ocicli.emit({"network": net["name"], **endpoint.check(state, net, container_id, args.ifname)})
    elif args.verb == "gc":
        nets = [networks.load(state, name) for name in args.networks]
        if not args.networks:  # every stored network, and the CNI networks known by their leases
            nets = networks.list_all(state) + endpoint.lease_networks(state)
        released = []
        for net in nets:
            released += [{"network": net["name"], **lease} for lease in endpoint.gc(state, net)]
        ocicli.emit(released)
    elif args.verb == "hook":
        return hook(args, state, messages)
    return 0


def hook(args, state: str, messages) -> int:
    """createRuntime: connect the state's pid; poststop: disconnect by container id."""
    import ocicli

    from oci import schema
    from oci.errors import InvalidInput
    from oci.net import endpoint, nat, networks, validation

    if sys.stdin is None or sys.stdin.isatty():
        raise InvalidInput("expected the OCI container state as JSON on stdin")
    container = schema.parse(sys.stdin.buffer.read(), "<stdin>")
    if not validation.plainly_valid_state(container):  # else the schema says what is wrong
        schema.validate(container, "state", "<stdin>")
    net = networks.load(state, args.network)
    if args.action == "disconnect":
        endpoint.disconnect(state, net, container["id"], args.ifname)
        return 0
    if not container.get("pid"):
        raise InvalidInput("<stdin>: /pid: the container has no process to connect")
    hosts_file = os.path.join(container["bundle"], "hosts")
    req = endpoint.Request(container["id"], f"/proc/{container['pid']}/ns/net", args.ifname, ip=args.ip,
                           ports=[nat.parse_port(p) for p in args.publish], name=args.name or container["id"],
                           aliases=args.alias, hosts_file=hosts_file if os.path.exists(hosts_file) else None)
    lease = endpoint.connect(state, net, req)
    messages.debug(f"connected {container['id']} to {net['name']} as {', '.join(lease['addresses'])}")
    if not args.quiet and sys.stdout.isatty():
        ocicli.emit(lease)
    return 0


def main() -> None:
    if os.environ.get("CNI_COMMAND"):
        cni_main()
    import ocicli

    ocicli.run("oci-net", main_body)


if __name__ == "__main__":
    main()
