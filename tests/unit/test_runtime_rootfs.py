"""The container's filesystem steps (oci.linux.mounts.RootfsBuilder) run against the fake kernel: which mounts,
device nodes, links and root changes the runtime asks for (config.md#mounts, config-linux.md#devices,
runtime-linux.md#dev-symbolic-links, config-linux.md#masked-paths and #readonly-paths), without root."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from oci.errors import InvalidInput
from oci.linux import kernel, mounts
from oci.linux.inroot import OutsideRoot
from oci.linux.mountopts import (
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    RECURSIVE_OPTIONS,
)
from oci.runtime.defaults import standard_mounts

DEFAULT_NODES = ["null", "zero", "full", "random", "urandom", "tty"]


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "volume").mkdir()
    (tmp_path / "volume" / "file").write_text("data\n")
    return tmp_path


def builder(bundle, *, mounts_: list | None = None, linux: dict | None = None, binds: list | None = None,
            in_userns: bool = False, own_mount_ns: bool = True, readonly: bool = False) -> mounts.RootfsBuilder:
    config = {"root": {"path": "rootfs", "readonly": readonly}, "mounts": mounts_ or [], "linux": linux or {}}
    return mounts.RootfsBuilder(config, str(bundle), lambda: binds or [("", "/sys/fs/cgroup/unified/c1")],
                                in_userns, own_mount_ns)


def mounts_made(fake, root) -> list[tuple]:
    """(source, target relative to the rootfs, type, flags, data) of the mounts made inside `root`."""
    prefix = str(root)
    return [(source, target[len(prefix):] or "/", fstype, flags, data)
            for source, target, fstype, flags, data in fake.called("mount")
            if target == prefix or target.startswith(prefix + "/")]


def test_the_standard_mounts_in_order_with_their_flags_and_data(bundle, fake_kernel):
    b = builder(bundle, mounts_=standard_mounts())
    b.prepare()
    root = bundle / "rootfs"
    made = mounts_made(fake_kernel, root)
    assert made[0] == (str(root), "/", None, MS_BIND | MS_REC, None)  # the rootfs bound onto itself first
    assert made[1:] == [
        ("proc", "/proc", "proc", 0, None),
        ("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k"),
        ("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, None),
        ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, None),
        ("/sys/fs/cgroup/unified/c1", "/sys/fs/cgroup", None, MS_BIND, None),  # one cgroup v2 directory
        (None, "/sys/fs/cgroup", None,
         MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY, None),
    ]
    # the container's propagation is slave until pivot_root, the mount points were made inside the rootfs
    assert fake_kernel.called("mount")[0] == (None, "/", None, MS_SLAVE | MS_REC, None)
    assert all((root / point).is_dir() for point in ("proc", "dev/pts", "dev/shm", "dev/mqueue", "sys/fs/cgroup"))


def test_default_devices_are_made_with_their_owner_mode_and_links(bundle, fake_kernel):
    b = builder(bundle)
    b.prepare()
    dev = f"{bundle}/rootfs/dev"
    assert fake_kernel.called("mknod") == [(path.replace("/dev", dev), stat.S_IFCHR | 0o666, os.makedev(major, minor))
                                           for path, major, minor in mounts.DEFAULT_DEVICES]
    assert fake_kernel.called("chmod") == [(f"{dev}/{name}", 0o666) for name in DEFAULT_NODES]
    assert fake_kernel.called("chown") == [(f"{dev}/{name}", 0, 0) for name in DEFAULT_NODES]
    links = {path: target for target, path in fake_kernel.called("symlink")}
    assert links[f"{dev}/fd"] == "/proc/self/fd" and links[f"{dev}/stdin"] == "/proc/self/fd/0"
    assert links[f"{dev}/stdout"] == "/proc/self/fd/1" and links[f"{dev}/stderr"] == "/proc/self/fd/2"
    assert links[f"{dev}/ptmx"] == "pts/ptmx"


def test_a_device_entry_gives_mode_and_owner_and_replaces_the_default_one(bundle, fake_kernel):
    linux = {"devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 5,
                          "gid": 6},
                         {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                         {"path": "/dev/sub/pipe", "type": "p", "fileMode": 0o600},
                         {"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0}]}
    builder(bundle, linux=linux).prepare()
    dev = f"{bundle}/rootfs/dev"
    nodes = {path: (mode, device) for path, mode, device in fake_kernel.called("mknod")}
    assert nodes[f"{dev}/null"] == (stat.S_IFCHR | 0o620, os.makedev(1, 3))
    assert nodes[f"{dev}/fuse"] == (stat.S_IFCHR | 0o666, os.makedev(10, 229))
    assert nodes[f"{dev}/sub/pipe"] == (stat.S_IFIFO | 0o600, 0)
    assert nodes[f"{dev}/loop0"] == (stat.S_IFBLK | 0o666, os.makedev(7, 0))
    assert [p for p, *_ in fake_kernel.called("mknod")].count(f"{dev}/null") == 1
    assert (f"{dev}/null", 5, 6) in fake_kernel.called("chown")
    assert os.path.isdir(f"{dev}/sub")  # the entry's parent directories are made


def test_a_device_path_that_holds_another_file_is_refused(bundle, fake_kernel):
    (bundle / "rootfs" / "dev").mkdir()
    (bundle / "rootfs" / "dev" / "kvm").write_text("not a device\n")
    b = builder(bundle, linux={"devices": [{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232}]})
    with pytest.raises(InvalidInput, match="/linux/devices/0: /dev/kvm exists and is not that device"):
        b.prepare()


def test_in_a_user_namespace_devices_are_bound_from_the_host(bundle, fake_kernel):
    builder(bundle, in_userns=True).prepare()
    assert fake_kernel.called("mknod") == []
    dev = f"{bundle}/rootfs/dev"
    binds = [(source, target) for source, target, _, flags, _ in fake_kernel.called("mount") if flags == MS_BIND]
    assert binds == [(f"/dev/{name}", f"{dev}/{name}") for name in DEFAULT_NODES]


def test_a_dev_bound_from_the_host_gets_no_default_nodes(bundle, fake_kernel):
    builder(bundle, mounts_=[{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}]).prepare()
    assert fake_kernel.called("mknod") == []
    assert fake_kernel.called("symlink") == []


def test_bind_mounts_with_flags_recursive_options_and_propagation(bundle, fake_kernel):
    entries = [{"destination": "/data", "type": "bind", "source": "volume", "options": ["rbind", "ro", "nosuid"]},
               {"destination": "/one", "source": str(bundle / "volume" / "file"), "options": ["bind", "rro"]},
               {"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared", "size=1k"]}]
    builder(bundle, mounts_=entries).prepare()
    root = bundle / "rootfs"
    assert mounts_made(fake_kernel, root)[1:] == [
        (str(bundle / "volume"), "/data", None, MS_BIND | MS_REC, None),  # a relative source is the bundle's
        (None, "/data", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None),
        (str(bundle / "volume" / "file"), "/one", None, MS_BIND, None),
        ("tmpfs", "/shared", "tmpfs", 0, "size=1k"),
        (None, "/shared", None, MS_SHARED | MS_REC, None),
    ]
    assert (root / "one").is_file() and (root / "data").is_dir()  # a file's mount point is a file
    setattr_calls = fake_kernel.called("mount_setattr")
    assert setattr_calls == [(str(root / "one"), "", kernel.AT_EMPTY_PATH | kernel.AT_RECURSIVE,
                              *RECURSIVE_OPTIONS["rro"], 0)]


def test_a_target_behind_a_symlink_stays_inside_the_rootfs(bundle, fake_kernel, tmp_path_factory):
    outside = tmp_path_factory.mktemp("host")
    os.symlink(str(outside), bundle / "rootfs" / "escape")
    builder(bundle, mounts_=[{"destination": "/escape/x", "type": "tmpfs", "source": "tmpfs"}]).prepare()
    # the link's absolute target is taken inside the rootfs: the mount lands on ROOTFS/<outside>/x
    assert ("tmpfs", "/x", "tmpfs", 0, None) in mounts_made(fake_kernel, f"{bundle}/rootfs{outside}")
    assert list(outside.iterdir()) == []


def test_too_many_symlinks_in_a_target_is_an_error(bundle, fake_kernel):
    os.symlink("loop2", bundle / "rootfs" / "loop1")
    os.symlink("loop1", bundle / "rootfs" / "loop2")
    with pytest.raises(OutsideRoot, match="too many levels of symbolic links"):
        builder(bundle, mounts_=[{"destination": "/loop1/x", "type": "tmpfs", "source": "tmpfs"}]).prepare()


def test_sysfs_and_mqueue_fall_back_to_the_hosts_when_refused(bundle, fake_kernel):
    """Without a network (or ipc) namespace of its own a new sysfs (mqueue) is refused: the host's is bound."""
    fake_kernel.fail("mount", errno.EPERM, when=lambda source, target, fstype, *_: fstype in ("sysfs", "mqueue"),
                     times=2)
    entries = [m for m in standard_mounts() if m["type"] in ("sysfs", "mqueue")]
    builder(bundle, mounts_=entries).prepare()
    made = mounts_made(fake_kernel, bundle / "rootfs")[1:]
    assert ("/dev/mqueue", "/dev/mqueue", None, MS_BIND | MS_REC, None) in made
    assert ("/sys", "/sys", None, MS_BIND | MS_REC, None) in made
    assert (None, "/sys", None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, None) in made


