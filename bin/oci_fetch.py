#!/usr/bin/env python3
"""oci-fetch: pull an image from an OCI or Docker registry into an OCI image layout."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import ocicli

PROG = "oci-fetch"
DESCRIPTION = """\
Pull an image from an OCI or Docker registry (or from another OCI image layout) into an
OCI image layout, tag it there, and print its descriptor as JSON on stdout for the next
command. Only blobs the layout lacks travel; every blob is verified while it streams.

REF is a registry reference, [HOST[:PORT]/]PATH[:TAG][@DIGEST], or oci:PATH[:TAG] for
another layout. LAYOUT is created when missing (default: $OCIKIT_LAYOUT, else the current
directory). An index is resolved to one platform (--platform, default the host's) unless
--all-platforms is given. Credentials come from $REGISTRY_AUTH_FILE,
$XDG_RUNTIME_DIR/containers/auth.json, $DOCKER_CONFIG/config.json (or ~/.docker) and the
credential helpers they name."""
EXAMPLES = """\
  oci-fetch 127.0.0.1:5000/library/busybox:latest ./images
  oci-fetch --insecure 127.0.0.1:5000/library/debian:bookworm ./images | oci-unpack - ./rootfs
  oci-fetch --platform linux/arm64 registry.example:5000/app@sha256:4f5e... ./images --tag app
  oci-fetch --all-platforms --referrers registry.example/app:1.0 ./mirror
  oci-fetch oci:./images:latest ./other-layout"""


def add_registry_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to reach a registry; oci-push takes the same ones."""
    parser.add_argument("--insecure", action="store_true", help="talk plain HTTP to the registry (no TLS)")
    parser.add_argument("--cert-dir", metavar="DIR",
                        help="trust the CA certificates DIR/*.crt and present the client certificate DIR/*.cert "
                             "with DIR/*.key (default: $OCIKIT_CERT_DIR, else /etc/containers/certs.d/HOST and "
                             "/etc/docker/certs.d/HOST; the system CAs and $SSL_CERT_FILE are trusted too)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="give up on a connection that makes no progress for this long (default: 30)")
    parser.add_argument("--retries", type=int, default=5, metavar="N",
                        help="retries after 408, 429, 5xx answers and connection errors (default: 5)")
    parser.add_argument("-j", "--jobs", type=int, default=4, metavar="N",
                        help="blobs transferred in parallel (default: 4)")


def registry_options(args: argparse.Namespace):  # -> oci.registry.http.Options
    """The transport options the registry flags ask for."""
    from oci.errors import UsageError
    from oci.registry.http import Options

    if args.timeout <= 0 or args.retries < 0 or args.jobs < 1:
        raise UsageError("--timeout must be positive, --retries at least 0, --jobs at least 1")
    return Options(insecure=args.insecure, cert_dir=args.cert_dir, timeout=args.timeout, retries=args.retries)


def import_without_ssl() -> None:
    """Import http.client without letting it import ssl, for a process that talks plain HTTP
    (http.client then lacks HTTPSConnection; the registry client makes TLS connections of its
    own, importing ssl when one is needed, such as a redirect to an https storage backend).
    Does nothing when http.client or ssl is imported already."""
    if "http.client" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # http.client's `import ssl` fails: no HTTPS class
    try:
        import http.client  # noqa: F401
    finally:
        del sys.modules["ssl"]


def route_warnings(messages: ocicli.Messages) -> None:
    """Send the library's warnings (retries, credential helpers) to stderr through `messages`."""

    from oci.registry import log

    log.sink = messages.warn


class ProgressBar:
    """One line on a terminal: bytes done of the blobs that travel."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.total = 0
        self.count = 0
        self.done: dict[str, int] = {}
        self.lock = threading.Lock()
        self.last = 0.0

    def begin(self, blobs) -> None:
        with self.lock:
            self.total += sum(b.size for b in blobs)
            self.count += len(blobs)
        self.draw(force=True)

    def advance(self, blob, done: int) -> None:
        with self.lock:
            self.done[str(blob.digest)] = done
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        with self.lock:
            done = sum(self.done.values())
            finished = sum(1 for d in self.done.values() if d)
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
    parser = ocicli.Parser(PROG, DESCRIPTION, EXAMPLES)
    parser.add_argument("ref", metavar="REF", help="registry reference, or oci:PATH[:TAG] for another layout")
    parser.add_argument("layout", metavar="LAYOUT", nargs="?", default=None,
                        help="the OCI image layout to fetch into (default: $OCIKIT_LAYOUT, else .)")
    parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                        help="the platform to pick from an index (default: the host's)")
    parser.add_argument("--all-platforms", action="store_true", help="copy the whole index, every platform")
    parser.add_argument("--tag", metavar="NAME", help="tag in the layout (default: the reference's tag, or its digest)")
    parser.add_argument("--referrers", action="store_true",
                        help="also fetch the artifacts that refer to the image (signatures, SBOMs; the OCI 1.1 "
                             "referrers API, else the tag schema), tagged <alg>-<hex> in the layout, and cosign "
                             "signatures, tagged <alg>-<hex>.sig")
    parser.add_argument("--verify", metavar="KEY.pub",
                        help="refuse the image unless a cosign-style signature (tag sha256-<hex>.sig) of the "
                             "reference's manifest verifies with this ECDSA P-256 public key (PEM)")
    add_registry_flags(parser)
    args = parser.parse_args(argv)
    messages.quiet = args.quiet
    if args.insecure:
        import_without_ssl()

    from oci.errors import UsageError
    from oci.image import to_pipe
    from oci.platform import Platform
    from oci.reference import Reference
    from oci.registry.pull import LayoutSource, RegistrySource, pull

    if args.platform and args.all_platforms:
        raise UsageError("--platform and --all-platforms exclude each other")
    platform = Platform.parse(args.platform) if args.platform else None
    options = registry_options(args)
    layout_path = args.layout or os.environ.get("OCIKIT_LAYOUT") or "."
    route_warnings(messages)

    annotations: dict[str, str] = {}
    verify = None
    if args.ref.startswith("oci:"):
        if args.verify:
            raise UsageError("--verify checks signatures in a registry; it does not apply to oci: sources")
        source = LayoutSource(args.ref[len("oci:"):])
        reference, tag = "", args.tag or source.default_tag()
    else:
        from oci.registry.client import SOURCE_ANNOTATION, connect

        ref = Reference.parse(args.ref)
        repository = connect(ref, options)
        source = RegistrySource(repository)
        reference, tag = ref.identifier, args.tag or ref.tag or str(ref.digest)
        annotations[SOURCE_ANNOTATION] = str(ref)
        if args.verify:
            from oci import sign

            def verify(digest):
                return sign.verify(repository, digest, args.verify)
    bar = ProgressBar() if not args.quiet and sys.stderr.isatty() else None
    try:
        result = pull(source, reference, layout_path, tag=tag, platform=platform, all_platforms=args.all_platforms,
                      referrers=args.referrers, jobs=args.jobs, progress=bar, annotations=annotations,
                      verify=verify)
    finally:
        if bar:
            bar.finish()
    if bar:
        stats = result.stats
        messages.info(f"{stats.blobs_fetched} blobs fetched ({stats.bytes_fetched / 1e6:.1f} MB), "
                      f"{stats.blobs_present} already present")
    ocicli.emit(to_pipe(result.layout, result.descriptor))
    return 0


def main() -> None:
    ocicli.run(PROG, body)


if __name__ == "__main__":
    main()
