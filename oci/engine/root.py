"""Where the front keeps its state: paths under one state root, and the runtime's root beside it."""

from __future__ import annotations

import hashlib
import os

ROOT_ENV = "OCIKIT_ROOT"
DEFAULT_ROOT = "/var/lib/ocikit"
RUN_BASE = "/run/ocikit"


def default_root() -> str:
    """$OCIKIT_ROOT, else /var/lib/ocikit for root, else $XDG_DATA_HOME/ocikit."""
    if os.environ.get(ROOT_ENV):
        return os.environ[ROOT_ENV]
    if os.geteuid() == 0:
        return DEFAULT_ROOT
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "ocikit")


class StateRoot:
    """The folders of one state root; nothing is made until asked for."""

    def __init__(self, path: str | None = None) -> None:
        self.path = os.path.realpath(path or default_root())
        self.default = self.path == os.path.realpath(DEFAULT_ROOT)

    def sub(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def images(self) -> str:
        return self.sub("images")

    @property
    def layers(self) -> str:
        return self.sub("layers")

    @property
    def containers(self) -> str:
        return self.sub("containers")

    @property
    def names(self) -> str:
        return self.sub("names")

    @property
    def volumes(self) -> str:
        return self.sub("volumes")

    @property
    def net(self) -> str:
        return self.sub("net")

    @property
    def tag(self) -> str:
        """12 hex digits naming this root in host-wide names (runtime folder, bridges, nft table)."""
        return hashlib.sha256(self.path.encode()).hexdigest()[:12]

    @property
    def runtime(self) -> str:
        """oci-run's --root for this state root: on tmpfs, short enough for socket paths under it."""
        return os.path.join(RUN_BASE, self.tag)

    @property
    def nft_table(self) -> str:
        """The nftables table of this root's networks: `ocikit` for the default root."""
        return "ocikit" if self.default else f"ocikit_{self.tag[:8]}"

    def bridge_name(self, network: str) -> str:
        """The host bridge of a network of this root, `br-` and 12 hex digits as Docker's."""
        return "br-" + hashlib.sha256(f"{self.path}\0{network}".encode()).hexdigest()[:12]

    def ensure(self) -> StateRoot:
        """Make the root's folders (private to the owner, as Docker's)."""
        os.makedirs(self.path, mode=0o711, exist_ok=True)
        for folder in (self.containers, self.names, self.volumes):
            os.makedirs(folder, mode=0o700, exist_ok=True)
        return self
