"""Containers of a state root: their records, folders and the name registry.

`containers/ID/` is the container's bundle (config.json, rootfs, hostname, hosts,
resolv.conf) and holds `container.json`, its record in the shape of `docker inspect`
(Id, Name, Created, Image, Config, HostConfig, Mounts, State), replaced atomically. A
name is reserved by creating `names/NAME` (holding the ID) with O_EXCL, so two runs can
never take one name; it is released last when the container is removed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from typing import Any, Iterator

from oci.errors import Conflict, InvalidInput, NotFound
from oci.fsutil import locked, write_atomic

RECORD = "container.json"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Names made up for containers run without --name: an adjective and a noun of our own choosing.
_ADJECTIVES = ("amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "fond", "gentle", "glad", "hardy",
               "keen", "lively", "lucid", "mellow", "merry", "nimble", "patient", "proud", "quiet", "rapid",
               "serene", "sharp", "steady", "sunny", "swift", "tidy", "vivid", "warm", "witty", "young", "zesty")
_NOUNS = ("anchor", "badger", "beacon", "birch", "canyon", "cedar", "comet", "falcon", "fjord", "glacier",
          "harbor", "heron", "island", "lagoon", "lantern", "maple", "meadow", "otter", "pebble", "pine",
          "quartz", "raven", "reef", "river", "saddle", "spruce", "summit", "tundra", "valley", "willow")


def now() -> str:
    """An RFC 3339 time with nanoseconds, as Docker writes them."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def new_id() -> str:
    return secrets.token_hex(32)


def check_name(name: str) -> str:
    name = name.removeprefix("/")
    if not NAME_RE.match(name) or len(name) > 128:
        raise InvalidInput(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


LOG = "ctr.log"


class ContainerStore:
    """The records under containers/ and the names under names/."""

    def __init__(self, containers: str, names: str) -> None:
        self.root, self.names = containers, names

    def folder(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def log_path(self, cid: str) -> str:
        """Its output in the CRI format (oci.engine.logs), whoever ran it: `containers/ID/ctr.log`."""
        return os.path.join(self.root, cid, LOG)

    # -- names ------------------------------------------------------------

    def reserve_name(self, name: str | None, cid: str) -> str:
        """Take `name` (or a made-up one) for `cid`; Conflict if another container holds it."""
        os.makedirs(self.names, mode=0o700, exist_ok=True)
        if name is None:
            for _ in range(64):
                made = f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}"  # a valid host name too
                if self._claim(made, cid):
                    return made
            made = f"ocikit_{cid[:12]}"
            if self._claim(made, cid):
                return made
            raise Conflict("could not find a free container name")
        name = check_name(name)
        if not self._claim(name, cid):
            holder = self.name_owner(name) or "?"
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container "{holder}". '
                           "You have to remove (or rename) that container to be able to reuse that name.")
        return name

    def _claim(self, name: str, cid: str) -> bool:
        path = os.path.join(self.names, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            owner = self.name_owner(name)
            if owner and not os.path.exists(os.path.join(self.folder(owner), RECORD)) and \
                    not os.path.isdir(self.folder(owner)):
                os.unlink(path)  # left by a removal that was killed half-way
                return self._claim(name, cid)
            return False
        with os.fdopen(fd, "w") as f:
            f.write(cid)
        return True

    def name_owner(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.names, name)) as f:
                return f.read().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def release_name(self, name: str, cid: str) -> None:
        if self.name_owner(name) == cid:
            try:
                os.unlink(os.path.join(self.names, name))
            except FileNotFoundError:
                pass

    def rename(self, cid: str, new: str) -> None:
        record = self.load(cid)
        old = record["Name"]
        new = self.reserve_name(new, cid)
        record["Name"] = new
        self.save(record)
        self.release_name(old, cid)

    # -- records ----------------------------------------------------------

    def save(self, record: dict[str, Any]) -> None:
        path = os.path.join(self.folder(record["Id"]), RECORD)
        write_atomic(path, json.dumps(record, indent=2).encode() + b"\n", 0o600)

    def load(self, cid: str) -> dict[str, Any]:
        path = os.path.join(self.folder(cid), RECORD)
        try:
            with open(path, "rb") as f:
                record = json.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"No such container: {cid}") from None
        except ValueError:
            raise InvalidInput(f"{path}: not valid JSON") from None
        if not isinstance(record, dict) or record.get("Id") != cid:
            raise InvalidInput(f"{path}: /Id: not the record of container {cid}")
        return record

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return [n for n in names if len(n) == 64 and os.path.exists(os.path.join(self.root, n, RECORD))]

    def records(self) -> Iterator[dict[str, Any]]:
        for cid in self.ids():
            try:
                yield self.load(cid)
            except (NotFound, InvalidInput):
                continue

    def resolve(self, text: str) -> str:
        """The ID of the container `text` names: its name, its ID, or a unique prefix of its ID."""
        name = text.removeprefix("/")
        if NAME_RE.match(name):
            owner = self.name_owner(name)
            if owner and os.path.exists(os.path.join(self.folder(owner), RECORD)):
                return owner
        lowered = text.lower()
        if lowered and all(c in "0123456789abcdef" for c in lowered):
            matches = [cid for cid in self.ids() if cid.startswith(lowered)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidInput(f"Multiple IDs found with provided prefix: {text}")
        raise NotFound(f"No such container: {text}")

    def lock(self, cid: str) -> locked:
        """Held while the container changes state (start, stop, remove)."""
        return locked(os.path.join(self.folder(cid), ".lock"))
