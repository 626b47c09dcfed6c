#!/usr/bin/env python3
"""oci-fetch: pull an image from an OCI or Docker registry into an OCI image layout."""

import ocicli

main = ocicli.not_implemented(
    "oci-fetch",
    "Pull an image from a registry into an OCI image layout; only missing blobs travel.",
    "  oci-fetch 127.0.0.1:5000/library/busybox:latest ./images",
    "issue 3",
)

if __name__ == "__main__":
    main()
