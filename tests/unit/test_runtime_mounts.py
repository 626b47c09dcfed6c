"""Mount helpers: options to flags, targets resolved inside the rootfs without symlink escapes."""

import os

import pytest

from oci.linux import inroot, mountopts, mounts
from oci.linux.mountopts import MS_BIND
from oci.linux.mounts import MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_SLAVE


def test_options_split_into_flags_propagation_and_data():
    flags, propagation, data = mounts.parse_options(["rbind", "ro", "nosuid", "rslave", "mode=755", "size=1k"])
    assert flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
    assert propagation == MS_SLAVE | MS_REC
    assert data == ["mode=755", "size=1k"]
    flags, _, _ = mounts.parse_options(["nodev", "dev", "ro", "rw"])
    assert flags == 0
    assert mounts.parse_options(["private"])[1] == MS_PRIVATE
    assert mounts.parse_options(["nodev"])[0] == MS_NODEV


def test_symlinks_resolve_inside_the_root(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../../etc", root / "rel")
    os.symlink("/", root / "top")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    assert inroot.resolve_in_root(str(root), "/abs/passwd") == f"{root}/etc/passwd"
    assert inroot.resolve_in_root(str(root), "rel/x") == f"{root}/etc/x"
    assert inroot.resolve_in_root(str(root), "/top/../../..") == str(root)
    assert inroot.resolve_in_root(str(root), "/a/../../b") == f"{root}/b"
    with pytest.raises(inroot.OutsideRoot, match="too many levels"):
        inroot.resolve_in_root(str(root), "/loop1")


def test_open_target_creates_inside_and_never_outside(tmp_path):
    root = tmp_path / "rootfs"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "escape")
    fd = inroot.open_target(str(root), "/escape/dir/file", directory=False)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == f"{root}{outside}/dir/file"
    finally:
        os.close(fd)
    assert list(outside.iterdir()) == []


def test_recursive_attributes_later_options_win():
    assert mounts._attributes([mounts.RECURSIVE_OPTIONS[o] for o in ("rro", "rnosuid")]) == (
        mountopts.ATTR_RDONLY | mountopts.ATTR_NOSUID, 0)
    assert mounts._attributes([mounts.RECURSIVE_OPTIONS[o] for o in ("rro", "rrw")]) == (0, mountopts.ATTR_RDONLY)
    assert mounts._attributes([mounts.RECURSIVE_OPTIONS[o] for o in ("rnoatime", "rstrictatime")]) == (
        mountopts.ATTR_STRICTATIME, mountopts.ATTR__ATIME)
    assert mounts._attributes([mounts.RECURSIVE_OPTIONS[o] for o in ("rnoatime", "ratime")]) == (
        mountopts.ATTR_RELATIME, mountopts.ATTR__ATIME)
    assert mounts._attributes([mounts.RECURSIVE_OPTIONS[o] for o in ("rnoatime", "rnorelatime")]) == (
        mountopts.ATTR_NOATIME, mountopts.ATTR__ATIME)
    assert mounts.parse_options(["rbind", "rro"])[0] == MS_BIND | MS_REC
