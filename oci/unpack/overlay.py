"""The shared layer cache and overlayfs: each layer unpacked once, keyed by its diff_id.

Cache layout (`--cache`, default /var/lib/ocikit/layers as root):

* `sha256/<hex>/`: the tree of the layer with that diff_id, whiteouts in overlayfs form;
  `chain-sha256/<hex>/` instead when the layer hardlinks a file of a lower layer (copied up),
  as its tree then depends on the layers below (keyed by the image-spec ChainID);
* `tmp/`: layers being unpacked; one is renamed into place only when complete and synced;
* `locks/<hex>.lock`: held while a layer is unpacked, so concurrent unpackers wait for
  one copy instead of making two; `gc.lock`: shared while unpacking and recording, exclusive
  for `gc`;
* `users/<sha256 of ROOTFS>.json`: which layers the overlay at ROOTFS uses. `gc` drops the
  records whose ROOTFS is gone and deletes the layers no record names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from oci.digest import Digest
from oci.errors import Conflict
from oci.fsutil import TMP_PREFIX, locked, write_atomic
from oci.linux.kernel import kernel
from oci.unpack.apply import ROOT_ENTRY
from oci.unpack.options import Budget, LayerResult, Options
from oci.unpack.rootfs import OVERLAY, Progress, open_layer, sibling

if TYPE_CHECKING:
    from oci.image import Image
    from oci.unpack.decompress import LayerStream



def default_cache() -> str:
    """/var/lib/ocikit/layers as root, the XDG cache otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/ocikit/layers"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocikit", "layers")


def chain_id(parent: Digest | None, diff_id: Digest) -> Digest:
    """The image-spec ChainID of a layer on top of `parent`'s chain."""
    if parent is None:
        return diff_id
    return Digest("sha256", hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest())


class LayerCache:
    """A content-addressed store of unpacked layers."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.last_result = LayerResult()

    def _dir(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def _lock(self, name: str) -> str:
        os.makedirs(self._dir("locks"), exist_ok=True)
        return self._dir("locks", name)

    def _existing(self, diff_id: Digest, chain: Digest, taken: list[str]) -> str | None:
        for name in (f"{diff_id.algorithm}/{diff_id.hex}", f"chain-{chain.algorithm}/{chain.hex}"):
            if name not in taken and os.path.isdir(self._dir(name)):
                return name
        return None

    def ensure(self, image: Image, options: Options, budget: Budget, progress: Progress | None = None) -> list[str]:
        """Unpack the layers of `image` that are not cached; return their cache dirs, base first.

        Call inside `session()`, so that gc cannot delete them before they are recorded.
        """
        names: list[str] = []
        chain: Digest | None = None
        count = len(image.diff_ids)
        for index, diff_id in enumerate(image.diff_ids):
            chain = chain_id(chain, diff_id)
            # A layer the image holds twice cannot be one lower directory twice (overlayfs refuses
            # overlapping layers): the second one is a copy, keyed by its chain.
            again = f"{diff_id.algorithm}/{diff_id.hex}" in names
            name = self._existing(diff_id, chain, names)
            if name is None:
                with locked(self._lock(f"{diff_id.hex}.lock")):
                    name = self._existing(diff_id, chain, names)
                    if name is None:
                        with open_layer(image, index, budget) as stream:
                            name = self._unpack(stream, diff_id, chain, names, options, budget, again)
                        if progress:
                            progress(index, count, self.last_result)
            names.append(name)
        return [self._dir(n) for n in names]

    def _unpack(self, stream: LayerStream, diff_id: Digest, chain: Digest, lower: list[str], options: Options,
                budget: Budget, by_chain: bool = False) -> str:
        from oci.unpack.apply import apply_layer
        from oci.unpack.safepath import Root

        os.makedirs(self._dir("tmp"), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=self._dir("tmp"), prefix=f"{diff_id.hex[:16]}-")
        try:
            os.chmod(tmp, 0o755)
            lowers = [Root(self._dir(n)) for n in reversed(lower)]
            try:
                with Root(tmp) as root:
                    root.like = lambda path: _first_lstat(lowers, path)
                    result = apply_layer(root, stream, options.for_layer_cache(lowers), budget)
                    kernel().syncfs(root.fd)
            finally:
                for r in lowers:
                    r.close()
            by_chain = by_chain or result.copied_from_lower
            target = chain if by_chain else diff_id
            name = f"{'chain-' if by_chain else ''}{target.algorithm}/{target.hex}"
            os.makedirs(os.path.dirname(self._dir(name)), exist_ok=True)
            os.rename(tmp, self._dir(name))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.last_result = result
        return name

    @contextlib.contextmanager
    def session(self) -> Any:
        """Hold off gc while layers are made, mounted and recorded. Entering, when no other
        session is open (the gc lock can be taken exclusively for a moment), removes the
        unfinished layers of killed unpacks from `tmp/`."""
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self._lock("gc.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another unpack is at work, or a gc, which the shared lock waits for
            else:
                self._remove_unfinished()
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield self
        finally:
            os.close(fd)

    def _remove_unfinished(self) -> list[tuple[str, int]]:
        """Remove the layers left half-made in `tmp/`, and the temporaries of records being
        written (only while no unpack is at work); their names and sizes in bytes."""
        removed = []
        users = self._dir("users")
        for name in sorted(os.listdir(users)) if os.path.isdir(users) else []:
            if name.startswith(TMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(users, name))
        tmp = self._dir("tmp")
        for name in sorted(os.listdir(tmp)) if os.path.isdir(tmp) else []:
            size = _tree_size(os.path.join(tmp, name))
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
            removed.append((f"tmp/{name}", size))
        return removed

    def _record_path(self, rootfs: str) -> str:
        return self._dir("users", hashlib.sha256(rootfs.encode()).hexdigest() + ".json")

    def record(self, rootfs: str, layers: list[str]) -> None:
        """Note that the overlay at `rootfs` uses `layers` (cache dirs)."""
        os.makedirs(self._dir("users"), exist_ok=True)
        names = [os.path.relpath(d, self.path) for d in layers]
        write_atomic(self._record_path(rootfs), json.dumps({"rootfs": rootfs, "layers": names}).encode())

    def release(self, rootfs: str) -> None:
        """Forget the record of the overlay at `rootfs` (removed), so gc no longer keeps its layers for it."""
        try:
            os.unlink(self._record_path(rootfs))
        except FileNotFoundError:
            pass

    def gc(self) -> list[tuple[str, int]]:
        """Delete the layers no live overlay uses (its ROOTFS gone) and the unfinished ones of
        killed unpacks; return their cache names (`tmp/...` for unfinished ones) and sizes."""
        removed: list[tuple[str, int]] = []
        if not os.path.isdir(self.path):
            return removed
        with locked(self._lock("gc.lock")):
            live: set[str] = set()
            users = self._dir("users")
            for entry in sorted(os.listdir(users)) if os.path.isdir(users) else []:
                path = os.path.join(users, entry)
                try:
                    with open(path, "rb") as f:
                        record = json.load(f)
                    rootfs, layers = record["rootfs"], record["layers"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # not ours to judge
                if os.path.isdir(rootfs):
                    live.update(layers)
                else:
                    os.unlink(path)
            for folder in sorted(os.listdir(self.path)):
                if folder in ("users", "tmp", "locks") or not os.path.isdir(self._dir(folder)):
                    continue
                for name in sorted(os.listdir(self._dir(folder))):
                    key = f"{folder}/{name}"
                    if key not in live:
                        size = _tree_size(self._dir(key))
                        shutil.rmtree(self._dir(key))
                        removed.append((key, size))
            removed += self._remove_unfinished()
            for name in os.listdir(self._dir("locks")):
                if name != "gc.lock":  # unpackers take these only while holding gc.lock shared
                    os.unlink(self._dir("locks", name))
        return removed


def _tree_size(path: str) -> int:
    """Bytes of the files under `path` (what removing it frees, hard links aside)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _first_lstat(roots: list[Any], path: str) -> os.stat_result | None:
    """lstat of `path` in the first of `roots` (lower layers, top first) that has it."""
    for root in roots:
        try:
            found = root.lstat(path)
        except (OSError, ValueError):
            return None
        if found is not None:
            return found
    return None


