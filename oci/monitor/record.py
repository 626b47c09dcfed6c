"""A container's record (record.schema.json): how it was asked to run and how it runs or ended.

The monitor is the only writer: each change replaces ROOT/containers/ID/record.json
atomically (temporary file, fsync, rename, fsync of the folder), so a reader, or a monitor
started after a crash, sees the old record or the new one, never a mix. Readers that are
commands validate what they read against the schema (`load(..., validate=True)`); the
monitor itself does not import jsonschema (8 MB more for its whole life) and checks the
request configs it is sent with `check_config`, which follows the same schema.
"""

from __future__ import annotations

import os

from oci import schema
from oci.errors import InvalidDocument, InvalidInput, NotFound
from oci.monitor.paths import Root
from oci.runtime.state import check_id, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = {"record": "record.schema.json", "event": "event.schema.json"}
VERSION = 1
LIVE = ("created", "running", "restarting")


def boot_id() -> str:
    """This boot's ID: a record made in another boot names processes that are gone."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def new(container_id: str, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """The record of a container about to be created."""
    from oci.monitor import times

    return {"ociMonVersion": VERSION, "id": container_id, "name": name, "created": times.now(), "config": config,
            "state": {"status": "created", "pid": 0, "pidStartTime": 0, "bootId": "", "startedAt": None,
                      "finishedAt": None, "exitCode": None, "signal": None, "oomKilled": False, "restartCount": 0,
                      "manuallyStopped": False, "error": "", "logDropped": 0, "monitorPid": 0, "adopted": False}}


def save(root: Root, record: dict[str, Any]) -> None:
    from oci.jsonout import dumps

    write_atomic(root.record(record["id"]), (dumps(record, indent=1) + "\n").encode(), 0o600)


def load(root: Root, container_id: str, validate: bool = False) -> dict[str, Any]:
    """The record of `container_id`; NotFound when there is none, InvalidDocument when it is damaged."""
    path = root.record(container_id)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no such container: {container_id}") from None
    doc = parse(data, path)
    if validate:
        check(doc, "record", path)
    return doc


def parse(data: bytes, source: str) -> Any:
    """A JSON document; InvalidDocument (`FILE: /: not valid JSON ...`) if it is not one."""
    from oci.monitor.proto import decode

    try:
        return decode(data)
    except (ValueError, UnicodeDecodeError):
        return schema.parse(data, source)  # raises, with json's words for what is wrong


def check(doc: Any, kind: str, source: str) -> None:
    """Raise InvalidDocument (one line per violation, `FILE: /pointer: message`) unless `doc` is a valid `kind`."""
    problems = violations(doc, kind)
    if problems:
        raise InvalidDocument(source, problems)


def violations(doc: Any, kind: str) -> list[tuple[str, str]]:
    """Every schema violation of a record or event (`kind`) as (json-pointer, message), sorted."""
    from oci.schema import own_violations

    return own_violations(doc, os.path.join(HERE, SCHEMAS[kind]))


def resolve(root: Root, ref: str) -> str:
    """The ID a user means by `ref`: an ID, a name, or the unique start of an ID."""
    try:
        check_id(ref)
    except InvalidInput:
        raise NotFound(f"no such container: {ref}") from None
    if os.path.isfile(root.record(ref)):
        return ref
    ids = root.ids()
    for container_id in ids:
        try:
            if load(root, container_id).get("name") == ref:
                return container_id
        except (NotFound, InvalidInput):
            continue
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise InvalidInput(f"{ref!r} names several containers: {', '.join(matches)}")
    raise NotFound(f"no such container: {ref}")


# The config object, as record.schema.json describes it: key -> (type, required). Other keys are kept, not used.
_CONFIG: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "bundle": (str, True), "runtime": (dict, True), "command": (list, True), "tty": (bool, True),
    "interactive": (bool, True), "restartPolicy": (dict, True), "stopSignal": (str, True), "stopTimeout": (int, True),
    "log": (dict, True), "autoRemove": (bool, False),
}
CONFIG_KEYS = tuple(_CONFIG)
_PARTS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "runtime": {"path": (str, True), "root": ((str, type(None)), False)},
    "restartPolicy": {"name": (str, True), "maximumRetryCount": (int, True)},
    "log": {"path": (str, True), "maxSize": (int, True), "maxFiles": (int, True)},
}


def check_config(config: Any, source: str = "request") -> dict[str, Any]:
    """`config` if it is a record's config object (types and ranges of record.schema.json); InvalidInput if not."""
    from oci.monitor.policy import NAMES

    def fail(pointer: str, message: str) -> InvalidDocument:
        return InvalidDocument(source, [(pointer, message)])

    def fields(doc: Any, spec: dict[str, tuple[type | tuple[type, ...], bool]], base: str) -> None:
        if not isinstance(doc, dict):
            raise fail(base, "must be an object")
        for key, (kind, required) in spec.items():
            if key not in doc:
                if required:
                    raise fail(base, f"{key!r} is a required property")
                continue
            value = doc[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise fail(f"{base}/{key}", f"{value!r} is not of the expected type")

    fields(config, _CONFIG, "/config")
    for part, spec in _PARTS.items():
        fields(config[part], spec, f"/config/{part}")
    if not all(isinstance(arg, str) for arg in config["command"]):
        raise fail("/config/command", "every item must be a string")
    for pointer, path in (("/config/bundle", config["bundle"]), ("/config/runtime/path", config["runtime"]["path"]),
                          ("/config/log/path", config["log"]["path"])):
        if not path.startswith("/"):
            raise fail(pointer, f"{path!r} is not an absolute path")
    if config["restartPolicy"]["name"] not in NAMES:
        raise fail("/config/restartPolicy/name", f"{config['restartPolicy']['name']!r} is not one of {list(NAMES)}")
    for pointer, value, least in (("/config/stopTimeout", config["stopTimeout"], 0),
                                  ("/config/restartPolicy/maximumRetryCount",
                                   config["restartPolicy"]["maximumRetryCount"], 0),
                                  ("/config/log/maxSize", config["log"]["maxSize"], 0),
                                  ("/config/log/maxFiles", config["log"]["maxFiles"], 1)):
        if value < least:
            raise fail(pointer, f"{value} is less than the minimum of {least}")
    if not config["stopSignal"].startswith("SIG"):
        raise fail("/config/stopSignal", f"{config['stopSignal']!r} is not a signal name like SIGTERM")
    return config
