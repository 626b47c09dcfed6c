#!/usr/bin/env python3
"""oci-bundle: turn an image config into an OCI runtime bundle, with the options of `docker run`."""

from __future__ import annotations

import os
import sys

import ocicli

from oci import RUNTIME_SPEC_VERSION

PROG = "oci-bundle"
NET_STATE_ENV = "OCIKIT_NET_STATE_DIR"
DESCRIPTION = """\
Write BUNDLE/config.json for the image [oci:]LAYOUT[:TAG|@DIGEST] (or the oci-unpack output read from stdin
with `-`), converted as the image-spec's conversion.md says, with Docker-like secure defaults
and the options of `docker run`. The config is validated against the runtime-spec schema before
it is written atomically; the bundle path is printed on stdout (the config itself with --print).
Config.User is resolved against the rootfs's /etc/passwd and /etc/group (read without leaving
the rootfs); an unknown user or group exits 3.

Arguments after `--` replace the image's Cmd (and follow --entrypoint when given). When
oci-unpack hands over an overlay it did not mount ("mount" in its JSON), oci-bundle mounts it
at the rootfs and records it in the org.ocikit.rootfs.mount annotation.

The bundle also gets hostname, hosts and resolv.conf, bind-mounted at /etc/hostname, /etc/hosts
and /etc/resolv.conf, and volumes/NAME directories for the image's Volumes and named volumes.

Networking (--network): none (default: a new network namespace with only loopback), host (the
host's namespace), ns:PATH (join a namespace), or NAME: a new namespace wired by oci-net through
hooks. For NAME, OCI_NET is the `oci-net` installed beside this command (from a checkout:
this Python running bin/oci_net.py; else `oci-net` on PATH) and the config gets
  createRuntime: [OCI_NET, hook, connect, NAME, --publish VALUE..., --name NAME, --alias ALIAS...]
  poststop:      [OCI_NET, hook, disconnect, NAME]
both with `--state-dir DIR` when oci-net's state directory is not its default (--state-dir, else
$OCIKIT_NET_STATE_DIR as oci-bundle sees it: hooks run with an empty environment). The hook
reads the container state on stdin, finds the bundle from it and rewrites BUNDLE/hosts in place
(never by rename: the file is bind-mounted into the container)."""

EXAMPLES = """\
  oci-bundle ./images:busybox ./bundle --rootfs ./bundle/rootfs -- echo hello
  oci-unpack ./images:busybox ./b/rootfs | oci-bundle - ./b -e DEBUG=1 -m 64m --pids-limit 32
  oci-bundle ./images:busybox ./b -u nobody -v data:/data --read-only --tmpfs /tmp --cap-drop ALL
  oci-bundle ./images:busybox ./b --network web -p 8080:80 --name api --print | jq .hooks
  oci-net create web --subnet 10.213.5.0/24 --state-dir /srv/net
  oci-unpack ./images:busybox ./web/rootfs | oci-bundle - ./web --network web --state-dir /srv/net \
      --name web -p 127.0.0.1:8080:80 -- httpd -f -p 80 -h /etc
  oci-run run -d --bundle ./web web   # connected by the createRuntime hook; `oci-run delete` disconnects
  curl -s http://127.0.0.1:8080/hostname                       # web: its /etc/hostname, served"""


def parser() -> ocicli.Parser:
    p = ocicli.Parser(PROG, DESCRIPTION, EXAMPLES)
    add = p.add_argument
    add("image", metavar="IMAGE", help="the image: [oci:]LAYOUT[:TAG|@DIGEST], or - for oci-unpack's output on stdin")
    add("bundle", metavar="BUNDLE", help="the bundle directory (created if missing)")
    add("--rootfs", metavar="PATH", help="the root filesystem (default: BUNDLE/rootfs, or oci-unpack's from stdin)")
    add("--platform", metavar="OS/ARCH[/VARIANT]", help="the platform to pick from a multi-platform image")
    add("--oci-version", default=RUNTIME_SPEC_VERSION,
        help=f"ociVersion written in the config (default: {RUNTIME_SPEC_VERSION})")
    add("--print", action="store_true", help="write the config to stdout instead of BUNDLE/config.json "
        "(the files it mounts from the bundle are still made)")
    p.add_argument("-t", "--tty", action="store_true", help="give the process a terminal")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="accepted for docker-run habits (-it); stdin is the runtime's business")
    g = p.add_argument_group("volumes")
    g.add_argument("-v", "--volume", action="append", default=[], metavar="[SRC:]DST[:OPTS]",
                   help="a bind mount (absolute SRC), named volume (NAME) or anonymous volume")
    g.add_argument("--mount", action="append", default=[], metavar="type=bind|volume|tmpfs,...",
                   help="a mount in docker's key=value syntax")
    g = p.add_argument_group("network")
    g.add_argument("--network", "--net", default="none", metavar="none|host|ns:PATH|NAME",
                   help="network namespace (default: none)")
    g.add_argument("-p", "--publish", action="append", default=[], metavar="SPEC",
                   help="publish a port (passed to oci-net; needs --network NAME)")
    g.add_argument("--name", help="container name (passed to oci-net)")
    g.add_argument("--network-alias", "--alias", dest="aliases", action="append", default=[], metavar="ALIAS",
                   help="a network alias (passed to oci-net)")
    g.add_argument("--state-dir", metavar="DIR", help="oci-net's state directory, given to its hooks "
                   f"(default ${NET_STATE_ENV}, else oci-net's default)")
    add_run_flags(p)
    return p


