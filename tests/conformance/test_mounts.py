"""config.md#root and #mounts, config-linux.md devices, masked and readonly paths, sysctl, rootfs propagation."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from ocitest import mountinfo

EROFS, EACCES = 30, 13


def mounts_of(report) -> list[mountinfo.Mount]:
    return mountinfo.parse(report["mountinfo"])


@pytest.mark.spec("config.md#root")
def test_root_path_absolute(runtime, bundle):
    """root.path may be absolute: that directory is the container's /."""
    bundle.config["root"]["path"] = str(bundle.rootfs)
    bundle.checker("report", "-s", "/checker").write()
    assert runtime.run_json(bundle.path)["stat"]["/checker"]["type"] == "file"


@pytest.mark.spec("config.md#root")
def test_root_readonly(runtime, bundle):
    """root.readonly true: the root filesystem MUST be read-only inside the container."""
    bundle.config["root"]["readonly"] = True
    bundle.checks("try create /newfile", "report").write()
    created, report = runtime.run_lines(bundle.path)
    assert (created["ok"], created["errno"]) == (False, EROFS)
    assert "ro" in mountinfo.at(mounts_of(report), "/").options
    assert not (bundle.rootfs / "newfile").exists()


@pytest.mark.spec("config.md#root")
def test_root_writable_by_default(runtime, bundle):
    bundle.checker("try", "create", "/newfile").write()
    assert runtime.run_json(bundle.path)["ok"] is True
    assert (bundle.rootfs / "newfile").exists()


@pytest.mark.spec("config.md#mounts")
def test_mounts_in_listed_order(runtime, bundle):
    """The runtime MUST mount entries in the listed order: a later mount lands inside an earlier one."""
    bundle.add_mount("/mnt/outer", "tmpfs", "tmpfs", ["size=1m"])
    bundle.add_mount("/mnt/outer/inner", "tmpfs", "tmpfs", ["size=2m"])
    bundle.add_mount("/mnt/outer/inner/deepest", "tmpfs", "tmpfs", ["size=3m"])
    bundle.checker("report").write()
    mounts = mounts_of(runtime.run_json(bundle.path))
    outer, inner, deepest = (mountinfo.at(mounts, p) for p in ("/mnt/outer", "/mnt/outer/inner",
                                                                "/mnt/outer/inner/deepest"))
    assert inner.parent == outer.id and deepest.parent == inner.id
    assert "size=3072k" in deepest.super_options


@pytest.mark.spec("config.md#mounts")
def test_mount_destination_is_created(runtime, bundle):
    """A destination missing from the root filesystem is created (here two levels deep)."""
    bundle.add_mount("/made/by/runtime", "tmpfs", "tmpfs")
    bundle.checker("report").write()
    assert mountinfo.at(mounts_of(runtime.run_json(bundle.path)), "/made/by/runtime").fstype == "tmpfs"


@pytest.mark.spec("config.md#mounts")
def test_bind_mount_of_a_directory_and_a_file(runtime, bundle, tmp_path):
    source = tmp_path / "shared"
    source.mkdir()
    (source / "data.txt").write_text("from the host")
    (tmp_path / "single").write_text("one file")
    bundle.add_mount("/mnt/shared", None, str(source), ["bind"])
    bundle.add_mount("/mnt/single", None, str(tmp_path / "single"), ["bind"])
    bundle.checker("report", "-r", "/mnt/shared/data.txt", "-r", "/mnt/single").write()
    read = runtime.run_json(bundle.path)["read"]
    assert read["/mnt/shared/data.txt"]["text"] == "from the host"
    assert read["/mnt/single"]["text"] == "one file"


