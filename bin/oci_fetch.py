#!/usr/bin/env python3
"""oci-fetch: pull an image from an OCI or Docker registry into an OCI image layout."""

from __future__ import annotations

import os
from time import monotonic

import ocicli

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Callable

    from oci.digest import Digest
    from oci.registry.sources import Source

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
  oci-fetch docker://localhost:5000/library/busybox ./images | oci-unpack - ./rootfs
  oci-fetch --platform linux/arm64 --tag busybox-arm64 127.0.0.1:5000/library/busybox ./images
  oci-fetch --all-platforms --referrers 127.0.0.1:5000/library/busybox:latest ./mirror
  oci-fetch --verify cosign.pub 127.0.0.1:5000/library/busybox:latest ./images  # refused unless signed
  oci-fetch --tls-verify=false localhost:5443/library/busybox ./images     # TLS, certificate unchecked
  oci-fetch oci:./images:latest ./other-layout"""

Flag = ocicli.Flag
FETCH_FLAGS = [
    Flag(("--platform",), "platform", "str", None, "the platform to pick from an index (default: the host's)",
         metavar="OS/ARCH[/VARIANT]"),
    Flag(("--all-platforms",), "all_platforms", "switch", False, "copy the whole index, every platform"),
    Flag(("--tag",), "tag", "str", None, "tag in the layout (default: the reference's tag, or its digest)",
         metavar="NAME"),
    Flag(("--referrers",), "referrers", "switch", False,
         "also fetch the artifacts that refer to the image (signatures, SBOMs; the OCI 1.1 referrers API, else the "
         "tag schema), tagged <alg>-<hex> in the layout, and cosign signatures, tagged <alg>-<hex>.sig"),
    Flag(("--verify",), "verify", "str", None,
         "refuse the image unless a cosign-style signature (tag sha256-<hex>.sig) of the reference's manifest "
         "verifies with this ECDSA P-256 public key (PEM)", metavar="KEY.pub"),
] + ocicli.REGISTRY_FLAGS
# Positionals as (dest, default or REQUIRED).
FETCH_POSITIONALS = [("ref", ocicli.REQUIRED), ("layout", None)]


def fetch_parser() -> argparse.ArgumentParser:
    parser = ocicli.Parser(PROG, DESCRIPTION, EXAMPLES)
    parser.add_argument("ref", metavar="REF", help="registry reference, or oci:PATH[:TAG] for another layout")
    parser.add_argument("layout", metavar="LAYOUT", nargs="?", default=None,
                        help="the OCI image layout to fetch into (default: $OCIKIT_LAYOUT, else .)")
    ocicli.add_flags(parser, FETCH_FLAGS)
    return parser


def body(argv: list[str], messages: ocicli.Messages) -> int:
    args = ocicli.parse(argv, FETCH_FLAGS, FETCH_POSITIONALS, fetch_parser)
    messages.quiet = args.quiet
    started = monotonic()
    from oci import image
    from oci.errors import UsageError

    if args.platform and args.all_platforms:
        raise UsageError("--platform and --all-platforms exclude each other")
    if args.tag is not None:
        from oci.reference import check_tag

        check_tag(args.tag, "--tag")
    layout_path = args.layout or os.environ.get("OCIKIT_LAYOUT") or "."
    options = ocicli.registry_options(args)

    annotations: dict[str, str] = {}
    verify: Callable[[Digest], object] | None = None
    source: Source
    if args.ref.startswith(image.TRANSPORT):
        if args.verify:
            raise UsageError("--verify checks signatures in a registry; it does not apply to oci: sources")
        from oci.registry.sources import LayoutSource

        source = LayoutSource(args.ref)
        reference, tag = "", args.tag or source.default_tag()
    else:
        from oci.reference import Reference, strip_transport
        from oci.registry.locations import SOURCE_ANNOTATION
        from oci.registry.registries_conf import resolve
        from oci.registry.sources import first_serving

        places, options = resolve(args.ref, pull=True, options=options)
        ref = Reference.parse(strip_transport(args.ref))
        remote, used = first_serving(places, options)
        source, repository = remote, remote.repository
        reference, tag = used.identifier, args.tag or ref.tag or str(ref.digest)
        annotations[SOURCE_ANNOTATION] = str(used)
        if args.verify:
            from oci import sign

            def verify(digest: Digest) -> object:
                return sign.verify(repository, digest, args.verify)
    from oci.registry.pull import pull

    platform = None
    if args.platform:
        from oci.platform import Platform

        platform = Platform.parse(args.platform)
    bar = ocicli.progress(args.quiet)
    ocicli.collect_from_now()
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
    ocicli.emit(image.to_pipe(result.layout, result.descriptor))
    return 0


def main() -> None:
    ocicli.run(PROG, body, exit_at_once=True, collect_at_start=False)


if __name__ == "__main__":
    main()