def test_a_refused_mount_names_its_entry(bundle, fake_kernel):
    fake_kernel.fail("mount", errno.ENODEV, when=lambda source, target, fstype, *_: fstype == "nosuchfs")
    entries = [{"destination": "/a", "type": "tmpfs", "source": "tmpfs"},
               {"destination": "/b", "type": "nosuchfs", "source": "x"}]
    with pytest.raises(mounts.MountError, match="^/mounts/1: mount: No such device"):
        builder(bundle, mounts_=entries).prepare()


def test_a_remount_refused_in_a_user_namespace_keeps_the_locked_flags(bundle, fake_kernel):
    fake_kernel.fail("mount", errno.EPERM, when=lambda source, target, fstype, flags, data: flags & MS_REMOUNT)
    entries = [{"destination": "/data", "type": "bind", "source": "volume", "options": ["rbind", "ro"]}]
    builder(bundle, mounts_=entries).prepare()
    remounts = [m for m in mounts_made(fake_kernel, bundle / "rootfs") if m[3] & MS_REMOUNT]
    assert len(remounts) == 2 and remounts[1][3] & remounts[0][3] == remounts[0][3]  # again, with what is locked


def test_an_idmapped_mount_is_attached_not_mounted(bundle, fake_kernel):
    b = builder(bundle, mounts_=[{"destination": "/data", "type": "bind", "source": "volume",
                                  "options": ["rbind", "idmap"]}])
    tree = os.open("/dev/null", os.O_RDONLY)
    b.idmapped = {0: tree}
    try:
        b.prepare()
    finally:
        os.close(tree)
    assert fake_kernel.called("move_mount") == [(tree, f"{bundle}/rootfs/data")]
    assert mounts_made(fake_kernel, bundle / "rootfs")[1:] == []