@pytest.mark.spec("config.md#mounts")
def test_bind_is_not_recursive_and_rbind_is(runtime, bundle):
    """`bind` takes one mount; `rbind` takes the submounts too (here the cgroup hierarchies)."""
    bundle.add_mount("/mnt/bind", None, "/sys/fs/cgroup", ["bind", "ro"])
    bundle.add_mount("/mnt/rbind", None, "/sys/fs/cgroup", ["rbind", "ro"])
    bundle.checker("report").write()
    mounts = mounts_of(runtime.run_json(bundle.path))
    assert mountinfo.under(mounts, "/mnt/bind") == []
    assert any(m.fstype == "cgroup" for m in mountinfo.under(mounts, "/mnt/rbind"))


@pytest.mark.spec("config.md#mounts")
def test_recursive_atime_options(runtime, bundle):
    """ratime and rnostrictatime (SHOULD, kernel 5.12) undo rnoatime and rstrictatime on a mount and its submounts:
    the kernel's default, relatime."""
    runtime.require("recursive-atime")
    bundle.add_mount("/mnt/atime", None, "/sys/fs/cgroup", ["rbind", "ro", "rnoatime", "ratime"])
    bundle.add_mount("/mnt/nostrict", None, "/sys/fs/cgroup", ["rbind", "ro", "rstrictatime", "rnostrictatime"])
    bundle.checker("report").write()
    mounts = mounts_of(runtime.run_json(bundle.path))
    for point in ("/mnt/atime", "/mnt/nostrict"):
        tree = [mountinfo.at(mounts, point), *mountinfo.under(mounts, point)]
        assert len(tree) > 1 and all("relatime" in m.options and "noatime" not in m.options for m in tree), point


def owned_by_root(where: Path) -> Path:
    """A host directory holding a file and a directory, both owned by 0:0 on disk (under WHERE, the bundle's
    folder: a user namespace's root can reach it)."""
    source = where / "idmap-source"
    (source / "sub").mkdir(parents=True)
    (source / "file").write_text("data\n")
    for path in (source, source / "sub", source / "file"):
        os.chown(path, 0, 0)
    return source


