"""Three kernel steps behind the fake: the one overlay mount (page limit, features dropped on EINVAL), idmapped
bind mounts prepared before the fork (config.md#mounts: idmap, ridmap), and the container's console
(config.md#process: terminal, consoleSize)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import termios

import pytest

from oci.errors import InvalidInput, OciError, Unsupported
from oci.linux import idmap, kernel, overlayfs, terminal
from oci.linux.mountopts import MS_BIND


def test_an_overlay_is_mounted_with_its_options_in_one_string(fake_kernel):
    overlayfs.mount("/r", ["lowerdir=/a:/b", "upperdir=/u", "workdir=/w"])
    assert fake_kernel.called("mount") == [("overlay", "/r", "overlay", 0, "lowerdir=/a:/b,upperdir=/u,workdir=/w")]


def test_optional_overlay_features_are_dropped_when_the_kernel_refuses_them(fake_kernel):
    fake_kernel.fail("mount", errno.EINVAL, when=lambda source, target, fstype, flags, data: "index=off" in data)
    overlayfs.mount("/r", ["lowerdir=/a", "upperdir=/u", "workdir=/w"], optional=["index=off", "metacopy=off"])
    assert [data for *_, data in fake_kernel.called("mount")] == [
        "lowerdir=/a,upperdir=/u,workdir=/w,index=off,metacopy=off", "lowerdir=/a,upperdir=/u,workdir=/w"]


def test_options_longer_than_a_page_are_refused_before_the_call(fake_kernel):
    lowers = ":".join(f"/var/lib/ocikit/layers/sha256/{n:064x}" for n in range(60))
    with pytest.raises(Unsupported, match="too many layers for one mount"):
        overlayfs.mount("/r", [f"lowerdir={lowers}", "upperdir=/u", "workdir=/w"])
    assert fake_kernel.calls == []


def test_a_refused_overlay_names_its_target(fake_kernel):
    fake_kernel.fail("mount", errno.EPERM)
    with pytest.raises(OciError, match="^/r: cannot mount the overlay: Operation not permitted$"):
        overlayfs.mount("/r", ["lowerdir=/a", "upperdir=/u", "workdir=/w"])


def test_unmount_detaches_every_layer_mounted_at_a_path(fake_kernel, monkeypatch):
    mounted = [True, True, False]  # two mounts stacked at the path, as the kernel would report them
    monkeypatch.setattr(overlayfs.os.path, "ismount", lambda path: mounted.pop(0))
    overlayfs.unmount("/c/rootfs")
    assert fake_kernel.called("umount2") == [("/c/rootfs", kernel.MNT_DETACH)] * 2


def test_unmount_tolerates_a_mount_gone_meanwhile_and_names_the_path_otherwise(fake_kernel, monkeypatch):
    monkeypatch.setattr(overlayfs.os.path, "ismount", lambda path: True)
    fake_kernel.fail("umount2", errno.EINVAL)
    overlayfs.unmount("/c/rootfs")
    fake_kernel.fail("umount2", errno.EBUSY)
    with pytest.raises(OciError, match="^/c/rootfs: cannot unmount: Device or resource busy$"):
        overlayfs.unmount("/c/rootfs")


def test_an_idmapped_mount_is_a_detached_copy_with_the_user_namespaces_mappings(fake_kernel, tmp_path):
    """The mount's user namespace is the one the container joins (a path): opened, and given to mount_setattr."""
    config = {"mounts": [{"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ridmap"]}],
              "linux": {"namespaces": [{"type": "user", "path": "/proc/self/ns/user"}]}}
    made = idmap.prepare(config, str(tmp_path))
    try:
        assert list(made) == [0]
        assert fake_kernel.called("open_tree") == [
            (f"{tmp_path}/data", kernel.OPEN_TREE_CLONE | kernel.OPEN_TREE_CLOEXEC | kernel.AT_RECURSIVE)]
        (tree, path, flags, attr_set, attr_clr, userns_fd), = fake_kernel.called("mount_setattr")
        assert (path, flags, attr_set, attr_clr) == ("", kernel.AT_EMPTY_PATH | kernel.AT_RECURSIVE,
                                                     kernel.MOUNT_ATTR_IDMAP, 0)
        assert userns_fd > 2
    finally:
        for fd in made.values():
            os.close(fd)


def test_an_idmapping_the_kernel_refuses_names_the_mount(fake_kernel, tmp_path):
    fake_kernel.fail("mount_setattr", errno.EINVAL)
    config = {"mounts": [{"destination": "/d", "source": "/srv", "options": ["bind", "idmap"]}],
              "linux": {"namespaces": [{"type": "user", "path": "/proc/self/ns/user"}]}}
    with pytest.raises(InvalidInput, match="^/mounts/0: cannot idmap /srv: mount_setattr: Invalid argument$"):
        idmap.prepare(config, str(tmp_path))
    assert fake_kernel.names() == ["open_tree", "mount_setattr"]


def test_the_console_is_a_new_pty_bound_onto_dev_console_with_its_size(fake_kernel):
    master, slave = terminal.open_console({"height": 40, "width": 120})
    try:
        name = os.ttyname(slave)
        assert fake_kernel.called("mount") == [(name, "/dev/console", None, MS_BIND, None)]
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, bytes(8)))
        assert (rows, cols) == (40, 120)
        other_master, other_slave = os.openpty()
        try:
            terminal.copy_size(slave, other_master)  # a terminal's size passed on
            assert struct.unpack("HHHH", fcntl.ioctl(other_slave, termios.TIOCGWINSZ, bytes(8)))[:2] == (40, 120)
        finally:
            os.close(other_master)
            os.close(other_slave)
    finally:
        os.close(master)
        os.close(slave)


def test_the_pty_master_travels_over_the_console_socket():
    """runc's protocol: the name /dev/ptmx and the fd in SCM_RIGHTS."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    master, slave = os.openpty()
    try:
        terminal.send_master(os.dup(theirs.fileno()), master)
        received = terminal.receive_master(ours)
        try:
            assert os.ttyname(slave) and os.fstat(received).st_rdev == os.fstat(master).st_rdev
        finally:
            os.close(received)
    finally:
        for fd in (master, slave):
            os.close(fd)
        ours.close()
        theirs.close()


def test_the_master_sent_over_a_console_socket_pair_is_taken_and_both_ends_closed():
    import _socket

    pair = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    reader, writer = os.pipe()
    terminal.send_master(os.dup(pair[1].fileno()), writer)
    master = terminal.take_master(pair)
    assert master is not None and os.path.sameopenfile(master, writer)
    assert pair[0].fileno() == -1 and pair[1].fileno() == -1
    for fd in (master, reader, writer):
        os.close(fd)
    assert terminal.take_master(None) is None
