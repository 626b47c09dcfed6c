#!/usr/bin/env python3
"""oci-unpack: apply an image's layers to a root filesystem, or compose cached layers with overlayfs."""

from __future__ import annotations

import os
import sys
import time

import ocicli

PROG = "oci-unpack"
DESCRIPTION = """Apply an image's layers to a root filesystem, or compose cached layers with overlayfs.

IMAGE is [oci:]LAYOUT[:TAG|@DIGEST], or - for the descriptor printed by oci-fetch on stdin.
ROOTFS must be absent or empty; on failure it is left as it was found. Every tar entry is
treated as hostile: nothing is created, followed or written outside ROOTFS (exit 4 names the
entry). Each uncompressed layer is checked against the config's rootfs.diff_ids.

stdout: {"rootfs": ..., "image": DESCRIPTOR, "diff_ids": [...], "mount": null or MOUNT},
where MOUNT (with --emit-mount) is the overlay mount for a runtime-spec config.json."""
EXAMPLES = """  oci-unpack ./images:busybox ./bundle/rootfs
  oci-fetch 127.0.0.1:5000/library/busybox ./images | oci-unpack - ./rootfs
  oci-unpack --overlay ./images:busybox ./c1/rootfs        # mount overlayfs from the layer cache
  oci-unpack --emit-mount ./images:busybox ./c2/rootfs     # only print the mount, for oci-bundle
  oci-unpack --uid-map 0:100000:65536 --gid-map 0:100000:65536 ./images:busybox ./shifted
  oci-unpack --gc                                          # prune cached layers no overlay uses"""


def parser() -> ocicli.Parser:
    p = ocicli.Parser(PROG, DESCRIPTION, EXAMPLES)
    p.add_argument("image", nargs="?", metavar="IMAGE",
                   help="[oci:]LAYOUT[:TAG|@DIGEST], or - to read a descriptor on stdin")
    p.add_argument("rootfs", nargs="?", metavar="ROOTFS", help="the directory to fill (absent or empty)")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="the platform to choose from an index "
                   "(default: this machine's)")
    p.add_argument("--overlay", action="store_true", help="unpack layers into the layer cache and mount "
                   "ROOTFS as overlayfs over them (needs root)")
    p.add_argument("--emit-mount", action="store_true", help="like --overlay, but only print the mount "
                   "(for the bundle's config.json) instead of mounting")
    p.add_argument("--cache", metavar="DIR", help="the layer cache (default: /var/lib/ocikit/layers as root, "
                   "$XDG_CACHE_HOME/ocikit/layers otherwise)")
    p.add_argument("--gc", action="store_true", help="delete cached layers that no overlay uses (its ROOTFS "
                   "is gone); with IMAGE and ROOTFS, after unpacking")
    p.add_argument("--max-size", type=ocicli.size_argument, default=ocicli.DEFAULT_MAX_SIZE, metavar="BYTES",
                   help="cap on the uncompressed size of all layers (default: 64G; suffixes K, M, G, T)")
    p.add_argument("--max-entries", type=int, default=ocicli.DEFAULT_MAX_ENTRIES, metavar="N",
                   help=f"cap on the number of tar entries of all layers (default: {ocicli.DEFAULT_MAX_ENTRIES})")
    p.add_argument("--uid-map", action="append", metavar="CONTAINER:HOST:SIZE",
                   help="shift owners: container uid CONTAINER.. becomes HOST.. (repeatable; as runc and podman)")
    p.add_argument("--gid-map", action="append", metavar="CONTAINER:HOST:SIZE", help="the same for groups")
    return p


