"""oci-build's cache: what each step made, by cache key, beside the blobs in an OCI layout.

It lives in `LAYOUT/.ocikit/build-cache/` of the layout it caches for (the first `-t`
layout, or `--cache-dir`):

* `steps/KEY.json`: the layer a filesystem step (RUN, COPY, ADD, WORKDIR) made, or none,
  and its history entry. KEY chains the parent's key, the instruction after ARG and ENV
  expansion, and the content digest of the files it copies (`executor.StepKey`);
* `images/KEY.json`: the manifest a stage ended with, so that an unchanged rebuild gives
  the very same image (its dates included);
* `bases/KEY.json`: the manifest a FROM reference was resolved to (pulled once; `--pull`
  asks the registry again);
* `trees/HEX/`: the files of a layer this cache made (the step's overlay upper directory),
  ready to be a lower directory of the next steps, so a rebuild unpacks nothing;
* `context/HEX.json`: content digests of a build context's files, by stat;
* `work/ID/`: a running build's scratch folder (a build killed leaves one; the next removes it).

The folder is private to root (0700): its trees and scratch folders hold what images hold,
device nodes an ADD archive made (`/dev/sda`, mode 0666) included, which no other user of
the host may reach.

Records are JSON validated by `cache-record.schema.json`; one that is not valid, or whose
blobs the layout lost (its garbage collection deletes untagged blobs), is a cache miss.
`prune()` empties the cache and collects the layout's unreferenced blobs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from oci import log
from oci.descriptor import Descriptor
from oci.digest import Digest
from oci.dockerfile.lifetime import remove_tree
from oci.errors import InvalidDocument
from oci.fsutil import write_atomic
from oci.layout import Layout
from oci.schema import own_violations

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache-record.schema.json")
KINDS = ("layer", "image", "base", "context")


@dataclass
class LayerRecord:
    """What a filesystem step made: a layer (None when it changed nothing) and its history entry."""

    layer: Descriptor | None
    diff_id: Digest | None
    history: dict[str, Any]


def _digest_ok(value: Any) -> bool:
    return type(value) is str and len(value) == 71 and value.startswith("sha256:") and \
        all(c in "0123456789abcdef" for c in value[7:])


def _descriptor_ok(value: Any) -> bool:
    return (type(value) is dict and type(value.get("mediaType")) is str and bool(value["mediaType"])
            and _digest_ok(value.get("digest")) and type(value.get("size")) is int and value["size"] >= 0
            and all(type(v) is str for v in (value.get("annotations") or {}).values()))


def plainly_valid(doc: Any) -> bool:
    """Whether a record is of the plain, valid kind: stricter than the schema (a test holds it
    to that), so that reading the cache never imports jsonschema; anything else is checked
    against the schema, which names what is wrong."""
    if type(doc) is not dict or doc.get("kind") not in KINDS:
        return False
    kind = doc["kind"]
    if kind == "layer":
        history = doc.get("history")
        layer, diff_id = doc.get("layer", 0), doc.get("diffID", 0)
        return ((layer is None and diff_id is None) or (_descriptor_ok(layer) and _digest_ok(diff_id))) and \
            type(history) is dict and type(history.get("created_by")) is str and \
            type(history.get("created", "")) is str and type(history.get("comment", "")) is str and \
            type(history.get("empty_layer", False)) is bool
    if kind == "context":
        files = doc.get("files")
        return type(files) is dict and all(
            type(entry) is list and len(entry) == 5 and all(type(n) is int for n in entry[:4])
            and type(entry[4]) is str and len(entry[4]) == 64 and all(c in "0123456789abcdef" for c in entry[4])
            for entry in files.values())
    if kind == "base" and not (type(doc.get("reference")) is str and doc["reference"]
                               and type(doc.get("platform", "")) is str):
        return False
    return _descriptor_ok(doc.get("manifest"))


def violations(doc: Any) -> list[tuple[str, str]]:
    """Every schema violation of a record as (json-pointer, message)."""
    return own_violations(doc, SCHEMA)


def read_record(path: str, kind: str) -> dict[str, Any] | None:
    """The record of `kind` in the file at `path`; None when missing, or (with a warning naming
    the file and JSON pointer) when it is not a valid record."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        log.warning(f"{path}: /: not valid JSON (ignored: the step runs again)")
        return None
    if not plainly_valid(doc):
        problems = violations(doc)
        if problems:
            log.warning(str(InvalidDocument(path, problems)).splitlines()[0] + " (ignored: the step runs again)")
            return None
    if doc.get("kind") != kind:
        return None
    return doc


