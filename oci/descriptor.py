"""Content descriptors and the media types ocikit knows."""

from __future__ import annotations

from oci.digest import Digest
from oci.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# Layer media type -> compression ("" for none).
LAYERS = {
    OCI_LAYER: "",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    DOCKER_LAYER: "",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
}

REF_NAME = "org.opencontainers.image.ref.name"


class Descriptor:
    """What the image-spec calls a content descriptor: media type, digest, size and extras.

    Immutable; equal (and hashed) by media type, digest and size only."""

    __slots__ = ("media_type", "digest", "size", "annotations", "platform", "artifact_type")
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str]
    platform: dict[str, Any] | None
    artifact_type: str | None

    def __init__(self, media_type: str, digest: Digest, size: int, annotations: dict[str, str] | None = None,
                 platform: dict[str, Any] | None = None, artifact_type: str | None = None) -> None:
        setter = object.__setattr__
        setter(self, "media_type", media_type)
        setter(self, "digest", digest)
        setter(self, "size", size)
        setter(self, "annotations", {} if annotations is None else annotations)
        setter(self, "platform", platform)
        setter(self, "artifact_type", artifact_type)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Descriptor is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Descriptor is immutable: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.media_type, self.digest, self.size) == (other.media_type, other.digest, other.size)

    def __hash__(self) -> int:
        return hash((self.media_type, self.digest, self.size))

    def __repr__(self) -> str:
        return (f"Descriptor(media_type={self.media_type!r}, digest={self.digest!r}, size={self.size!r}, "
                f"annotations={self.annotations!r}, platform={self.platform!r}, artifact_type={self.artifact_type!r})")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Descriptor:
        """Build from a descriptor object already validated against the schema."""
        size = doc.get("size")
        if not isinstance(size, int) or size < 0:
            raise InvalidInput(f"descriptor size {size!r} is not a non-negative integer")
        return cls(
            media_type=doc["mediaType"],
            digest=Digest.parse(doc["digest"]),
            size=size,
            annotations=dict(doc.get("annotations") or {}),
            platform=doc.get("platform"),
            artifact_type=doc.get("artifactType"),
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as the image-spec writes it (fields in the spec's order)."""
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            doc["artifactType"] = self.artifact_type
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        if self.platform:
            doc["platform"] = dict(self.platform)
        return doc

    def with_annotations(self, **extra: str) -> Descriptor:
        """A copy with extra annotations merged in."""
        merged = {**self.annotations, **extra}
        return Descriptor(self.media_type, self.digest, self.size, merged, self.platform, self.artifact_type)

    @property
    def ref_name(self) -> str | None:
        """The tag this descriptor carries in an index (`org.opencontainers.image.ref.name`)."""
        return self.annotations.get(REF_NAME)