def add_run_flags(p) -> None:
    """The flags of `docker run` that mean the same to oci-bundle and `ocikit run` (process,
    security, resources, tmpfs, names, extras); `bundle_fields` reads them back."""
    g = p.add_argument_group("process")
    g.add_argument("--entrypoint", help="replace the image's Entrypoint (and drop its Cmd); \"\" clears it")
    g.add_argument("-e", "--env", action="append", default=[], metavar="NAME[=VALUE]",
                   help="set a variable (a bare NAME copies the host's value)")
    g.add_argument("--env-file", action="append", default=[], metavar="FILE", help="read variables from a file")
    g.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user name or uid, and group name or gid")
    g.add_argument("--group-add", action="append", default=[], metavar="GROUP", help="an additional group")
    g.add_argument("-w", "--workdir", metavar="DIR", help="working directory in the container")
    g.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]", help="an rlimit")
    g = p.add_argument_group("security")
    g.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability (or ALL)")
    g.add_argument("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability (or ALL)")
    g.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="seccomp=FILE|unconfined (FILE: runtime-spec or Docker format), "
                   "no-new-privileges[=true|false], systempaths=unconfined")
    g.add_argument("--privileged", action="store_true",
                   help="every capability, host devices, no seccomp, masks or read-only /sys")
    g.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    g.add_argument("--userns", metavar="host|CID:HOSTID:SIZE", help="a user namespace mapping uids and gids alike")
    g.add_argument("--uidmap", action="append", default=[], metavar="CID:HOSTID:SIZE", help="a uid mapping")
    g.add_argument("--gidmap", action="append", default=[], metavar="CID:HOSTID:SIZE", help="a gid mapping")
    g.add_argument("--sysctl", action="append", default=[], metavar="NAME=VALUE", help="a namespaced sysctl")
    g = p.add_argument_group("resources")
    g.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (units b, k, m, g)")
    g.add_argument("--memory-swap", metavar="BYTES", help="memory plus swap limit (-1: unlimited)")
    g.add_argument("--cpus", metavar="N", help="CPU quota in CPUs (1.5)")
    g.add_argument("-c", "--cpu-shares", type=int, metavar="N", help="relative CPU weight")
    g.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs allowed (0-2,4)")
    g.add_argument("--pids-limit", type=int, metavar="N", help="maximum number of tasks (-1: unlimited)")
    g.add_argument("--device", action="append", default=[], metavar="HOST[:CONTAINER[:rwm]]", help="a host device")
    for flag, unit in (("--device-read-bps", "bytes"), ("--device-write-bps", "bytes"),
                       ("--device-read-iops", "operations"), ("--device-write-iops", "operations")):
        g.add_argument(flag, action="append", default=[], metavar="DEVICE:RATE",
                       help=f"{flag[9:].replace('-', ' ')} limit of a block device, in {unit} per second")
    g = p.add_argument_group("filesystems and names")
    g.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="a tmpfs mount")
    g.add_argument("--hostname", help="container host name (default: from the bundle path)")
    g.add_argument("--add-host", action="append", default=[], metavar="NAME:IP", help="a line in /etc/hosts")
    g.add_argument("--dns", action="append", default=[], metavar="IP", help="a nameserver in /etc/resolv.conf")
    g.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN", help="a search domain")
    g.add_argument("--dns-option", action="append", default=[], metavar="OPT", help="a resolv.conf option")
    g = p.add_argument_group("extras")
    g.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE", help="a config annotation")
    g.add_argument("--hook", action="append", default=[], metavar="STAGE=COMMAND",
                   help="a hook: prestart, createRuntime, createContainer, startContainer, poststart or poststop")


