"""Lines of /proc/PID/mountinfo as records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Mount:
    id: int
    parent: int
    root: str
    point: str
    options: set[str]
    fields: list[str]  # optional fields: shared:N, master:N, propagate_from:N, unbindable
    fstype: str
    source: str
    super_options: set[str]


def parse(lines: list[str]) -> list[Mount]:
    mounts = []
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rest = left.split(), right.split()
        mounts.append(Mount(int(parts[0]), int(parts[1]), unescape(parts[3]), unescape(parts[4]),
                            set(parts[5].split(",")), parts[6:], rest[0], rest[1],
                            set(rest[2].split(",")) if len(rest) > 2 else set()))
    return mounts


def unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return text.encode().decode("unicode_escape") if "\\" in text else text


def at(mounts: list[Mount], point: str) -> Mount:
    """The top mount at POINT (the last one listed there)."""
    found = [m for m in mounts if m.point == point]
    assert found, f"nothing mounted at {point}: {[m.point for m in mounts]}"
    return found[-1]


def under(mounts: list[Mount], point: str) -> list[Mount]:
    return [m for m in mounts if m.point.startswith(point.rstrip("/") + "/")]