class BuildCache:
    """The cache of one layout (see the module doc)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.dir = os.path.join(layout.path, ".ocikit", "build-cache")
        self._lock_fd: int | None = None

    def make_private(self) -> None:
        """Create the cache folder, readable by its owner only (see the module doc)."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if os.stat(self.dir).st_mode & 0o077:
            os.chmod(self.dir, 0o700)

    def _path(self, folder: str, key: str) -> str:
        return os.path.join(self.dir, folder, f"{key}.json")

    # -- records -----------------------------------------------------------

    def _read(self, folder: str, key: str, kind: str) -> dict[str, Any] | None:
        return read_record(self._path(folder, key), kind)

    def _write(self, folder: str, key: str, doc: dict[str, Any]) -> None:
        os.makedirs(os.path.join(self.dir, folder), exist_ok=True)
        write_atomic(self._path(folder, key), json.dumps(doc, sort_keys=True).encode())

    def _present(self, descriptor: Descriptor) -> bool:
        return self.layout.has_blob(descriptor.digest, descriptor.size)

    def layer(self, key: str) -> LayerRecord | None:
        """The record of a filesystem step, if its layer blob is still there."""
        doc = self._read("steps", key, "layer")
        if doc is None:
            return None
        layer = Descriptor.from_json(doc["layer"]) if doc["layer"] is not None else None
        if layer is not None and not self._present(layer):
            return None
        diff_id = Digest.parse(doc["diffID"]) if doc["diffID"] is not None else None
        return LayerRecord(layer, diff_id, dict(doc["history"]))

    def put_layer(self, key: str, record: LayerRecord) -> None:
        self._write("steps", key, {"kind": "layer", "layer": record.layer.to_json() if record.layer else None,
                                   "diffID": str(record.diff_id) if record.diff_id else None,
                                   "history": record.history})

    def image(self, key: str) -> Descriptor | None:
        """The manifest a stage ended with, if it and its blobs are still there."""
        doc = self._read("images", key, "image")
        if doc is None:
            return None
        manifest = Descriptor.from_json(doc["manifest"])
        if not self._present(manifest):
            return None
        try:
            document = self.layout.read_document(manifest)
            config = Descriptor.from_json(document["config"])
            if not self._present(config) or not all(self._present(Descriptor.from_json(layer))
                                                    for layer in document.get("layers", [])):
                return None
        except (OSError, ValueError, KeyError):
            return None
        return manifest

    def put_image(self, key: str, manifest: Descriptor) -> None:
        self._write("images", key, {"kind": "image", "manifest": manifest.to_json()})

    def base(self, key: str) -> Descriptor | None:
        """The manifest a FROM reference was resolved to (its blobs checked by the caller)."""
        doc = self._read("bases", key, "base")
        if doc is None:
            return None
        manifest = Descriptor.from_json(doc["manifest"])
        return manifest if self._present(manifest) else None

    def put_base(self, key: str, reference: str, platform: str, manifest: Descriptor) -> None:
        self._write("bases", key, {"kind": "base", "reference": reference, "platform": platform,
                                   "manifest": manifest.to_json()})

    # -- trees ---------------------------------------------------------------

    def tree(self, diff_id: Digest | None) -> str | None:
        """The files of layer `diff_id`, when this cache holds them."""
        if diff_id is None:
            return None
        path = os.path.join(self.dir, "trees", diff_id.hex)
        return path if os.path.isdir(path) else None

    def adopt(self, diff_id: Digest, folder: str) -> str:
        """Keep `folder` (a step's upper directory, on this filesystem) as the tree of `diff_id`."""
        target = os.path.join(self.dir, "trees", diff_id.hex)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.rename(folder, target)
        except OSError:
            if not os.path.isdir(target):  # not there by a concurrent build: keep the folder where it is
                return folder
            remove_tree(folder)
        return target

    # -- scratch ---------------------------------------------------------------

    def context_hashes(self, context: str) -> str:
        return os.path.join(self.dir, "context", hashlib.sha256(context.encode()).hexdigest()[:32] + ".json")

    def work_dir(self) -> str:
        """A fresh scratch folder for this build, locked while it runs; stale ones are removed."""
        work = os.path.join(self.dir, "work")
        os.makedirs(work, exist_ok=True)
        self._sweep(work)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        lock = os.open(os.path.join(work, name + ".lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        self._lock_fd = lock
        path = os.path.join(work, name)
        os.makedirs(path)
        return path

    def release(self, path: str) -> None:
        remove_tree(path)
        try:
            os.unlink(path + ".lock")
        except FileNotFoundError:
            pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def sweep_work(self) -> None:
        """Remove the scratch folders of builds that are gone (killed ones leave theirs)."""
        work = os.path.join(self.dir, "work")
        if os.path.isdir(work):
            self._sweep(work)

    @staticmethod
    def _sweep(work: str) -> None:
        """Remove the scratch folders of builds that are gone (their lock is free)."""
        for name in os.listdir(work):
            if not name.endswith(".lock"):
                continue
            path = os.path.join(work, name)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            remove_tree(path[: -len(".lock")])
            os.unlink(path)
            os.close(fd)

    # -- pruning ---------------------------------------------------------------

    def prune(self) -> tuple[int, int]:
        """Empty the cache (not the folders of running builds) and collect the layout's
        unreferenced blobs; (records removed, blobs removed)."""
        records = 0
        for folder in ("steps", "images", "bases", "context"):
            path = os.path.join(self.dir, folder)
            if os.path.isdir(path):
                records += len(os.listdir(path))
                remove_tree(path)
        remove_tree(os.path.join(self.dir, "trees"))
        if os.path.isdir(os.path.join(self.dir, "work")):
            self._sweep(os.path.join(self.dir, "work"))
        blobs = self.layout.gc()
        return records, len(blobs)
