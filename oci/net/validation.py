"""Validation of oci-net's own JSON documents against the schemas beside this module.

`network.schema.json` describes a stored network, `cni-config.schema.json` the CNI
network configuration of the `ocikit` plugin. Both are Draft 7. A hook or a CNI plugin
starts for every container, and importing jsonschema costs more than the rest of the
start: a document that validated once is remembered by its digest (over the schema and
the document) in a folder of the state directory, as `oci.schema` does for OCI documents.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any

from oci.errors import InvalidDocument

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = {"network": "network.schema.json", "cni-config": "cni-config.schema.json"}


def schema_path(kind: str) -> str:
    return os.path.join(HERE, SCHEMAS[kind])


def violations(doc: Any, kind: str) -> list[tuple[str, str]]:
    """Every violation of `doc` as (json-pointer, message), sorted."""
    from jsonschema import Draft7Validator

    with open(schema_path(kind), "rb") as f:
        validator = Draft7Validator(json.load(f))
    found = set()
    for error in validator.iter_errors(doc):
        pointer = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path)
        found.add((pointer, error.message[:300]))
    return sorted(found)


def validate(doc: Any, kind: str, source: str, memo_dir: str | None = None) -> None:
    """Raise InvalidDocument (exit 2, one line per violation) unless `doc` is a valid `kind`."""
    key = None
    if memo_dir is not None:
        with open(schema_path(kind), "rb") as f:
            digest = hashlib.sha256(f.read())
        digest.update(json.dumps(doc, sort_keys=True).encode())
        key = os.path.join(memo_dir, digest.hexdigest())
        if os.path.exists(key):
            return
    problems = violations(doc, kind)
    if problems:
        raise InvalidDocument(source, problems)
    if key is not None:
        with contextlib.suppress(OSError):
            os.makedirs(memo_dir, mode=0o700, exist_ok=True)
            os.close(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600))
