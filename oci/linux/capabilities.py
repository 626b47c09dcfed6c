"""Capabilities: their names in the kernel's numbering, the default sets, and the five sets of a process
(bounding, effective, permitted, inheritable, ambient) checked and applied through oci.linux.kernel.

Cheap to import (data, and the kernel seam that loads libc only when called): oci-bundle and
`oci-run spec` read the names and default sets here too."""

from __future__ import annotations

from oci.errors import InvalidInput
from oci.linux.kernel import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_CAPBSET_READ,
    kernel,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

# What a container gets by default, two ways: the minimal set `runc spec` (and `oci-run spec`) writes,
# and Docker's default set, which oci-bundle gives as `docker run` does.
SPEC_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
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


SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def bounding_set(numbers: set[int]) -> int:
    """Which of `numbers` are in this process's bounding set (prctl, one call each: no /proc needed)."""
    bits, prctl = 0, kernel().prctl
    for number in numbers:
        if prctl(PR_CAPBSET_READ, number) == 1:
            bits |= 1 << number
    return bits


def grantable_only(config: dict[str, Any] | None,
                   base: str = "/process/capabilities") -> tuple[dict[str, list[str]], list[str]]:
    """The config's capability lists without what this process cannot grant, and warnings for what was left out.

    config.md#linux-process: a value that cannot be mapped to the kernel, or cannot be granted, MUST be
    logged as a warning, and the runtime SHOULD NOT fail (a restricted environment: docker-in-docker,
    a host without some capability in its bounding set). The rules are capset(2)'s, applied to what this
    process holds now (the init before its setup, its user namespace entered): bounding and permitted
    within its own, effective within the new permitted, inheritable within its own inheritable or the new
    bounding set and its permitted, ambient within the new permitted and inheritable. One warning per
    cause: unknown names, capabilities oci-run does not hold, and each set the config made inconsistent.
    """
    config = config or {}
    top = last_cap()
    permitted_now, inheritable_now = kernel().capget()[1:]
    asked = {NUMBERS[name] for kind in SETS for name in config.get(kind) or [] if name in NUMBERS}
    bounding_now = bounding_set({number for number in asked if number <= top})
    unknown: list[str] = []
    not_held: list[str] = []
    inconsistent: list[str] = []
    kept: dict[str, int] = {}

    def keep(kind: str, allowed: int, why: str) -> None:
        bits, left_out = 0, []
        for name in config.get(kind) or []:
            number = NUMBERS.get(name)
            if number is None or number > top:
                if name not in unknown:
                    unknown.append(name)
            elif allowed & (1 << number):
                bits |= 1 << number
            elif not bounding_now & permitted_now & (1 << number):
                if name not in not_held:
                    not_held.append(name)
            else:
                left_out.append(name)
        if left_out:
            inconsistent.append(f"{base}/{kind}: {', '.join(left_out)}: {why}, left out")
        kept[kind] = bits

    keep("bounding", bounding_now, "not in oci-run's bounding set")
    keep("permitted", permitted_now, "not in oci-run's permitted set")
    keep("effective", kept["permitted"], "not permitted")
    keep("inheritable", inheritable_now | (kept["bounding"] & permitted_now), "neither bounding nor permitted")
    keep("ambient", kept["permitted"] & kept["inheritable"], "not both permitted and inheritable")
    warnings = [f"{base}: {', '.join(unknown)}: unknown to this kernel, ignored"] if unknown else []
    if not_held:
        warnings.append(f"{base}: {', '.join(not_held)}: cannot be granted (oci-run does not hold it here), left out")
    result = {kind: [name for name in NAMES if kept[kind] & (1 << NUMBERS[name])] for kind in SETS if kind in config}
    return result, warnings + inconsistent


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
        prctl = kernel().prctl
        for number in range(last_cap() + 1):
            if not self.bounding & (1 << number):
                prctl(PR_CAPBSET_DROP, number)

    def apply(self) -> None:
        """Set effective, permitted, inheritable, then raise ambient (after the uid change)."""
        kern = kernel()
        kern.capset(self.effective, self.permitted, self.inheritable)
        kern.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # like runc, the others are left out rather than failing the container.
        raisable = self.ambient & self.permitted & self.inheritable
        for number in range(last_cap() + 1):
            if raisable & (1 << number):
                kern.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number)
