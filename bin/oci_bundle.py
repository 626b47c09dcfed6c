#!/usr/bin/env python3
"""oci-bundle: turn an image config into an OCI runtime bundle."""

import ocicli

main = ocicli.not_implemented(
    "oci-bundle",
    "Write an OCI runtime bundle's config.json from an image config, with docker-run options.",
    "  oci-bundle ./images:busybox ./bundle --rootfs ./bundle/rootfs -- echo hello",
    "issue 6",
)

if __name__ == "__main__":
    main()
