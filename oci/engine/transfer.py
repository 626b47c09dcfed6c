"""Pull and push for the image store with oci-fetch's and oci-push's code: registries.conf's mirrors
tried first, its insecure registries, the blob-location cache, images named by full reference."""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable

from oci.errors import NotFound

from . import registries
from .images import ImageStore, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.platform import Platform
    from oci.reference import Reference

Pulled = namedtuple("Pulled", ["image", "reference", "fetched", "bytes", "present", "changed", "source"])


def connect(ref: Reference, options: Any, push: bool = False) -> Any:
    from oci.registry.client import connect as connect_repository

    return connect_repository(ref, options, push=push)


def repository(text: str, *, tls_verify: str | None = None, cert_dir: str | None = None) -> Any:
    """The repository `text` names, where registries.conf says it lives (for tags and remote inspect)."""
    found = registries.places(text, pull=False)
    return connect(found[0].reference, registries.options(found, tls_verify=tls_verify, cert_dir=cert_dir))


def _canonical(found: list[Any], used: Reference) -> Reference:
    """The name an image pulled from `used` goes by: a mirror's image is the registry's it mirrors."""
    index = next(i for i, place in enumerate(found) if place.reference == used)
    return next((place.reference for place in found[index:] if not place.mirror), used)


def pull(store: ImageStore, text: str, *, tls_verify: str | None = None, cert_dir: str | None = None,
         platform: Platform | None = None, progress: Any = None, jobs: int = 4,
         warn: Callable[[str], None] | None = None) -> Pulled:
    """Pull `text` into the store under its full name; the name's previous image stays, dangling."""
    from oci.registry.client import SOURCE_ANNOTATION
    from oci.registry.pull import first_serving
    from oci.registry.pull import pull as pull_image

    found = registries.places(text, pull=True)
    options = registries.options(found, tls_verify=tls_verify, cert_dir=cert_dir)
    source, used = first_serving(found, options, *([warn] if warn else []))
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


def push(store: ImageStore, text: str, *, tls_verify: str | None = None, cert_dir: str | None = None,
         progress: Any = None, jobs: int = 4) -> Any:
    """Push the image stored as `text` to where its name says (registries.conf's location); the result."""
    from oci.registry.push import push as push_image

    ref = parse_reference(text)
    stored = store.maybe_find(str(ref))
    if stored is None:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
    found = registries.places(str(ref), pull=False)
    target = found[0].reference
    repo = connect(target, registries.options(found, tls_verify=tls_verify, cert_dir=cert_dir), push=True)
    if target.tag:
        repo.prefetch_manifest(target.tag, head=True)
    return push_image(store.layout, stored.descriptor, repo, tags=[target.tag] if target.tag else [], jobs=jobs,
                      progress=progress)

