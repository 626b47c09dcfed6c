"""Capability names and the five sets: bounding, effective, permitted, inheritable, ambient."""

from __future__ import annotations

from oci.errors import InvalidInput
from oci.linux import syscalls
from oci.linux.capnames import NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NUMBERS = {name: i for i, name in enumerate(NAMES)}


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number this kernel knows (read once per process)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except OSError:
            _last_cap = len(NAMES) - 1
    return _last_cap


def mask(names: list[str], pointer: str) -> int:
    """A bit mask from capability names; unknown names are refused, ones the kernel lacks skipped."""
    bits, top = 0, last_cap()
    for i, name in enumerate(names):
        number = NUMBERS.get(name)
        if number is None:
            raise InvalidInput(f"{pointer}/{i}: unknown capability {name!r}")
        if number <= top:
            bits |= 1 << number
    return bits


class CapabilitySets:
    """The process.capabilities object as masks."""

    def __init__(self, config: dict[str, Any] | None) -> None:
        config = config or {}
        base = "/process/capabilities"
        self.bounding = mask(config.get("bounding", []), base + "/bounding")
        self.effective = mask(config.get("effective", []), base + "/effective")
        self.permitted = mask(config.get("permitted", []), base + "/permitted")
        self.inheritable = mask(config.get("inheritable", []), base + "/inheritable")
        self.ambient = mask(config.get("ambient", []), base + "/ambient")

    def drop_bounding(self) -> None:
        """Drop from the bounding set every capability not listed (needs CAP_SETPCAP)."""
        for number in range(last_cap() + 1):
            if not self.bounding & (1 << number):
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)

    def apply(self) -> None:
        """Set effective, permitted, inheritable, then raise ambient (after the uid change)."""
        syscalls.capset(self.effective, self.permitted, self.inheritable)
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # like runc, the others are left out rather than failing the container.
        raisable = self.ambient & self.permitted & self.inheritable
        for number in range(last_cap() + 1):
            if raisable & (1 << number):
                syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, number)
