"""`save` and `load`: images as tar archives other tools read and write.

`save` writes, by default, the form Docker 25 writes: an OCI image layout (oci-layout,
index.json, blobs/sha256/...) that is also a docker-archive (manifest.json naming the same
config and layer blobs, with RepoTags), so `docker load`, `podman load`, skopeo's
`docker-archive:` and `oci-archive:` and ocikit all read it, and ocikit gets the very same
manifest back. `--format oci-archive` leaves out manifest.json; `docker-archive` writes
only it, the repositories file and the blobs, as older Docker versions did.

`load` takes any of these: with an index.json the image manifests come back unchanged (same
digests); a plain docker-archive (manifest.json, `ID/layer.tar`) gets a Docker schema 2
manifest made for its layers as they are in the archive. Every blob is verified against its
digest, every layer against the config's diff_ids, and no entry is written anywhere but into
the image store's blobs.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import time
from typing import IO, Any

from oci import schema
from oci.descriptor import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_ZSTD,
    DOCKER_MANIFEST,
    INDEXES,
    MANIFESTS,
    OCI_INDEX,
    REF_NAME,
    Descriptor,
)
from oci.digest import Digest
from oci.errors import IntegrityError, InvalidInput, NotFound

from .images import ImageStore, StoredImage, familiar, parse_reference

FORMATS = ("docker-archive", "oci-archive", "docker-oci")
IMAGE_NAME = "io.containerd.image.name"  # the full name Docker and containerd put on an index entry
MAX_DOCUMENT = 4 << 20


# -- save ----------------------------------------------------------------------------------


def _blobs_of(store: ImageStore, stored: StoredImage) -> list[Descriptor]:
    layout = store.layout
    found = [stored.descriptor]
    pending = [stored.descriptor]
    while pending:
        descriptor = pending.pop()
        if descriptor.media_type in INDEXES | MANIFESTS:
            doc = layout.read_document(descriptor)
            children = [Descriptor.from_json(d) for d in doc.get("manifests", []) + doc.get("layers", [])]
            if "config" in doc:
                children.insert(0, Descriptor.from_json(doc["config"]))
            found += children
            pending += [c for c in children if c.media_type in INDEXES | MANIFESTS]
    return found


def save(store: ImageStore, names: list[str], output: IO[bytes], fmt: str = "docker-oci") -> None:
    """Write the images `names` name as one tar archive to `output`."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r} (docker-archive, oci-archive)")
    chosen: list[tuple[StoredImage, list[str]]] = []
    for text in names:
        stored = store.find(text)
        wanted = [n for n in stored.names if _named_by(text, n)] or stored.names
        chosen.append((stored, wanted))
    mtime = int(time.time())
    written: set[str] = set()
    with tarfile.open(fileobj=output, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def add_bytes(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644

            tar.addfile(info, io.BytesIO(data))

        def add_dir(path: str) -> None:
            info = tarfile.TarInfo(path)
            info.type, info.mtime, info.mode = tarfile.DIRTYPE, mtime, 0o755
            tar.addfile(info)

        if fmt != "docker-archive":
            add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_dir("blobs")
        add_dir("blobs/sha256")
        manifests: list[dict[str, Any]] = []
        index_entries: list[dict[str, Any]] = []
        for stored, wanted in chosen:
            for blob in _blobs_of(store, stored):
                path = f"blobs/{blob.digest.algorithm}/{blob.digest.hex}"
                if path in written:
                    continue
                written.add(path)
                info = tarfile.TarInfo(path)
                info.size, info.mtime, info.mode = blob.size, mtime, 0o644
                with store.layout.open_blob(blob) as reader:
                    tar.addfile(info, reader)
            if stored.image is not None:
                manifests.append({"Config": f"blobs/sha256/{stored.image.config_descriptor.digest.hex}",
                                  "RepoTags": [familiar(n) for n in wanted if "@" not in n] or None,
                                  "Layers": [f"blobs/sha256/{d.digest.hex}" for d in stored.image.layers]})
            for name in wanted or [""]:
                annotations = {}
                if name:
                    annotations = {IMAGE_NAME: name, REF_NAME: parse_reference(name).tag or name}
                entry = Descriptor(stored.descriptor.media_type, stored.descriptor.digest, stored.descriptor.size,
                                   annotations or None, stored.descriptor.platform).to_json()
                index_entries.append(entry)
        if fmt != "docker-archive":
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
            add_bytes("index.json", json.dumps(index, separators=(",", ":")).encode())
        if fmt != "oci-archive":
            add_bytes("manifest.json", json.dumps(manifests, separators=(",", ":")).encode())
            repositories: dict[str, dict[str, str]] = {}
            for stored, wanted in chosen:
                if stored.image is None or not stored.image.layers:
                    continue
                for name in wanted:
                    ref = parse_reference(name)
                    if ref.tag:
                        repo = familiar(name).rsplit(":", 1)[0]
                        repositories.setdefault(repo, {})[ref.tag] = stored.image.layers[-1].digest.hex
            if repositories:
                add_bytes("repositories", json.dumps(repositories).encode())


def _named_by(text: str, name: str) -> bool:
    try:
        return str(parse_reference(text)) == name
    except Exception:  # noqa: BLE001 -- an ID names no tag in particular
        return False


# -- load ----------------------------------------------------------------------------------


class _Archive:
    """The members of a tar archive, read on demand (the file must be seekable)."""

    def __init__(self, file: IO[bytes]) -> None:
        try:
            self.tar = tarfile.open(fileobj=file, mode="r:*")
            members = self.tar.getmembers()
        except tarfile.TarError as err:
            raise InvalidInput(f"not a tar archive: {err}") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            self.members[posixpath.normpath(member.name.lstrip("/"))] = member

    def has(self, path: str) -> bool:
        return posixpath.normpath(path) in self.members

    def open(self, path: str, depth: int = 0) -> IO[bytes]:
        """A regular member by path, following symlinks and hard links within the archive."""
        path = posixpath.normpath(path.lstrip("/"))
        member = self.members.get(path)
        if member is None:
            raise NotFound(f"archive entry {path!r} is missing")
        if member.issym() or member.islnk():
            if depth > 8:
                raise InvalidInput(f"archive entry {path!r}: too many links")
            target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(path), member.linkname)
            return self.open(target, depth + 1)
        if not member.isreg():
            raise InvalidInput(f"archive entry {path!r} is not a regular file")
        handle = self.tar.extractfile(member)
        assert handle is not None
        return handle

    def read(self, path: str, limit: int = MAX_DOCUMENT) -> bytes:
        with self.open(path) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise IntegrityError(f"archive entry {path!r}: larger than {limit} bytes")
        return data

    def json(self, path: str) -> Any:
        try:
            return json.loads(self.read(path))
        except ValueError as err:
            raise InvalidInput(f"archive entry {path!r}: not valid JSON: {err}") from None


def load(store: ImageStore, file: IO[bytes]) -> list[str]:
    """Load every image of the archive into the store; the lines `docker load` prints."""
    archive = _Archive(file)
    layout = store.layout
    loaded: list[str] = []
    docker_manifest = archive.json("manifest.json") if archive.has("manifest.json") else None
    tags_by_config: dict[str, list[str]] = {}
    for entry in docker_manifest or []:
        config = posixpath.basename(str(entry.get("Config", ""))).removesuffix(".json")
        tags_by_config.setdefault(config, []).extend(entry.get("RepoTags") or [])
    with layout.session():
        if archive.has("index.json"):
            index = archive.json("index.json")
            for entry in index.get("manifests", []):
                descriptor = Descriptor.from_json(entry)
                _copy_tree(archive, layout, descriptor)
                names = _names(entry, descriptor, layout, tags_by_config)
                loaded += _name_loaded(store, names, descriptor)
        elif docker_manifest is not None:
            for entry in docker_manifest:
                descriptor = _from_docker_archive(archive, layout, entry)
                names = [str(parse_reference(t)) for t in entry.get("RepoTags") or []]
                loaded += _name_loaded(store, names, descriptor)
        else:
            raise InvalidInput("not an image archive: it has neither index.json nor manifest.json")
    return loaded


def _name_loaded(store: ImageStore, names: list[str], descriptor: Descriptor) -> list[str]:
    store.name(names or [str(descriptor.digest)], descriptor)
    if names:
        return [f"Loaded image: {familiar(n)}" for n in names]
    return [f"Loaded image ID: {store.find(str(descriptor.digest)).id}"]


def _names(entry: dict[str, Any], descriptor: Descriptor, layout: Any, tags_by_config: dict[str, list[str]]
           ) -> list[str]:
    annotations = entry.get("annotations") or {}
    names = []
    for candidate in (annotations.get(IMAGE_NAME), annotations.get(REF_NAME)):
        if candidate and ("/" in candidate or ":" in candidate):
            try:
                names.append(str(parse_reference(candidate)))
                break
            except Exception:  # noqa: BLE001 -- a bare tag such as `latest` names no repository
                continue
    if descriptor.media_type in MANIFESTS:
        config = layout.read_document(descriptor).get("config", {}).get("digest", "")
        names += [str(parse_reference(t)) for t in tags_by_config.get(config.partition(":")[2], [])]
    return list(dict.fromkeys(names))


def _put(archive: _Archive, layout: Any, descriptor: Descriptor) -> None:
    if layout.has_blob(descriptor.digest, descriptor.size):
        return
    path = f"blobs/{descriptor.digest.algorithm}/{descriptor.digest.hex}"
    with archive.open(path) as handle:
        layout.put_blob(handle, descriptor.digest, descriptor.size)


def _copy_tree(archive: _Archive, layout: Any, descriptor: Descriptor, depth: int = 0) -> None:
    """The blobs of an index entry, documents validated before their children are copied."""
    if depth > 4:
        raise InvalidInput("archive: indexes nested too deep")
    _put(archive, layout, descriptor)
    if descriptor.media_type not in INDEXES | MANIFESTS:
        return
    doc = layout.read_document(descriptor)
    if "config" in doc:
        _put(archive, layout, Descriptor.from_json(doc["config"]))
    for child in doc.get("layers", []):
        _put(archive, layout, Descriptor.from_json(child))
    for child in doc.get("manifests", []):
        child_descriptor = Descriptor.from_json(child)
        path = f"blobs/{child_descriptor.digest.algorithm}/{child_descriptor.digest.hex}"
        if archive.has(path) or layout.has_blob(child_descriptor.digest):
            _copy_tree(archive, layout, child_descriptor, depth + 1)


def _from_docker_archive(archive: _Archive, layout: Any, entry: dict[str, Any]) -> Descriptor:
    """A docker-archive image: config and layers stored as they are, a schema 2 manifest made for them."""
    config_path = str(entry.get("Config") or "")
    config_data = archive.read(config_path)
    config_digest = Digest.of(config_data)
    expected = posixpath.basename(config_path).removesuffix(".json")
    if len(expected) == 64 and expected != config_digest.hex:
        raise IntegrityError(f"archive entry {config_path!r}: its content is {config_digest}, not sha256:{expected}")
    config = schema.parse(config_data, config_path)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    layers_paths = list(entry.get("Layers") or [])
    if len(diff_ids) != len(layers_paths):
        raise IntegrityError(f"{config_path}: {len(diff_ids)} diff_ids for {len(layers_paths)} layers")
    layout.put_bytes(config_data)
    layers = []
    for path, diff_id in zip(layers_paths, diff_ids, strict=True):
        layers.append(_put_layer(archive, layout, path, Digest.parse(diff_id)))
    manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": str(config_digest), "size": len(config_data)},
                "layers": [d.to_json() for d in layers]}
    data = json.dumps(manifest, indent=3).encode()
    schema.load(data, "manifest", "<made manifest>", remember=True)
    digest = layout.put_bytes(data)
    return Descriptor(DOCKER_MANIFEST, digest, len(data))


