"""Records and events against their schemas; request configs; finding a container by ID, name or prefix."""

import copy
import json

import pytest

from oci.errors import InvalidDocument, InvalidInput, NotFound
from oci.monitor import events, record
from oci.monitor.paths import Root

CONFIG = {"bundle": "/b", "runtime": {"path": "/usr/bin/runc", "root": None}, "command": ["sh"], "tty": False,
          "interactive": False, "restartPolicy": {"name": "on-failure", "maximumRetryCount": 3},
          "stopSignal": "SIGTERM", "stopTimeout": 10, "log": {"path": "/l/ctr.log", "maxSize": 0, "maxFiles": 1}}


def test_a_new_record_and_a_finished_one_follow_the_schema():
    rec = record.new("c1", "web", copy.deepcopy(CONFIG))
    record.check(rec, "record", "record.json")
    rec["state"].update(status="exited", exitCode=137, signal="SIGKILL", oomKilled=True,
                        startedAt="2024-05-01T12:00:00.000000001Z", finishedAt="2024-05-01T12:00:01.5Z")
    record.check(rec, "record", "record.json")
    rec["state"]["status"] = "sleeping"
    with pytest.raises(InvalidDocument, match="record.json: /state/status"):
        record.check(rec, "record", "record.json")


def test_events_follow_the_schema():
    event = events.make("die", "c1", "web", "/b", exitCode="3")
    record.check(event, "event", "event")
    assert (event["Action"], event["status"], event["Actor"]["Attributes"]) == ("die", "die",
                                                                                {"name": "web", "exitCode": "3"})


@pytest.mark.parametrize("pointer, value", [
    ("stopTimeout", -1), ("stopTimeout", True), ("bundle", "relative"), ("command", ["ok", 3]),
    ("restartPolicy", {"name": "sometimes", "maximumRetryCount": 0}), ("log", {"path": "/l", "maxSize": 0}),
    ("stopSignal", "TERM"), ("tty", "yes"),
])
def test_check_config_refuses_what_the_schema_refuses(pointer, value):
    config = copy.deepcopy(CONFIG)
    config[pointer] = value
    with pytest.raises(InvalidDocument, match=f"/config/{pointer}"):
        record.check_config(config)
    assert record.violations(record.new("c1", "c1", config), "record"), "the schema refuses it too"


def test_check_config_accepts_the_example():
    assert record.check_config(copy.deepcopy(CONFIG)) == CONFIG


def test_save_is_atomic_json_and_load_validates(tmp_path):
    root = Root(str(tmp_path))
    root.make()
    (tmp_path / "containers" / "c1").mkdir()
    rec = record.new("c1", "web", copy.deepcopy(CONFIG))
    record.save(root, rec)
    assert json.loads((tmp_path / "containers" / "c1" / "record.json").read_text()) == rec
    assert record.load(root, "c1", validate=True) == rec
    assert not [p for p in (tmp_path / "containers" / "c1").iterdir() if p.name.startswith(".tmp")]
    (tmp_path / "containers" / "c1" / "record.json").write_text('{"id": 1}')
    with pytest.raises(InvalidDocument):
        record.load(root, "c1", validate=True)
    (tmp_path / "containers" / "c1" / "record.json").write_text("{broken")
    with pytest.raises(InvalidDocument, match="not valid JSON"):
        record.load(root, "c1")


def test_resolve_by_id_name_and_unique_prefix(tmp_path):
    root = Root(str(tmp_path))
    root.make()
    for cid, name in (("abc123", "web"), ("abd456", "db")):
        (tmp_path / "containers" / cid).mkdir()
        record.save(root, record.new(cid, name, copy.deepcopy(CONFIG)))
    assert record.resolve(root, "abc123") == "abc123"
    assert record.resolve(root, "db") == "abd456"
    assert record.resolve(root, "abc") == "abc123"
    with pytest.raises(InvalidInput, match="several"):
        record.resolve(root, "ab")
    for missing in ("zzz", "../x", ""):
        with pytest.raises(NotFound):
            record.resolve(root, missing)


def test_event_filters():
    die = events.make("die", "c1", "web")
    assert events.matches(die, events.parse_filters(["container=web", "event=die", "event=start"]))
    assert events.matches(die, events.parse_filters(["container=c1"]))
    assert not events.matches(die, events.parse_filters(["event=start"]))
    for bad in ("colour=red", "event=explode", "container="):
        with pytest.raises(InvalidInput):
            events.parse_filters([bad])
