#!/usr/bin/env python3
"""oci-push: push an image from an OCI image layout to a registry."""

import ocicli

main = ocicli.not_implemented(
    "oci-push",
    "Push an image from an OCI image layout to a registry; only missing blobs travel.",
    "  oci-push ./images:busybox 127.0.0.1:5000/library/busybox:latest",
    "issue 4",
)

if __name__ == "__main__":
    main()
