#!/usr/bin/env python3
"""oci-build: build an image from a Dockerfile (Containerfile) into an OCI layout, without a daemon."""

from __future__ import annotations

import os
import signal
import sys

import ocicli

from oci.build import config as configs
from oci.dockerfile.build import BuildOptions, build, read_text
from oci.dockerfile.build import prune as prune_cache
from oci.dockerfile.progress import Progress
from oci.errors import InvalidInput, UsageError
from oci.fsutil import write_atomic
from oci.image import parse_image_argument, to_pipe
from oci.platform import Platform

PROG = "oci-build"
DESCRIPTION = """\
Build an image from a Dockerfile (or Containerfile) and the files of CONTEXT, without a
daemon, into an OCI image layout, and print its descriptor on stdout for the next command
(`oci-build ... | oci-push - REF`).

Every Dockerfile instruction is supported: FROM (a registry reference, pulled with
oci-fetch's code; oci:LAYOUT[:TAG]; scratch; an earlier stage), RUN (in a real container
started by oci-run, on an overlay of the stage's layers, with its Env, User, WorkingDir and
SHELL), COPY (--from, --chown, --chmod, globs, .dockerignore), ADD (local archives unpacked,
URLs with --checksum), ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, VOLUME,
STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER; line continuations, the escape
directive, here-documents, JSON and shell forms.

Each step is cached by its parent, the instruction after ARG and ENV expansion and the
content of the files it copies: an unchanged rebuild runs nothing, and a changed file runs
again the steps from the first one that reads it. The cache lives in the first -t layout
(or --cache-dir); --prune empties it. With SOURCE_DATE_EPOCH (or --timestamp) set, the
same context gives the same digests. Layers are deterministic (sorted, owner names dropped),
gzip or zstd. RUN steps use the host's network, as docker build does (--network none, or a
network made with oci-net). Needs root (overlay mounts and containers).

Progress goes to stderr (STEP n/N lines, cache hits marked, RUN output); an error names
the Dockerfile's line and instruction, and a failing RUN shows its output.

Hostile input stays in bounds: sources resolve inside the context, destinations inside the
image's root, ADD archives and URLs are capped (--max-size, --max-entries) and refused when
an entry climbs out of its destination. Ctrl-C and SIGTERM remove the running step's
container, mounts and scratch folder; after a SIGKILL the step's container dies with
oci-build, and the next build reaps what is left (its cgroup, records, scratch folder)."""
EXAMPLES = """\
  oci-build -t ./images:app .
  oci-build -t ./images:app --build-arg VERSION=1.2 --target runtime -f docker/Containerfile .
  oci-build -q -t ./images:app . | oci-push --insecure - 127.0.0.1:5000/team/app:1.2
  SOURCE_DATE_EPOCH=1700000000 oci-build -t ./images:app .   # the same digest on every build
  oci-build --network none --no-cache -t ./images:app .
  tar -C app -cz . | oci-build -t ./images:app -                # the context as a tar on stdin
  oci-build -t ./images:tool - < Dockerfile                     # a Dockerfile alone, an empty context
  oci-build --prune -t ./images                                 # empty the build cache"""


def parser() -> ocicli.Parser:
    p = ocicli.Parser(PROG, DESCRIPTION, EXAMPLES)
    p.add_argument("context", nargs="?", metavar="CONTEXT",
                   help="the build context: a directory, or - for a tar archive of it on stdin (plain, gzip, bzip2, "
                        "xz, zstd; -f then names the Dockerfile in it), or a lone Dockerfile on stdin")
    p.add_argument("-f", "--file", metavar="FILE",
                   help="the Dockerfile (default: CONTEXT/Dockerfile, else CONTEXT/Containerfile; - reads stdin)")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="LAYOUT[:TAG]",
                   help="tag the image in this layout (made if missing; TAG defaults to latest); repeatable, "
                        "the first one is printed")
    p.add_argument("--build-arg", action="append", default=[], metavar="NAME[=VALUE]",
                   help="a build argument (NAME alone takes the value from the environment)")
    p.add_argument("--target", metavar="STAGE", help="build this stage (default: the last)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="add a label to the image")
    p.add_argument("--no-cache", action="store_true", help="run every step (the results still fill the cache)")
    p.add_argument("--pull", action="store_true", help="ask the registry for base images even when cached")
    p.add_argument("--network", default="host", metavar="host|none|NAME",
                   help="the network of RUN steps: the host's (default, as docker build), none, or an oci-net network")
    p.add_argument("--state-dir", metavar="DIR", help="oci-net's state directory (for --network NAME)")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="the platform of the base images "
                   "(default: this host's); RUN steps run on this host")
    p.add_argument("--squash", action="store_true", help="merge the layers the build adds into one")
    p.add_argument("--compression", choices=("gzip", "zstd"), default="gzip", help="layer compression")
    p.add_argument("--timestamp", type=int, metavar="SECONDS",
                   help="date the image and clamp file times to this Unix time (as SOURCE_DATE_EPOCH)")
    p.add_argument("--cache-dir", metavar="LAYOUT",
                   help="keep the build cache (and intermediate blobs) in this layout (default: the first -t's)")
    p.add_argument("--cache", metavar="DIR", help="oci-unpack's layer cache (default: /var/lib/ocikit/layers as "
                   "root)")
    p.add_argument("--iidfile", metavar="FILE", help="write the image's manifest digest to FILE")
    p.add_argument("--max-size", type=ocicli.size_argument, default=ocicli.DEFAULT_MAX_SIZE, metavar="BYTES",
                   help="cap on the uncompressed size of a base image's layers, and of each archive or URL that ADD "
                        "unpacks or downloads (default: 64G; suffixes K, M, G, T)")
    p.add_argument("--max-entries", type=int, default=ocicli.DEFAULT_MAX_ENTRIES, metavar="N",
                   help=f"cap on the number of tar entries of a base image, and of each archive that ADD unpacks "
                        f"(default: {ocicli.DEFAULT_MAX_ENTRIES})")
    p.add_argument("--prune", action="store_true",
                   help="empty the build cache of the -t (or --cache-dir) layout and delete its unreferenced blobs")
    ocicli.add_flags(p, ocicli.REGISTRY_FLAGS)
    return p


