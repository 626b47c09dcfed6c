#!/usr/bin/env python3
"""oci-fetch: pull an image from an OCI or Docker registry into an OCI image layout."""

from __future__ import annotations

import gc
import os
import sys
from _thread import allocate_lock
from time import monotonic

import ocicli

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable

PROG = "oci-fetch"
DESCRIPTION = """\
Pull an image from an OCI or Docker registry (or from another OCI image layout) into an
OCI image layout, tag it there, and print its descriptor as JSON on stdout for the next
command. Only blobs the layout lacks travel; every blob is verified while it streams.

REF is a registry reference, [docker://][HOST[:PORT]/]PATH[:TAG][@DIGEST], or oci:PATH[:TAG] for
another layout. registries.conf is read as podman and skopeo read it ($CONTAINERS_REGISTRIES_CONF,
else ~/.config/containers/registries.conf or /etc/containers/registries.conf, and their .d
drop-ins): aliases and search registries for short names, mirrors (tried first), insecure and
blocked registries. LAYOUT is created when missing (default: $OCIKIT_LAYOUT, else the current
directory). An index is resolved to one platform (--platform, default the host's) unless
--all-platforms is given. Credentials come from $REGISTRY_AUTH_FILE,
$XDG_RUNTIME_DIR/containers/auth.json, $DOCKER_CONFIG/config.json (or ~/.docker) and the
credential helpers they name. $HTTPS_PROXY and $HTTP_PROXY (http://[USER:PASSWORD@]HOST[:PORT])
are used for TLS and plain registries, except for $NO_PROXY and loopback hosts."""
EXAMPLES = """\
  oci-fetch 127.0.0.1:5000/library/busybox:latest ./images
  oci-fetch docker://localhost:5000/library/debian:bookworm ./images | oci-unpack - ./rootfs
  oci-fetch --tls-verify=false registry.lab:5000/app:1 ./images
  oci-fetch --platform linux/arm64 registry.example:5000/app@sha256:4f5e... ./images --tag app
  oci-fetch --all-platforms --referrers registry.example/app:1.0 ./mirror
  oci-fetch oci:./images:latest ./other-layout"""

# Flags as (names, dest, kind, default, metavar, help); kind is switch, str, int, float or
# append. One table makes both the argparse parser (--help, errors, unusual spellings) and
# `quick_parse`, which reads the plain spellings without importing argparse.
COMMON_FLAGS = [  # what ocicli.Parser adds to every command, as quick_parse must know them
    (("-q", "--quiet"), "quiet", "switch", False, None, ""),
    (("--log-format",), "log_format", "str", "text", None, ""),
    (("--debug",), "debug", "switch", False, None, ""),
]
REGISTRY_FLAGS = [  # how to reach a registry; oci-push takes the same ones
    (("--insecure",), "insecure", "switch", False, None,
     "talk plain HTTP to the registry (no TLS; loopback and localhost registries need no flag: plain HTTP is "
     "tried first there, TLS when the registry speaks it)"),
    (("--tls-verify",), "tls_verify", "bool", True, "BOOL",
     "--tls-verify=false: TLS without checking the registry's certificate, plain HTTP when the registry does not "
     "speak TLS, as skopeo and podman (default: true)"),
    (("--cert-dir",), "cert_dir", "str", None, "DIR",
     "trust the CA certificates DIR/*.crt and present the client certificate DIR/*.cert with DIR/*.key "
     "(default: $OCIKIT_CERT_DIR, else /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST; the system "
     "CAs and $SSL_CERT_FILE are trusted too)"),
    (("--timeout",), "timeout", "float", 30.0, "SECONDS",
     "give up on a connection that makes no progress for this long (default: 30)"),
    (("--retries",), "retries", "int", 5, "N",
     "retries after 408, 429, 5xx answers and connection errors (default: 5)"),
    (("-j", "--jobs"), "jobs", "int", 4, "N", "blobs transferred in parallel (default: 4)"),
]
FETCH_FLAGS = [
    (("--platform",), "platform", "str", None, "OS/ARCH[/VARIANT]",
     "the platform to pick from an index (default: the host's)"),
    (("--all-platforms",), "all_platforms", "switch", False, None, "copy the whole index, every platform"),
    (("--tag",), "tag", "str", None, "NAME", "tag in the layout (default: the reference's tag, or its digest)"),
    (("--referrers",), "referrers", "switch", False, None,
     "also fetch the artifacts that refer to the image (signatures, SBOMs; the OCI 1.1 referrers API, else the "
     "tag schema), tagged <alg>-<hex> in the layout, and cosign signatures, tagged <alg>-<hex>.sig"),
    (("--verify",), "verify", "str", None, "KEY.pub",
     "refuse the image unless a cosign-style signature (tag sha256-<hex>.sig) of the reference's manifest "
     "verifies with this ECDSA P-256 public key (PEM)"),
] + REGISTRY_FLAGS
# Positionals as (dest, required).
FETCH_POSITIONALS = [("ref", ocicli.REQUIRED), ("layout", None)]


