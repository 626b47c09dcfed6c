"""The image store: every image of a state root in one OCI image layout, named as Docker names them.

Each index entry is one image manifest (or a manifest list made by `manifest create`), its
`org.opencontainers.image.ref.name` the full normalised reference
(`docker.io/library/busybox:latest`, `127.0.0.1:5000/team/app:1`). An image that loses its
last name while still present (a tag moved by pull, tag, commit, load or build, or `rmi`
of an image a container uses) stays as a *dangling* entry named by its manifest digest
(`sha256:...`), so its blobs survive garbage collection until `image prune` removes it, as
Docker shows `<none>:<none>`. Image IDs are config digests, as Docker's are.
"""

from __future__ import annotations

import os
from collections import namedtuple
from typing import Any, Iterable

from oci.descriptor import INDEXES, MANIFESTS, REF_NAME, Descriptor
from oci.digest import Digest
from oci.errors import Conflict, InvalidInput, NotFound, OciError
from oci.image import Image
from oci.layout import Layout
from oci.reference import Reference, strip_transport


def parse_reference(text: str) -> Reference:
    """A reference as users type it: `docker://` accepted, Docker Hub normalisation, `latest` by default."""
    return Reference.parse(strip_transport(text))


def familiar(name: str) -> str:
    """The short form Docker prints for a stored name."""
    return Reference.parse(name).familiar()


def split_name(name: str) -> tuple[str, str]:
    """(repository as Docker shows it, tag) of a stored full name."""
    ref = Reference.parse(name)
    return Reference(ref.registry, ref.repository, None, None).familiar(), ref.tag or "<none>"


class StoredImage(namedtuple("StoredImage", ["descriptor", "names", "image"])):
    """One image of the store: its manifest descriptor, full names (none when dangling), and contents."""

    __slots__ = ()
    descriptor: Descriptor
    names: list[str]
    image: Image | None  # None for a manifest list

    @property
    def id(self) -> str:
        """Docker's image ID: the config digest (the manifest digest for a manifest list)."""
        return str(self.image.config_descriptor.digest if self.image else self.descriptor.digest)

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def config(self) -> dict[str, Any]:
        return self.image.config if self.image else {}

    @property
    def size(self) -> int:
        """Bytes of its blobs as stored (compressed layers, config and manifest)."""
        if self.image is None:
            return self.descriptor.size
        return self.descriptor.size + self.image.config_descriptor.size + sum(d.size for d in self.image.layers)

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    def repo_digests(self) -> list[str]:
        """`REPOSITORY@MANIFEST_DIGEST` for each repository the image is named in."""
        seen = dict.fromkeys(Reference.parse(n).name for n in self.names)
        return [f"{name}@{self.descriptor.digest}" for name in seen]


