"""An interrupted oci-unpack marks its ROOTFS: the next one starts over by itself; a concurrent
one is refused. Stale temporaries of killed writers go with the next session of a layout."""

from __future__ import annotations

import fcntl
import json
import os

from unpack_util import dir_, put_image, reg, snapshot, tar_bytes

from oci.layout import Layout

LAYERS = [[dir_("etc"), reg("etc/passwd", b"root\n")], [reg("etc/hosts", b"h")]]


def image(tmp_path) -> str:
    put_image(str(tmp_path / "img"), [tar_bytes(layer) for layer in LAYERS])
    return f"{tmp_path}/img:latest"


def test_a_rootfs_an_interrupted_unpack_left_is_filled_afresh(tmp_path, oci):
    img = image(tmp_path)
    oci("unpack", img, str(tmp_path / "want"), check=True)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)  # what a killed run had written, and its marker
    (rootfs / "etc" / "half").write_bytes(b"partial")
    (tmp_path / ".rootfs.unpacking").write_bytes(b"made\n")
    result = oci("unpack", img, str(rootfs))
    assert result.returncode == 0, result.stderr
    assert "interrupted oci-unpack left it incomplete; starting over" in result.stderr
    assert json.loads(result.stdout)["rootfs"] == str(rootfs)
    assert snapshot(str(rootfs)) == snapshot(str(tmp_path / "want"))
    assert sorted(os.listdir(tmp_path)) == ["img", "rootfs", "want"]  # the marker went with the unpack


def test_a_folder_the_interrupted_unpack_found_is_emptied_not_removed(tmp_path, oci):
    img = image(tmp_path)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(mode=0o700)
    (rootfs / "half").write_bytes(b"partial")
    (tmp_path / ".rootfs.unpacking").write_bytes(b"found\n")
    inode = os.stat(rootfs).st_ino
    assert oci("unpack", img, str(rootfs)).returncode == 0
    assert os.stat(rootfs).st_ino == inode and sorted(os.listdir(rootfs)) == ["etc"]


def test_a_rootfs_being_filled_is_refused(tmp_path, oci):
    img = image(tmp_path)
    marker = tmp_path / ".rootfs.unpacking"
    with open(marker, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another oci-unpack at work
        result = oci("unpack", img, str(tmp_path / "rootfs"))
    assert result.returncode == 7 and result.stderr.splitlines() == [
        f"oci-unpack: {tmp_path}/rootfs: another oci-unpack is filling it"]
    assert not (tmp_path / "rootfs").exists() and marker.exists()


def test_a_refused_unpack_leaves_no_marker(tmp_path, oci):
    img = image(tmp_path)
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "rootfs" / "mine").write_text("keep")
    result = oci("unpack", img, str(tmp_path / "rootfs"))
    assert result.returncode == 7 and "not empty" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["img", "rootfs"] and os.listdir(tmp_path / "rootfs") == ["mine"]


def stray(layout: Layout) -> list[str]:
    """Temporaries as killed writers leave them: a blob being written, index.json being replaced."""
    paths = [os.path.join(layout.path, ".ocikit", "tmp", "put-99999-1"), os.path.join(layout.path, ".tmp-99999-ab")]
    os.makedirs(os.path.dirname(paths[0]), exist_ok=True)
    for path in paths:
        with open(path, "wb") as f:
            f.write(b"partial")
    return paths


def test_the_next_session_removes_what_killed_writers_left(tmp_path):
    layout = Layout.open(str(tmp_path / "l"), create=True)
    paths = stray(layout)
    with layout.session():
        pass
    assert not any(os.path.exists(p) for p in paths)


def test_temporaries_of_writers_at_work_are_kept(tmp_path):
    layout = Layout.open(str(tmp_path / "l"), create=True)
    with layout.session():  # a writer at work...
        paths = stray(layout)  # ...whose temporaries these are
        with Layout.open(layout.path).session():  # another session starts meanwhile
            assert all(os.path.exists(p) for p in paths)
    with layout.session():
        assert not any(os.path.exists(p) for p in paths)


def test_reading_creates_nothing(tmp_path):
    layout = Layout.open(str(tmp_path / "l"), create=True)
    before = sorted(os.listdir(os.path.join(layout.path, ".ocikit")))
    with layout.reading():
        pass
    assert sorted(os.listdir(os.path.join(layout.path, ".ocikit"))) == before
    os.rename(os.path.join(layout.path, ".ocikit"), os.path.join(tmp_path, "moved"))
    with Layout.open(layout.path).reading():
        pass
    assert not os.path.exists(os.path.join(layout.path, ".ocikit"))