def main_body(argv: list[str], messages: ocicli.Messages) -> int:
    args = parser().parse_intermixed_args(argv)
    if args.image is None or args.rootfs is None:
        if args.gc and args.image is None:
            return collect(args, messages)
        raise_usage("IMAGE and ROOTFS are required (or --gc alone)")
    from oci.errors import UsageError
    from oci.image import Image, to_pipe
    from oci.unpack.idmap import IdMap
    from oci.unpack.options import Budget, Options

    if args.max_entries <= 0:
        raise UsageError("--max-entries must be positive")
    layout, descriptor, _ = ocicli.image_argument(args.image)
    platform = None
    if args.platform:
        from oci.platform import Platform

        platform = Platform.parse(args.platform)
    image = Image.load(layout, descriptor, platform)
    image.layers  # noqa: B018 -- refuses unknown layer media types before anything is made
    options = Options(uid_map=IdMap.parse(args.uid_map), gid_map=IdMap.parse(args.gid_map))
    budget = Budget(args.max_size, args.max_entries)
    progress = None if args.quiet else Progress(messages, live=sys.stderr.isatty())
    rootfs = os.path.abspath(args.rootfs)
    from oci.unpack.rootfs import fill, fresh_directory

    mount, unread = None, None
    # The marker that says ROOTFS is being filled goes once the output is out: a command killed
    # before it printed leaves a ROOTFS the next oci-unpack starts over (see oci.unpack.rootfs).
    with fresh_directory(rootfs):
        if args.overlay or args.emit_mount:
            mount = overlay(args, image, rootfs, options, budget, progress)
        else:
            fill(image, rootfs, options, budget, progress)
        if progress:
            progress.done(rootfs, len(image.layers), "mount of" if args.emit_mount else
                          "overlay of" if args.overlay else "")
        try:
            ocicli.emit({"rootfs": rootfs, "image": to_pipe(layout, image.descriptor),
                         "diff_ids": [str(d) for d in image.diff_ids], "mount": mount})
        except BrokenPipeError as err:  # nobody reads: the tree is made all the same
            unread = err
    if unread is not None:
        raise unread
    if args.gc:
        collect(args, messages)
    return 0


def overlay(args, image, rootfs, options, budget, progress) -> dict | None:
    """Cache the layers, then mount ROOTFS (or only describe the mount, with --emit-mount); call
    inside `fresh_directory(rootfs)`."""
    from oci.unpack import overlay as ov

    cache = ov.LayerCache(args.cache or ov.default_cache())
    with cache.session():  # a failure unmounts and removes the overlay's folders (fresh_directory)
        layers = cache.ensure(image, options, budget, progress)
        spec = ov.mount_spec(rootfs, layers)
        ov.prepare_dirs(rootfs, layers)
        if not args.emit_mount:
            ov.mount(spec)
        cache.record(rootfs, layers)
    return spec if args.emit_mount else None


def collect(args, messages: ocicli.Messages) -> int:
    from oci.unpack import overlay as ov

    removed = ov.LayerCache(args.cache or ov.default_cache()).gc()
    unfinished = [size for name, size in removed if name.startswith("tmp/")]
    freed = sum(size for _, size in removed)
    messages.info(f"removed {len(removed) - len(unfinished)} unused cached layers and {len(unfinished)} "
                  f"unfinished ones of interrupted unpacks, {freed / 1e6:.1f} MB freed")
    return 0


def raise_usage(message: str) -> None:
    from oci.errors import UsageError

    raise UsageError(message)


class Progress:
    """On a terminal (`live`), one self-overwriting line: layers done and bytes unpacked; off
    it, one summary line at the end, as the other commands print."""

    def __init__(self, messages: ocicli.Messages, live: bool) -> None:
        self.messages, self.live = messages, live
        self.size = self.entries = self.layers = 0
        self.start = time.monotonic()

    def __call__(self, index: int, count: int, result) -> None:
        self.size += result.size or 1
        self.entries += result.entries
        self.layers += 1
        if self.live:
            sys.stderr.write(f"\r{PROG}: layer {index + 1}/{count}, {self.size / 1e6:.1f} MB, "
                             f"{result.entries} entries   ")
            sys.stderr.flush()

    def done(self, rootfs: str, layers: int, kind: str) -> None:
        """`ROOTFS: overlay of 3 layers, 1 unpacked (2.0 MB, 5 entries), 0.1 s`."""
        if self.live:
            if self.size:
                sys.stderr.write("\n")
            return
        what = f"{kind} {layers} layers, {self.layers} unpacked" if kind else f"{self.layers} layers unpacked"
        self.messages.info(f"{rootfs}: {what} ({self.size / 1e6:.1f} MB, {self.entries} entries), "
                           f"{time.monotonic() - self.start:.1f} s")


def main() -> None:
    ocicli.run(PROG, main_body)


if __name__ == "__main__":
    main()
