"""The container's filesystem: mounts in order, /dev, masked and read-only paths, pivot_root.

Every target is resolved inside the rootfs as if it were `/` (symlinks cannot lead out),
created if missing, opened O_PATH and mounted through /proc/self/fd (oci.linux.inroot), so a
path swapped under our feet cannot redirect a mount to the host. Every mount, device node and
root change goes through oci.linux.kernel, so unit tests run these steps against a fake.
"""

from __future__ import annotations

import errno
import os
import stat

from oci.errors import InvalidInput, OciError
from oci.linux.inroot import make_dirs, open_resolved, open_target, resolve_in_root
from oci.linux.kernel import AT_EMPTY_PATH, AT_RECURSIVE, MNT_DETACH, kernel
from oci.linux.mountopts import (
    ATTR__ATIME,
    FLAG_OPTIONS,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    PROPAGATION_OPTIONS,
    RECURSIVE_OPTIONS,
    RUNTIME_OPTIONS,
    USERNS_LOCKED_FLAGS,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

DEFAULT_DEVICES = [  # path, major, minor
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
]
DEV_LINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr")]


TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class MountError(OciError):
    """A mount the config asks for could not be made."""


def parse_options(options: list[str]) -> tuple[int, int, list[str]]:
    """(flags, propagation flags, filesystem data options) from a mount's options (recursive ones and those
    the runtime carries out itself left out)."""
    flags, propagation, data = 0, 0, []
    for option in options:
        if option in RECURSIVE_OPTIONS or option in RUNTIME_OPTIONS:
            continue
        if option in FLAG_OPTIONS:
            clear, flag = FLAG_OPTIONS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in PROPAGATION_OPTIONS:
            propagation |= PROPAGATION_OPTIONS[option]
        else:
            data.append(option)
    return flags, propagation, data


def _attributes(options: list[tuple[int, int]]) -> tuple[int, int]:
    """(attributes to set, attributes to clear) from recursive options, later ones winning."""
    attr_set = attr_clr = 0
    for set_bits, clr_bits in options:
        if clr_bits == ATTR__ATIME:  # the atime modes are one field: clear it, then set the mode
            attr_clr |= ATTR__ATIME
            attr_set = (attr_set & ~ATTR__ATIME) | set_bits
        elif set_bits:
            attr_set, attr_clr = attr_set | set_bits, attr_clr & ~set_bits
        else:
            attr_set, attr_clr = attr_set & ~clr_bits, attr_clr | clr_bits
    return attr_set, attr_clr


def _locked_flags(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return sum(flag for bit, flag in USERNS_LOCKED_FLAGS.items() if st.f_flag & bit)


def remount_bind(target: str, flags: int) -> None:
    """Apply flags to a bind mount, keeping flags a user namespace has locked."""
    try:
        kernel().mount(None, target, None, MS_REMOUNT | MS_BIND | flags)
    except OSError as err:
        if err.errno != errno.EPERM:
            raise
        kernel().mount(None, target, None, MS_REMOUNT | MS_BIND | flags | _locked_flags(target))


class RootfsBuilder:
    """Prepares the rootfs in the container's new mount namespace, then pivots into it.

    Without a mount namespace of its own (`own_mount_ns` false: linux.namespaces shares the caller's),
    the mounts are made in the caller's, as runc makes them, the propagation of the caller's mounts is
    left alone, and the process changes root with chroot (pivot_root would move the caller's root).
    """

    def __init__(self, config: dict[str, Any], bundle: str, cgroup_binds: Callable[[], list[tuple[str, str]]],
                 in_userns: bool, own_mount_ns: bool = True) -> None:
        self.config = config
        self.linux = config.get("linux", {})
        self.bundle = bundle
        root = config["root"]["path"]
        self.rootfs = os.path.realpath(root if os.path.isabs(root) else os.path.join(bundle, root))
        self.cgroup_binds = cgroup_binds
        self.in_userns = in_userns
        self.own_mount_ns = own_mount_ns
        self.dev_bound = False
        self.idmapped: dict[int, int] = {}  # mount index -> a detached idmapped mount the runtime made

    def prepare(self) -> None:
        """Everything before pivot_root: propagation, the rootfs bind, the mounts, /dev."""
        # An unbindable rootfs could not be bound onto itself: that one is applied after pivot_root only.
        if self.own_mount_ns:
            initial = PROPAGATION_OPTIONS.get(self.linux.get("rootfsPropagation", ""), MS_SLAVE | MS_REC)
            kernel().mount(None, "/", None, MS_SLAVE | MS_REC if initial & MS_UNBINDABLE else initial)
        try:
            if not stat.S_ISDIR(os.stat(self.rootfs).st_mode):
                raise InvalidInput(f"/root/path: rootfs {self.rootfs} is not a directory")
        except OSError as err:
            raise InvalidInput(f"/root/path: rootfs {self.rootfs}: {err.strerror}") from None
        parent = _mount_point_of(self.rootfs)
        if parent[1] and self.own_mount_ns:  # pivot_root refuses a shared parent mount
            kernel().mount(None, parent[0], None, MS_PRIVATE)
        kernel().mount(self.rootfs, self.rootfs, None, MS_BIND | MS_REC)
        for i, entry in enumerate(self.config.get("mounts", [])):
            try:
                self.mount(entry, i)
            except OSError as err:
                raise MountError(f"/mounts/{i}: {err.strerror or err}") from None
        if not self.dev_bound:
            self.make_default_devices()
        self.make_devices()

    def mount(self, entry: dict[str, Any], index: int = -1) -> None:
        dest = entry["destination"]
        if not dest.startswith("/"):
            dest = "/" + dest
        fstype = entry.get("type") or ""
        flags, propagation, data = parse_options(entry.get("options", []))
        source = entry.get("source") or fstype or "none"
        bind = bool(flags & MS_BIND) or fstype == "bind"
        if bind:
            flags |= MS_BIND
            if not os.path.isabs(source):
                source = os.path.join(self.bundle, source)
            if dest == "/dev":
                self.dev_bound = True
        elif dest == "/dev":
            self.dev_bound = False
        if fstype == "cgroup" or fstype == "cgroup2":
            self.mount_cgroup(dest, flags)
            return
        directory = not bind or os.path.isdir(source)
        fd = open_target(self.rootfs, dest, directory)
        target = f"/proc/self/fd/{fd}"
        try:
            if bind:
                if index in self.idmapped:
                    kernel().move_mount(self.idmapped.pop(index), fd)
                else:
                    kernel().mount(source, target, None, MS_BIND | (flags & MS_REC))
                extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
                if extra:
                    os.close(fd)
                    fd = -1
                    fd = open_resolved(self.rootfs, dest, os.O_PATH)
                    remount_bind(f"/proc/self/fd/{fd}", extra)
            else:
                covered = None
                if "tmpcopyup" in entry.get("options", []):
                    # The directory the new file system covers, still reachable through an fd opened now.
                    covered = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    self._mount_fs(source, target, fstype, flags, ",".join(data), dest)
                    if covered is not None:
                        os.close(fd)
                        fd = -1
                        fd = open_resolved(self.rootfs, dest, os.O_RDONLY | os.O_DIRECTORY)
                        copy_tree(covered, fd)
                finally:
                    if covered is not None:
                        os.close(covered)
            recursive = [RECURSIVE_OPTIONS[o] for o in entry.get("options", []) if o in RECURSIVE_OPTIONS]
            if recursive or propagation:
                os.close(fd)
                fd = -1
                fd = open_resolved(self.rootfs, dest, os.O_PATH)
            if recursive:
                kernel().mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, *_attributes(recursive))
            if propagation:
                for flag in (MS_PRIVATE, MS_SHARED, MS_SLAVE, MS_UNBINDABLE):
                    if propagation & flag:
                        kernel().mount(None, f"/proc/self/fd/{fd}", None, flag | (propagation & MS_REC))
        finally:
            if fd >= 0:  # -1 while a reopen after the mount failed
                os.close(fd)

    def _mount_fs(self, source: str, target: str, fstype: str, flags: int, data: str, dest: str) -> None:
        try:
            kernel().mount(source, target, fstype, flags, data or None)
        except OSError as err:
            if fstype == "sysfs" and err.errno == errno.EPERM:
                # sysfs needs a network namespace of our own; bind the host's instead.
                kernel().mount("/sys", target, None, MS_BIND | MS_REC)
                remount_bind(target, flags | MS_RDONLY if flags & MS_RDONLY else flags)
            elif fstype == "mqueue" and err.errno == errno.EPERM:
                kernel().mount("/dev/mqueue", target, None, MS_BIND | MS_REC)
            else:
                raise

    def mount_cgroup(self, dest: str, flags: int) -> None:
        """/sys/fs/cgroup as the container sees it: its own cgroup directories bound read-only."""
        binds = self.cgroup_binds()
        flags &= ~(MS_BIND | MS_REC | MS_REMOUNT)
        if len(binds) == 1 and binds[0][0] == "":
            fd = open_target(self.rootfs, dest, True)
            try:
                kernel().mount(binds[0][1], f"/proc/self/fd/{fd}", None, MS_BIND)
            finally:
                os.close(fd)
            fd = open_resolved(self.rootfs, dest, os.O_PATH)
            try:
                remount_bind(f"/proc/self/fd/{fd}", flags)
            finally:
                os.close(fd)
            return
        fd = open_target(self.rootfs, dest, True)
        try:
            kernel().mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", flags & ~MS_RDONLY, "mode=755")
        finally:
            os.close(fd)
        # The tmpfs is new and only we write to it: its entries are made and opened relative to it
        # (no symlink can be in the way), not resolved from the rootfs one component at a time.
        tmpfs = open_target(self.rootfs, dest, True)
        try:
            for name, host_path in binds:
                if host_path.startswith("->"):
                    os.symlink(host_path[2:], name, dir_fd=tmpfs)
                    continue
                os.mkdir(name, 0o755, dir_fd=tmpfs)
                sub = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmpfs)
                try:
                    kernel().mount(host_path, f"/proc/self/fd/{sub}", None, MS_BIND)
                finally:
                    os.close(sub)
                sub = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmpfs)  # now the bind mount
                try:
                    remount_bind(f"/proc/self/fd/{sub}", flags | MS_NOSUID | MS_NODEV | MS_NOEXEC)
                finally:
                    os.close(sub)
            if flags & MS_RDONLY:
                kernel().mount(None, f"/proc/self/fd/{tmpfs}", None, MS_REMOUNT | flags)
        finally:
            os.close(tmpfs)

    def _node(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int,
              pointer: str | None = None) -> None:
        """Make a device node; `pointer` names a linux.devices entry, which must not replace another file."""
        full = resolve_in_root(self.rootfs, path)
        if os.path.lexists(full):
            st = os.lstat(full)
            if pointer is not None:
                # config-linux.md#devices: a file at `path` that is not the requested device is an error.
                # The same device is left as it is (a /dev bound from the host lists its own nodes).
                if stat.S_IFMT(st.st_mode) == TYPE_BITS[kind] and \
                        (kind == "p" or (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor)):
                    return
                raise InvalidInput(f"{pointer}: {path} exists and is not that device")
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                os.unlink(full)
        make_dirs(self.rootfs, os.path.relpath(os.path.dirname(full), self.rootfs))
        type_bits = TYPE_BITS[kind]
        if self.in_userns and kind != "p":
            # mknod is refused in a user namespace: bind the host's node instead.
            fd = open_target(self.rootfs, path, False)
            try:
                kernel().mount(path, f"/proc/self/fd/{fd}", None, MS_BIND)
            finally:
                os.close(fd)
            return
        kern = kernel()
        kern.mknod(full, type_bits | (mode & 0o7777), os.makedev(major, minor) if kind != "p" else 0)
        kern.chmod(full, mode & 0o7777)
        kern.chown(full, uid, gid)

    def make_default_devices(self) -> None:
        configured = {device["path"] for device in self.linux.get("devices", [])}
        for path, major, minor in DEFAULT_DEVICES:
            if path not in configured:  # a linux.devices entry says how it is made (mode, owner)
                self._node(path, "c", major, minor, 0o666, 0, 0)
        for target, link in [*DEV_LINKS, ("pts/ptmx", "/dev/ptmx")]:
            full = resolve_in_root(self.rootfs, link)
            if os.path.lexists(full):
                if link == "/dev/ptmx" or stat.S_ISLNK(os.lstat(full).st_mode):
                    os.unlink(full)
                else:
                    continue
            kernel().symlink(target, full)
        if os.path.exists("/proc/kcore"):
            core = resolve_in_root(self.rootfs, "/dev/core")
            if not os.path.lexists(core):
                kernel().symlink("/proc/kcore", core)

    def make_devices(self) -> None:
        for i, device in enumerate(self.linux.get("devices", [])):
            if device["path"] == "/dev/ptmx" and not self.dev_bound:
                continue  # stays the link to pts/ptmx, as runc leaves it (containerd's --privileged lists it)
            mode = device.get("fileMode", 0o666)
            self._node(device["path"], device["type"], device.get("major", 0), device.get("minor", 0), mode,
                       device.get("uid", 0), device.get("gid", 0), f"/linux/devices/{i}")

    def pivot(self, no_pivot: bool) -> None:
        """Make the rootfs `/`: pivot_root and detach the old root, or move and chroot."""
        if not self.own_mount_ns:  # the caller's mounts stay where they are
            os.chdir(self.rootfs)
            kernel().chroot(".")
            os.chdir("/")
            return
        if no_pivot:
            os.chdir(self.rootfs)
            kernel().mount(self.rootfs, "/", None, MS_MOVE)
            kernel().chroot(".")
            os.chdir("/")
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.chdir(self.rootfs)
            kernel().pivot_root(".", ".")
            os.fchdir(old_root)
            kernel().mount(None, ".", None, MS_SLAVE | MS_REC)
            kernel().umount2(".", MNT_DETACH)
        finally:
            os.close(old_root)
        os.chdir("/")

    def finish(self) -> None:
        """After pivot_root: masked and read-only paths, a read-only root, / propagation, stdio on /dev/null."""
        for path in self.linux.get("maskedPaths", []):
            mask_path(path)
        for path in self.linux.get("readonlyPaths", []):
            make_readonly(path)
        if self.config["root"].get("readonly"):
            remount_bind("/", MS_RDONLY)
        propagation = self.linux.get("rootfsPropagation")
        if propagation:
            kernel().mount(None, "/", None, PROPAGATION_OPTIONS[propagation])
        reopen_dev_null()


