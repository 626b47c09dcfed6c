"""`manifest create/push/inspect`: multi-platform images as OCI indexes in the image store."""

from __future__ import annotations

import json
from typing import Any

from oci import schema
from oci.descriptor import INDEXES, OCI_INDEX, Descriptor
from oci.errors import Conflict, InvalidInput, NotFound
from oci.reference import TRANSPORT
from oci.registry.http import Options

from .images import ImageStore, StoredImage, parse_reference


def _platform(stored: StoredImage) -> dict[str, str]:
    config = stored.config
    platform = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
    if config.get("variant"):
        platform["variant"] = config["variant"]
    return platform


def create(images: ImageStore, name: str, members: list[StoredImage], amend: bool = False) -> str:
    """Store an index of `members` (one per platform, the later one winning) under `name`; its digest."""
    full = str(parse_reference(name))
    entries: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    existing = images.maybe_find(full)
    if existing is not None:
        if existing.descriptor.media_type not in INDEXES:
            raise InvalidInput(f"{name} names an image, not a manifest list")
        if not amend:
            raise Conflict(f"manifest list {name} already exists (use --amend)")
        for entry in images.layout.read_document(existing.descriptor).get("manifests", []):
            entries[tuple(sorted((entry.get("platform") or {}).items()))] = entry
    for stored in members:
        if stored.image is None:
            raise InvalidInput(f"{stored.names[0] if stored.names else stored.id}: a manifest list cannot be a member")
        platform = _platform(stored)
        entry = {"mediaType": stored.descriptor.media_type, "digest": str(stored.descriptor.digest),
                 "size": stored.descriptor.size, "platform": platform}
        entries[tuple(sorted(platform.items()))] = entry
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries.values())}
    data = json.dumps(index, indent=2).encode()
    schema.load(data, "index", f"manifest list {name}", remember=True)
    with images.layout.session():
        digest = images.layout.put_bytes(data)
        images.name([full], Descriptor(OCI_INDEX, digest, len(data)))
    return str(digest)


def push(images: ImageStore, name: str, target: str, registry: Options | None = None) -> Any:
    from oci.registry.push import push as push_image
    from oci.registry.registries_conf import resolve

    from .transfer import connect

    stored = images.find(name)
    if stored.descriptor.media_type not in INDEXES:
        raise InvalidInput(f"{name} is not a manifest list (push it with `ocikit push`)")
    found, options = resolve(target, pull=False, options=registry)
    ref = found[0].reference
    repository = connect(ref, options, push=True)
    return push_image(images.layout, stored.descriptor, repository, tags=[ref.tag] if ref.tag else [])


def inspect(images: ImageStore, name: str, registry: Options | None = None) -> Any:
    """A local list's index, else the document the registry serves for `name`."""
    found = images.maybe_find(name) if not name.startswith(TRANSPORT) else None
    if found is not None and found.descriptor.media_type in INDEXES:
        return images.layout.read_document(found.descriptor)
    from .transfer import repository

    ref = parse_reference(name)
    try:
        manifest = repository(name, registry).get_manifest(ref.identifier)
    except NotFound:
        raise NotFound(f"no such manifest: {ref}") from None
    return schema.parse(manifest.data, str(ref))


def remove(images: ImageStore, name: str) -> None:
    stored = images.find(name)
    if stored.descriptor.media_type not in INDEXES:
        raise InvalidInput(f"{name} is not a manifest list")
    images.drop(stored)
