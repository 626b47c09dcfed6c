"""An image's layers applied in order to a ROOTFS directory, removed again on failure."""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import TYPE_CHECKING, Callable, Iterator

from oci.errors import Conflict
from oci.unpack.options import Budget, LayerResult, Options

if TYPE_CHECKING:
    from oci.image import Image
    from oci.unpack.decompress import LayerStream

Progress = Callable[[int, int, LayerResult], None]  # (layer index, layer count, what it did)


@contextlib.contextmanager
def fresh_directory(path: str) -> Iterator[str]:
    """Yield `path` as an empty directory (made if absent); on failure leave it as it was found."""
    path = os.path.abspath(path)
    made = not os.path.lexists(path)
    if made:
        os.makedirs(path, 0o755)
    elif not os.path.isdir(path) or os.path.islink(path):
        raise Conflict(f"{path}: exists and is not a directory")
    elif os.listdir(path):
        raise Conflict(f"{path}: not empty (oci-unpack only fills an empty or absent directory)")
    try:
        yield path
    except BaseException:
        if made:
            shutil.rmtree(path, ignore_errors=True)
        else:
            empty(path)
        raise


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
    from oci.unpack.apply import apply_layer
    from oci.unpack.safepath import Root

    with fresh_directory(rootfs) as path, Root(path) as root:
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
                with stream:
                    if index + 1 < count:  # decompress the next layer while this one is written
                        ahead = open_layer(image, index + 1, budget, after=stream)
                    result = apply_layer(root, stream, options, budget)
                if progress:
                    progress(index, count, result)
        finally:
            if ahead is not None:
                ahead.close()
    return path
