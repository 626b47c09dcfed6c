"""A build's scratch area: layer stacks mounted with overlayfs in a private mount namespace.

Each step that touches files mounts the layers it builds on (cache directories of the
layer cache, or trees this build made) as overlayfs lower directories with a fresh upper
directory: the upper directory then holds exactly what the step changed, whiteouts and
opaque directories included, and becomes the step's layer.

The build enters a mount namespace of its own first (root only): its overlays are seen by
the containers it starts and by nobody else, and vanish with the process if it is killed.
Lower directories are named through short symlinks (`l/N`, relative to the scratch folder)
so that a mount's options fit in a page even with many layers. Overlay features that put
content outside the upper directory (redirect_dir, metacopy, index) are turned off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from oci.dockerfile.lifetime import RuntimeRoot, remove_tree
from oci.errors import OciError, Unsupported
from oci.linux import overlayfs
from oci.linux.kernel import CLONE_NEWNS, MNT_DETACH, kernel
from oci.linux.mountopts import MS_PRIVATE, MS_REC

OVERLAY_OPTIONS = ("index=off", "redirect_dir=off", "metacopy=off")
_private = False


def enter_private_mounts() -> None:
    """Move this process into a mount namespace of its own, every mount private (once)."""
    global _private
    if _private:
        return
    if os.geteuid() != 0:
        raise Unsupported("oci-build needs root: RUN, COPY and ADD steps mount overlayfs and start containers")
    try:
        kernel().unshare(CLONE_NEWNS)
        kernel().mount(None, "/", None, MS_REC | MS_PRIVATE)
    except OSError as err:
        raise OciError(f"cannot enter a private mount namespace: {err.strerror}") from None
    _private = True


@dataclass
class Overlay:
    """A mounted stack: `rootfs` shows it, `upper` collects the changes."""

    rootfs: str
    upper: str
    work: str
    mounted: bool = True


class Workspace:
    """The scratch folder of one build (removed at the end) and the overlays mounted in it."""

    def __init__(self, directory: str) -> None:
        self.dir = os.path.abspath(directory)
        os.makedirs(os.path.join(self.dir, "l"), exist_ok=True)
        self.count = 0
        self.links: dict[str, str] = {}
        self.mounted: list[Overlay] = []
        self.runtime_root: RuntimeRoot | None = None  # oci-run's state folder, made by the first RUN

    def _link(self, layer: str) -> str:
        name = self.links.get(layer)
        if name is None:
            name = self.links[layer] = f"l/{len(self.links)}"
            os.symlink(os.path.abspath(layer), os.path.join(self.dir, name))
        return name

    def new_dir(self, name: str) -> str:
        """A fresh folder in the scratch area."""
        self.count += 1
        path = os.path.join(self.dir, f"{self.count}-{name}")
        os.makedirs(path)
        return path

    def mount(self, lowers: list[str]) -> Overlay:
        """Mount `lowers` (base first) with a fresh upper directory; the rootfs path is returned."""
        enter_private_mounts()
        base = self.new_dir("step")
        rootfs, upper, work = (os.path.join(base, name) for name in ("rootfs", "upper", "work"))
        for path in (rootfs, upper, work):
            os.mkdir(path, 0o755)
        if not lowers:
            lowers = [self.new_dir("empty")]
        lowerdir = ":".join(self._link(layer) for layer in reversed(lowers))
        options = [f"lowerdir={lowerdir}", f"upperdir={os.path.relpath(upper, self.dir)}",
                   f"workdir={os.path.relpath(work, self.dir)}"]
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(self.dir)  # the options name the folders relative to it, to fit in a page
            overlayfs.mount(rootfs, options, optional=OVERLAY_OPTIONS)
        finally:
            os.fchdir(here)
            os.close(here)
        overlay = Overlay(rootfs, upper, work)
        self.mounted.append(overlay)
        return overlay

    def unmount(self, overlay: Overlay) -> None:
        if overlay.mounted:
            kernel().umount2(overlay.rootfs, MNT_DETACH)
            overlay.mounted = False
            self.mounted.remove(overlay)

    def discard(self, overlay: Overlay) -> None:
        """Unmount and delete an overlay's folders."""
        self.unmount(overlay)
        remove_tree(os.path.dirname(overlay.rootfs))

    def close(self) -> None:
        for overlay in list(self.mounted):
            try:
                self.unmount(overlay)
            except OSError:
                pass
        remove_tree(self.dir)
        if self.runtime_root is not None:
            self.runtime_root.close()
            self.runtime_root = None