@pytest.mark.spec("config.md#mounts")
def test_idmapped_bind_mounts_with_their_own_mappings(runtime, bundle):
    """idmap (SHOULD): the mount MUST have an idmapping applied, the mount's uidMappings and gidMappings when it
    has them; ridmap likewise on every submount."""
    runtime.require("idmap")
    source = owned_by_root(bundle.path)
    for destination, options, host_id in (("/mnt/idmap", ["bind", "idmap"], 1000),
                                          ("/mnt/ridmap", ["rbind", "ridmap"], 2000)):
        bundle.add_mount(destination, "bind", str(source), options)
        bundle.config["mounts"][-1]["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 1}]
        bundle.config["mounts"][-1]["gidMappings"] = [{"containerID": 0, "hostID": host_id + 1, "size": 1}]
    paths = ("/mnt/idmap/file", "/mnt/idmap/sub", "/mnt/ridmap/file")
    bundle.checker("report", *(arg for path in paths for arg in ("-s", path))).write()
    stat = runtime.run_json(bundle.path)["stat"]
    assert [(stat[path]["uid"], stat[path]["gid"]) for path in paths] == [(1000, 1001)] * 2 + [(2000, 2001)]
    assert (source / "file").stat().st_uid == 0  # on disk nothing changed


@pytest.mark.spec("config.md#mounts")
def test_idmap_without_mappings_nor_user_namespace_is_an_error(runtime, bundle):
    """If there are no uidMappings and gidMappings specified and the container isn't using user namespaces, an
    error MUST be returned."""
    runtime.require("idmap")
    bundle.add_mount("/mnt/idmap", "bind", str(owned_by_root(bundle.path)), ["bind", "idmap"])
    bundle.checker("exit", "0").write()
    cid, result = runtime.create(bundle.path)
    assert result.returncode != 0
    assert runtime.state(cid).returncode != 0


@pytest.mark.spec("config.md#mounts")
def test_idmap_may_take_the_user_namespace_mappings(runtime, bundle):
    """Without mappings of its own an idmapped mount MAY take the container's user namespace mappings: root's
    files on disk are root's in the container, where a plain bind shows them as the overflow id."""
    runtime.require("idmap")
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    source = owned_by_root(bundle.path)
    for name, options in (("idmap", ["rbind", "idmap"]), ("plain", ["rbind"])):
        (bundle.rootfs / "mnt" / name).mkdir(parents=True)
        bundle.add_mount(f"/mnt/{name}", "bind", str(source), options)
    bundle.checker("report", "-s", "/mnt/idmap/file", "-s", "/mnt/plain/file").write()
    stat = runtime.run_json(bundle.path)["stat"]
    assert (stat["/mnt/idmap/file"]["uid"], stat["/mnt/idmap/file"]["gid"]) == (0, 0)
    assert stat["/mnt/plain/file"]["uid"] == 65534


@pytest.mark.spec("config.md#mounts")
def test_mount_flags_ro_nosuid_nodev_noexec(runtime, bundle):
    bundle.add_mount("/mnt/flags", "tmpfs", "tmpfs", ["ro", "nosuid", "nodev", "noexec"])
    bundle.add_mount("/mnt/plain", "tmpfs", "tmpfs", [])
    bundle.checker("report").write()
    mounts = mounts_of(runtime.run_json(bundle.path))
    assert {"ro", "nosuid", "nodev", "noexec"} <= mountinfo.at(mounts, "/mnt/flags").options
    assert not {"ro", "nosuid", "nodev", "noexec"} & mountinfo.at(mounts, "/mnt/plain").options


@pytest.mark.spec("config.md#mounts")
def test_bind_mount_ro_and_noexec_are_enforced(runtime, bundle, tmp_path):
    """Flags on a bind mount are applied (a remount): writes fail with EROFS, exec with EACCES."""
    source = tmp_path / "progs"
    source.mkdir()
    shutil.copy2(bundle.rootfs / "checker", source / "prog")
    bundle.add_mount("/mnt/progs", None, str(source), ["bind", "ro", "noexec"])
    bundle.add_mount("/mnt/exec", None, str(source), ["bind"])
    bundle.checks("try create /mnt/progs/new", "try exec /mnt/progs/prog exit 0",
                  "try exec /mnt/exec/prog exit 0").write()
    write, noexec, exec_ok = runtime.run_lines(bundle.path)
    assert (write["ok"], write["errno"]) == (False, EROFS)
    assert (noexec["ok"], noexec["errno"]) == (False, EACCES)
    assert exec_ok["ok"] is True


@pytest.mark.spec("config.md#mounts")
def test_tmpfs_size_and_mode(runtime, bundle):
    bundle.add_mount("/mnt/small", "tmpfs", "tmpfs", ["size=1m", "mode=700"])
    bundle.checker("report", "-s", "/mnt/small").write()
    report = runtime.run_json(bundle.path)
    assert "size=1024k" in mountinfo.at(mounts_of(report), "/mnt/small").super_options
    assert report["stat"]["/mnt/small"]["mode"] == 0o700


@pytest.mark.spec("config.md#mounts")
@pytest.mark.parametrize("option, tag", [("shared", "shared:"), ("rshared", "shared:"), ("private", None),
                                         ("unbindable", "unbindable")])
def test_bind_mount_propagation_option(runtime, bundle, tmp_path, option, tag):
    """Propagation options set a bind mount's propagation type (mountinfo optional fields).

    rootfsPropagation is set because the spec leaves the default open: crun makes the whole tree
    private again after the mounts when it is unset.
    """
    bundle.linux["rootfsPropagation"] = "slave"
    bundle.add_mount("/mnt/prop", None, str(tmp_path), ["bind", option])
    bundle.checker("report").write()
    fields = mountinfo.at(mounts_of(runtime.run_json(bundle.path)), "/mnt/prop").fields
    if tag is None:
        assert fields == []
    else:
        assert any(f.startswith(tag) for f in fields), fields


@pytest.mark.spec("config-linux.md#rootfs-mount-propagation")
@pytest.mark.parametrize("propagation, tag", [("shared", "shared:"), ("private", None), ("unbindable", "unbindable")])
def test_rootfs_propagation(runtime, bundle, propagation, tag):
    """rootfsPropagation sets the propagation of the container's / mount."""
    runtime.require(f"rootfsPropagation-{propagation}")
    bundle.linux["rootfsPropagation"] = propagation
    bundle.checker("report").write()
    fields = mountinfo.at(mounts_of(runtime.run_json(bundle.path)), "/").fields
    if tag is None:
        assert not any(f.startswith(("shared:", "master:")) for f in fields), fields
    else:
        assert any(f.startswith(tag) for f in fields), fields


DEFAULT_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7), "/dev/random": (1, 8),
                   "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


