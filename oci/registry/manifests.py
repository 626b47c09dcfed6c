"""Manifests and indexes as registries serve them and layouts hold them: the bytes exactly as
written, with their verified digest and their media type (`Manifest`); the types a client asks
for, the size cap, and how the media type of served bytes is known. What every source of images
(oci.registry.sources: a registry's repository, another layout) hands the pull.
"""

from __future__ import annotations

from oci import schema
from oci.descriptor import DOCKER_LIST, DOCKER_MANIFEST, INDEXES, MANIFESTS, OCI_INDEX, OCI_MANIFEST, Descriptor
from oci.digest import Digest
from oci.errors import IntegrityError, Unsupported

MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
MAX_MANIFEST = 4 << 20  # the distribution spec lets registries refuse manifests above 4 MiB


class Manifest:
    """A manifest or index exactly as the registry served it, with its verified digest. (A plain
    class: making a namedtuple class costs a warm pull's start ~0.1 ms.)"""

    __slots__ = ("media_type", "digest", "data")

    def __init__(self, media_type: str, digest: Digest, data: bytes) -> None:
        self.media_type, self.digest, self.data = media_type, digest, data

    def __repr__(self) -> str:
        return f"Manifest({self.media_type!r}, {self.digest}, {len(self.data)} bytes)"

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


def manifest_media_type(data: bytes, content_type: str | None, what: str) -> str:
    """The media type of served manifest bytes: the document's own `mediaType`, else Content-Type."""
    doc = schema.recall(data, ("manifest", "index"))  # bytes fetched before need no JSON parser
    doc = schema.parse(data, what) if doc is None else doc
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    header = (content_type or "").split(";", 1)[0].strip()
    if isinstance(declared, str) and declared and header in MANIFESTS | INDEXES and header != declared:
        raise IntegrityError(f"{what}: the document says mediaType {declared}, the registry served it as {header}")
    media_type = declared if isinstance(declared, str) and declared else header
    if media_type not in MANIFESTS | INDEXES:
        if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
            raise Unsupported(f"{what}: Docker schema 1 manifests are not supported")
        if isinstance(doc, dict) and isinstance(doc.get("manifests"), list):
            media_type = OCI_INDEX
        elif isinstance(doc, dict) and "config" in doc:
            media_type = OCI_MANIFEST
        else:
            raise Unsupported(f"{what}: unsupported manifest media type {media_type or 'none'!r}")
    return media_type
