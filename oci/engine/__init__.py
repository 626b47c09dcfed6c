"""The front's engine: Docker's everyday objects (images, containers, volumes, networks) kept
under one state root and made of the small commands' code.

State root (`--root`, else `$OCIKIT_ROOT`, else /var/lib/ocikit as root and
`$XDG_DATA_HOME/ocikit` otherwise), one home per concept:

```
images/              one OCI image layout: every image, tagged by its full reference
layers/              the overlay layer cache oci-unpack --overlay shares (oci/unpack/overlay.py)
containers/ID/       a container: container.json (its record), config.json (the bundle),
                     rootfs (overlay mount point), hostname, hosts, resolv.conf
names/NAME           the name registry: a file holding the ID, made with O_EXCL
volumes/NAME/        a named volume: volume.json, and _data (what containers mount)
net/                 oci-net's state directory (networks, leases)
```

The runtime's state (oci-run's --root) lives on tmpfs under /run/ocikit/, one folder per
state root. Each module says what it keeps and why.
"""