@pytest.mark.spec("config-linux.md#default-devices")
def test_default_devices(runtime, bundle):
    """null, zero, full, random, urandom, tty are character devices usable by everyone; ptmx is devpts's."""
    args = ["report"]
    for path in [*DEFAULT_DEVICES, "/dev/ptmx", "/dev/pts/ptmx"]:
        args += ["-s", path]
    bundle.checker(*args).write()
    stat = runtime.run_json(bundle.path)["stat"]
    for path, (major, minor) in DEFAULT_DEVICES.items():
        assert (stat[path]["type"], stat[path]["major"], stat[path]["minor"]) == ("char", major, minor), path
        assert stat[path]["mode"] == 0o666, path
    ptmx = stat["/dev/ptmx"]
    assert (ptmx["type"] == "symlink" and ptmx["target"] == "pts/ptmx") or (ptmx["major"], ptmx["minor"]) == (5, 2)
    assert stat["/dev/pts/ptmx"]["type"] == "char"


@pytest.mark.spec("config-linux.md#default-devices")
def test_default_devices_work(runtime, bundle):
    """Reading /dev/zero gives bytes, writing /dev/null succeeds (the device cgroup lets them through)."""
    bundle.checks("try read /dev/zero", "try write /dev/null", "try read /dev/urandom").write()
    assert [act["ok"] for act in runtime.run_lines(bundle.path)] == [True, True, True]


@pytest.mark.spec("config-linux.md#devices")
def test_configured_devices(runtime, bundle):
    """linux.devices entries are created with their type, major, minor, fileMode, uid and gid."""
    bundle.linux["devices"] = [
        {"path": "/dev/conformance-mem", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640, "uid": 1000,
         "gid": 50},
        {"path": "/dev/sub/conformance-blk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 0,
         "gid": 0},
    ]
    bundle.checker("report", "-s", "/dev/conformance-mem", "-s", "/dev/sub/conformance-blk").write()
    stat = runtime.run_json(bundle.path)["stat"]
    mem, blk = stat["/dev/conformance-mem"], stat["/dev/sub/conformance-blk"]
    assert (mem["type"], mem["major"], mem["minor"], mem["mode"], mem["uid"], mem["gid"]) == \
        ("char", 1, 5, 0o640, 1000, 50)
    assert (blk["type"], blk["major"], blk["minor"], blk["mode"]) == ("block", 7, 200, 0o600)


@pytest.mark.spec("config-linux.md#devices")
def test_a_device_over_another_file_is_an_error(runtime, bundle):
    """If a file already exists at `path` that does not match the requested device, the runtime MUST generate an
    error (runtime.md#create: and no container is created); the file stays as it was."""
    runtime.require("device-over-a-file-error")
    (bundle.rootfs / "not-a-device").write_text("data\n")
    bundle.linux["devices"] = [{"path": "/not-a-device", "type": "c", "major": 1, "minor": 5}]
    bundle.checker("exit", "0").write()
    cid, result = runtime.create(bundle.path)
    assert result.returncode != 0
    assert runtime.state(cid).returncode != 0
    assert (bundle.rootfs / "not-a-device").read_text() == "data\n"


