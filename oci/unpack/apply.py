"""One layer applied to a tree: OCI whiteouts, every tar entry type, owners, modes, xattrs, caps.

Semantics (image-spec layer.md): entries replace what is at their path (a directory replaced by
a non-directory goes with its contents); `.wh.NAME` removes NAME from lower layers and
`.wh..wh..opq` empties its directory of lower-layer content, whatever their order in the tar;
hardlinks may point at files of lower layers; directory modes and mtimes are set once the
layer is complete. In overlay form (a layer cache entry) whiteouts become what overlayfs reads:
a 0/0 character device, and the `trusted.overlay.opaque=y` xattr.

Every path goes through `safepath`: a hostile entry raises IntegrityError naming the entry.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile

from oci import log
from oci.errors import IntegrityError, OciError, Unsupported
from oci.unpack.decompress import LayerStream
from oci.unpack.options import Budget, LayerResult, Options
from oci.unpack.safepath import Root, UnsafePath, clean, proc_path

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE = "trusted.overlay.opaque"
ROOT_ENTRY = "trusted.ocikit.root"  # overlay form: the layer's tar had a `.` entry (oci.unpack.overlay reads it)
KEPT_XATTRS = frozenset({"security.selinux"})  # the system's label, not the layer's to clear
XATTR_PAX = "SCHILY.xattr."
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def apply_layer(root: Root, stream: LayerStream, options: Options, budget: Budget) -> LayerResult:
    """Apply the tar `stream` to `root`, then verify the stream's digests."""
    applier = _Applier(root, stream, options, budget)
    applier.run()
    stream.finish()
    applier.result.size = stream.tell()
    budget.size += stream.tell()
    if budget.size > budget.max_size:
        raise IntegrityError(f"layers exceed the size cap of {budget.max_size} bytes (--max-size)")
    return applier.result


