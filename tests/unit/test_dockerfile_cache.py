"""The build cache's records: written, read back, refused when broken or when blobs are gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from oci.descriptor import OCI_LAYER_GZIP, Descriptor
from oci.digest import Digest
from oci.dockerfile import cache as caches
from oci.dockerfile.cache import BuildCache, LayerRecord
from oci.layout import Layout


def make_cache(tmp_path: Path) -> BuildCache:
    return BuildCache(Layout.open(str(tmp_path / "layout"), create=True))


def test_layer_record_round_trip_and_lost_blob(tmp_path: Path) -> None:
    cache = make_cache(tmp_path)
    data = b"layer bytes"
    descriptor = Descriptor(OCI_LAYER_GZIP, cache.layout.put_bytes(data), len(data))
    history = {"created": "2024-01-01T00:00:00Z", "created_by": "RUN x", "comment": "oci-build"}
    cache.put_layer("k1", LayerRecord(descriptor, Digest.of(b"tar"), history))
    found = cache.layer("k1")
    assert found is not None and found.layer == descriptor and found.diff_id == Digest.of(b"tar")
    assert found.history == history
    cache.put_layer("k2", LayerRecord(None, None, {**history, "empty_layer": True}))
    empty = cache.layer("k2")
    assert empty is not None and empty.layer is None
    Path(cache.layout.blob_path(descriptor.digest)).unlink()
    assert cache.layer("k1") is None  # its blob was collected: a miss
    assert cache.layer("missing") is None


def test_broken_record_is_a_miss_with_a_warning(tmp_path: Path, library_warnings: list[str]) -> None:
    cache, warnings = make_cache(tmp_path), library_warnings
    steps = Path(cache.dir) / "steps"
    steps.mkdir(parents=True)
    (steps / "bad.json").write_text('{"kind": "layer", "layer": null, "diffID": null, "history": {"created_by": 7}}')
    (steps / "garbage.json").write_text("{")
    assert cache.layer("bad") is None and cache.layer("garbage") is None
    assert any("bad.json: /history/created_by: 7 is not of type 'string'" in w for w in warnings)
    assert any("garbage.json: /: not valid JSON" in w for w in warnings)


def test_image_and_base_records(tmp_path: Path) -> None:
    cache = make_cache(tmp_path)
    manifest = Descriptor("application/vnd.oci.image.manifest.v1+json", Digest.of(b"none"), 4)
    cache.put_base("b", "reg/x:1", "linux/amd64", manifest)
    assert cache.base("b") is None  # the manifest blob is not in the layout
    cache.put_image("i", manifest)
    assert cache.image("i") is None


def test_work_dirs_of_dead_builds_are_swept(tmp_path: Path) -> None:
    cache = make_cache(tmp_path)
    stale = Path(cache.dir) / "work" / "1-dead"
    stale.mkdir(parents=True)
    (Path(cache.dir) / "work" / "1-dead.lock").write_text("")
    work = cache.work_dir()
    assert Path(work).is_dir() and not stale.exists()
    cache.release(work)
    assert not Path(work).exists()


def test_prune_empties_records_and_collects_blobs(tmp_path: Path) -> None:
    cache = make_cache(tmp_path)
    digest = cache.layout.put_bytes(b"unreferenced")
    cache.put_layer("k", LayerRecord(Descriptor(OCI_LAYER_GZIP, digest, 12), Digest.of(b"t"), {"created_by": "x"}))
    records, blobs = cache.prune()
    assert records == 1 and blobs == 1 and cache.layer("k") is None


DIGEST = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))
DESCRIPTOR = st.fixed_dictionaries({"mediaType": st.one_of(st.text(max_size=8), JUNK),
                                    "digest": st.one_of(DIGEST, JUNK), "size": st.one_of(st.integers(-2, 10), JUNK)})
HISTORY = st.dictionaries(st.sampled_from(["created", "created_by", "comment", "empty_layer"]),
                          st.one_of(st.text(max_size=5), JUNK), max_size=4)
RECORD = st.one_of(
    st.fixed_dictionaries({"kind": st.just("layer"), "layer": st.one_of(st.none(), DESCRIPTOR),
                           "diffID": st.one_of(st.none(), DIGEST, JUNK), "history": st.one_of(HISTORY, JUNK)}),
    st.fixed_dictionaries({"kind": st.sampled_from(["image", "base", "other"]), "manifest": DESCRIPTOR,
                           "reference": st.one_of(st.text(max_size=5), JUNK)}),
    st.fixed_dictionaries({"kind": st.just("context"), "files": st.dictionaries(
        st.text(max_size=5), st.one_of(st.lists(st.integers(), min_size=4, max_size=4).map(lambda n: [*n, "a" * 64]),
                                       st.lists(st.one_of(st.integers(), st.text(max_size=3)), max_size=6)),
        max_size=3)}),
)


@settings(max_examples=300, deadline=None)
@given(RECORD)
def test_plainly_valid_is_stricter_than_the_schema(record: dict[str, Any]) -> None:
    if caches.plainly_valid(record):
        assert caches.violations(record) == []
