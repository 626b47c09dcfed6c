"""Plain and --overlay unpacks give the tree umoci gives: an opaque whiteout at a layer's root,
the mode of a layer's `.` entry, overlayfs's own xattrs, directories declared again; and a layer
whose tar stream ends without the last member's padding or the end-of-archive blocks."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile

import pytest
from unpack_util import diff_trees, dir_, link, put_image, reg, snapshot, tar_bytes

from oci.digest import Digest
from oci.image import Image
from oci.layout import Layout

OVERLAY_XATTRS = ("trusted.overlay.",)  # umoci 0.4.7 keeps them (newer umoci, like ocikit, drops them)


def truncated(entries, keep: int) -> bytes:
    """A tar of `entries` cut `keep` bytes after the last member's data (no end-of-archive blocks)."""
    raw = tar_bytes(entries)
    last = list(tarfile.open(fileobj=io.BytesIO(raw)))[-1]
    return raw[:last.offset_data + last.size + keep]


ENTRIES = [dir_("etc"), reg("etc/a", b"a" * 700), reg("etc/b", b"bb")]


@pytest.mark.parametrize("keep", [0, 100, 510, 512, 1024], ids=lambda k: f"{k}-bytes-after-the-data")
def test_a_stream_that_ends_early_after_complete_data_is_accepted(tmp_path, oci, keep):
    layer = truncated(ENTRIES, keep)
    put_image(str(tmp_path / "img"), [layer])  # the diff_id is that of the short stream
    put_image(str(tmp_path / "whole"), [tar_bytes(ENTRIES)])
    result = oci("unpack", f"{tmp_path}/img:latest", str(tmp_path / "rootfs"))
    assert result.returncode == 0, result.stderr
    oci("unpack", f"{tmp_path}/whole:latest", str(tmp_path / "want"), check=True)
    assert diff_trees(snapshot(str(tmp_path / "rootfs")), snapshot(str(tmp_path / "want"))) == []


def test_a_stream_that_ends_inside_the_data_is_refused(tmp_path, oci):
    layer = truncated(ENTRIES, 0)[:-1]
    put_image(str(tmp_path / "img"), [layer])
    result = oci("unpack", f"{tmp_path}/img:latest", str(tmp_path / "rootfs"))
    assert result.returncode == 4 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "'etc/b'" in result.stderr and not (tmp_path / "rootfs").exists()


def test_a_directory_declared_again_has_the_new_entry_s_xattrs_only(tmp_path, oci):
    layers = [[dir_("d", xattrs={"user.one": b"1"})], [dir_("d", 0o700, xattrs={"user.two": b"2"})]]
    put_image(str(tmp_path / "img"), [tar_bytes(layer) for layer in layers])
    oci("unpack", f"{tmp_path}/img:latest", str(tmp_path / "rootfs"), check=True)
    assert os.listxattr(tmp_path / "rootfs" / "d") == ["user.two"]


# -- as root: overlay mounts, trusted.* xattrs, umoci -------------------------------------


@pytest.fixture
def unpacked(tmp_path, oci):
    """unpacked(layers) -> the plain, overlay and umoci trees (root included) of an image."""
    mounted: list[str] = []

    def make(layers: list[bytes], name: str = "img", umoci: bool = True) -> dict[str, dict]:
        layout = str(tmp_path / name)
        put_image(layout, layers)
        plain, over = tmp_path / f"{name}-plain", tmp_path / f"{name}-overlay"
        oci("unpack", f"{layout}:latest", str(plain), check=True)
        oci("unpack", "--overlay", "--cache", str(tmp_path / "cache"), f"{layout}:latest", str(over), check=True)
        mounted.append(str(over))
        trees = {"plain": snapshot(str(plain), with_root=True), "overlay": snapshot(str(over), with_root=True)}
        if umoci:
            bundle = tmp_path / f"{name}-umoci"
            subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True,
                           capture_output=True)
            trees["umoci"] = snapshot(str(bundle / "rootfs"), with_root=True, skip_xattrs=OVERLAY_XATTRS)
        return trees

    yield make
    for path in mounted:
        subprocess.run(["umount", path], check=False, capture_output=True)


