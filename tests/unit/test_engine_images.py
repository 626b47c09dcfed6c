"""oci.engine.images and imagegc: Docker's names over one OCI layout, dangling images, rmi and prune rules."""

import pytest

from oci.engine.engine import Engine
from oci.engine.images import ImageStore, familiar, parse_reference, split_name
from oci.engine.root import StateRoot
from oci.errors import Conflict, InvalidInput, NotFound
from oci.layout import Layout
from tests.integration.images import write_manifest


def put_image(store: ImageStore, text: str = "hello") -> object:
    layout = Layout.open(store.path, create=True)
    with layout.session():
        return write_manifest(layout, [{"etc/hello": text.encode()}])


def test_names_are_full_references_shown_the_way_docker_shows_them():
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse_reference("docker://127.0.0.1:5000/team/app:1")) == "127.0.0.1:5000/team/app:1"
    assert familiar("docker.io/library/busybox:latest") == "busybox:latest"
    assert split_name("docker.io/library/busybox:1.36") == ("busybox", "1.36")
    assert split_name("127.0.0.1:5000/team/app:1") == ("127.0.0.1:5000/team/app", "1")


def test_find_by_name_short_name_id_and_prefix(tmp_path):
    store = ImageStore(str(tmp_path / "images"))
    descriptor = put_image(store)
    store.name(["docker.io/library/busybox:latest", "127.0.0.1:5000/x/y:1"], descriptor)
    stored = store.find("busybox")
    assert stored.descriptor.digest == descriptor.digest and len(stored.names) == 2
    assert store.find(stored.id).id == stored.id
    assert store.find(stored.short_id[:6]).id == stored.id
    assert store.find(f"busybox@{descriptor.digest}").id == stored.id
    assert store.find("127.0.0.1:5000/x/y:1").id == stored.id
    with pytest.raises(NotFound, match="No such image: alpine"):
        store.find("alpine")


def test_a_name_that_moves_leaves_the_old_image_dangling(tmp_path):
    store = ImageStore(str(tmp_path / "images"))
    old, new = put_image(store, "one"), put_image(store, "two")
    store.name(["docker.io/library/app:latest"], old)
    store.name(["docker.io/library/app:latest"], new)
    listed = {str(s.descriptor.digest): s.names for s in store.images()}
    assert listed == {str(old.digest): [], str(new.digest): ["docker.io/library/app:latest"]}
    assert store.collect() == 0  # the dangling image keeps its blobs
    store.name(["docker.io/library/old:1"], old)  # named again: no longer dangling
    assert {str(s.descriptor.digest): s.names for s in store.images()}[str(old.digest)] == ["docker.io/library/old:1"]
    assert all(e.ref_name != str(old.digest) for e in store.entries())


def test_an_ambiguous_id_prefix_is_refused(tmp_path):
    store = ImageStore(str(tmp_path / "images"))
    firsts: dict[str, int] = {}
    for n in range(17):  # 17 IDs: two of them share a first hex digit
        store.name([f"docker.io/library/i{n}:latest"], put_image(store, str(n)))
        first = store.find(f"i{n}").id.split(":")[1][0]
        firsts[first] = firsts.get(first, 0) + 1
        if firsts[first] == 2:
            break
    with pytest.raises(InvalidInput, match="ambiguous"):
        store.find(first)


def engine_with_image(tmp_path, names):
    engine = Engine(StateRoot(str(tmp_path / "root")))
    descriptor = put_image(engine.images)
    engine.images.name(names, descriptor)
    return engine, descriptor


def test_rmi_of_one_of_several_names_only_untags(tmp_path):
    from oci.engine import imagegc

    engine, _ = engine_with_image(tmp_path, ["docker.io/library/a:1", "docker.io/library/b:1"])
    assert imagegc.remove(engine, "a:1", force=False) == ["Untagged: a:1"]
    assert [s.names for s in engine.images.images()] == [["docker.io/library/b:1"]]
    lines = imagegc.remove(engine, "b:1", force=False)
    assert lines[0] == "Untagged: b:1" and lines[1].startswith("Deleted: sha256:")
    assert engine.images.images() == []
    assert imagegc.collect(engine) > 0
    assert Layout.open(engine.images.path).reachable() == set()


def test_rmi_by_id_of_an_image_with_several_names_must_be_forced(tmp_path):
    from oci.engine import imagegc

    engine, _ = engine_with_image(tmp_path, ["docker.io/library/a:1", "docker.io/library/b:1"])
    image_id = engine.images.find("a:1").short_id
    with pytest.raises(Conflict, match="must be forced"):
        imagegc.remove(engine, image_id, force=False)
    assert len(imagegc.remove(engine, image_id, force=True)) == 3


def test_an_image_a_container_uses_is_kept_dangling_when_forced(tmp_path, monkeypatch):
    from oci.engine import imagegc

    engine, descriptor = engine_with_image(tmp_path, ["docker.io/library/a:1"])
    stored = engine.images.find("a:1")
    monkeypatch.setattr(imagegc, "users", lambda engine, stored, monitor=None: {"c" * 64: "exited"})
    with pytest.raises(Conflict, match="must be forced"):
        imagegc.remove(engine, "a:1", force=False)
    assert imagegc.remove(engine, "a:1", force=True) == ["Untagged: a:1"]
    assert [(s.id, s.names) for s in engine.images.images()] == [(stored.id, [])]
    assert imagegc.prune(engine, every=True) == []  # still used
    monkeypatch.setattr(imagegc, "users", lambda engine, stored, monitor=None: {"c" * 64: "running"})
    with pytest.raises(Conflict, match="cannot be forced"):
        imagegc.remove(engine, stored.id, force=True)


def test_prune_removes_dangling_images_and_with_all_unused_ones(tmp_path):
    from oci.engine import imagegc

    engine, first = engine_with_image(tmp_path, ["docker.io/library/a:1"])
    first_id = engine.images.find("a:1").id
    second = put_image(engine.images, "two")
    engine.images.name(["docker.io/library/a:1"], second)  # `first` is dangling now
    assert imagegc.prune(engine, every=False) == [f"deleted: {first_id}"]
    assert [s.descriptor.digest for s in engine.images.images()] == [second.digest]
    assert imagegc.prune(engine, every=True)[0] == "untagged: a:1"
    assert engine.images.images() == []
