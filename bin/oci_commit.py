#!/usr/bin/env python3
"""oci-commit: make an image in an OCI image layout without Docker, deterministically."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterator

import ocicli

from oci.build import config as configs
from oci.build import source
from oci.build.commit import commit
from oci.build.diff import changes
from oci.build.entry import Entry, Policy
from oci.errors import InvalidInput, NotFound, UsageError
from oci.image import Image, parse_image_argument, to_pipe
from oci.layout import Layout
from oci.platform import Platform

DESCRIPTION = """\
Make an image in an OCI image layout, without Docker: a new layer from a directory, a
tarball, an overlayfs upper directory or the difference between a rootfs and its image
(a container's changes, as `docker commit`), on top of a base image or from scratch,
with config fields set. The new image's descriptor is printed on stdout for the next
command. Arguments of --cmd and --entrypoint may start with a dash (`--cmd -c`).

Layers are deterministic: entries sorted, owner names dropped, pax headers only where
needed, gzip without name or time (made on all cores, the same bytes whatever their
number). Set SOURCE_DATE_EPOCH to clamp newer mtimes to it and to date the config and
history (unset: mtimes are kept and the clock dates the image); add --owner 0:0 so the
digest does not depend on who owns the files. Then the same input gives the same
manifest digest on every run (across machines too, given the same zlib and zstd).

The target layout is created when missing; TAG defaults to `latest`. A base image in
another layout has its blobs copied into the target. Only regular files, directories,
symlinks, hard links, devices and FIFOs go into a layer (sockets are skipped); xattrs
user.* and security.capability are kept, others dropped."""

EXAMPLES = """\
  # a busybox image from a directory, from scratch
  oci-commit --from-dir ./rootfs --cmd /bin/sh --cmd -c --cmd 'echo hello' ./images:busybox
  # a layer on top of a base image from another layout, config fields set
  SOURCE_DATE_EPOCH=1700000000 oci-commit --from ./base:busybox --from-tar app.tar.gz \\
      --entrypoint /app/run --env MODE=prod --workdir /app --user 1000:1000 --expose 8080/tcp \\
      --label org.opencontainers.image.version=1.2 --owner 0:0 --compression zstd ./images:app
  # a container's changes: the upper directory of its overlay mount (here ./upper), on its image
  oci-commit --from ./images:app --from-upper ./upper ./images:app-snapshot
  # or of a rootfs unpacked into a plain directory (compared with the image, file by file)
  oci-commit --from ./images:app --diff ./bundle/rootfs ./images:app-snapshot
  # change the config only (no new layer); - reads a descriptor from the previous command
  oci-fetch 127.0.0.1:5000/library/busybox ./images | oci-commit --from - --config-only --cmd sh ./images:shell"""


def build_parser() -> ocicli.Parser:
    parser = ocicli.Parser("oci-commit", DESCRIPTION, EXAMPLES)
    parser.add_argument("target", metavar="[oci:]LAYOUT[:TAG]", help="where to store and tag the new image")
    parser.add_argument("--from", dest="base", metavar="IMAGE", default="scratch",
                        help="base image: [oci:]LAYOUT[:TAG|@DIGEST], - (a descriptor on stdin) or scratch (default)")
    source = parser.add_argument_group("the new layer (exactly one, or --config-only)").add_mutually_exclusive_group()
    source.add_argument("--from-dir", metavar="DIR", help="the files under DIR")
    source.add_argument("--from-tar", metavar="FILE", help="a tarball (plain, gzip, zstd, bzip2, xz; - for stdin)")
    source.add_argument("--from-upper", metavar="DIR",
                        help="an overlayfs upper directory: its whiteouts become OCI .wh. files")
    source.add_argument("--diff", metavar="ROOTFS",
                        help="what ROOTFS (a plain directory) changed compared to the --from image, "
                             "deletions as whiteouts")
    source.add_argument("--config-only", action="store_true", help="add no layer, only change the config")
    layer = parser.add_argument_group("layer options")
    layer.add_argument("--compression", choices=("gzip", "zstd", "none"), default="gzip",
                       help="layer compression (default: gzip)")
    layer.add_argument("--owner", metavar="UID:GID", help="give every entry this numeric owner")
    conf = parser.add_argument_group("config (repeat the list flags; an empty --cmd or --entrypoint clears it)")
    conf.add_argument("--entrypoint", action="append", metavar="ARG", help="one entrypoint argument")
    conf.add_argument("--cmd", action="append", metavar="ARG", help="one cmd argument")
    conf.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set an environment variable")
    conf.add_argument("--workdir", metavar="DIR", help="working directory (relative: to the base's)")
    conf.add_argument("--user", metavar="USER", help="user[:group], names or numbers")
    conf.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="set a label")
    conf.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]", help="expose a port")
    conf.add_argument("--volume", action="append", default=[], metavar="PATH", help="declare a volume")
    conf.add_argument("--stop-signal", metavar="SIGNAL", help="signal that stops the container")
    conf.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                      help="scratch: the platform to declare; --from an index: the one to take (default: this host)")
    conf.add_argument("--created-by", metavar="TEXT", help="history entry's created_by (default: oci-commit ...)")
    conf.add_argument("--comment", metavar="TEXT", help="history entry's comment")
    return parser


VALUE_FLAGS = ("--cmd", "--entrypoint", "--env", "--label", "--created-by", "--comment")


def glue_values(argv: list[str]) -> list[str]:
    """`--cmd -c` -> `--cmd=-c`: the arguments of a command line may start with a dash."""
    glued, i = [], 0
    while i < len(argv):
        if argv[i] in VALUE_FLAGS and i + 1 < len(argv):
            glued.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            glued.append(argv[i])
            i += 1
    return glued


def main_body(argv: list[str], messages: ocicli.Messages) -> int:
    args = build_parser().parse_args(glue_values(argv))
    messages.quiet = args.quiet

    if not (args.from_dir or args.from_tar or args.from_upper or args.diff or args.config_only):
        raise UsageError("give the new layer with --from-dir, --from-tar, --from-upper or --diff, or use --config-only")
    if args.base == "-" and args.from_tar == "-":
        raise UsageError("--from - and --from-tar - cannot both read stdin")
    path, tag = parse_image_argument(args.target)
    if tag is not None and tag.startswith(("sha256:", "sha512:")):
        raise UsageError(f"{args.target}: give a tag, not a digest, to name the new image")
    changes = configs.Changes(
        entrypoint=args.entrypoint, cmd=args.cmd,
        env=[configs.parse_pair(text, "--env") for text in args.env],
        workdir=args.workdir, user=args.user,
        labels=dict(configs.parse_pair(text, "--label") for text in args.label),
        exposed_ports=[configs.parse_port(text) for text in args.expose],
        volumes=[configs.check_volume(text) for text in args.volume],
        stop_signal=configs.parse_signal(args.stop_signal) if args.stop_signal else None)
    policy = Policy(epoch=configs.parse_epoch(os.environ.get("SOURCE_DATE_EPOCH")), owner=parse_owner(args.owner))
    platform = Platform.parse(args.platform) if args.platform else None

    base = None
    if args.base != "scratch":
        layout, descriptor, _ = ocicli.image_argument(args.base, "a base image descriptor")
        base = Image.load(layout, descriptor, platform)
    entries, created_by = layer_entries(args, os.path.join(path, ".ocikit", "tmp"), base)
    target = open_target(path)
    descriptor = commit(target, tag or "latest", base=base, entries=entries, changes=changes, policy=policy,
                        compression=args.compression, platform=platform,
                        created_by=args.created_by or created_by, comment=args.comment)
    ocicli.emit(to_pipe(target, descriptor))
    messages.info(f"{target.path}:{tag or 'latest'} is {descriptor.digest}")
    return 0


def layer_entries(args: argparse.Namespace, tmp_dir: str, base: Image | None) -> tuple[Iterator[Entry] | None, str]:
    """The new layer's entries (None for --config-only) and the default history text.

    Missing sources are reported now, before the target is touched; a compressed tarball
    is decompressed into `tmp_dir` (the target layout's own, so on its filesystem).
    """
    if args.from_dir:
        return source.from_directory(args.from_dir), "oci-commit --from-dir"
    if args.diff:
        if not os.path.isdir(args.diff):
            raise NotFound(f"{args.diff}: no such directory")
        return changes(args.diff, base), "oci-commit --diff"
    if args.from_upper:
        return source.from_directory(args.from_upper, upper=True), "oci-commit --from-upper"
    if args.from_tar:
        if args.from_tar == "-":
            return source.from_tarball(sys.stdin.buffer, tmp_dir, "<stdin>"), "oci-commit --from-tar"
        return source.from_tarball(args.from_tar, tmp_dir), "oci-commit --from-tar"
    return None, "oci-commit --config-only"


def parse_owner(text: str | None) -> tuple[int, int] | None:
    """`UID:GID` as numbers."""
    if text is None:
        return None
    uid, sep, gid = text.partition(":")
    if not sep or not uid.isdigit() or not gid.isdigit():
        raise InvalidInput(f"invalid --owner {text!r}: expected numeric UID:GID")
    return int(uid), int(gid)


def open_target(path: str) -> Layout:
    """The target layout, created when missing; refuse to scatter blobs into another directory."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise InvalidInput(f"{path}: exists and is not a directory (expected an OCI image layout)")
        if not os.path.exists(os.path.join(path, "oci-layout")) and os.listdir(path) and not Layout.unfinished(path):
            raise InvalidInput(f"{path}: not an OCI image layout (no oci-layout file) and not empty")
    return Layout.open(path, create=True)


def main() -> None:
    ocicli.run("oci-commit", main_body)


if __name__ == "__main__":
    main()
