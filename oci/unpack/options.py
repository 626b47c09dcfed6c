"""What an unpack may do and has done: caps, id maps, overlay form, per-layer results."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from oci.errors import IntegrityError
from oci.unpack.idmap import IdMap

if TYPE_CHECKING:
    from oci.unpack.safepath import Root


@dataclass
class Budget:
    """Caps shared by all the layers of an image: uncompressed bytes and tar entries."""

    max_size: int
    max_entries: int
    size: int = 0
    entries: int = 0

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise IntegrityError(f"more than {self.max_entries} tar entries (--max-entries)")

    @property
    def bytes_left(self) -> int:
        return self.max_size - self.size


@dataclass
class Options:
    """How entries are written."""

    uid_map: IdMap = field(default_factory=IdMap)
    gid_map: IdMap = field(default_factory=IdMap)
    overlay: bool = False  # whiteouts in overlayfs form (a layer cache entry)
    privileged: bool = field(default_factory=lambda: os.geteuid() == 0)  # chown, mknod, trusted.* xattrs
    lower: list[Root] = field(default_factory=list)  # overlay form: lower layers, top first (hardlink targets)
    warn: Callable[[str], None] = lambda message: None


@dataclass
class LayerResult:
    """What applying a layer did."""

    entries: int = 0
    size: int = 0
    copied_from_lower: bool = False  # overlay form: a hardlink target was copied up from a lower layer
