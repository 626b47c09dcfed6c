"""Pull and push for the image store with oci-fetch's and oci-push's code: registries.conf's mirrors
tried first, its insecure registries, the blob-location cache, images named by full reference."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from oci.errors import NotFound
from oci.reference import Reference
from oci.registry.registries_conf import resolve

from .images import ImageStore, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.platform import Platform
    from oci.registry.http import Options

Pulled = namedtuple("Pulled", ["image", "reference", "fetched", "bytes", "present", "changed", "source"])


def connect(ref: Reference, options: Any, push: bool = False) -> Any:
    from oci.registry.client import connect as connect_repository

    return connect_repository(ref, options, push=push)


def repository(text: str, registry: Options | None = None) -> Any:
    """The repository `text` names, where registries.conf says it lives (for tags and remote inspect),
    reached with the transport options `registry` (the command's registry flags)."""
    found, options = resolve(text, pull=False, options=registry)
    return connect(found[0].reference, options)


def _canonical(found: list[Any], used: Reference) -> Reference:
    """The name an image pulled from `used` goes by: a mirror's image is the registry's it mirrors."""
    index = next(i for i, place in enumerate(found) if place.reference == used)
    return next((place.reference for place in found[index:] if not place.mirror), used)


def pull(store: ImageStore, text: str, registry: Options | None = None, *, platform: Platform | None = None,
         progress: Any = None, jobs: int = 4) -> Pulled:
    """Pull `text` into the store under its full name; the name's previous image stays, dangling."""
    from oci.registry.locations import SOURCE_ANNOTATION
    from oci.registry.pull import pull as pull_image
    from oci.registry.sources import first_serving

    found, options = resolve(text, pull=True, options=registry)
    source, used = first_serving(found, options)
    ref = _canonical(found, used)
    name = str(ref)  # `REPO:TAG`, or `REPO@DIGEST` for a pull by digest (Docker shows its tag as <none>)
    before = store.maybe_find(name)
    result = pull_image(source, used.identifier, store.path, tag=name, platform=platform, jobs=jobs,
                        progress=progress, annotations={SOURCE_ANNOTATION: str(used)})
    changed = before is None or before.descriptor.digest != result.descriptor.digest
    if before is not None and changed:
        store.orphaned(before)
    stats = result.stats
    return Pulled(store.find(name), ref, stats.blobs_fetched, stats.bytes_fetched, stats.blobs_present, changed,
                  used)


def push(store: ImageStore, text: str, registry: Options | None = None, *, progress: Any = None,
         jobs: int = 4) -> Any:
    """Push the image stored as `text` to where its name says (registries.conf's location); the result."""
    from oci.registry.push import push as push_image

    ref = parse_reference(text)
    stored = store.maybe_find(str(ref))
    if stored is None:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
    found, options = resolve(str(ref), pull=False, options=registry)
    target = found[0].reference
    repo = connect(target, options, push=True)
    if target.tag:
        repo.prefetch_manifest(target.tag, head=True)
    return push_image(store.layout, stored.descriptor, repo, tags=[target.tag] if target.tag else [], jobs=jobs,
                      progress=progress)