@pytest.mark.spec("config-linux.md#devices")
def test_a_device_already_there_is_left_as_it_is(runtime, bundle):
    """A node at `path` that is the requested device matches it: no error, and it is not made anew (it may be
    the host's, under a bound /dev)."""
    node = bundle.rootfs / "conformance-zero"
    os.mknod(node, stat.S_IFCHR | 0o644, os.makedev(1, 5))
    inode = node.stat().st_ino
    bundle.linux["devices"] = [{"path": "/conformance-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600}]
    bundle.checker("exit", "0").write()
    assert runtime.run(bundle.path).returncode == 0
    assert (node.stat().st_ino, stat.S_IMODE(node.stat().st_mode)) == (inode, 0o644)


@pytest.mark.spec("config.md#mounts")
def test_dev_pts_and_shm(runtime, bundle):
    """/dev/pts is a new devpts instance, /dev/shm a tmpfs, as mounted by the config."""
    bundle.checker("report").write()
    mounts = mounts_of(runtime.run_json(bundle.path))
    assert mountinfo.at(mounts, "/dev/pts").fstype == "devpts"
    assert mountinfo.at(mounts, "/dev/shm").fstype == "tmpfs"
    assert mountinfo.at(mounts, "/dev").fstype == "tmpfs"


@pytest.mark.spec("runtime-linux.md#dev-symbolic-links")
def test_dev_symbolic_links(runtime, bundle):
    links = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
             "/dev/stderr": "/proc/self/fd/2"}
    args = ["report"]
    for path in links:
        args += ["-s", path]
    bundle.checker(*args).write()
    stat = runtime.run_json(bundle.path)["stat"]
    assert {path: (stat[path]["type"], stat[path].get("target")) for path in links} == \
        {path: ("symlink", target) for path, target in links.items()}


@pytest.mark.spec("config-linux.md#masked-paths")
def test_masked_paths_cannot_be_read(runtime, bundle):
    """maskedPaths: files read empty, directories list empty (here /proc/timer_list, a file and a directory)."""
    bundle.linux["maskedPaths"] = ["/proc/timer_list", "/etc/passwd", "/home", "/no/such/path"]
    bundle.checks("try read /proc/timer_list", "try read /etc/passwd", "try list /home", "try read /etc/group").write()
    timer_list, passwd, home, group = runtime.run_lines(bundle.path)
    assert timer_list["ok"] is False and passwd["ok"] is False
    assert home["ok"] is False
    assert group["ok"] is True


@pytest.mark.spec("config-linux.md#readonly-paths")
def test_readonly_paths(runtime, bundle):
    bundle.linux["readonlyPaths"] = ["/proc/sys", "/home", "/no/such/path"]
    bundle.checks("try write /proc/sys/kernel/hostname", "try create /home/alice/new", "try create /tmp/new",
                  "try read /home/alice/../../etc/passwd").write()
    proc_sys, home, tmp, read = runtime.run_lines(bundle.path)
    assert (proc_sys["ok"], proc_sys["errno"]) == (False, EROFS)
    assert (home["ok"], home["errno"]) == (False, EROFS)
    assert tmp["ok"] is True and read["ok"] is True


@pytest.mark.spec("config-linux.md#sysctl")
def test_sysctl(runtime, bundle):
    """linux.sysctl values are written in the container's namespaces (net and ipc here), not the host's."""
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read().strip()
    wanted = "0" if host_forward == "1" else "1"
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": wanted, "kernel.msgmax": "4321"}
    bundle.checker("report", "-k", "net.ipv4.ip_forward", "-k", "kernel.msgmax").write()
    assert runtime.run_json(bundle.path)["sysctls"] == {"net.ipv4.ip_forward": wanted, "kernel.msgmax": "4321"}
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read().strip() == host_forward
