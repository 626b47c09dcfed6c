#!/usr/bin/env python3
"""oci-unpack: apply an image's layers to a root filesystem."""

import ocicli

main = ocicli.not_implemented(
    "oci-unpack",
    "Apply an image's layers to a root filesystem, or compose cached layers with overlayfs.",
    "  oci-unpack ./images:busybox ./bundle/rootfs",
    "issue 5",
)

if __name__ == "__main__":
    main()