def add_flags(parser: argparse.ArgumentParser, flags: list) -> None:
    """Add the flags of a table to an argparse parser."""
    for names, dest, kind, default, metavar, text in flags:
        if kind == "switch":
            parser.add_argument(*names, dest=dest, action="store_true", help=text)
        elif kind == "bool":  # `--flag=VALUE` (a bare --flag is spelled out first: bool_flags_spelled_out)
            parser.add_argument(*names, dest=dest, type=ocicli.parse_bool, default=default, metavar=metavar,
                                help=text)
        elif kind == "append":
            parser.add_argument(*names, dest=dest, action="append", default=[], metavar=metavar, help=text)
        else:
            parser.add_argument(*names, dest=dest, type=ocicli.CONVERT[kind], default=default, metavar=metavar,
                                help=text)


def quick_parse(argv: list[str], flags: list, positionals: list[tuple[str, Any]]) -> Any:
    """ocicli.quick_parse with the flags every command has; None when argparse must decide."""
    args = ocicli.quick_parse(argv, COMMON_FLAGS + flags, positionals)
    return args if args is not None and args.log_format in ocicli.LOG_FORMATS else None


def parse_args(argv: list[str], flags: list, positionals: list, parser: Callable[[], Any]) -> Any:
    """The arguments: quick_parse for the plain spellings, else argparse (bare bool flags spelled out)."""
    args = quick_parse(argv, flags, positionals)
    if args is None:
        bools = {name for names, _, kind, *_ in flags if kind == "bool" for name in names}
        args = parser().parse_intermixed_args(ocicli.bool_flags_spelled_out(argv, bools))
    return args


def fetch_parser() -> argparse.ArgumentParser:
    parser = ocicli.Parser(PROG, DESCRIPTION, EXAMPLES)
    parser.add_argument("ref", metavar="REF", help="registry reference, or oci:PATH[:TAG] for another layout")
    parser.add_argument("layout", metavar="LAYOUT", nargs="?", default=None,
                        help="the OCI image layout to fetch into (default: $OCIKIT_LAYOUT, else .)")
    add_flags(parser, FETCH_FLAGS)
    return parser


def registry_options(args: Any, places: list | None = None):  # -> oci.registry.http.Options
    """The transport options the registry flags ask for (and registries.conf's insecure hosts
    among the `places` the reference resolves to)."""
    from oci.errors import UsageError
    from oci.registry.http import Options

    if args.timeout <= 0 or args.retries < 0 or args.jobs < 1:
        raise UsageError("--timeout must be positive, --retries at least 0, --jobs at least 1")
    if args.insecure and not args.tls_verify:
        raise UsageError("--insecure (plain HTTP) and --tls-verify=false (TLS unverified) exclude each other")
    hosts = frozenset(place.reference.api_host for place in places or [] if place.insecure)
    return Options(insecure=args.insecure, cert_dir=args.cert_dir, timeout=args.timeout, retries=args.retries,
                   tls_verify=args.tls_verify, insecure_hosts=hosts)


def registries_conf(text: str) -> Any:  # -> oci.registry.registries_conf.Config
    """registries.conf as far as the reference `text` needs it."""
    from oci.reference import Reference
    from oci.registry.registries_conf import Config, strip_transport

    return Config.load(Reference.is_short(strip_transport(text)))


def route_warnings(messages: ocicli.Messages) -> None:
    """Send the library's warnings (retries, credential helpers) to stderr through `messages`."""

    from oci.registry import log

    log.sink = messages.warn


