"""cgroup v1's device rules, moved from what devices.list shows to what the config asks for with the
fewest writes, as runc's device emulator does.

Writing `a` to devices.deny first and allowing the wanted devices again would do, in a fresh
cgroup; but a cgroupsPath may name a cgroup that already holds processes (another container's,
one a caller made), and those would lose every device between the two writes. So the rules are
played onto a model of the kernel's list (a default, allow or deny, and exceptions to it), the
current list is read back into the same model, and only the difference is written: nothing at
all when the cgroup already has the target rules. The one disruptive write left is runc's too:
a cgroup in allow-all mode (what a new cgroup inherits from the root) lists no exceptions, so it
is reset to deny-all before the allows; no process is in a cgroup that create just made.
"""

from __future__ import annotations

from oci.linux.cgroups.base import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Device = tuple[str, str, str]  # type (b, c), major, minor; "*" for any


class DeviceRules:
    """The kernel's model of a devices cgroup: a default and exceptions to it, with their access."""

    def __init__(self, allow_all: bool = False) -> None:
        self.allow_all = allow_all
        self.exceptions: dict[Device, frozenset[str]] = {}

    def add(self, allow: bool, kind: str, major: str, minor: str, access: str, where: str = "") -> None:
        """One rule, as writing it to devices.allow (allow) or devices.deny would change the list."""
        if kind == "a":  # every device: a new default, no exception (whatever its numbers say)
            self.allow_all, self.exceptions = allow, {}
            return
        device, wanted = (kind, major, minor), frozenset(access)
        if allow != self.allow_all:  # an exception to the default
            self.exceptions[device] = self.exceptions.get(device, frozenset()) | wanted
            return
        # Back to the default: the kernel removes access from an exception of exactly these numbers
        # and silently ignores a wildcard exception that covers them; that would leave a device
        # usable that the config denies, so it is refused, as runc refuses it.
        for wider in ((kind, "*", minor), (kind, major, "*"), (kind, "*", "*")):
            if wider != device and self.exceptions.get(wider, frozenset()) & wanted:
                raise CgroupError(f"cgroup: {where or '/linux/resources/devices'}: {_line(device, wanted)} cannot "
                                  f"be taken out of the wider rule {_line(wider, self.exceptions[wider])} on cgroup v1")
        left = self.exceptions.get(device, frozenset()) - wanted
        if left:
            self.exceptions[device] = left
        else:
            self.exceptions.pop(device, None)


def from_config(rules: list[dict[str, Any]], first: int = 0) -> DeviceRules:
    """The list `rules` (linux.resources.devices, then the default devices) make from deny-all, as
    runc builds it; `first`: how many of them come from the config (named in a refusal)."""
    target = DeviceRules()
    for i, rule in enumerate(rules):
        major, minor = rule.get("major", -1), rule.get("minor", -1)
        target.add(bool(rule["allow"]), rule.get("type") or "a", "*" if major in (-1, None) else str(major),
                   "*" if minor in (-1, None) else str(minor), rule.get("access") or "rwm",
                   f"/linux/resources/devices/{i}" if i < first else "")
    return target


def from_list(text: str | None) -> DeviceRules:
    """The model of a devices.list (None: unreadable, taken as allow-all, which is reset anyway).
    In allow-all mode the kernel shows `a *:* rwm` and hides the exceptions."""
    current = DeviceRules()
    for line in (text or "a *:* rwm").splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) == 4:
            current.add(True, *fields)
    return current


def transition(current: DeviceRules, target: DeviceRules) -> list[tuple[str, str]]:
    """(devices.allow or devices.deny, line) to write, in order, to turn `current` into `target`:
    a reset only where the default differs or the exceptions cannot be known, then the access
    that goes, then the access that comes."""
    writes: list[tuple[str, str]] = []
    toward, away = ("devices.deny", "devices.allow") if target.allow_all else ("devices.allow", "devices.deny")
    old = current.exceptions
    if current.allow_all or current.allow_all != target.allow_all:
        writes.append(("devices.allow" if target.allow_all else "devices.deny", "a"))
        old = {}
    for device, access in sorted(old.items()):
        dropped = access - target.exceptions.get(device, frozenset())
        if dropped:
            writes.append((away, _line(device, dropped)))
    for device, access in sorted(target.exceptions.items()):
        gained = access - old.get(device, frozenset())
        if gained:
            writes.append((toward, _line(device, gained)))
    return writes


def _line(device: Device, access: frozenset[str]) -> str:
    return f"{device[0]} {device[1]}:{device[2]} {''.join(c for c in 'rwm' if c in access)}"
