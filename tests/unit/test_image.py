"""oci.image and oci.platform: resolving an image in a layout, platform choice, pipe descriptors."""

import json

import pytest

from oci.descriptor import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor
from oci.errors import InvalidInput, NotFound, Unsupported
from oci.image import Image, from_pipe, open_image, parse_image_argument, to_pipe
from oci.layout import Layout
from oci.platform import Platform, choose


def put_json(layout, media_type, doc):
    data = json.dumps(doc).encode()
    return Descriptor(media_type, layout.put_bytes(data), len(data))


def make_image(layout, arch="amd64", layer_type=OCI_LAYER_GZIP, diff_ids=1):
    layer = layout.put_bytes(arch.encode())
    config = put_json(layout, OCI_CONFIG, {"architecture": arch, "os": "linux",
                                           "rootfs": {"type": "layers", "diff_ids": [str(layer)] * diff_ids}})
    return put_json(layout, OCI_MANIFEST, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
        "layers": [{"mediaType": layer_type, "digest": str(layer), "size": len(arch)}]})


def test_image_resolves_an_index_to_the_wanted_platform(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    amd, arm = make_image(layout, "amd64"), make_image(layout, "arm64")
    index = put_json(layout, OCI_INDEX, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**amd.to_json(), "platform": {"os": "linux", "architecture": "amd64"}},
        {**arm.to_json(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]})
    image = Image.load(layout, index, Platform.parse("linux/arm64"))
    assert image.config["architecture"] == "arm64" and image.descriptor.digest == arm.digest
    assert len(image.layers) == 1 and image.diff_ids[0] == image.layers[0].digest
    with pytest.raises(NotFound, match="offers: linux/amd64, linux/arm64/v8"):
        Image.load(layout, index, Platform.parse("linux/s390x"))


def test_image_refuses_unknown_layer_types_and_diff_id_mismatch(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    with pytest.raises(Unsupported, match="unsupported media type"):
        Image.load(layout, make_image(layout, layer_type="application/x-tar")).layers  # noqa: B018
    with pytest.raises(Exception, match="diff_ids"):
        Image.load(layout, make_image(layout, diff_ids=2))


def test_platform_parse_and_host():
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    assert Platform.host().os == "linux"
    with pytest.raises(InvalidInput):
        Platform.parse("linux")
    entries = [{"platform": {"os": "linux", "architecture": "arm", "variant": "v6"}, "n": 1},
               {"platform": {"os": "linux", "architecture": "arm", "variant": "v7"}, "n": 2}]
    assert choose(entries, Platform.parse("linux/arm/v7"), "x")["n"] == 2


@pytest.mark.parametrize("text,expected", [
    ("./images:latest", ("./images", "latest")), ("./images", ("./images", None)),
    ("img@sha256:" + "a" * 64, ("img", "sha256:" + "a" * 64)), ("a:b:c", ("a:b", "c")),
])
def test_parse_image_argument(text, expected):
    assert parse_image_argument(text) == expected


def test_a_colon_in_an_existing_folder_name_is_part_of_the_path(tmp_path):
    (tmp_path / "a:b" / "c").mkdir(parents=True)
    assert parse_image_argument(f"{tmp_path}/a:b/c") == (f"{tmp_path}/a:b/c", None)
    assert parse_image_argument(f"{tmp_path}/a:b/c:v1") == (f"{tmp_path}/a:b/c", "v1")


@pytest.mark.parametrize("text, message", [
    ("./images:bad/tag", "invalid tag 'bad/tag'"), ("./images:bad tag", "invalid tag 'bad tag'"),
    ("./images:.hidden", "invalid tag '.hidden'"), ("./images:" + "t" * 129, "invalid tag"),
    ("./images:", "invalid tag ''"), ("./images:tâg", "invalid tag"),
    ("./images@sha256:abc", "invalid sha256 digest"), ("@sha256:" + "a" * 64, "no layout before the digest"),
])
def test_image_arguments_that_name_no_image_are_refused(text, message):
    with pytest.raises(InvalidInput, match=message):
        parse_image_argument(text)


def test_pipe_round_trip(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    layout.tag("v1", make_image(layout))
    found_layout, desc = open_image(f"{tmp_path}:v1")
    piped = to_pipe(found_layout, desc)
    layout2, desc2 = from_pipe(json.loads(json.dumps(piped)))
    assert layout2.path == layout.path and desc2.digest == desc.digest
    assert from_pipe({"image": piped})[1].digest == desc.digest
    with pytest.raises(InvalidInput, match="annotation"):
        from_pipe(desc.to_json())