def test_cgroup_v1_controllers_each_bound_read_only_on_a_tmpfs(bundle, fake_kernel):
    binds = [("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/c1"), ("memory", "/sys/fs/cgroup/memory/c1"),
             ("cpu", "->cpu,cpuacct")]
    entries = [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid"]}]
    builder(bundle, mounts_=entries, binds=binds).prepare()
    made = mounts_made(fake_kernel, bundle / "rootfs")[1:]
    sealed = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    assert made == [
        ("tmpfs", "/sys/fs/cgroup", "tmpfs", MS_NOSUID, "mode=755"),
        ("/sys/fs/cgroup/cpu,cpuacct/c1", "/sys/fs/cgroup/cpu,cpuacct", None, MS_BIND, None),
        (None, "/sys/fs/cgroup/cpu,cpuacct", None, sealed, None),
        ("/sys/fs/cgroup/memory/c1", "/sys/fs/cgroup/memory", None, MS_BIND, None),
        (None, "/sys/fs/cgroup/memory", None, sealed, None),
        (None, "/sys/fs/cgroup", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID, None),
    ]
    assert os.readlink(bundle / "rootfs" / "sys" / "fs" / "cgroup" / "cpu") == "cpu,cpuacct"


def test_pivot_root_then_the_old_root_detached(bundle, fake_kernel, monkeypatch):
    monkeypatch.chdir(bundle)  # pivot changes directory, the fake does not change root
    builder(bundle).pivot(no_pivot=False)
    assert fake_kernel.names() == ["pivot_root", "mount", "umount2"]
    assert fake_kernel.called("pivot_root") == [(".", ".")]
    assert fake_kernel.called("mount") == [(None, ".", None, MS_SLAVE | MS_REC, None)]
    assert fake_kernel.called("umount2") == [(".", kernel.MNT_DETACH)]


def test_no_pivot_moves_the_rootfs_and_chroots(bundle, fake_kernel, monkeypatch):
    monkeypatch.chdir(bundle)
    builder(bundle).pivot(no_pivot=True)
    assert fake_kernel.calls == [("mount", (str(bundle / "rootfs"), "/", None, MS_MOVE, None)), ("chroot", (".",))]


def test_without_a_mount_namespace_the_callers_mounts_are_left_alone(bundle, fake_kernel, monkeypatch):
    monkeypatch.chdir(bundle)
    b = builder(bundle, own_mount_ns=False)
    b.prepare()
    assert (None, "/", None, MS_SLAVE | MS_REC, None) not in fake_kernel.called("mount")
    fake_kernel.calls.clear()
    b.pivot(no_pivot=False)
    assert fake_kernel.calls == [("chroot", (".",))]


def test_finish_masks_makes_read_only_and_sets_propagation(bundle, fake_kernel, tmp_path_factory):
    host = tmp_path_factory.mktemp("paths")
    (host / "dir").mkdir()
    (host / "file").write_text("secret\n")
    linux = {"maskedPaths": [str(host / "dir"), str(host / "file"), str(host / "missing")],
             "readonlyPaths": [str(host / "dir"), str(host / "missing")], "rootfsPropagation": "rprivate"}
    builder(bundle, linux=linux, readonly=True).finish()
    assert fake_kernel.called("mount") == [
        ("tmpfs", str(host / "dir"), "tmpfs", MS_RDONLY, None),  # an empty read-only directory over a directory
        ("/dev/null", str(host / "file"), None, MS_BIND, None),  # /dev/null over a file
        (str(host / "dir"), str(host / "dir"), None, MS_BIND | MS_REC, None),
        (None, str(host / "dir"), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
        (None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None),  # root.readonly
        (None, "/", None, MS_PRIVATE | MS_REC, None),
    ]


def test_tmpcopyup_copies_what_the_new_filesystem_covers(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "file").write_text("kept\n")
    os.chmod(source / "sub" / "file", 0o640)
    os.symlink("sub/file", source / "link")
    os.mkfifo(source / "fifo")
    target.mkdir()
    fds = [os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in (source, target)]
    try:
        mounts.copy_tree(*fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert (target / "sub" / "file").read_text() == "kept\n"
    assert stat.S_IMODE(os.stat(target / "sub" / "file").st_mode) == 0o640
    assert os.readlink(target / "link") == "sub/file"
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
