#!/usr/bin/env python3
"""oci-push: push an image from an OCI image layout to a registry."""

from __future__ import annotations

import os
from time import monotonic

import ocicli

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

PROG = "oci-push"
DESCRIPTION = """\
Push an image (a manifest, or an index with every platform) from an OCI image layout to a
registry and print the pushed manifest's descriptor as JSON on stdout.

IMAGE is [oci:]LAYOUT[:TAG|@DIGEST], or - for the descriptor JSON a previous command printed.
REF is [docker://][HOST[:PORT]/]PATH[:TAG][@DIGEST] (registries.conf's aliases, search
registries and locations apply, as for oci-fetch). Only blobs the registry lacks travel: each is
asked for first (HEAD), mounted from another repository of the registry when one is known
to hold it (one an earlier oci-fetch or oci-push saw holding it, --from-repo, and the
repository the layout says the image came from), else
uploaded: in one request up to --chunk-size, in chunks beyond, resuming an interrupted
chunk where the registry's copy ends. Manifests go up after their blobs, the image under
REF's tag and every --tag. Credentials and proxies as for oci-fetch ($REGISTRY_AUTH_FILE,
containers auth.json, $DOCKER_CONFIG/config.json, credential helpers; $HTTPS_PROXY,
$HTTP_PROXY, $NO_PROXY)."""
EXAMPLES = """\
  oci-push ./images:busybox 127.0.0.1:5000/team/busybox:1
  oci-push ./images:busybox docker://localhost:5000/team/busybox:1.0 --tag 1 --tag latest
  oci-fetch 127.0.0.1:5000/library/busybox ./images | oci-push - 127.0.0.1:5000/mirror/busybox
  oci-push --from-repo library/busybox ./images:busybox 127.0.0.1:5000/team/app:2.0
  oci-push --sign cosign.key ./images:busybox 127.0.0.1:5000/team/app:2.0   # an ECDSA P-256 PEM key
  oci-push --tls-verify=false ./images:busybox localhost:5443/team/busybox:1  # certificate unchecked"""


Flag = ocicli.Flag
PUSH_FLAGS = [
    Flag(("--tag",), "tag", "append", None, "also tag the pushed image NAME in the repository (repeatable)",
         metavar="NAME"),
    Flag(("--from-repo",), "from_repo", "append", None,
         "a repository of the same registry that may hold some blobs already: they are mounted from it instead of "
         "uploaded (repeatable)", metavar="REPO"),
    Flag(("--chunk-size",), "chunk_size", "str", "32M",
         "blobs up to SIZE go up in one request, larger ones in chunks of SIZE (bytes, or with K, M, G; default: 32M)",
         metavar="SIZE"),
    Flag(("--sign",), "sign", "str", None,
         "sign the pushed manifest with this ECDSA P-256 PEM key, cosign-compatible (signature pushed under the "
         "sha256-HEX.sig tag; encrypted keys read $COSIGN_PASSWORD)", metavar="KEY"),
] + ocicli.REGISTRY_FLAGS
PUSH_POSITIONALS = [("image", ocicli.REQUIRED), ("ref", ocicli.REQUIRED)]


def push_parser() -> argparse.ArgumentParser:
    parser = ocicli.Parser(PROG, DESCRIPTION, EXAMPLES)
    parser.add_argument("image", metavar="IMAGE", help="[oci:]LAYOUT[:TAG|@DIGEST], or - for a descriptor on stdin")
    parser.add_argument("ref", metavar="REF", help="where to push: [HOST[:PORT]/]PATH[:TAG][@DIGEST]")
    ocicli.add_flags(parser, PUSH_FLAGS)
    return parser


def body(argv: list[str], messages: ocicli.Messages) -> int:
    args = ocicli.parse(argv, PUSH_FLAGS, PUSH_POSITIONALS, push_parser)
    messages.quiet = args.quiet
    started = monotonic()
    from oci.errors import IntegrityError, UsageError
    from oci.reference import check_tag
    from oci.registry.client import connect
    from oci.registry.push import parse_size, push
    from oci.registry.registries_conf import resolve

    try:
        chunk_size = parse_size(args.chunk_size)
    except ValueError as err:
        raise UsageError(f"--chunk-size: {err}") from None
    places, options = resolve(args.ref, pull=False, options=ocicli.registry_options(args))
    ref = places[0].reference
    for tag in args.tag:
        check_tag(tag, "--tag")
    if args.sign and not os.path.isfile(args.sign):
        raise UsageError(f"--sign {args.sign}: no such key file")
    tags = ([ref.tag] if ref.tag and not ref.digest else []) + args.tag
    repository = connect(ref, options, push=True)
    for reference in tags or ([str(ref.digest)] if ref.digest else []):
        repository.prefetch_manifest(reference, head=True)  # answered while the layout is read

    from oci.image import to_pipe

    layout, descriptor, _ = ocicli.image_argument(args.image)
    if ref.digest and ref.digest != descriptor.digest:
        raise IntegrityError(f"{args.ref}: the image is {descriptor.digest}, not {ref.digest}")
    bar = ocicli.progress(args.quiet)
    ocicli.collect_from_now()
    try:
        result = push(layout, descriptor, repository, tags=tags, jobs=args.jobs, chunk_size=chunk_size,
                      mount_from=args.from_repo, progress=bar)
    finally:
        if bar:
            bar.finish()
    messages.info(f"{ref.name}@{result.descriptor.digest}: {result.blobs_uploaded} blobs uploaded "
                  f"({result.bytes_uploaded / 1e6:.1f} MB), {result.blobs_mounted} mounted, "
                  f"{result.blobs_present} already present, {monotonic() - started:.1f} s")
    if args.sign:
        from oci.sign import sign

        signature = sign(repository, result.descriptor.digest, args.sign, docker_reference=ref.name)
        messages.debug(f"signature {signature.digest} pushed")
    document = to_pipe(layout, result.descriptor)
    document.setdefault("annotations", {})["org.ocikit.reference"] = f"{ref.name}@{result.descriptor.digest}"
    ocicli.emit(document)
    return 0


def main() -> None:
    ocicli.run(PROG, body, exit_at_once=True, collect_at_start=False)


if __name__ == "__main__":
    main()
