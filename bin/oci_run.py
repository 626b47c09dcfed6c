#!/usr/bin/env python3
"""oci-run: an OCI runtime with a runc-compatible command line."""

import ocicli

main = ocicli.not_implemented(
    "oci-run",
    "Create and run containers from OCI runtime bundles (runc-compatible).",
    "  oci-run run --bundle ./bundle demo",
    "issue 7",
)

if __name__ == "__main__":
    main()
