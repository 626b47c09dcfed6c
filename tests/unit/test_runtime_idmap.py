"""oci.linux.idmap: which mappings an idmapped mount takes, and what is refused before any syscall."""

from __future__ import annotations

import pytest

from oci.errors import InvalidInput
from oci.linux import idmap, mountopts

MAPS = [{"containerID": 0, "hostID": 1000, "size": 1}]


def config(mount: dict, namespaces: list[dict] | None = None, **linux: list) -> dict:
    return {"mounts": [{"destination": "/mnt", "source": "/tmp", **mount}],
            "linux": {"namespaces": namespaces or [], **linux}}


@pytest.mark.parametrize("mount, wanted", [
    ({"options": ["rbind"]}, False), ({"options": ["bind", "idmap"]}, True), ({"options": ["rbind", "ridmap"]}, True),
    ({"options": ["bind"], "uidMappings": MAPS, "gidMappings": MAPS}, True),  # as runc: mappings idmap alone
])
def test_what_asks_for_an_idmapping(mount, wanted):
    assert mountopts.wants_idmap(mount) is wanted


@pytest.mark.parametrize("mount, namespaces, message", [
    ({"type": "tmpfs", "options": ["idmap"]}, [], "/mounts/0: oci-run idmaps bind mounts only"),
    ({"options": ["bind", "idmap"], "uidMappings": MAPS}, [], "/mounts/0: uidMappings and gidMappings go together"),
    ({"options": ["bind", "idmap"]}, [], "/mounts/0: idmap needs uidMappings and gidMappings"),
])
def test_refused_before_anything_is_made(mount, namespaces, message):
    with pytest.raises(InvalidInput, match=message):
        idmap.prepare(config(mount, namespaces), "/bundle")


def test_one_user_namespace_per_distinct_mapping(monkeypatch):
    """The container's mappings stand in for a mount without its own; equal mappings share one namespace."""
    made = []
    monkeypatch.setattr(idmap, "new_userns", lambda uid, gid: made.append((uid, gid)) or 100 + len(made))
    monkeypatch.setattr(idmap.os, "close", lambda fd: None)
    doc = config({"options": ["bind", "idmap"]}, [{"type": "user"}], uidMappings=MAPS, gidMappings=MAPS)
    doc["mounts"].append({"destination": "/mnt2", "source": "/tmp", "options": ["bind", "idmap"],
                          "uidMappings": MAPS, "gidMappings": MAPS})
    userns: dict = {}
    assert [idmap._userns_for(m, f"/mounts/{i}", doc, userns) for i, m in enumerate(doc["mounts"])] == [101, 101]
    assert made == [(MAPS, MAPS)]
