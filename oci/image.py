"""An image in a layout: its manifest (an index resolved to one platform), config and layers."""

from __future__ import annotations

import os
from collections import namedtuple

from oci.descriptor import INDEXES, LAYERS, MANIFESTS, REF_NAME, Descriptor
from oci.digest import Digest
from oci.errors import IntegrityError, InvalidInput, Unsupported
from oci.layout import Layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from oci import platform as platforms

TRANSPORT = "oci:"  # skopeo's and podman's prefix of an image in a layout: optional where a layout is expected
LAYOUT_ANNOTATION = "org.ocikit.layout"  # where the image lives, when a descriptor travels through a pipe


class Image(namedtuple("Image", ["layout", "descriptor", "manifest", "config_descriptor", "config"])):
    """A single-platform image whose manifest and config were verified and validated."""

    __slots__ = ()
    layout: Layout
    descriptor: Descriptor  # the manifest's descriptor
    manifest: dict[str, Any]
    config_descriptor: Descriptor
    config: dict[str, Any]

    @classmethod
    def load(cls, layout: Layout, descriptor: Descriptor, platform: platforms.Platform | None = None) -> Image:
        """Load the image `descriptor` names, resolving an index to `platform` (default: the host)."""
        for _ in range(4):  # an index may point at an index
            if descriptor.media_type in INDEXES:
                from oci.platform import Platform, choose

                index = layout.read_document(descriptor)
                wanted = platform or Platform.host()
                chosen = choose(index.get("manifests", []), wanted, f"{layout.path}@{descriptor.digest}")
                descriptor = Descriptor.from_json(chosen)
                continue
            break
        if descriptor.media_type not in MANIFESTS:
            raise InvalidInput(f"{layout.path}@{descriptor.digest}: not an image manifest ({descriptor.media_type})")
        manifest = layout.read_document(descriptor)
        config_descriptor = Descriptor.from_json(manifest["config"])
        config = layout.read_document(config_descriptor)
        image = cls(layout, descriptor, manifest, config_descriptor, config)
        if len(image.diff_ids) != len(image.layers):
            raise IntegrityError(f"{layout.path}@{descriptor.digest}: {len(image.layers)} layers but "
                                 f"{len(image.diff_ids)} diff_ids in the config")
        return image

    @property
    def layers(self) -> list[Descriptor]:
        """The layer descriptors, base first; unknown layer media types are refused."""
        layers = [Descriptor.from_json(d) for d in self.manifest.get("layers", [])]
        for layer in layers:
            if layer.media_type not in LAYERS:
                raise Unsupported(f"layer {layer.digest}: unsupported media type {layer.media_type}")
        return layers

    @property
    def diff_ids(self) -> list[Digest]:
        """The uncompressed layer digests from the config's `rootfs.diff_ids`."""
        return [Digest.parse(d) for d in self.config.get("rootfs", {}).get("diff_ids", [])]


def parse_image_argument(text: str) -> tuple[str, str | None]:
    """Split `[oci:]LAYOUT[:TAG|@DIGEST]` into (layout path, tag or digest or None), the one way
    every command reads it: the tag by the OCI grammar, the digest well-formed, else InvalidInput.

    A colon whose tail holds a `/` (`./a:b/c`) names a folder with a colon in its name when
    that path exists; otherwise it is a tag with a slash, which no tag may have."""
    from oci.reference import check_tag

    text = text[len(TRANSPORT):] if text.startswith(TRANSPORT) else text
    if "@" in text:
        path, _, digest = text.rpartition("@")
        if not path:
            raise InvalidInput(f"{text}: no layout before the digest")
        Digest.parse(digest)
        return path, digest
    path, sep, tag = text.rpartition(":")
    if not sep or not path:
        return text, None
    if "/" in tag and os.path.lexists(text):
        return text, None
    check_tag(tag, text)
    return path, tag


def open_image(text: str) -> tuple[Layout, Descriptor]:
    """Open `[oci:]LAYOUT[:TAG|@DIGEST]` and resolve the descriptor it names."""
    path, name = parse_image_argument(text)
    layout = Layout.open(path)
    return layout, layout.resolve(name)


def from_pipe(document: Any, source: str = "<stdin>") -> tuple[Layout, Descriptor]:
    """The image named by a descriptor read from a pipe (its layout in an annotation)."""
    from oci import schema

    if isinstance(document, dict) and isinstance(document.get("image"), dict):
        document = document["image"]  # the JSON printed by oci-unpack
    schema.validate(document, "descriptor", source)
    descriptor = Descriptor.from_json(document)
    path = descriptor.annotations.get(LAYOUT_ANNOTATION)
    if not path:
        raise InvalidInput(f"{source}: descriptor has no {LAYOUT_ANNOTATION} annotation naming its layout")
    return Layout.open(path), descriptor


def to_pipe(layout: Layout, descriptor: Descriptor) -> dict[str, Any]:
    """A descriptor to print for the next command: it names its layout (and keeps its tag)."""
    extra = {LAYOUT_ANNOTATION: layout.path}
    if descriptor.ref_name:
        extra[REF_NAME] = descriptor.ref_name
    return descriptor.with_annotations(**extra).to_json()