def bundle_fields(args) -> dict:
    """BundleOptions fields from the flags `add_run_flags` added."""
    uid_maps, gid_maps = list(args.uidmap), list(args.gidmap)
    if args.userns and args.userns != "host":
        uid_maps.append(args.userns)
        gid_maps.append(args.userns)
    return dict(
        uid_maps=uid_maps, gid_maps=gid_maps,
        entrypoint=args.entrypoint, env=args.env, env_files=args.env_file, user=args.user, group_add=args.group_add,
        workdir=args.workdir, hostname=args.hostname, read_only=args.read_only, cap_add=args.cap_add,
        cap_drop=args.cap_drop, devices=args.device, memory=args.memory, memory_swap=args.memory_swap,
        cpus=args.cpus, cpu_shares=args.cpu_shares, cpuset_cpus=args.cpuset_cpus, pids_limit=args.pids_limit,
        ulimits=args.ulimit, device_read_bps=args.device_read_bps, device_write_bps=args.device_write_bps,
        device_read_iops=args.device_read_iops, device_write_iops=args.device_write_iops, sysctls=args.sysctl,
        tmpfs=args.tmpfs, security_opts=args.security_opt, privileged=args.privileged, add_hosts=args.add_host,
        dns=args.dns, dns_search=args.dns_search, dns_options=args.dns_option, annotations=args.annotation,
        hooks=args.hook)


def oci_net_command() -> list[str]:
    """The command the hooks run for oci-net: an installed `oci-net` beside this command (its
    shebang names an interpreter with ocikit's dependencies), else this installation's
    oci_net.py run by this interpreter (a checkout's bin/oci-net starts `env python3`, which in
    a hook's empty environment is the system's), else `oci-net` on PATH."""
    import shutil

    module = os.path.join(os.path.dirname(os.path.realpath(__file__)), "oci_net.py")
    beside = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "oci-net")
    installed = os.path.dirname(os.path.realpath(beside)) != os.path.dirname(module)  # not the checkout's bin/
    if installed and os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    if os.path.isfile(module):
        return [sys.executable, module]
    found = shutil.which("oci-net")
    return [os.path.abspath(found)] if found else []


def body(argv: list[str], messages: ocicli.Messages) -> int:
    from oci.bundle import build as builder
    from oci.errors import InvalidInput
    from oci.image import Image

    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    args = parser().parse_args(argv)
    if os.path.lexists(args.bundle) and not os.path.isdir(args.bundle):
        raise InvalidInput(f"{args.bundle}: exists and is not a directory (expected a bundle folder)")
    rootfs_mount = None
    layout, descriptor, document = ocicli.image_argument(args.image, "oci-unpack's output")
    if document is not None:
        piped_rootfs = document.get("rootfs") if isinstance(document, dict) else None
        rootfs = args.rootfs or piped_rootfs
        if not isinstance(rootfs, str) or not rootfs:
            raise InvalidInput("<stdin>: /rootfs: missing: give --rootfs")
        if isinstance(document, dict) and document.get("mount"):
            from oci.bundle import rootfs as rootfs_module

            rootfs_mount = rootfs_module.check_mount(document["mount"], rootfs)
    else:
        rootfs = args.rootfs or os.path.join(args.bundle, "rootfs")
    platform = None
    if args.platform:
        from oci.platform import Platform

        platform = Platform.parse(args.platform)
    image = Image.load(layout, descriptor, platform)
    named_network = args.network not in ("none", "host") and not args.network.startswith("ns:")
    net_state_dir = args.state_dir or os.environ.get(NET_STATE_ENV)
    if net_state_dir:
        net_state_dir = os.path.abspath(net_state_dir)
    opts = builder.BundleOptions(
        **bundle_fields(args), oci_version=args.oci_version, args=trailing, tty=args.tty, volumes=args.volume,
        mounts=args.mount, network=args.network, publish=args.publish,
        name=args.name, aliases=args.aliases, oci_net=oci_net_command() if named_network else (),
        net_state_dir=net_state_dir, environ=dict(os.environ))
    if rootfs_mount:
        from oci.bundle import rootfs as rootfs_module

        rootfs_module.ensure_mounted(rootfs_mount, rootfs)
    config = builder.build(image.config, rootfs, args.bundle, opts, rootfs_mount)
    if args.print:
        from oci import schema

        schema.validate(config, "runtime-config", "<config>")
        ocicli.emit(config)
    else:
        builder.write(args.bundle, config)
        sys.stdout.write(os.path.abspath(args.bundle) + "\n")
    return 0


def main() -> None:
    ocicli.run(PROG, body)


if __name__ == "__main__":
    main()
