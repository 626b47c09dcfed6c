"""The registry client's read API against the real registry: tags, HEAD, referrers, errors."""

from __future__ import annotations

import pytest

from oci.errors import NotFound
from oci.image import Image
from oci.layout import Layout
from oci.reference import Reference
from oci.registry.client import connect
from oci.registry.http import Options

from . import images


def test_tags_head_and_referrers(registry, repo, small_image):
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    images.push_layout(small_image.path, small_image.tag, registry, repo, dest_tag="v2")
    repository = connect(Reference.parse(registry.ref(repo, "v1")), Options(insecure=True))
    assert sorted(repository.list_tags()) == ["v1", "v2"]
    head = repository.head_manifest("v2")
    assert head is not None and head == small_image.descriptor
    assert repository.head_manifest("nope") is None
    assert repository.referrers(small_image.descriptor.digest) is None  # neither the API nor the fallback tag
    manifest = repository.get_manifest(str(small_image.descriptor.digest))
    assert manifest.descriptor == small_image.descriptor
    with pytest.raises(NotFound):
        repository.get_manifest("nope")
    layout = Layout.open(small_image.path)
    layer = Image.load(layout, small_image.descriptor).layers[-1]
    response, start = repository.open_blob(layer.digest, offset=100)
    with response:
        assert start == 100 and response.read_all(1 << 20) == layout.read_blob(layer, 1 << 20)[100:]
