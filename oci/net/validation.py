"""Validation of oci-net's own JSON documents against the schemas beside this module.

`network.schema.json` describes a stored network, `cni-config.schema.json` the CNI
network configuration of the `ocikit` plugin. Both are Draft 7. A hook or a CNI plugin
starts for every container, and importing jsonschema costs more than the rest of the
start: a document that validated once is remembered in a folder of the state directory,
as `oci.schema` does for OCI documents. An entry holds the schema and the canonical
document (sorted keys) and is named by kind, size and CRC-32 of both; it counts only if
its content is exactly that, so a CRC collision is a miss, never a wrong answer.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from typing import Any

from oci.errors import InvalidDocument

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = {"network": "network.schema.json", "cni-config": "cni-config.schema.json"}


def schema_path(kind: str) -> str:
    return os.path.join(HERE, SCHEMAS[kind])


def violations(doc: Any, kind: str) -> list[tuple[str, str]]:
    """Every violation of `doc` as (json-pointer, message), sorted."""
    from oci.schema import own_violations

    return own_violations(doc, schema_path(kind))


def validate(doc: Any, kind: str, source: str, memo_dir: str | None = None) -> None:
    """Raise InvalidDocument (exit 2, one line per violation) unless `doc` is a valid `kind`."""
    entry = key = None
    if memo_dir is not None:
        with open(schema_path(kind), "rb") as f:
            entry = f.read() + b"\0" + json.dumps(doc, sort_keys=True).encode()
        key = os.path.join(memo_dir, f"{kind}-{len(entry)}-{zlib.crc32(entry):08x}")
        try:
            with open(key, "rb") as f:
                if f.read() == entry:
                    return
        except OSError:
            pass
    problems = violations(doc, kind)
    if problems:
        raise InvalidDocument(source, problems)
    if key is not None and entry is not None:
        _remember(key, entry)


def _remember(key: str, entry: bytes) -> None:
    """Write a memo entry (temporary file and rename: readers see all or nothing)."""
    tmp = f"{key}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(entry)
        os.rename(tmp, key)
    except OSError:  # a memo that cannot be written only costs speed
        try:
            os.unlink(tmp)
        except OSError:
            pass


# The parts of a CNI configuration that change with every container: prevResult (our own
# earlier result), runtimeConfig (published ports, aliases) and the GC list. Remembering
# documents that include them would miss every time; they are kept out of the remembered
# digest and accepted by `plainly_valid_volatile`, or else validated in full.
CNI_VOLATILE = ("prevResult", "runtimeConfig", "cni.dev/valid-attachments")
PROTOCOLS = ("tcp", "udp", "sctp", "TCP", "UDP", "SCTP")
# cni-config.schema.json's patterns for runtimeConfig ips and mac (`\Z`: `$` would take a final newline)
IP_RE = re.compile(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?\Z")
MAC_RE = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}\Z")


def _port(value: Any) -> bool:
    return type(value) is int and 1 <= value <= 65535


def _plain_mapping(entry: Any) -> bool:
    return (type(entry) is dict and _port(entry.get("hostPort")) and _port(entry.get("containerPort"))
            and entry.get("protocol", "tcp") in PROTOCOLS and type(entry.get("hostIP", "")) is str)


def plainly_valid_volatile(conf: dict[str, Any]) -> bool:
    """Whether the per-container parts of a CNI configuration are of the plain, valid kind.

    Only ever a shortcut to acceptance, never to rejection: it is stricter than
    cni-config.schema.json (a test holds it to that), and whatever it does not accept is
    validated against the schema, which reports the violations. It spares a container with
    published ports the import of jsonschema (~80 ms) that a memo miss would cost.
    """
    prev = conf.get("prevResult", {})
    runtime = conf.get("runtimeConfig", {})
    if type(prev) is not dict or type(runtime) is not dict:
        return False
    maps = runtime.get("portMappings", [])
    if type(maps) is not list or not all(_plain_mapping(entry) for entry in maps):
        return False
    if not all(_plain_runtime(key, value) for key, value in runtime.items() if key != "portMappings"):
        return False
    valid = conf.get("cni.dev/valid-attachments", [])
    return type(valid) is list and all(
        type(a) is dict and type(a.get("containerID")) is str and type(a.get("ifname")) is str for a in valid)


def _plain_runtime(key: str, value: Any) -> bool:
    """The other capabilities oci-net reads (schema: runtimeConfig), of the plain kind."""
    if key == "aliases":
        return type(value) is dict and all(type(names) is list and all(type(n) is str for n in names)
                                           for names in value.values())
    if key == "ips":
        return type(value) is list and all(type(a) is str and IP_RE.match(a) is not None for a in value)
    if key == "mac":
        return type(value) is str and MAC_RE.match(value) is not None
    return False


STATUSES = ("creating", "created", "running", "stopped")


def plainly_valid_state(doc: Any) -> bool:
    """Whether an OCI container state (what a runtime hands its hooks) is of the plain, valid kind.

    The same kind of shortcut as `plainly_valid_volatile`, for the runtime-spec's
    state-schema.json: stricter than the schema (a test holds it to that), so that a hook,
    run twice per container with a state that is new every time, does not import jsonschema
    (~80 ms) to accept it; whatever it does not accept goes to oci.schema.
    """
    if type(doc) is not dict or doc.get("status") not in STATUSES:
        return False
    if not all(type(doc.get(key)) is str for key in ("ociVersion", "id", "bundle")):
        return False
    pid = doc.get("pid", 0)
    annotations = doc.get("annotations", {})
    return (type(pid) is int and pid >= 0 and type(annotations) is dict
            and all(type(value) is str for value in annotations.values()))
