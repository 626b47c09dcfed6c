"""The pull logic with layouts as sources (no network): only missing blobs travel, every blob
verified, platforms, resume after a broken stream, nothing half-written on failure."""

import io
import os
import threading

import pytest

from oci.descriptor import Descriptor
from oci.digest import Digest
from oci.errors import IntegrityError, NotFound
from oci.layout import Layout
from oci.platform import Platform
from oci.registry.pull import ResumingReader, pull
from oci.registry.sources import LayoutSource
from tests.integration import images


@pytest.fixture
def source(tmp_path):
    path = str(tmp_path / "src")
    images.build_image(path, "v1", layers=[{"a": b"alpha"}, images.random_layer(300_000, "pull")])
    images.build_index(path, "multi", {"linux/amd64": [{"x": b"amd"}], "linux/arm64": [{"x": b"arm"}]})
    return path


def blobs(path):
    folder = os.path.join(path, "blobs", "sha256")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_copy_then_nothing_travels(source, tmp_path):
    out = str(tmp_path / "out")
    first = pull(LayoutSource(f"{source}:v1"), "", out, tag="v1")
    assert first.stats.blobs_fetched == 3 and first.descriptor.ref_name == "v1"
    again = pull(LayoutSource(f"{source}:v1"), "", out, tag="v1")
    assert again.stats.blobs_fetched == 0 and again.stats.blobs_present == 3
    assert set(blobs(out)) <= set(blobs(source))


def test_platform_choice_and_all_platforms(source, tmp_path):
    one = str(tmp_path / "one")
    result = pull(LayoutSource(f"{source}:multi"), "", one, tag="m", platform=Platform.parse("linux/arm64"))
    assert result.descriptor.media_type == "application/vnd.oci.image.manifest.v1+json"
    with pytest.raises(NotFound, match="linux/amd64, linux/arm64"):
        pull(LayoutSource(f"{source}:multi"), "", str(tmp_path / "none"), tag="m", platform=Platform("linux", "s390x"))
    assert not os.path.exists(tmp_path / "none")
    every = str(tmp_path / "all")
    result = pull(LayoutSource(f"{source}:multi"), "", every, tag="m", all_platforms=True)
    assert result.descriptor.digest == Layout.open(source).resolve("multi").digest


def test_corrupt_blob_is_refused_and_nothing_is_tagged(source, tmp_path):
    layout = Layout.open(source)
    manifest = layout.read_document(layout.resolve("v1"))
    big = max(manifest["layers"], key=lambda d: d["size"])
    path = layout.blob_path(big["digest"])
    data = bytearray(open(path, "rb").read())
    data[1000] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    out = str(tmp_path / "out")
    with pytest.raises(IntegrityError, match=big["digest"]):
        pull(LayoutSource(f"{source}:v1"), "", out, tag="v1")
    assert Layout.open(out).descriptors() == [] and blobs(out) == []  # rolled back
    assert os.listdir(os.path.join(out, ".ocikit", "tmp")) == []


class Flaky:
    """A source whose stream breaks after `cut` bytes the first `breaks` times."""

    def __init__(self, data: bytes, cut: int, breaks: int, honour_range: bool = True):
        self.data, self.cut, self.breaks, self.honour_range = data, cut, breaks, honour_range
        self.offsets = []

    def open_blob(self, descriptor, offset):
        self.offsets.append(offset)
        start = offset if self.honour_range else 0
        stream = io.BytesIO(self.data[start:])
        if self.breaks:
            self.breaks -= 1
            limit = self.cut

            class Broken(io.BytesIO):
                def readinto(self, buffer):
                    if self.tell() >= limit:
                        raise ConnectionResetError("reset")
                    return super().readinto(memoryview(buffer)[: limit - self.tell()])

            stream = Broken(self.data[start:])
        return stream, start

    def abort(self):
        pass


@pytest.mark.parametrize("honour_range", [True, False])
def test_resuming_reader_picks_up_where_it_stopped(honour_range):
    data = os.urandom(200_000)
    descriptor = Descriptor("application/octet-stream", Digest.of(data), len(data))
    source = Flaky(data, cut=70_000, breaks=2, honour_range=honour_range)
    reader = ResumingReader(source, descriptor, threading.Event(), None, backoff=0.001)
    got, buffer = bytearray(), bytearray(65536)
    while count := reader.readinto(buffer):
        got += buffer[:count]
    assert got == data
    assert source.offsets[0] == 0 and source.offsets[1] > 0 and len(source.offsets) == 3
