"""What an unpack may do and has done: caps, id maps, overlay form, per-layer results."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from oci.errors import IntegrityError
from oci.unpack.idmap import IdMap

if TYPE_CHECKING:
    from oci.unpack.safepath import Root


class Budget:
    """Caps shared by all the layers of an image: uncompressed bytes and tar entries."""

    def __init__(self, max_size: int, max_entries: int, size: int = 0, entries: int = 0) -> None:
        self.max_size = max_size
        self.max_entries = max_entries
        self.size = size
        self.entries = entries

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise IntegrityError(f"more than {self.max_entries} tar entries (--max-entries)")

    @property
    def bytes_left(self) -> int:
        return self.max_size - self.size


class Options:
    """How entries are written."""

    def __init__(self, uid_map: IdMap | None = None, gid_map: IdMap | None = None, overlay: bool = False,
                 privileged: bool | None = None, lower: list[Root] | None = None) -> None:
        self.uid_map = IdMap() if uid_map is None else uid_map
        self.gid_map = IdMap() if gid_map is None else gid_map
        self.overlay = overlay  # whiteouts in overlayfs form (a layer cache entry)
        self.privileged = os.geteuid() == 0 if privileged is None else privileged  # chown, mknod, trusted.* xattrs
        self.lower: list[Root] = [] if lower is None else lower  # overlay form: lower layers, top first

    def for_layer_cache(self, lower: list[Root]) -> Options:
        """A copy that writes the overlay form, with `lower` as the layers beneath (hardlink targets)."""
        return Options(self.uid_map, self.gid_map, True, self.privileged, lower)


class LayerResult:
    """What applying a layer did."""

    def __init__(self, entries: int = 0, size: int = 0, copied_from_lower: bool = False) -> None:
        self.entries = entries
        self.size = size
        # overlay form: the layer's tree depends on the layers beneath it (a hardlink target copied
        # up from one of them, an opaque root that whites out their names): keyed by its chain
        self.copied_from_lower = copied_from_lower