class _Applier:
    def __init__(self, root: Root, stream: LayerStream, options: Options, budget: Budget) -> None:
        self.root, self.stream, self.options, self.budget = root, stream, options, budget
        self.layer = str(stream.descriptor.digest)
        self.created: set[str] = set()  # paths this layer made: whiteouts spare them
        self.beneath: set[str] = set()  # the parent folders of what this layer made
        self.whited: set[str] = set()  # overlay form: paths this layer whited out (a directory there is opaque)
        self.opaque_root = False  # overlay form: the layer's root is opaque
        self.opaqued: set[str] = set()  # overlay form: the opaque directories of this layer
        self.copied: set[str] = set()  # overlay form: hardlink targets copied up from a lower layer
        self.dirs: list[tuple[str, int, tarfile.TarInfo]] = []  # directory metadata set at the end
        self.result = LayerResult()

    def run(self) -> None:
        try:
            tar = tarfile.TarFile(fileobj=self.stream, mode="r", errors="surrogateescape")  # type: ignore[arg-type]
        except tarfile.ReadError as err:
            if str(err) == "empty file":
                return  # a tar of zero blocks: an empty layer
            raise IntegrityError(f"layer {self.layer}: not a tar stream: {err}") from None
        member = None
        while True:
            if member is not None and self.ends_after(member, tar.offset):
                break
            try:
                member = tar.next()
            except tarfile.TarError as err:
                raise IntegrityError(f"layer {self.layer}: malformed tar: {err}") from None
            if member is None:
                break
            tar.members.clear()  # type: ignore[attr-defined]  # keep no per-entry state in tarfile (not in typeshed)
            self.budget.count_entry()
            self.result.entries += 1
            try:
                self.entry(member)
            except OciError as err:
                raise type(err)(f"layer {self.layer}: tar entry {member.name!r}: {err.message}") from None
            except OSError as err:
                raise OciError(f"layer {self.layer}: tar entry {member.name!r}: {err.strerror}") from None
        if (self.whited or self.copied) and (self.opaqued or self.opaque_root):
            self.drop_needless_whiteouts()
        if self.opaque_root:
            self.hide_lower_root()
        self.finish_dirs()

    def ends_after(self, member: tarfile.TarInfo, following: int) -> bool:
        """True when the stream ends after `member`'s data, before the padding to the next block
        or without the end-of-archive blocks: Go's archive/tar (umoci, podman, containerd) takes
        that as the archive's end, and so do we, the data complete (the diff_id then proves the
        bytes are the image's). `following` is where the next header would start."""
        if member.isreg() and member.sparse is None:
            data_end = member.offset_data + member.size
        else:
            data_end = following
        reached = self.stream.skip_upto(following)
        if reached < data_end:
            raise IntegrityError(f"layer {self.layer}: tar entry {member.name!r}: the stream ends "
                                 f"{data_end - reached} bytes short of its data")
        return reached < following or self.stream.at_end()

    # -- entries -----------------------------------------------------------

    def entry(self, m: tarfile.TarInfo) -> None:
        path = clean(m.name)
        head, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT):
            self.whiteout(head, base)
            return
        if self.whited and head:
            self.reopen(head)
        if not path:
            if not m.isdir():
                raise UnsafePath("the root can only be a directory")
            self.chown_at(self.root.fd, None, m)
            self.set_xattrs_fd(self.root.fd, m, replace=True)
            if self.options.overlay:  # the overlay's upper root takes it from here (oci.unpack.overlay)
                os.setxattr(self.root.fd, ROOT_ENTRY, b"1")
            self.dirs.append((path, m.mode, m))
            return
        dfd = self.root.dir_fd(head)
        if m.isreg():
            self.regular(dfd, base, path, m)
        elif m.isdir():
            self.directory(dfd, base, path, m)
        elif m.issym():
            self.replace(dfd, base, path)
            os.symlink(m.linkname, base, dir_fd=dfd)
            self.metadata_at(dfd, base, m, chmod=False)
        elif m.islnk():
            self.hardlink(dfd, base, path, m)
        elif m.ischr() or m.isblk():
            if not self.options.privileged:
                log.warning(f"{m.name}: device node skipped (needs root)")
                return
            self.replace(dfd, base, path)
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=dfd)
            self.metadata_at(dfd, base, m)
        elif m.isfifo():
            self.replace(dfd, base, path)
            os.mkfifo(base, 0o600, dir_fd=dfd)
            self.metadata_at(dfd, base, m)
        else:
            raise Unsupported(f"unsupported tar entry type {m.type!r}")
        self.created.add(path)
        while head and head not in self.beneath:
            self.beneath.add(head)
            head = head.rpartition("/")[0]

    def replace(self, dfd: int, base: str, path: str) -> None:
        """Clear the way for a new non-directory at `base`."""
        self.root.remove_at(dfd, base, path)

    def regular(self, dfd: int, base: str, path: str, m: tarfile.TarInfo) -> None:
        try:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=dfd)
        except FileExistsError:
            self.replace(dfd, base, path)
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=dfd)
        try:
            if self.stream.tell() != m.offset_data:
                self.stream.seek(m.offset_data)
            if m.sparse is not None:
                self.sparse(fd, m)
            elif m.size:
                self.stream.copy_to(fd, m.size)
            self.metadata_fd(fd, m)
        finally:
            os.close(fd)

    def sparse(self, fd: int, m: tarfile.TarInfo) -> None:
        if m.size > self.budget.bytes_left:
            raise IntegrityError(f"sparse file of {m.size} bytes exceeds the size cap (--max-size)")
        end = 0
        sparse: list[tuple[int, int]] = m.sparse  # type: ignore[assignment]  # typeshed says bytes: a list here
        for offset, length in sparse:
            if not length:
                continue  # GNU tar ends its map with (size, 0); old-format maps pad with (0, 0)
            if offset < end or offset + length > m.size:
                raise IntegrityError("invalid sparse map")
            self.stream.copy_to(fd, length, offset)
            end = offset + length
        os.ftruncate(fd, m.size)

    def directory(self, dfd: int, base: str, path: str, m: tarfile.TarInfo) -> None:
        existing = False
        try:
            os.mkdir(base, 0o700, dir_fd=dfd)
        except FileExistsError:
            existing = stat.S_ISDIR(os.lstat(base, dir_fd=dfd).st_mode)
            if not existing:
                self.replace(dfd, base, path)
                os.mkdir(base, 0o700, dir_fd=dfd)
        fd = os.open(base, _DIR_FLAGS, dir_fd=dfd)
        try:
            self.chown_fd(fd, m)
            self.set_xattrs_fd(fd, m, replace=existing)
            if path in self.whited:  # whited out, then made again: nothing of the lower one shows
                os.setxattr(fd, OVERLAY_OPAQUE, b"y")
                self.opaqued.add(path)
        finally:
            os.close(fd)
        self.dirs.append((path, m.mode, m))

    def hardlink(self, dfd: int, base: str, path: str, m: tarfile.TarInfo) -> None:
        try:
            target = clean(m.linkname)
        except UnsafePath as err:
            raise UnsafePath(f"hardlink target {m.linkname!r}: {err.message}") from None
        if not target:
            raise UnsafePath("hardlink to the root directory")
        if target == path:
            return
        if target.startswith(path + "/"):
            raise IntegrityError(f"hardlink target {m.linkname!r} lies inside what the entry replaces")
        try:
            tdfd, tname = self.root.parent(target, create=False)
            st = os.lstat(tname, dir_fd=tdfd)
        except FileNotFoundError:
            if self.options.overlay and self.copy_up(target):
                tdfd, tname = self.root.parent(target, create=False)
                st = os.lstat(tname, dir_fd=tdfd)
            else:
                raise IntegrityError(f"hardlink target {m.linkname!r} does not exist") from None
        if stat.S_ISDIR(st.st_mode):
            raise IntegrityError(f"hardlink target {m.linkname!r} is a directory")
        self.replace(dfd, base, path)
        os.link(tname, base, src_dir_fd=tdfd, dst_dir_fd=dfd, follow_symlinks=False)

    def copy_up(self, target: str) -> bool:
        """Overlay form: copy a hardlink's target from the first lower layer that has it."""
        for lower in self.options.lower:
            try:
                ldfd, lname = lower.parent(target, create=False)
                st = os.lstat(lname, dir_fd=ldfd)
            except (FileNotFoundError, NotADirectoryError, UnsafePath):
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return False  # whited out there
            if not stat.S_ISREG(st.st_mode):
                return False
            dfd, name = self.root.parent(target)
            src = os.open(lname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=ldfd)
            try:
                dst = os.open(name, _FILE_FLAGS, 0o600, dir_fd=dfd)
                try:
                    while os.copy_file_range(src, dst, 1 << 30):
                        pass
                    if self.options.privileged:
                        os.fchown(dst, st.st_uid, st.st_gid)
                    os.fchmod(dst, stat.S_IMODE(st.st_mode))
                    for key in os.listxattr(src):
                        os.setxattr(dst, key, os.getxattr(src, key))
                    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(dst)
            finally:
                os.close(src)
            self.result.copied_from_lower = True
            self.copied.add(target)
            return True
        return False

    # -- whiteouts -----------------------------------------------------------

    def whiteout(self, head: str, base: str) -> None:
        if base == OPAQUE:
            self.opaque(head)
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # other AUFS metadata (.wh..wh.plnk, ...): nothing to apply
        name = base[len(WHITEOUT):]
        if name in ("", ".", ".."):
            raise UnsafePath(f"whiteout of {name!r}")
        target = f"{head}/{name}" if head else name
        if target in self.created:
            return  # whiteouts only hide lower layers
        if target in self.beneath:  # this layer made things in it: they stay, the lower content goes
            self.opaque(target)
            return
        if self.options.overlay:
            if not self.options.privileged:
                raise Unsupported("overlay whiteouts need root (mknod)")
            dfd = self.root.dir_fd(head)
            self.replace(dfd, name, target)
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dfd)
            self.whited.add(target)
        else:
            self.root.remove(target)

    def hide_lower_root(self) -> None:
        """Overlay form of an opaque root: overlayfs ignores the opaque mark on a layer's root, so
        every name the lower layers hold at the root and this layer does not is whited out, and
        every folder of this layer's root is made opaque. The layer then depends on the layers
        beneath it (its cache entry is keyed by its chain)."""
        lower: set[str] = set()
        for below in self.options.lower:
            lower.update(os.listdir(below.fd))
        mine = set(os.listdir(self.root.fd))
        for name in sorted(lower - mine):
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=self.root.fd)
        for name in sorted(mine):
            if stat.S_ISDIR(os.lstat(name, dir_fd=self.root.fd).st_mode):
                os.setxattr(proc_path(self.root.fd, name), OVERLAY_OPAQUE, b"y", follow_symlinks=False)
                self.opaqued.add(name)
        if lower:
            self.result.copied_from_lower = True

    def drop_needless_whiteouts(self) -> None:
        """Overlay form: inside an opaque directory nothing of the lower layers shows, so the
        whiteouts there hide nothing, the lower files copied up for hardlinks must not show
        either, and neither must the folders the layer has only to hold them (a plain unpack
        never makes those). They all go: overlayfs lists a directory that is not merged with
        lower layers as it is, whiteout devices included."""
        hiding = self.opaqued | ({""} if self.opaque_root else set())
        for path in sorted(self.whited | (self.copied - self.created)):
            try:
                dfd, name = self.root.parent(path, create=False)
                st = os.lstat(name, dir_fd=dfd)
            except (OSError, UnsafePath):
                continue  # gone with a folder removed before
            if path in self.whited and not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
                continue  # made again since
            if path in self.copied and not stat.S_ISREG(st.st_mode):
                continue
            parts = path.split("/")
            above = ["/".join(parts[:i]) for i in range(len(parts))]  # "", "a", "a/b", ... the parent
            for i, folder in enumerate(above):
                if folder in hiding:
                    between = [p for p in above[i + 1:] if p not in self.created and p not in self.beneath]
                    self.root.remove(between[0] if between else path)
                    break

    def reopen(self, head: str) -> None:
        """Overlay form: a folder this layer whited out and now writes into again becomes an
        opaque directory (as a plain unpack removes the folder, then makes it anew)."""
        done = ""
        for part in head.split("/"):
            done = f"{done}/{part}" if done else part
            if done not in self.whited:
                continue
            dfd, name = self.root.parent(done)
            st = os.lstat(name, dir_fd=dfd)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                os.unlink(name, dir_fd=dfd)
                os.mkdir(name, 0o755, dir_fd=dfd)
                fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    os.fchmod(fd, 0o755)
                    os.setxattr(fd, OVERLAY_OPAQUE, b"y")
                    self.opaqued.add(done)
                finally:
                    os.close(fd)

    def opaque(self, head: str) -> None:
        dfd = self.root.dir_fd(head)
        if self.options.overlay:
            if head:
                os.setxattr(dfd, OVERLAY_OPAQUE, b"y")
                self.opaqued.add(head)
            else:
                self.opaque_root = True  # overlayfs ignores the mark on a layer's root: see hide_lower_root
            return
        self._empty(dfd, head, self.beneath)

    def _empty(self, dfd: int, head: str, keep: set[str]) -> None:
        """Remove what lower layers put under `head`, sparing this layer's paths."""
        with os.scandir(dfd) as entries:
            names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_dir in names:
            path = f"{head}/{name}" if head else name
            if is_dir and (path in keep or path in self.created):
                self._empty(self.root.dir_fd(path), path, keep)
            elif path not in self.created:
                self.root.remove_at(dfd, name, path)

    # -- metadata -------------------------------------------------------------

    def ids(self, m: tarfile.TarInfo) -> tuple[int, int]:
        uid, gid = self.options.uid_map.host_id(m.uid), self.options.gid_map.host_id(m.gid)
        if uid is None or gid is None:
            raise IntegrityError(f"owner {m.uid}:{m.gid} is outside --uid-map/--gid-map")
        return uid, gid

    def chown_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        if self.options.privileged:
            os.fchown(fd, *self.ids(m))

    def chown_at(self, dfd: int, base: str | None, m: tarfile.TarInfo) -> None:
        if not self.options.privileged:
            return
        if base is None:
            os.fchown(dfd, *self.ids(m))
        else:
            os.chown(base, *self.ids(m), dir_fd=dfd, follow_symlinks=False)

    def xattrs(self, m: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        found = []
        for key, value in m.pax_headers.items():
            if key.startswith(XATTR_PAX):
                name = key[len(XATTR_PAX):]
                if name.startswith(("trusted.overlay.", ROOT_ENTRY)):
                    continue  # overlayfs's own marks: only whiteouts say what a layer hides (umoci drops them too)
                found.append((name, value.encode("utf-8", "surrogateescape")))
        return found

    def _setxattr(self, target: int | str, name: str, value: bytes, m: tarfile.TarInfo) -> None:
        try:
            os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES) or (
                    self.options.privileged and not name.startswith("user.")):
                raise
            log.warning(f"{m.name}: xattr {name} not set ({err.strerror})")

    def set_xattrs_fd(self, fd: int, m: tarfile.TarInfo, replace: bool = False) -> None:
        """The entry's xattrs; with `replace` (a directory a lower layer made, declared again) the
        ones it had and the entry lacks are removed, as umoci does and as overlayfs shows it."""
        wanted = self.xattrs(m) if m.pax_headers else []
        if replace:
            keep = {name for name, _ in wanted} | KEPT_XATTRS
            for name in os.listxattr(fd):
                if name not in keep and not name.startswith("trusted.overlay."):
                    try:
                        os.removexattr(fd, name)
                    except OSError as err:
                        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES, errno.ENODATA):
                            raise
        for name, value in wanted:
            self._setxattr(fd, name, value, m)

    def metadata_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        """Owner, mode (after chown, which clears setuid), xattrs (after chown, which clears
        security.capability) and times of an open regular file."""
        self.chown_fd(fd, m)
        os.fchmod(fd, m.mode & 0o7777)
        self.set_xattrs_fd(fd, m)
        self.set_times(fd, m)

    def metadata_at(self, dfd: int, base: str, m: tarfile.TarInfo, chmod: bool = True) -> None:
        """The same for an entry that is not opened (symlink, device, fifo)."""
        self.chown_at(dfd, base, m)
        if chmod:
            os.chmod(base, m.mode & 0o7777, dir_fd=dfd)
        if m.pax_headers:
            for name, value in self.xattrs(m):
                self._setxattr(proc_path(dfd, base), name, value, m)
        self.set_times(base, m, dfd)

    def set_times(self, target: int | str, m: tarfile.TarInfo, dfd: int | None = None) -> None:
        try:
            mtime = int(m.mtime * 1_000_000_000)
            atime = int(float(m.pax_headers.get("atime", m.mtime)) * 1_000_000_000)
        except (ValueError, OverflowError):
            return
        if dfd is None:
            os.utime(target, ns=(atime, mtime))
        else:
            os.utime(target, ns=(atime, mtime), dir_fd=dfd, follow_symlinks=False)

    def finish_dirs(self) -> None:
        """Directory modes and times, deepest first, once nothing more is written into them."""
        for path, mode, m in reversed(self.dirs):
            try:
                fd = self.root.dir_fd(path, create=False)
            except (OSError, UnsafePath):
                continue  # replaced or removed later in the layer
            os.fchmod(fd, mode & 0o7777)
            self.set_times(fd, m)
