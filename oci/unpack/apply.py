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

from oci.errors import IntegrityError, OciError, Unsupported
from oci.unpack.decompress import LayerStream
from oci.unpack.options import Budget, LayerResult, Options
from oci.unpack.safepath import Root, UnsafePath, clean, proc_path

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE = "trusted.overlay.opaque"
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
        self.dirs: list[tuple[str, int, tarfile.TarInfo]] = []  # directory metadata set at the end
        self.result = LayerResult()

    def run(self) -> None:
        try:
            tar = tarfile.TarFile(fileobj=self.stream, mode="r", errors="surrogateescape")  # type: ignore[arg-type]
        except tarfile.ReadError as err:
            if str(err) == "empty file":
                return  # a tar of zero blocks: an empty layer
            raise IntegrityError(f"layer {self.layer}: not a tar stream: {err}") from None
        while True:
            try:
                member = tar.next()
            except tarfile.TarError as err:
                raise IntegrityError(f"layer {self.layer}: malformed tar: {err}") from None
            if member is None:
                break
            tar.members.clear()  # keep no per-entry state in tarfile
            self.budget.count_entry()
            self.result.entries += 1
            try:
                self.entry(member)
            except OciError as err:
                raise type(err)(f"layer {self.layer}: tar entry {member.name!r}: {err.message}") from None
            except OSError as err:
                raise OciError(f"layer {self.layer}: tar entry {member.name!r}: {err.strerror}") from None
        self.finish_dirs()

    # -- entries -----------------------------------------------------------

    def entry(self, m: tarfile.TarInfo) -> None:
        path = clean(m.name)
        head, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT):
            self.whiteout(head, base)
            return
        if not path:
            if not m.isdir():
                raise UnsafePath("the root can only be a directory")
            self.chown_at(self.root.fd, None, m)
            self.set_xattrs_fd(self.root.fd, m)
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
                self.options.warn(f"{m.name}: device node skipped (needs root)")
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
        for offset, length in m.sparse:
            if not length:
                continue  # GNU tar ends its map with (size, 0); old-format maps pad with (0, 0)
            if offset < end or offset + length > m.size:
                raise IntegrityError("invalid sparse map")
            self.stream.copy_to(fd, length, offset)
            end = offset + length
        os.ftruncate(fd, m.size)

    def directory(self, dfd: int, base: str, path: str, m: tarfile.TarInfo) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=dfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(base, dir_fd=dfd).st_mode):
                self.replace(dfd, base, path)
                os.mkdir(base, 0o700, dir_fd=dfd)
        fd = os.open(base, _DIR_FLAGS, dir_fd=dfd)
        try:
            self.chown_fd(fd, m)
            self.set_xattrs_fd(fd, m)
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
        if self.options.overlay:
            if not self.options.privileged:
                raise Unsupported("overlay whiteouts need root (mknod)")
            dfd = self.root.dir_fd(head)
            self.replace(dfd, name, target)
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dfd)
        else:
            self.root.remove(target)

    def opaque(self, head: str) -> None:
        dfd = self.root.dir_fd(head)
        if self.options.overlay:
            os.setxattr(dfd, OVERLAY_OPAQUE, b"y")
            return
        keep = set()
        for path in self.created:
            parts = path.split("/")
            keep.update("/".join(parts[:i]) for i in range(1, len(parts)))
        self._empty(dfd, head, keep)

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
                if self.options.overlay and name.startswith("trusted.overlay."):
                    continue  # only we say what overlayfs sees
                found.append((name, value.encode("utf-8", "surrogateescape")))
        return found

    def _setxattr(self, target: int | str, name: str, value: bytes, m: tarfile.TarInfo) -> None:
        try:
            os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES) or (
                    self.options.privileged and not name.startswith("user.")):
                raise
            self.options.warn(f"{m.name}: xattr {name} not set ({err.strerror})")

    def set_xattrs_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        if m.pax_headers:
            for name, value in self.xattrs(m):
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