class ImageStore:
    """The state root's images."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._layout: Layout | None = None

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = Layout.open(self.path, create=True)
        return self._layout

    # -- reading ----------------------------------------------------------

    def entries(self) -> list[Descriptor]:
        if not os.path.exists(os.path.join(self.path, "index.json")):
            return []
        return self.layout.descriptors()

    def images(self) -> list[StoredImage]:
        """Every image, names grouped by manifest, newest entries first as Docker lists them."""
        grouped: dict[Digest, list[str]] = {}
        descriptors: dict[Digest, Descriptor] = {}
        for entry in self.entries():
            names = grouped.setdefault(entry.digest, [])
            descriptors.setdefault(entry.digest, entry)
            if entry.ref_name and not _is_digest(entry.ref_name):
                names.append(entry.ref_name)
        found = []
        for digest, names in grouped.items():
            descriptor = descriptors[digest]
            found.append(StoredImage(descriptor, names, self._load(descriptor)))
        found.reverse()
        return found

    def _load(self, descriptor: Descriptor) -> Image | None:
        if descriptor.media_type in INDEXES:
            return None
        if descriptor.media_type not in MANIFESTS:
            return None
        return Image.load(self.layout, descriptor)

    def find(self, text: str) -> StoredImage:
        """The image `text` names: a reference (tag or digest), an image ID or its unique prefix."""
        images = self.images()
        name = _reference_name(text)
        if name is not None:
            ref = Reference.parse(name)
            for stored in images:
                if ref.digest is not None:
                    if stored.descriptor.digest == ref.digest and (
                            not stored.names or any(Reference.parse(n).name == ref.name for n in stored.names)):
                        return stored
                elif name in stored.names:
                    return stored
        prefix = text.removeprefix("sha256:").lower()
        if prefix and all(c in "0123456789abcdef" for c in prefix):
            matches = [s for s in images if s.id.split(":", 1)[1].startswith(prefix)
                       or str(s.descriptor.digest).split(":", 1)[1] == prefix]
            if len({s.id for s in matches}) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidInput(f"{text}: the image ID prefix is ambiguous")
        raise NotFound(f"No such image: {text}")

    def maybe_find(self, text: str) -> StoredImage | None:
        try:
            return self.find(text)
        except NotFound:
            return None

    def load_image(self, stored: StoredImage) -> Image:
        if stored.image is None:
            raise InvalidInput(f"{stored.names[0] if stored.names else stored.id}: a manifest list, not an image "
                               "a container can run")
        return stored.image

    # -- naming -----------------------------------------------------------

    def name(self, names: Iterable[str], descriptor: Descriptor) -> None:
        """Point each full name at `descriptor`; an image whose last name moves away stays, dangling."""
        names = list(names)
        layout = self.layout
        with layout.session():
            before = {e.ref_name: e for e in layout.descriptors()}
            moved = [before[n] for n in names if n in before and before[n].digest != descriptor.digest]
            tags = [(n, _plain(descriptor)) for n in names]
            still_named = {e.digest for n, e in before.items() if n not in names}
            for old in moved:
                if old.digest not in still_named:
                    tags.insert(0, (str(old.digest), _plain(old)))
            dangling = str(descriptor.digest)
            layout.tag_all(tags)
            if dangling in before and names and dangling not in names:
                layout.untag(dangling)

    def orphaned(self, old: StoredImage) -> None:
        """After `old` lost a name to another image: keep it, dangling, unless another name still holds it."""
        if not any(e.digest == old.descriptor.digest for e in self.entries()):
            self.layout.tag(str(old.descriptor.digest), _plain(old.descriptor))

    def untag(self, name: str) -> None:
        self.layout.untag(name)

    def keep_dangling(self, stored: StoredImage) -> None:
        """Keep an image without names (a container still uses it)."""
        self.layout.tag(str(stored.descriptor.digest), _plain(stored.descriptor))

    def drop(self, stored: StoredImage) -> None:
        """Remove every index entry of the image; its blobs go at the next `collect`."""
        for entry in self.entries():
            if entry.digest == stored.descriptor.digest and entry.ref_name:
                try:
                    self.layout.untag(entry.ref_name)
                except NotFound:
                    pass

    def collect(self) -> int:
        """Delete the blobs no image reaches; return the bytes freed."""
        if not os.path.exists(os.path.join(self.path, "index.json")):
            return 0
        layout = self.layout
        freed = 0
        sizes = {}
        for digest in _all_blobs(layout):
            try:
                sizes[digest] = os.stat(layout.blob_path(digest)).st_size
            except OSError:
                pass
        for digest in layout.gc():
            freed += sizes.get(digest, 0)
        return freed


def _plain(descriptor: Descriptor) -> Descriptor:
    """The descriptor without its old name (other annotations, such as where it came from, stay)."""
    kept = {k: v for k, v in descriptor.annotations.items() if k != REF_NAME}
    return Descriptor(descriptor.media_type, descriptor.digest, descriptor.size, kept, descriptor.platform,
                      descriptor.artifact_type)


def _is_digest(name: str) -> bool:
    return name.startswith(("sha256:", "sha512:"))


def _reference_name(text: str) -> str | None:
    """The full name `text` stands for as a reference, or None if it is not one."""
    if _is_digest(text):
        return None
    try:
        return str(parse_reference(text))
    except OciError:
        return None


def _all_blobs(layout: Layout) -> list[Digest]:
    found = []
    blobs = os.path.join(layout.path, "blobs")
    for algorithm in os.listdir(blobs):
        for name in os.listdir(os.path.join(blobs, algorithm)):
            try:
                found.append(Digest.parse(f"{algorithm}:{name}"))
            except OciError:
                continue
    return found


def check_removable(stored: StoredImage, users: dict[str, str], force: bool) -> None:
    """Refuse, as Docker does, to remove an image containers use (running ones even with force).

    `users`: container ID -> status, of the containers made from this image."""
    running = [cid for cid, status in users.items() if status in ("running", "paused", "restarting")]
    if running:
        raise Conflict(f"conflict: unable to delete {stored.short_id} (cannot be forced) - image is being used by "
                       f"running container {running[0][:12]}")
    if users and not force:
        raise Conflict(f"conflict: unable to delete {stored.short_id} (must be forced) - image is being used by "
                       f"stopped container {next(iter(users))[:12]}")
