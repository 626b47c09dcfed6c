"""uid/gid shifting while unpacking, for rootfs trees used in user namespaces."""

from __future__ import annotations

from typing import NamedTuple

from oci.errors import InvalidInput


class IdRange(NamedTuple):
    """`CONTAINER:HOST:SIZE`, as runc's linux.uidMappings and podman's --uidmap say it."""

    container: int
    host: int
    size: int

    @classmethod
    def parse(cls, text: str) -> IdRange:
        parts = text.split(":")
        try:
            container, host, size = (int(p, 10) for p in parts)
        except ValueError:
            raise InvalidInput(f"invalid id mapping {text!r}: expected CONTAINER:HOST:SIZE") from None
        if container < 0 or host < 0 or size <= 0 or container + size > 1 << 32 or host + size > 1 << 32:
            raise InvalidInput(f"invalid id mapping {text!r}: ids out of range")
        return cls(container, host, size)


class IdMap:
    """A list of ranges; an empty map leaves ids as they are."""

    def __init__(self, ranges: list[IdRange] | None = None) -> None:
        self.ranges = list(ranges or [])

    @classmethod
    def parse(cls, texts: list[str] | None) -> IdMap:
        return cls([IdRange.parse(t) for t in texts or []])

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def host_id(self, container_id: int) -> int | None:
        """The host id for a container id, or None when no range covers it."""
        if not self.ranges:
            return container_id
        for r in self.ranges:
            if r.container <= container_id < r.container + r.size:
                return r.host + container_id - r.container
        return None