def copy_tree(source: int, target: int) -> None:
    """Copy what the directory open at `source` holds into the one open at `target` (tmpcopyup): files,
    directories, symbolic links (not followed), device nodes and fifos, with their owner, mode and
    times. Every step is relative to an open directory: nothing is followed out of either tree."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.scandir(source) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        st = os.stat(name, dir_fd=source, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=target)
            inner_source = os.open(name, flags | os.O_DIRECTORY, dir_fd=source)
            try:
                inner_target = os.open(name, flags | os.O_DIRECTORY, dir_fd=target)
                try:
                    copy_tree(inner_source, inner_target)
                finally:
                    os.close(inner_target)
            finally:
                os.close(inner_source)
        elif stat.S_ISREG(mode):
            fin = os.open(name, flags, dir_fd=source)
            try:
                fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                               dir_fd=target)
                try:
                    while os.sendfile(fout, fin, None, 1 << 30):
                        pass
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=source), name, dir_fd=target)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=target)
        else:
            continue  # a socket means nothing without its server
        os.chown(name, st.st_uid, st.st_gid, dir_fd=target, follow_symlinks=False)
        if not stat.S_ISLNK(mode):
            os.chmod(name, stat.S_IMODE(mode), dir_fd=target)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=target, follow_symlinks=False)


def reopen_dev_null() -> None:
    """Point stdio that is on /dev/null at the container's /dev/null, opened read-write, as runc does:
    engines give "null" stdio as a read-only /dev/null (containerd's --null-io), where echo would fail."""
    try:
        null = os.stat("/dev/null")
    except OSError:
        return
    if not stat.S_ISCHR(null.st_mode):
        return
    fd = None
    for target in (0, 1, 2):
        try:
            st = os.fstat(target)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev:
            if fd is None:
                fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            os.dup2(fd, target)
    if fd is not None:
        os.close(fd)


def _mount_point_of(path: str) -> tuple[str, bool]:
    """(the mount point holding `path`, whether that mount is shared)."""
    best, shared = "/", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best = point
                shared = any(field.startswith("shared:") for field in fields[6:fields.index("-")])
    return best, shared


def mask_path(path: str) -> None:
    """Hide `path`: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(st.st_mode):
        kernel().mount("tmpfs", path, "tmpfs", MS_RDONLY, None)
    else:
        kernel().mount("/dev/null", path, None, MS_BIND)


def make_readonly(path: str) -> None:
    """Bind `path` onto itself read-only."""
    if not os.path.exists(path):
        return
    kernel().mount(path, path, None, MS_BIND | MS_REC)
    remount_bind(path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
