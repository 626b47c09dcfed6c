"""oci.descriptor: descriptors to and from JSON."""

import pytest

from oci import schema
from oci.descriptor import LAYERS, OCI_LAYER_ZSTD, OCI_MANIFEST, REF_NAME, Descriptor
from oci.digest import Digest
from oci.errors import InvalidInput


def test_round_trip_and_schema():
    desc = Descriptor(OCI_MANIFEST, Digest.of(b"x"), 1, {REF_NAME: "v1"}, {"os": "linux", "architecture": "amd64"})
    doc = desc.to_json()
    schema.validate(doc, "descriptor", "d.json")
    again = Descriptor.from_json(doc)
    assert again == desc and again.ref_name == "v1" and again.platform == desc.platform
    assert list(doc) == ["mediaType", "digest", "size", "annotations", "platform"]


def test_with_annotations_keeps_the_original():
    desc = Descriptor(OCI_MANIFEST, Digest.of(b"x"), 1)
    tagged = desc.with_annotations(**{REF_NAME: "t"})
    assert desc.annotations == {} and tagged.ref_name == "t"


def test_bad_size_is_refused():
    with pytest.raises(InvalidInput):
        Descriptor.from_json({"mediaType": OCI_MANIFEST, "digest": str(Digest.of(b"")), "size": -1})


def test_layer_compressions():
    assert LAYERS[OCI_LAYER_ZSTD] == "zstd"
    assert {LAYERS[t] for t in LAYERS} == {"", "gzip", "zstd"}
