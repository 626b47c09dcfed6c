"""Images a Dockerfile names (FROM, COPY --from=IMAGE), found without a daemon.

* `scratch`: no image;
* `oci:LAYOUT[:TAG|@DIGEST]`: an image in another layout (its blobs are copied into the
  build's layout, verified, only those missing);
* anything else is a registry reference in Docker's grammar (`busybox` is
  `docker.io/library/busybox:latest`), pulled with oci-fetch's code into the build's layout,
  untagged; the manifest it resolved to is remembered in the cache, so the next build does
  not ask the registry again unless `--pull` says so (Docker's and buildah's default too).

Each resolves to one platform of an index: the one asked for, else the host's.
"""

from __future__ import annotations

import hashlib
from typing import Callable

from oci.build.commit import copy_blobs
from oci.dockerfile.cache import BuildCache
from oci.image import Image, open_image
from oci.layout import Layout
from oci.platform import Platform


def resolve(name: str, platform: Platform | None, store: Layout, cache: BuildCache, *, registry: object = None,
            pull: bool = False, info: Callable[[str], None] | None = None) -> Image | None:
    """The image `name` names, with its blobs in `store` (None for scratch)."""
    if name == "scratch":
        return None
    if name.startswith("oci:"):
        image = Image.load(*open_image(name[len("oci:"):]), platform)
        if image.layout.path != store.path:
            copy_blobs(image, store)
            if not store.has_blob(image.descriptor.digest, image.descriptor.size):
                store.put_bytes(image.layout.read_blob(image.descriptor), image.descriptor.digest)
            image = Image.load(store, image.descriptor, platform)
        return image
    return _from_registry(name, platform, store, cache, registry, pull, info)


def _from_registry(name: str, platform: Platform | None, store: Layout, cache: BuildCache, registry: object,
                   pull: bool, info: Callable[[str], None] | None) -> Image:
    from oci.reference import Reference

    reference = Reference.parse(name)
    wanted = platform or Platform.host()
    key = hashlib.sha256(f"{reference}\0{wanted}".encode()).hexdigest()
    if not pull:
        found = cache.base(key)
        if found is not None:
            image = Image.load(store, found, wanted)
            if all(store.has_blob(layer.digest, layer.size) for layer in image.layers):
                return image
    from oci.descriptor import Descriptor
    from oci.registry.client import connect
    from oci.registry.pull import Puller, RegistrySource

    if info:
        info(f"pulling {reference}")
    repository = connect(reference, registry)  # type: ignore[arg-type]
    puller = Puller(RegistrySource(repository), store.path)
    plan, manifest = puller.plan(reference.identifier, wanted, False)
    try:
        puller.store(plan, store)
    except BaseException:
        store.roll_back(puller.added)
        raise
    descriptor = Descriptor(manifest.media_type, manifest.digest, len(manifest.data))
    cache.put_base(key, str(reference), str(wanted), descriptor)
    return Image.load(store, descriptor, wanted)
