"""Commit: a base image (or scratch), an optional new layer and config changes become a
new image manifest, tagged in a layout.

The base may live in another layout: its config and layer blobs are copied over first
(only the missing ones, verified as they are read). Docker layer media types of the base
are written with their OCI names (same bytes).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from oci import schema
from oci.build import config as configs
from oci.build.entry import Entry, Policy
from oci.build.layer import write_layer
from oci.descriptor import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_ZSTD,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
)
from oci.image import Image
from oci.layout import Layout
from oci.platform import Platform

BASE_DIGEST = "org.opencontainers.image.base.digest"
_OCI_LAYER_TYPES = {DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_LAYER_ZSTD: OCI_LAYER_ZSTD}


def commit(target: Layout, tag: str, *, base: Image | None = None, entries: Iterable[Entry] | None = None,
           changes: configs.Changes | None = None, policy: Policy = Policy(), compression: str = "gzip",
           platform: Platform | None = None, created_by: str = "oci-commit", comment: str | None = None) -> Descriptor:
    """Make the image and tag it `tag` in `target`; return its tagged manifest descriptor.

    `entries` None makes a config-only step (no layer). `platform` is used for a scratch image.
    """
    with target.session():
        start = len(target.added)
        try:
            return _commit(target, tag, base, entries, changes, policy, compression, platform, created_by, comment)
        except BaseException:
            target.roll_back(target.added[start:])  # a failure (a full disk, Ctrl-C) leaves the layout as it was
            raise


def _commit(target: Layout, tag: str, base: Image | None, entries: Iterable[Entry] | None,
            changes: configs.Changes | None, policy: Policy, compression: str, platform: Platform | None,
            created_by: str, comment: str | None) -> Descriptor:
    if base is not None:
        copy_blobs(base, target)
        config = base.config
    else:
        config = configs.new_config(platform or Platform.host())
    config = configs.apply(config, changes or configs.Changes())
    layers = [_oci_layer(layer) for layer in base.layers] if base is not None else []
    diff_id = None
    if entries is not None:
        layer = write_layer(target, entries, policy, compression)
        layers.append(layer.descriptor)
        diff_id = layer.diff_id
    configs.add_history(config, configs.timestamp(policy.epoch), created_by, diff_id, comment)
    config_descriptor = _put_json(target, OCI_CONFIG, config, "config", "the new image config")
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                "config": config_descriptor.to_json(),
                                "layers": [layer.to_json() for layer in layers]}
    if base is not None:
        manifest["annotations"] = {BASE_DIGEST: str(base.descriptor.digest)}
    descriptor = _put_json(target, OCI_MANIFEST, manifest, "manifest", "the new image manifest")
    return target.tag(tag, descriptor)


def copy_blobs(image: Image, target: Layout) -> None:
    """Copy the image's config and layers into `target` unless present (each verified on read)."""
    if image.layout.path == target.path:
        return
    for descriptor in [image.config_descriptor, *image.layers]:
        if not target.has_blob(descriptor.digest, descriptor.size):
            with image.layout.open_blob(descriptor) as reader:
                target.put_blob(reader, descriptor.digest, descriptor.size)


def _oci_layer(layer: Descriptor) -> Descriptor:
    media_type = _OCI_LAYER_TYPES.get(layer.media_type, layer.media_type)
    return Descriptor(media_type, layer.digest, layer.size, layer.annotations)


def _put_json(layout: Layout, media_type: str, document: dict[str, Any], kind: str, what: str) -> Descriptor:
    schema.validate(document, kind, what)
    data = json.dumps(document, separators=(",", ":")).encode()
    return Descriptor(media_type, layout.put_bytes(data), len(data))
