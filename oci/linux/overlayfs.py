"""Mounting an overlay and detaching it: the one place that does it, for oci-unpack --overlay, oci-bundle's
rootfs, oci-build's steps and ocikit's containers.

The options travel to the kernel as one string of at most a page (4095 bytes on x86_64); a longer
one would fail with a bare EINVAL, so it is refused before the call, saying why (too many layers:
callers shorten lower directory paths where they can, as oci-build's `l/N` links do).
"""

from __future__ import annotations

import errno
import os

from oci.errors import OciError, Unsupported
from oci.linux.kernel import MNT_DETACH, kernel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence


def mount(target: str, options: Sequence[str], source: str = "overlay", optional: Sequence[str] = ()) -> None:
    """Mount an overlay with `options` (lowerdir=..., upperdir=..., workdir=...) at `target`.

    `optional` options (features a kernel may lack) are tried too, and dropped if the kernel refuses
    them with EINVAL. OciError names the target; Unsupported when the options do not fit in a page.
    """
    data = ",".join(options)
    wanted = ",".join([data, *optional]) if optional else data
    size = len(os.fsencode(wanted))
    if size >= os.sysconf("SC_PAGE_SIZE"):
        raise Unsupported(f"{target}: overlay options too long ({size} bytes, more than a page): too many layers "
                          "for one mount")
    try:
        try:
            kernel().mount(source, target, "overlay", 0, wanted)
        except OSError as err:
            if not optional or err.errno != errno.EINVAL:
                raise
            kernel().mount(source, target, "overlay", 0, data)  # a kernel without those features
    except OSError as err:
        raise OciError(f"{target}: cannot mount the overlay: {os.strerror(err.errno or 0)}") from None


def unmount(path: str) -> None:
    """Detach whatever is mounted at `path`, every layer of it (MNT_DETACH: an overlay nobody uses any
    more goes at once, and the kernel's teardown does not keep the caller waiting). Nothing mounted
    is fine; OciError names the path otherwise."""
    while os.path.ismount(path):
        try:
            kernel().umount2(path, MNT_DETACH)
        except OSError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT):  # gone meanwhile, or not a mount point after all
                return
            raise OciError(f"{path}: cannot unmount: {os.strerror(err.errno or 0)}") from None