def _put_layer(archive: _Archive, layout: Any, path: str, diff_id: Digest) -> Descriptor:
    """Store one layer as it is in the archive, checking its uncompressed content against `diff_id`."""
    with archive.open(path) as handle:
        head = handle.read(4)
    media_type = {b"\x1f\x8b": DOCKER_LAYER_GZIP}.get(head[:2]) or (
        DOCKER_LAYER_ZSTD if head == b"\x28\xb5\x2f\xfd" else DOCKER_LAYER)
    with archive.open(path) as handle:
        digest, size = layout.put_blob(handle)
    with archive.open(path) as handle:
        uncompressed = _uncompressed_digest(handle, media_type)
    if uncompressed != diff_id.hex:
        raise IntegrityError(f"archive entry {path!r}: its content is sha256:{uncompressed}, the config says {diff_id}")
    return Descriptor(media_type, digest, size)


def _uncompressed_digest(handle: IO[bytes], media_type: str) -> str:
    hasher = hashlib.sha256()
    stream: Any = handle
    if media_type == DOCKER_LAYER_GZIP:
        import gzip

        stream = gzip.GzipFile(fileobj=handle)
    elif media_type == DOCKER_LAYER_ZSTD:
        import zstandard

        stream = zstandard.ZstdDecompressor().stream_reader(handle)
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        hasher.update(chunk)
    return hasher.hexdigest()