def build_args(items: list[str]) -> dict[str, str]:
    """`NAME=VALUE`, or `NAME` with the value from the environment (skipped when unset), as Docker."""
    found: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not name:
            raise InvalidInput(f"invalid --build-arg {item!r}: expected NAME[=VALUE]")
        if sep:
            found[name] = value
        elif name in os.environ:
            found[name] = os.environ[name]
    return found


def main_body(argv: list[str], messages: ocicli.Messages) -> int:
    args = parser().parse_args(argv)
    messages.quiet = args.quiet

    if args.prune:
        return prune(args, messages)
    if args.context is None:
        raise UsageError("give the build CONTEXT (a directory, or - for a tar of it on stdin)")

    epoch = args.timestamp if args.timestamp is not None else configs.parse_epoch(os.environ.get("SOURCE_DATE_EPOCH"))
    text = None
    stream = None
    if args.context == "-":
        if args.file == "-":
            raise UsageError("stdin cannot hold both the build context and the Dockerfile")
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("CONTEXT - reads a tar archive of the context (or a Dockerfile) from stdin")
        stream = sys.stdin.buffer
    if args.file == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("-f - reads the Dockerfile from stdin")
        text = read_text(sys.stdin.buffer, "<stdin>")
    progress = Progress(sys.stderr, quiet=args.quiet)
    options = BuildOptions(
        context=args.context, dockerfile=None if args.file == "-" else args.file, dockerfile_text=text,
        tags=args.tag, build_args=build_args(args.build_arg), target=args.target,
        labels=dict(configs.parse_pair(text, "--label") for text in args.label), no_cache=args.no_cache,
        pull=args.pull, network=args.network, net_state_dir=args.state_dir or os.environ.get("OCIKIT_NET_STATE_DIR"),
        platform=Platform.parse(args.platform) if args.platform else None, squash=args.squash,
        compression=args.compression, epoch=epoch, cache_dir=args.cache_dir, layer_cache=args.cache,
        registry=ocicli.registry_options(args), progress=progress, output=None if args.quiet else sys.stderr.fileno(),
        max_size=args.max_size, max_entries=args.max_entries, context_stream=stream)
    result = build(options)
    if args.iidfile:
        write_atomic(args.iidfile, str(result.descriptor.digest).encode())
    ocicli.emit(to_pipe(result.layout, result.descriptor))
    if args.quiet:
        return 0
    messages.info(f"{result.layout.path}:{result.descriptor.ref_name or 'latest'} is {result.descriptor.digest} "
                  f"({result.steps_run} steps run, {result.steps_cached} from cache, {result.seconds:.1f} s)")
    return 0


def prune(args, messages: ocicli.Messages) -> int:
    if not args.tag and not args.cache_dir:
        raise UsageError("--prune needs the layout: -t LAYOUT or --cache-dir LAYOUT")
    path = args.cache_dir or parse_image_argument(args.tag[0])[0]
    records, blobs = prune_cache(path)
    messages.info(f"{path}: removed {records} cache records and {blobs} unreferenced blobs")
    return 0


def main() -> None:
    def terminate(number: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds like Ctrl-C: the step's container and mounts are removed

    signal.signal(signal.SIGTERM, terminate)
    ocicli.run(PROG, main_body)


if __name__ == "__main__":
    main()
