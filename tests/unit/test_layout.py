"""oci.layout: the image layout store, its atomicity and its locks."""

import io
import json
import multiprocessing
import os
import signal
import time

import pytest

from oci import schema
from oci.descriptor import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Descriptor
from oci.digest import Digest
from oci.errors import IntegrityError, InvalidDocument, InvalidInput, NotFound
from oci.layout import Layout


def put_image(layout: Layout, payload: bytes) -> Descriptor:
    """A tiny valid image: one layer, a config and a manifest."""
    layer = layout.put_bytes(payload)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [str(layer)]}}).encode()
    config_digest = layout.put_bytes(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": str(config_digest), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": str(layer), "size": len(payload)}],
    }).encode()
    return Descriptor(OCI_MANIFEST, layout.put_bytes(manifest), len(manifest))


def test_create_makes_a_valid_layout(tmp_path):
    layout = Layout.open(str(tmp_path / "l"), create=True)
    schema.load_file(str(tmp_path / "l" / "oci-layout"), "layout")
    assert layout.index()["manifests"] == []
    assert (tmp_path / "l" / "blobs" / "sha256").is_dir()
    Layout.open(str(tmp_path / "l"))  # reopens


def test_open_refuses_non_layouts(tmp_path):
    with pytest.raises(NotFound, match="not an OCI image layout"):
        Layout.open(str(tmp_path))
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(InvalidDocument, match="oci-layout: /imageLayoutVersion"):
        Layout.open(str(tmp_path))


def test_put_blob_verifies_and_dedupes(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    digest, size = layout.put_blob(io.BytesIO(b"abc"))
    assert (digest, size) == (Digest.of(b"abc"), 3)
    assert open(layout.blob_path(digest), "rb").read() == b"abc"
    assert layout.put_bytes(b"abc") == digest
    with pytest.raises(IntegrityError, match="does not match"):
        layout.put_blob(io.BytesIO(b"abd"), expected=digest)
    with pytest.raises(IntegrityError):
        layout.put_blob(io.BytesIO(b"abcd"), size=3)
    assert os.listdir(tmp_path / ".ocikit" / "tmp") == []


def test_read_blob_detects_corruption(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    digest = layout.put_bytes(b"payload")
    desc = Descriptor(OCI_LAYER, digest, 7)
    assert layout.read_blob(desc) == b"payload"
    os.chmod(layout.blob_path(digest), 0o644)
    with open(layout.blob_path(digest), "wb") as f:
        f.write(b"pAyload")
    with pytest.raises(IntegrityError, match="digest"):
        layout.read_blob(desc)
    with pytest.raises(NotFound, match="missing"):
        layout.read_blob(Descriptor(OCI_LAYER, Digest.of(b"other"), 5))


def test_tag_resolve_untag(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    one, two = put_image(layout, b"1"), put_image(layout, b"2")
    layout.tag("v1", one)
    assert layout.resolve().digest == one.digest  # the only one
    layout.tag("v2", two)
    assert layout.resolve("v2").digest == two.digest
    assert layout.resolve(str(one.digest)).digest == one.digest
    layout.tag("v1", two)  # retag replaces
    assert [d.ref_name for d in layout.descriptors()] == ["v2", "v1"]
    with pytest.raises(InvalidInput, match="name one of: v1, v2"):
        layout.resolve()
    layout.untag("v2")
    with pytest.raises(NotFound, match="no image tagged 'v2'"):
        layout.resolve("v2")


def test_tag_all_writes_every_tag_at_once_or_none(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    one, two = put_image(layout, b"1"), put_image(layout, b"2")
    layout.tag("old", one)
    missing = Descriptor(OCI_MANIFEST, Digest.of(b"nothing"), 7)
    with pytest.raises(NotFound):
        layout.tag_all([("a", one), ("b", missing)])
    assert [d.ref_name for d in layout.descriptors()] == ["old"]  # nothing of it written
    layout.tag_all([("a", one), ("old", two), ("a", two)])  # the last of a name wins
    assert {d.ref_name: d.digest for d in layout.descriptors()} == {"old": two.digest, "a": two.digest}
    written = os.stat(os.path.join(str(tmp_path), "index.json")).st_mtime_ns
    time.sleep(0.01)
    layout.tag_all([("a", two), ("old", two)])  # nothing changes: index.json is not rewritten
    assert os.stat(os.path.join(str(tmp_path), "index.json")).st_mtime_ns == written


def test_tag_refuses_missing_blobs(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    with pytest.raises(NotFound, match="missing"):
        layout.tag("x", Descriptor(OCI_MANIFEST, Digest.of(b"nothing"), 7))


def test_read_document_validates(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    bad = b'{"schemaVersion": 2, "config": 5}'
    desc = Descriptor(OCI_MANIFEST, layout.put_bytes(bad), len(bad))
    with pytest.raises(InvalidDocument, match="/config"):
        layout.read_document(desc)


def test_gc_removes_only_unreachable_blobs(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    kept = put_image(layout, b"kept")
    layout.tag("kept", kept)
    put_image(layout, b"dropped")
    (tmp_path / ".ocikit" / "tmp" / "stray").write_bytes(b"partial")
    removed = layout.gc()
    assert len(removed) == 3
    assert layout.reachable() == {Digest.parse(n) for n in
                                  [f"sha256:{x}" for x in os.listdir(tmp_path / "blobs" / "sha256")]}
    assert os.listdir(tmp_path / ".ocikit" / "tmp") == []


def _tagger(path: str, worker: int, count: int) -> None:
    layout = Layout.open(path)
    with layout.session():
        for i in range(count):
            layout.tag(f"w{worker}-{i}", put_image(layout, f"{worker}-{i}".encode()))


def test_concurrent_taggers_lose_no_entry(tmp_path):
    Layout.open(str(tmp_path), create=True)
    workers = [multiprocessing.Process(target=_tagger, args=(str(tmp_path), w, 15), daemon=True) for w in range(6)]
    for p in workers:
        p.start()
    try:
        for p in workers:
            p.join(60)
            assert p.exitcode == 0, f"tagger {p.pid}: exit code {p.exitcode} (None: still running after 60 s)"
    finally:  # a deadlocked tagger fails the test instead of hanging the run
        for p in workers:
            p.kill()
    names = {d.ref_name for d in Layout.open(str(tmp_path)).descriptors()}
    assert names == {f"w{w}-{i}" for w in range(6) for i in range(15)}


class SlowSource(io.RawIOBase):
    """A source that gives a few chunks and then hangs, like a stalled download."""

    def __init__(self, ready) -> None:
        self.sent = 0
        self.ready = ready

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.sent >= 4:
            self.ready.set()
            time.sleep(3600)
        self.sent += 1
        count = min(len(buffer), 65536)
        buffer[:count] = b"x" * count
        return count


def _slow_writer(path: str, ready) -> None:
    Layout.open(path).put_blob(SlowSource(ready))


def test_writer_killed_mid_put_leaves_no_partial_blob(tmp_path):
    layout = Layout.open(str(tmp_path), create=True)
    ready = multiprocessing.Event()
    writer = multiprocessing.Process(target=_slow_writer, args=(str(tmp_path), ready))
    writer.start()
    assert ready.wait(30)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert os.listdir(tmp_path / "blobs" / "sha256") == []
    assert layout.index()["manifests"] == []
    assert len(os.listdir(tmp_path / ".ocikit" / "tmp")) == 1  # the stray temporary...
    layout.gc()
    assert os.listdir(tmp_path / ".ocikit" / "tmp") == []  # ...which gc removes
