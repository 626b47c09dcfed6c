"""Platforms (`os/arch[/variant]`): the host's, parsing, and choosing from an index."""

from __future__ import annotations

import os
from collections import namedtuple

from oci.errors import InvalidInput, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# uname machine -> (GOARCH, variant)
_MACHINES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i686": ("386", None), "i386": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


class Platform(namedtuple("Platform", ["os", "architecture", "variant"], defaults=(None,))):
    """An image platform as the image-spec names it."""

    __slots__ = ()
    os: str
    architecture: str
    variant: str | None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse `os/arch[/variant]`."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidInput(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        """The platform of this machine."""
        arch, variant = _MACHINES.get(os.uname().machine, (os.uname().machine, None))
        return cls("linux", arch, variant)

    def matches(self, candidate: dict[str, Any] | None) -> bool:
        """True if an index entry's `platform` object fits this platform."""
        if not candidate:
            return False
        if candidate.get("os") != self.os or candidate.get("architecture") != self.architecture:
            return False
        theirs = candidate.get("variant")
        return self.variant is None or theirs is None or theirs == self.variant

    def __str__(self) -> str:
        return "/".join(filter(None, (self.os, self.architecture, self.variant)))


def choose(entries: list[dict[str, Any]], wanted: Platform, source: str) -> dict[str, Any]:
    """Pick the index entry for `wanted`; NotFound lists the platforms on offer."""
    exact = [e for e in entries if e.get("platform") and e["platform"].get("variant") == wanted.variant
             and wanted.matches(e["platform"])]
    loose = [e for e in entries if wanted.matches(e.get("platform"))]
    if exact or loose:
        return (exact or loose)[0]
    offered = sorted({describe(e.get("platform")) for e in entries})
    raise NotFound(f"{source}: no image for platform {wanted}; the index offers: {', '.join(offered) or 'none'}")


def describe(platform: dict[str, Any] | None) -> str:
    """`os/arch[/variant]` of an index entry's platform object."""
    if not platform:
        return "unknown"
    return "/".join(filter(None, (platform.get("os"), platform.get("architecture"), platform.get("variant"))))