def same(trees: dict[str, dict]) -> None:
    for name, tree in trees.items():
        assert diff_trees(tree, trees["plain"]) == [], name


@pytest.mark.root
def test_an_opaque_whiteout_at_a_layer_s_root(unpacked):
    layers = [[dir_("a"), reg("a/f", b"1"), reg("top", b"t")], [reg(".wh..wh..opq"), reg("new", b"n")],
              [reg("newer", b"n")]]
    trees = unpacked([tar_bytes(layer) for layer in layers])
    same(trees)
    assert sorted(trees["overlay"]) == [".", "new", "newer"]


@pytest.mark.root
def test_the_mode_and_owner_of_a_layer_s_root_entry(unpacked):
    layers = [[dir_(".", 0o700, uid=3, gid=4), reg("f", b"1")], [reg("g", b"2")],
              [dir_("./", 0o751, uid=5, gid=6, xattrs={"user.root": b"r"}), reg("h", b"3")], [reg("i", b"4")]]
    trees = unpacked([tar_bytes(layer) for layer in layers])
    same(trees)
    kind, mode, uid, gid, *_rest, xattrs, _digest = trees["overlay"]["."]
    assert (mode, uid, gid, xattrs) == (0o751, 5, 6, (("user.root", b"r"),))


@pytest.mark.root
def test_overlayfs_xattrs_of_a_layer_are_dropped_in_both_modes(unpacked):
    layers = [[reg("x", b"x", xattrs={"trusted.overlay.opaque": b"y", "trusted.overlay.redirect": b"/y",
                                      "user.k": b"v"}),
               dir_("d", xattrs={"trusted.overlay.opaque": b"y"}), reg("d/in", b"i")]]
    trees = unpacked([tar_bytes(layer) for layer in layers])
    same(trees)
    assert trees["plain"]["x"][7] == (("user.k", b"v"),) and trees["plain"]["d"][7] == ()


@pytest.mark.root
def test_a_layer_umoci_insert_wrote(tmp_path, unpacked):
    """umoci 0.4.7's `insert` writes a layer without the last member's padding and end blocks."""
    work = tmp_path / "umoci"
    work.mkdir()
    (work / "hello.txt").write_text("hello\n")
    subprocess.run("umoci init --layout img && umoci new --image img:v1 && "
                   "umoci insert --image img:v1 hello.txt /etc/hello.txt", shell=True, cwd=work, check=True,
                   capture_output=True)
    layout = Layout.open(str(work / "img"))
    image = Image.load(layout, layout.resolve("v1"))
    with gzip.open(layout.blob_path(image.layers[0].digest)) as f:
        raw = f.read()
    assert len(raw) % 512 != 0 and Digest.of(raw) == image.diff_ids[0]  # short, and its diff_id says so
    trees = unpacked([raw, tar_bytes([reg("more", b"m")])])
    same(trees)
    assert trees["plain"]["etc/hello.txt"][4] == 6


@pytest.mark.root
def test_hardlinks_whiteouts_and_opaque_dirs_across_layers(unpacked):
    layers = [[dir_("usr/bin"), reg("usr/bin/a", b"a", mode=0o755), link("usr/bin/b", "usr/bin/a"),
               dir_("var/lib", 0o750), reg("var/lib/x", b"x")],
              [link("usr/bin/c", "usr/bin/a"), reg("usr/bin/.wh.a"), dir_("var/lib", 0o700),
               reg("var/lib/.wh..wh..opq"), reg("var/lib/y", b"y")],
              [reg("var/.wh.lib"), dir_("var/lib"), reg("var/lib/z", b"z")]]
    same(unpacked([tar_bytes(layer) for layer in layers]))

