"""oci-unpack makes the same tree as `umoci unpack` (Debian umoci) for multi-layer images with
whiteouts, opaque directories, hardlinks, xattrs, owners, devices and special modes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from unpack_util import blk, chr_, diff_trees, dir_, fifo, link, put_image, reg, snapshot, sym, tar_bytes

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed")]

CAP = bytes.fromhex("0100000200200000000000000000000000000000")

BASE = [
    dir_("etc"), reg("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"), reg("etc/shadow", b"root:*:1::::::\n",
                                                                            mode=0o640, gid=42),
    dir_("usr/bin"), reg("usr/bin/busybox", b"\x7fELF" + bytes(range(256)) * 40, mode=0o755),
    link("usr/bin/ls", "usr/bin/busybox"), sym("bin", "usr/bin"), reg("usr/bin/su", b"su", mode=0o4755),
    dir_("var/cache/apt", 0o755), reg("var/cache/apt/a.bin", b"a" * 5000), reg("var/cache/apt/b.bin", b"b"),
    dir_("var/log", 0o755), reg("var/log/old.log", b"old"), dir_("tmp", 0o1777), dir_("root", 0o700),
    reg("root/.profile", b"PS1='# '\n", mode=0o600), dir_("home/user", 0o750, uid=1000, gid=1000),
    reg("home/user/notes", b"n", uid=1000, gid=1000, mode=0o640), dir_("dev"),
    chr_("dev/null", 1, 3), chr_("dev/zero", 1, 5), blk("dev/sda", 8, 0), fifo("dev/initctl", 0o600),
    reg("usr/bin/ping", b"ping", mode=0o755, xattrs={"security.capability": CAP}),
    reg("etc/labelled", b"x", xattrs={"user.mime_type": b"text/plain", "trusted.origin": b"base"}),
    dir_("srv", xattrs={"user.dir": b"1"}), reg("srv/setgid", b"g", mode=0o2755),
]
MIDDLE = [
    reg("etc/.wh.shadow"), reg("var/cache/.wh.apt"), dir_("var/log"), reg("var/log/.wh..wh..opq"),
    reg("var/log/new.log", b"new"), link("usr/bin/cat", "usr/bin/busybox"), reg("etc/passwd", b"changed\n"),
    sym("etc/mtab", "/proc/self/mounts"), dir_("opt/app", 0o711), reg("opt/app/run", b"#!/bin/sh\n", mode=0o755),
    link("opt/app/run2", "opt/app/run"), reg("etc/labelled", b"y", xattrs={"user.mime_type": b"text/x-changed"}),
]
TOP = [
    reg("opt/.wh.app"), dir_("opt/app", 0o755), reg("opt/app/.wh..wh..opq"), reg("opt/app/fresh", b"fresh"),
    reg("usr/bin/.wh.su"), reg("dev/.wh.sda"), reg("home/user/.wh.notes"), reg("home/user/notes2", b"2", uid=1000),
    link("usr/bin/sh", "usr/bin/cat"),
]


def umoci_tree(tmp_path, layout: str) -> dict:
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True)
    return snapshot(str(bundle / "rootfs"))


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_same_tree_as_umoci(tmp_path, oci, compression):
    layers = [tar_bytes(BASE), tar_bytes(MIDDLE), tar_bytes(TOP)]
    layout = str(tmp_path / "img")
    put_image(layout, layers, compression="gzip")
    expected = umoci_tree(tmp_path, layout)
    if compression == "zstd":  # umoci 0.4.7 reads only gzip: the same layers in zstd must give the same tree
        layout = str(tmp_path / "img-zstd")
        put_image(layout, layers, compression="zstd")
    oci("unpack", f"{layout}:latest", str(tmp_path / "rootfs"), check=True)
    ours = snapshot(str(tmp_path / "rootfs"))
    assert diff_trees(ours, expected) == []
    assert "usr/bin/su" not in ours and "var/log/new.log" in ours and "var/log/old.log" not in ours


def test_same_tree_as_umoci_single_layer_of_host_files(tmp_path, oci):
    """A layer of real files (GNU tar of /usr/share/doc/python3*, with its own long names and modes)."""
    raw = subprocess.run("tar --numeric-owner -C / -cf - usr/share/doc/python3* etc/ssl 2>/dev/null",
                         shell=True, capture_output=True).stdout
    layout = str(tmp_path / "img")
    put_image(layout, [raw])
    expected = umoci_tree(tmp_path, layout)
    oci("unpack", f"{layout}:latest", str(tmp_path / "rootfs"), check=True)
    assert diff_trees(snapshot(str(tmp_path / "rootfs")), expected) == []
