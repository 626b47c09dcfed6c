#!/usr/bin/env python3
"""oci-net: container networking as a command, an OCI hook and a CNI plugin."""

import ocicli

main = ocicli.not_implemented(
    "oci-net",
    "Connect containers to bridge networks: addresses, NAT, published ports, names.",
    "  oci-net add oci0 --pid 1234 -p 8080:80",
    "issue 8",
)

if __name__ == "__main__":
    main()