class ProgressBar:
    """One line on a terminal: bytes done of the blobs that travel (as they arrive or leave,
    block by block), and how many of those blobs are complete."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.total = 0
        self.count = 0
        self.done: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.lock = allocate_lock()
        self.last = 0.0

    def begin(self, blobs) -> None:
        with self.lock:
            for blob in blobs:
                if str(blob.digest) not in self.sizes:
                    self.sizes[str(blob.digest)] = blob.size
                    self.total += blob.size
                    self.count += 1
        self.draw(force=True)

    def advance(self, blob, done: int) -> None:
        with self.lock:
            self.done[str(blob.digest)] = done
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        with self.lock:
            done = sum(self.done.values())
            finished = sum(1 for key, d in self.done.items() if d >= self.sizes.get(key, 0))
        width = 30
        filled = int(width * done / self.total) if self.total else width
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done / 1e6:8.1f}/{self.total / 1e6:.1f} MB "
                          f"({finished}/{self.count} blobs) ")
        self.stream.flush()

    def finish(self) -> None:
        if self.count:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def body(argv: list[str], messages: ocicli.Messages) -> int:
    args = parse_args(argv, FETCH_FLAGS, FETCH_POSITIONALS, fetch_parser)
    messages.quiet = args.quiet
    started = monotonic()
    from oci.errors import UsageError

    if args.platform and args.all_platforms:
        raise UsageError("--platform and --all-platforms exclude each other")
    if args.tag is not None:
        from oci.reference import check_tag

        check_tag(args.tag, "--tag")
    layout_path = args.layout or os.environ.get("OCIKIT_LAYOUT") or "."
    route_warnings(messages)

    annotations: dict[str, str] = {}
    verify = None
    if args.ref.startswith("oci:"):
        if args.verify:
            raise UsageError("--verify checks signatures in a registry; it does not apply to oci: sources")
        registry_options(args)
        from oci.registry.pull import LayoutSource

        source = LayoutSource(args.ref[len("oci:"):])
        reference, tag = "", args.tag or source.default_tag()
    else:
        from oci.reference import Reference
        from oci.registry.client import SOURCE_ANNOTATION
        from oci.registry.pull import first_serving
        from oci.registry.registries_conf import endpoints, strip_transport

        places = endpoints(args.ref, pull=True, config=registries_conf(args.ref))
        options = registry_options(args, places)
        ref = Reference.parse(strip_transport(args.ref))
        source, used = first_serving(places, options, messages.warn)
        repository = source.repository
        reference, tag = used.identifier, args.tag or ref.tag or str(ref.digest)
        annotations[SOURCE_ANNOTATION] = str(used)
        if args.verify:
            from oci import sign

            def verify(digest):
                return sign.verify(repository, digest, args.verify)
    from oci.image import to_pipe
    from oci.platform import Platform
    from oci.registry.pull import pull

    platform = Platform.parse(args.platform) if args.platform else None
    bar = ProgressBar() if not args.quiet and sys.stderr.isatty() else None
    gc.enable()
    try:
        result = pull(source, reference, layout_path, tag=tag, platform=platform, all_platforms=args.all_platforms,
                      referrers=args.referrers, jobs=args.jobs, progress=bar, retries=args.retries,
                      annotations=annotations, verify=verify)
    finally:
        if bar:
            bar.finish()
    stats = result.stats
    messages.info(f"{result.layout.path}:{tag} is {result.descriptor.digest}: {stats.blobs_fetched} blobs fetched "
                  f"({stats.bytes_fetched / 1e6:.1f} MB), {stats.blobs_present} already present, "
                  f"{monotonic() - started:.1f} s")
    ocicli.emit(to_pipe(result.layout, result.descriptor))
    return 0


def run_and_exit(prog: str, body: Callable[[list[str], ocicli.Messages], int]) -> None:
    """ocicli.run, then leave at once: by then the output is flushed and every file and lock
    closed, so the interpreter's teardown (freeing every module, ~2-4 ms) is skipped. No
    garbage is collected while the command starts (imports make many objects and no
    garbage cycles): `body` turns collection back on when its work begins."""
    gc.disable()
    try:
        ocicli.run(prog, body)
        code: Any = 0
    except SystemExit as leaving:
        code = leaving.code
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code or 0)


def main() -> None:
    run_and_exit(PROG, body)


if __name__ == "__main__":
    main()
