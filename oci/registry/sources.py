"""Where a pull copies an image from: the small interface every source has (`Source`), and its two
kinds, interchangeable (as go-containerregistry's remote and layout packages both serve its
v1 interfaces): a repository of a registry (`RegistrySource`, the first of registries.conf's
places that serves the image: `first_serving`) and another OCI image layout (`LayoutSource`,
`oci:PATH[:TAG|@DIGEST]`). oci.registry.pull copies from either without knowing which.
"""

from __future__ import annotations

from oci import log
from oci.descriptor import INDEXES, MANIFESTS, Descriptor
from oci.digest import Digest, verify_bytes
from oci.errors import IntegrityError, InvalidInput, NotFound, OciError
from oci.image import parse_image_argument
from oci.layout import Layout

from .client import Repository
from .manifests import MAX_MANIFEST, Manifest, manifest_media_type

TYPE_CHECKING = False
if TYPE_CHECKING:  # the interface, for type checkers only (typing costs a command's start ~3 ms)
    from typing import BinaryIO, Callable, Protocol

    from oci.reference import Reference

    from .http import Options
    from .registries_conf import Endpoint

    class Source(Protocol):
        """Where images come from: a registry repository or a layout."""

        def manifest(self, reference: str) -> Manifest: ...

        def open_blob(self, descriptor: Descriptor, offset: int) -> tuple[BinaryIO, int]: ...

        def referrers(self, digest: Digest) -> Manifest | None: ...

        def abort(self) -> None: ...


class RegistrySource:
    """A repository of a registry."""

    def __init__(self, repository: Repository, first: tuple[str, Manifest] | None = None) -> None:
        self.repository = repository
        self._first = first  # (reference, manifest) already fetched (choosing among mirrors)

    def __str__(self) -> str:
        return str(self.repository)

    def manifest(self, reference: str) -> Manifest:
        if self._first is not None and self._first[0] == reference:
            return self._first[1]
        return self.repository.get_manifest(reference)

    def open_blob(self, descriptor: Descriptor, offset: int) -> tuple[BinaryIO, int]:
        return self.repository.open_blob(descriptor.digest, offset)  # type: ignore[return-value]

    def referrers(self, digest: Digest) -> Manifest | None:
        return self.repository.referrers(digest)

    def abort(self) -> None:
        """Cut the connections in use (Ctrl-C, or another transfer failed)."""
        self.repository.registry.transport.abort()

    def remember(self, digests: list[Digest]) -> None:
        """Note that this repository holds these blobs (for pushes that mount them elsewhere)."""
        from .locations import BlobLocations

        BlobLocations(self.repository.registry.host).record(self.repository.name, digests)


def first_serving(places: list[Endpoint], options: Options, warn: Callable[[str], None] = log.warning
                  ) -> tuple[RegistrySource, Reference]:
    """The first of `places` (registries.conf's mirrors, then the registry: see
    oci.registry.registries_conf.endpoints) that serves the image, and the reference it serves
    it under; `warn` hears of each place passed over. A single place is asked nothing yet: its
    manifest request is sent ahead, answered while the caller reads its layout."""
    from .client import connect

    for index, place in enumerate(places):
        repository = connect(place.reference, options)
        if len(places) == 1:
            repository.prefetch_manifest(place.reference.identifier)
            return RegistrySource(repository), place.reference
        try:
            first = repository.get_manifest(place.reference.identifier)
        except OciError as err:
            if index == len(places) - 1:
                raise
            warn(f"{place.reference}: {err.message}; trying {places[index + 1].reference}")
            continue
        return RegistrySource(repository, first=(place.reference.identifier, first)), place.reference
    raise ValueError("no place to pull from")


class LayoutSource:
    """Another OCI image layout, named `PATH[:TAG|@DIGEST]`."""

    def __init__(self, text: str) -> None:
        path, self.name = parse_image_argument(text)
        self.layout = Layout.open(path)

    def __str__(self) -> str:
        return f"oci:{self.layout.path}"

    def manifest(self, reference: str) -> Manifest:
        if reference.startswith(("sha256:", "sha512:")) and self.layout.has_blob(reference):
            return self._by_digest(Digest.parse(reference))  # an index's child, not in index.json
        entry = self.layout.resolve(reference or self.name)
        if entry.media_type not in MANIFESTS | INDEXES:
            raise InvalidInput(f"{self}@{entry.digest}: not a manifest or index ({entry.media_type})")
        data, _doc = self.layout.read_manifest(entry, MAX_MANIFEST)
        return Manifest(entry.media_type, entry.digest, data)

    def _by_digest(self, digest: Digest) -> Manifest:
        where = f"{self}@{digest}"
        with open(self.layout.blob_path(digest), "rb") as f:
            data = f.read(MAX_MANIFEST + 1)
        if len(data) > MAX_MANIFEST:
            raise IntegrityError(f"{where}: manifest exceeds the size cap of {MAX_MANIFEST}")
        verify_bytes(data, digest, None, where)
        return Manifest(manifest_media_type(data, None, where), digest, data)

    def default_tag(self) -> str:
        """The tag an image copied from here gets when none is asked for: its tag in this layout."""
        if self.name and not self.name.startswith(("sha256:", "sha512:")):
            return self.name
        return self.layout.resolve(self.name).ref_name or "latest"

    def open_blob(self, descriptor: Descriptor, offset: int) -> tuple[BinaryIO, int]:
        try:
            f = open(self.layout.blob_path(descriptor.digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"{self}: blob {descriptor.digest} is missing") from None
        f.seek(offset)
        return f, offset

    def referrers(self, digest: Digest) -> Manifest | None:
        try:
            return self.manifest(f"{digest.algorithm}-{digest.hex}")
        except NotFound:
            return None

    def abort(self) -> None:
        pass
