"""Images a Dockerfile names (FROM, COPY --from=IMAGE), found without a daemon.

* `scratch`: no image;
* `oci:LAYOUT[:TAG|@DIGEST]`: an image in another layout (its blobs are copied into the
  build's layout, verified, only those missing, by the same code as a registry's: oci-fetch's
  Puller from a LayoutSource);
* anything else is a registry reference in Docker's grammar (`busybox` is
  `docker.io/library/busybox:latest`), pulled with oci-fetch's code into the build's layout,
  untagged; the manifest it resolved to is remembered in the cache, so the next build does
  not ask the registry again unless `--pull` says so (Docker's and buildah's default too).

Each resolves to one platform of an index: the one asked for, else the host's.
"""

from __future__ import annotations

import hashlib
from typing import Callable

from oci.descriptor import Descriptor
from oci.dockerfile.cache import BuildCache
from oci.image import TRANSPORT, Image
from oci.layout import Layout
from oci.platform import Platform
from oci.reference import Reference
from oci.registry.client import connect
from oci.registry.pull import Puller
from oci.registry.sources import LayoutSource, RegistrySource

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.registry.sources import Source  # an interface for type checkers (oci.registry.sources)


def resolve(name: str, platform: Platform | None, store: Layout, cache: BuildCache, *, registry: object = None,
            pull: bool = False, info: Callable[[str], None] | None = None) -> Image | None:
    """The image `name` names, with its blobs in `store` (None for scratch)."""
    if name == "scratch":
        return None
    if name.startswith(TRANSPORT):
        return _copied(LayoutSource(name), "", platform or Platform.host(), store)
    return _from_registry(name, platform, store, cache, registry, pull, info)


def _from_registry(name: str, platform: Platform | None, store: Layout, cache: BuildCache, registry: object,
                   pull: bool, info: Callable[[str], None] | None) -> Image:
    reference = Reference.parse(name)
    wanted = platform or Platform.host()
    key = hashlib.sha256(f"{reference}\0{wanted}".encode()).hexdigest()
    if not pull:
        found = cache.base(key)
        if found is not None:
            image = Image.load(store, found, wanted)
            if all(store.has_blob(layer.digest, layer.size) for layer in image.layers):
                return image
    if info:
        info(f"pulling {reference}")
    image = _copied(RegistrySource(connect(reference, registry)), reference.identifier, wanted,  # type: ignore[arg-type]
                    store)
    cache.put_base(key, str(reference), str(wanted), image.descriptor)
    return image


def _copied(source: Source, reference: str, platform: Platform, store: Layout) -> Image:
    """The image `reference` names in `source` (a registry's repository or another layout, one
    platform of an index), its blobs copied into `store` (only those missing), untagged."""
    puller = Puller(source, store.path)
    plan, manifest = puller.plan(reference, platform, False)
    try:
        puller.store(plan, store)
    except BaseException:
        store.roll_back(puller.added)
        raise
    return Image.load(store, Descriptor(manifest.media_type, manifest.digest, len(manifest.data)), platform)
