"""Resolve an image's `User` (`user[:group]`, names or numbers) against the rootfs's passwd and group.

Follows the image-spec's conversion.md: numbers are copied verbatim; names are looked up in
/etc/passwd and /etc/group read inside the rootfs; supplementary groups come from /etc/group
only when the user is a name (or unset: root) and no group is given; an unknown name is an error.
"""

from __future__ import annotations

from typing import NamedTuple

from oci.errors import InvalidInput, NotFound
from oci.linux.inroot import read_in_root

MAX_ID = 2**32 - 2


class User(NamedTuple):
    """A resolved process user."""

    uid: int
    gid: int
    additional_gids: list[int]
    home: str = "/"
    name: str | None = None


def _entries(rootfs: str, path: str, width: int) -> list[list[str]]:
    data = read_in_root(rootfs, path)
    if data is None:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip() or line.startswith(("#", "+", "-")):
            continue
        parts = line.split(":")
        rows.append(parts + [""] * (width - len(parts)))
    return rows


def _number(text: str, what: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidInput(f"{what} {text} is out of range")
    return value


def resolve(rootfs: str, spec: str | None) -> User:
    """Resolve `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) inside `rootfs`."""
    spec = (spec or "").strip()
    user_part, _, group_part = spec.partition(":")
    passwd = _entries(rootfs, "/etc/passwd", 7)
    uid = _number(user_part, "uid") if user_part else 0
    by_name = user_part and uid is None
    entry = None
    for row in passwd:
        if (by_name and row[0] == user_part) or (not by_name and _number(row[2], "uid") == uid):
            entry = row
            break
    if by_name and entry is None:
        raise NotFound(f"user {user_part!r} not found in the image's /etc/passwd")
    if entry is not None:
        uid = _number(entry[2], "uid")
        if uid is None:
            raise InvalidInput(f"/etc/passwd entry for {entry[0]!r} has no numeric uid")
    gid = _number(entry[3], "gid") if entry is not None else 0
    gid = 0 if gid is None else gid
    home = entry[5] if entry is not None and entry[5] else "/"
    name = entry[0] if entry is not None else None
    additional: list[int] = []
    # Unset, a user is implementation-defined: root with its groups, as Docker and umoci do.
    with_groups = bool(by_name or not spec) and name is not None
    groups = _entries(rootfs, "/etc/group", 4) if (group_part or with_groups) else []
    if group_part:
        found = _number(group_part, "gid")
        if found is None:
            found = next((_number(row[2], "gid") for row in groups if row[0] == group_part), None)
            if found is None:
                raise NotFound(f"group {group_part!r} not found in the image's /etc/group")
        gid = found
    elif with_groups:
        for row in groups:
            members = [m.strip() for m in row[3].split(",")]
            number = _number(row[2], "gid")
            if name in members and number is not None and number not in additional:
                additional.append(number)
    if uid is None:  # a name found in no entry, or an entry without a number: refused above
        raise InvalidInput(f"user {user_part!r} has no numeric uid")
    return User(uid, gid, additional, home, name)
