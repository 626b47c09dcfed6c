"""Unit tests of oci.registry.push helpers (no registry): sizes, mount hints, plans, messages."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from oci.descriptor import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor
from oci.errors import InvalidInput
from oci.layout import Layout
from oci.registry.client import Repository
from oci.registry.http import Options
from oci.registry.push import _detail, mount_sources, parse_size, plan
from oci.registry.session import Registry


@pytest.mark.parametrize("text,size", [("1", 1), ("512K", 512 << 10), ("16M", 16 << 20), ("16MiB", 16 << 20),
                                       ("2g", 2 << 30), ("64KB", 64 << 10)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1", "lots", "1.5M", "M"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_mount_sources_keep_same_registry_names():
    target = Repository(Registry("127.0.0.1:5000", Options(insecure=True)), "team/app", push=True)
    hints = ["library/debian", "127.0.0.1:5000/library/alpine:3", "other.example/x/y:1", "team/app",
             "127.0.0.1:5000/library/debian@sha256:" + "a" * 64, "localhost/z", "base:1"]
    assert mount_sources(target, hints) == ["library/debian", "library/alpine", "base"]


def test_detail_keeps_the_registry_words():
    assert _detail("x: registry answered HTTP 400 (DIGEST_INVALID: provided digest did not match)") == \
        "(DIGEST_INVALID: provided digest did not match)"
    assert _detail("plain") == "plain"


def _put(layout: Layout, doc: dict, media_type: str) -> Descriptor:
    data = json.dumps(doc).encode()
    return Descriptor(media_type, layout.put_bytes(data), len(data))


def _image(layout: Layout, content: bytes, base: str | None = None) -> Descriptor:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(buf.getvalue(), mtime=0)
    layer_desc = Descriptor(OCI_LAYER_GZIP, layout.put_bytes(layer), len(layer))
    config = _put(layout, {"architecture": "amd64", "os": "linux",
                           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}, OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
                "layers": [layer_desc.to_json()]}
    if base:
        manifest["annotations"] = {"org.opencontainers.image.base.name": base}
    return _put(layout, manifest, OCI_MANIFEST)


def test_plan_of_an_index_puts_children_first(tmp_path):
    layout = Layout.open(str(tmp_path / "l"), create=True)
    one, two = _image(layout, b"one", base="127.0.0.1:5000/library/base:1"), _image(layout, b"two")
    index = _put(layout, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                          "manifests": [one.to_json(), two.to_json()]}, OCI_INDEX)
    layout.tag("multi", index)
    result = plan(Layout.open(layout.path), index)
    assert [d.digest for d, _ in result.manifests] == [one.digest, two.digest, index.digest]
    assert len(result.blobs) == 3  # two layers, one shared config
    assert result.mount_from == ["127.0.0.1:5000/library/base:1"]
    assert Layout.open(layout.path).resolve("multi").digest == index.digest


def test_plan_refuses_a_layer_as_the_image(tmp_path):
    layout = Layout.open(str(tmp_path / "l"), create=True)
    with pytest.raises(InvalidInput, match="not a manifest or index"):
        plan(layout, Descriptor(OCI_LAYER_GZIP, layout.put_bytes(b"x"), 1))
