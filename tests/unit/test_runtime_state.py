"""oci-run's state store: ids, reservations, atomic records, derived status."""

import os

import pytest

from oci.errors import Conflict, InvalidInput, NotFound
from oci.runtime.state import Container, StateStore, check_id, process_start_time


def test_ids_that_could_name_other_paths_are_refused():
    for bad in ["", ".", "..", "a/b", "../x", "a b", "x" * 1025]:
        with pytest.raises(InvalidInput):
            check_id(bad)
    assert check_id("abc-1.2_3+4") == "abc-1.2_3+4"


def test_reserve_twice_is_a_conflict_with_runc_phrase(tmp_path):
    store = StateStore(str(tmp_path))
    store.reserve("c1")
    with pytest.raises(Conflict, match="container with id exists: c1"):
        store.reserve("c1")


def test_missing_container_does_not_exist(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        StateStore(str(tmp_path)).load("nope")


def test_save_load_and_status_from_a_live_pid(tmp_path):
    store = StateStore(str(tmp_path))
    folder = store.reserve("c1")
    me = os.getpid()
    container = Container(id="c1", bundle="/b", pid=me, start_time=process_start_time(me), directory=folder,
                          annotations={"a": "b"})
    store.save(container)
    loaded = store.load("c1")
    assert loaded.status() == "running"
    open(os.path.join(folder, "exec.sock"), "w").close()
    assert loaded.status() == "created"
    state = loaded.runc_state()
    assert state["pid"] == me and state["status"] == "created" and state["annotations"] == {"a": "b"}
    assert list(loaded.spec_state())[:4] == ["ociVersion", "id", "status", "pid"]


def test_a_recycled_pid_is_stopped(tmp_path):
    store = StateStore(str(tmp_path))
    folder = store.reserve("c1")
    store.save(Container(id="c1", bundle="/b", pid=os.getpid(), start_time=1, directory=folder))
    container = store.load("c1")
    assert container.status() == "stopped"
    assert "pid" not in container.spec_state()
    assert container.runc_state()["pid"] == 0


def test_list_and_remove(tmp_path):
    store = StateStore(str(tmp_path))
    for name in ("b", "a"):
        store.save(Container(id=name, bundle="/b", directory=store.reserve(name)))
    assert [c.id for c in store.list()] == ["a", "b"]
    store.remove("a")
    assert [c.id for c in store.list()] == ["b"]
    with store.lock("b"):
        pass
    with pytest.raises(NotFound):
        store.lock("a")
