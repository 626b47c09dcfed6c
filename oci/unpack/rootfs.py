"""An image's layers applied in order to a ROOTFS directory, removed again on failure.

While ROOTFS is filled, a marker beside it, `.NAME.unpacking`, is held locked: a second
oci-unpack into the same ROOTFS is refused (exit 7), and one that was killed leaves the
marker behind, unlocked. The next oci-unpack into that ROOTFS then knows the tree is
incomplete: it unmounts an overlay left mounted, removes the overlay's folders and what
the killed run wrote, and starts over by itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from typing import TYPE_CHECKING, Callable, Iterator

from oci import log
from oci.errors import Conflict
from oci.unpack.options import Budget, LayerResult, Options

if TYPE_CHECKING:
    from oci.image import Image
    from oci.unpack.decompress import LayerStream

Progress = Callable[[int, int, LayerResult], None]  # (layer index, layer count, what it did)
MARKER = "unpacking"
OVERLAY = "overlay"


def sibling(path: str, suffix: str) -> str:
    """`DIR/.NAME.SUFFIX` beside `DIR/NAME` (on the same file system): the marker, the overlay's folders."""
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.{suffix}")


@contextlib.contextmanager
def fresh_directory(path: str) -> Iterator[str]:
    """Yield `path` as an empty directory (made if absent); on failure leave it as it was found.

    The marker beside it says, while the block runs, that the tree is being made; a marker
    left by a killed run makes this one clear the remains first (with a warning, oci.log)."""
    path = os.path.abspath(path)
    marker = sibling(path, MARKER)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"{path}: another oci-unpack is filling it") from None
        left = os.read(fd, 16)
        if left:  # a killed run's marker: what it made goes (the marker stays until it is gone)
            log.warning(f"{path}: an interrupted oci-unpack left it incomplete; starting over")
            _clear_remains(path, made=left.startswith(b"made"))
        try:
            made = not os.path.lexists(path)
            if made:
                os.makedirs(path, 0o755)
            elif not os.path.isdir(path) or os.path.islink(path):
                raise Conflict(f"{path}: exists and is not a directory")
            elif os.listdir(path):
                raise Conflict(f"{path}: not empty (oci-unpack only fills an empty or absent directory)")
            os.pwrite(fd, b"made\n" if made else b"found\n", 0)
            os.fsync(fd)
            try:
                yield path
            except BaseException:
                _clear_remains(path, made)
                raise
        finally:
            os.unlink(marker)  # done, or undone: nothing for a rerun to clear
    finally:
        os.close(fd)


def _clear_remains(path: str, made: bool) -> None:
    """Undo an unpack into `path`: its overlay unmounted, the overlay's folders gone, and `path`
    removed (when the unpack made it) or emptied."""
    from oci.linux.overlayfs import unmount

    unmount(path)
    shutil.rmtree(sibling(path, OVERLAY), ignore_errors=True)
    if not os.path.lexists(path):
        return
    if made:
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.isdir(path) and not os.path.islink(path):
        empty(path)


def empty(path: str) -> None:
    """Remove everything inside directory `path`, never following symlinks."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in os.listdir(fd):
            try:
                os.unlink(name, dir_fd=fd)
            except (IsADirectoryError, PermissionError):
                shutil.rmtree(name, dir_fd=fd, ignore_errors=True)
    finally:
        os.close(fd)


def open_layer(image: Image, index: int, budget: Budget, after: LayerStream | None = None) -> LayerStream:
    """The uncompressed stream of layer `index` of `image`, verified against its diff_id; decoding
    starts once `after` is decoded."""
    from oci.unpack.decompress import LayerStream

    layer = image.layers[index]
    return LayerStream(image.layout.blob_path(layer.digest), layer, image.diff_ids[index], budget.bytes_left,
                       after=after)


def unpack(image: Image, rootfs: str, options: Options, budget: Budget, progress: Progress | None = None) -> str:
    """Apply every layer of `image` to the empty or absent directory `rootfs`; return its absolute path."""
    with fresh_directory(rootfs) as path:
        fill(image, path, options, budget, progress)
    return path


def fill(image: Image, path: str, options: Options, budget: Budget, progress: Progress | None = None) -> None:
    """Apply every layer of `image` to the empty directory `path` (inside `fresh_directory`)."""
    from oci.unpack.apply import apply_layer
    from oci.unpack.safepath import Root

    with Root(path) as root:
        os.chmod(path, 0o755)
        if os.geteuid() == 0 and (options.uid_map or options.gid_map):
            # The root directory belongs to the container's root, as every entry does.
            uid = options.uid_map.host_id(0)
            gid = options.gid_map.host_id(0)
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        count = len(image.layers)
        ahead = open_layer(image, 0, budget) if count else None
        try:
            for index in range(count):
                stream, ahead = ahead, None
                if stream is None:  # made the round before (or before the loop): never, for a type checker
                    stream = open_layer(image, index, budget)
                with stream:
                    if index + 1 < count:  # decompress the next layer while this one is written
                        ahead = open_layer(image, index + 1, budget, after=stream)
                    result = apply_layer(root, stream, options, budget)
                if progress:
                    progress(index, count, result)
        finally:
            if ahead is not None:
                ahead.close()