def overlay_dirs(rootfs: str) -> tuple[str, str]:
    """The upper and work directories of the overlay at `rootfs` (beside it, same filesystem)."""
    base = sibling(rootfs, OVERLAY)
    return os.path.join(base, "upper"), os.path.join(base, "work")


def mount_spec(rootfs: str, layers: list[str]) -> dict[str, Any]:
    """The overlay mount as a runtime-spec mount: lowerdir lists the top layer first."""
    upper, work = overlay_dirs(rootfs)
    return {"type": "overlay", "source": "overlay", "destination": rootfs,
            "options": [f"lowerdir={':'.join(reversed(layers))}", f"upperdir={upper}", f"workdir={work}"]}


def prepare_dirs(rootfs: str, layers: list[str] | None = None) -> None:
    """Make fresh upper and work directories for the overlay at `rootfs`. The merged root takes
    its owner, mode, xattrs and times from the upper directory's root, so that root gets those
    of the topmost layer that set them (a `.` entry), as a plain unpack applies them."""
    upper, work = overlay_dirs(rootfs)
    if os.path.lexists(os.path.dirname(upper)):
        raise Conflict(f"{os.path.dirname(upper)}: already exists")
    os.makedirs(upper, 0o755)
    os.makedirs(work, 0o700)
    for layer in reversed(layers or []):
        try:
            os.getxattr(layer, ROOT_ENTRY)
        except OSError:
            continue
        _copy_root(layer, upper)
        break


def _copy_root(layer: str, upper: str) -> None:
    """The attributes of a layer's root (what its `.` entry said) onto the upper directory."""
    st = os.lstat(layer)
    os.chown(upper, st.st_uid, st.st_gid)
    os.chmod(upper, st.st_mode & 0o7777)
    for name in os.listxattr(layer):
        if not name.startswith(("trusted.overlay.", ROOT_ENTRY)):
            os.setxattr(upper, name, os.getxattr(layer, name))
    os.utime(upper, ns=(st.st_atime_ns, st.st_mtime_ns))


def remove_dirs(rootfs: str) -> None:
    shutil.rmtree(os.path.dirname(overlay_dirs(rootfs)[0]), ignore_errors=True)


def mount(spec: dict[str, Any]) -> None:
    """Mount the overlay described by `spec` (oci.linux.overlayfs: one page of options at most)."""
    from oci.linux import overlayfs

    overlayfs.mount(spec["destination"], spec["options"], source=spec.get("source", "overlay"))
