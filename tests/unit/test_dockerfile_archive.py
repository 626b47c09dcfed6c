"""ADD's archives (oci.dockerfile.archive): which files are archives, names kept below the
destination, paths resolved inside the root, caps; and the context read from stdin."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from oci.dockerfile import archive
from oci.dockerfile.stdin import looks_like_archive
from oci.dockerfile.tree import Owner, Tree
from oci.errors import IntegrityError, InvalidInput
from oci.unpack.options import Budget


def tar_bytes(*members: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member["name"])
            info.type = member.get("type", tarfile.REGTYPE)
            info.linkname = member.get("link", "")
            data = member.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            info.pax_headers = member.get("pax", {})
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def unpack(tmp: Path, data: bytes, target: str = "/opt", budget: Budget | None = None) -> Path:
    root = tmp / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    path = tmp / "a.tar"
    path.write_bytes(data)
    with Tree(str(root)) as tree:
        archive.unpack(tree, str(path), target, Owner(), budget or Budget(1 << 30, 1000), "a.tar")
    return root


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, bz2.compress, lzma.compress,
                                      lambda d: zstandard.ZstdCompressor().compress(d)])
def test_archives_in_every_compression_are_unpacked(tmp_path: Path, compress: Any) -> None:
    data = compress(tar_bytes({"name": "d/f", "data": b"hi"}))
    (tmp_path / "x").write_bytes(data)
    assert archive.is_archive(str(tmp_path / "x"))
    assert (unpack(tmp_path, data) / "opt" / "d" / "f").read_bytes() == b"hi"


def test_what_is_not_an_archive(tmp_path: Path) -> None:
    cases = {"text": b"hello\n" * 200, "gzip-of-text": gzip.compress(b"hello\n"), "empty": b"",
             "empty-tar": b"\0" * 10240, "bigpax": tar_bytes({"name": "x", "pax": {"comment": "c" * (2 << 20)}})}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert not archive.is_archive(str(tmp_path / name)), name
    cut = gzip.compress(tar_bytes({"name": "a", "data": os.urandom(8000)}))[:3000]
    (tmp_path / "cut").write_bytes(cut)
    assert archive.is_archive(str(tmp_path / "cut"))  # its header reads: Docker calls it an archive, and fails


def test_names_stay_below_the_destination_and_paths_inside_the_root(tmp_path: Path) -> None:
    root = unpack(tmp_path, tar_bytes(
        {"name": "/abs", "data": b"1"}, {"name": "a/../b", "data": b"2"}, {"name": "./", "type": tarfile.DIRTYPE},
        {"name": "s", "type": tarfile.SYMTYPE, "link": "/etc"}, {"name": "s/x", "data": b"3"},
        {"name": "h", "type": tarfile.LNKTYPE, "link": "/abs"}))
    assert (root / "opt" / "abs").read_bytes() == b"1" and (root / "opt" / "b").read_bytes() == b"2"
    assert (root / "etc" / "x").read_bytes() == b"3"  # through the archive's symlink, inside the root
    assert os.stat(root / "opt" / "h").st_ino == os.stat(root / "opt" / "abs").st_ino
    for number, (name, link, message) in enumerate((
            ("../x", "", "path leaves the destination"), ("h", "../../x", "hard-link target leaves the destination"),
            ("h", "nothing", "which is not there"), (".wh.x", "", "whiteout"))):
        member = {"name": name, "type": tarfile.LNKTYPE if link else tarfile.REGTYPE, "link": link}
        (tmp_path / str(number)).mkdir()
        with pytest.raises(IntegrityError, match=message):
            unpack(tmp_path / str(number), tar_bytes(member))


def test_caps_and_damage(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match=r"more than 3 tar entries \(--max-entries\)"):
        unpack(tmp_path, tar_bytes(*({"name": f"f{i}"} for i in range(5))), budget=Budget(1 << 30, 3))
    with pytest.raises(IntegrityError, match=r"a.tar: tar entry 'big': 2000 bytes, more than the 1000 left"):
        unpack(tmp_path, tar_bytes({"name": "big", "data": b"x" * 2000}), budget=Budget(1000, 10))
    with pytest.raises(IntegrityError, match="extended header"):
        unpack(tmp_path, tar_bytes({"name": "x", "pax": {"comment": "c" * (2 << 20)}}))
    with pytest.raises(InvalidInput, match="truncated or damaged tar header"):
        unpack(tmp_path, tar_bytes({"name": "a", "data": b"1"}, {"name": "b", "data": b"2"})[:1100])
    with pytest.raises(InvalidInput, match="cannot decompress"):
        unpack(tmp_path, gzip.compress(tar_bytes({"name": "a", "data": os.urandom(8000)}))[:3000])


def test_stdin_detection_as_dockers() -> None:
    assert looks_like_archive(gzip.compress(b"x")[:6]) and looks_like_archive(tar_bytes({"name": "a"})[:512])
    assert not looks_like_archive(b"FROM scratch\n" + b" " * 600)
