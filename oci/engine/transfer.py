"""Pull and push for the image store: oci-fetch's and oci-push's code, images named by full reference."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from oci.errors import NotFound
from oci.reference import Reference

from .images import ImageStore, StoredImage, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.platform import Platform
    from oci.registry.http import Options

Pulled = namedtuple("Pulled", ["image", "reference", "fetched", "bytes", "present", "changed"])


def connect(ref: Reference, options: Options, push: bool = False) -> Any:
    from oci.registry.client import connect as connect_repository

    return connect_repository(ref, options, push=push)


def pull(store: ImageStore, text: str, options: Options, *, platform: Platform | None = None,
         progress: Any = None, jobs: int = 4) -> Pulled:
    """Pull `text` into the store under its full name; the name's previous image stays, dangling."""
    from oci.registry.client import SOURCE_ANNOTATION
    from oci.registry.pull import RegistrySource
    from oci.registry.pull import pull as pull_image

    ref = parse_reference(text)
    name = str(ref)  # `REPO:TAG`, or `REPO@DIGEST` for a pull by digest (Docker shows its tag as <none>)
    before = store.maybe_find(name)
    repository = connect(ref, options)
    repository.prefetch_manifest(ref.identifier)
    result = pull_image(RegistrySource(repository), ref.identifier, store.path, tag=name, platform=platform,
                        jobs=jobs, progress=progress, annotations={SOURCE_ANNOTATION: str(ref)})
    changed = before is None or before.descriptor.digest != result.descriptor.digest
    if before is not None and changed:
        store.orphaned(before)
    stats = result.stats
    return Pulled(store.find(name), ref, stats.blobs_fetched, stats.bytes_fetched, stats.blobs_present, changed)


def push(store: ImageStore, text: str, options: Options, *, progress: Any = None, jobs: int = 4) -> Any:
    """Push the image stored as `text` to the registry its name says; the push result."""
    from oci.registry.push import push as push_image

    ref = parse_reference(text)
    stored = store.maybe_find(str(ref))
    if stored is None:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
    repository = connect(ref, options, push=True)
    if ref.tag:
        repository.prefetch_manifest(ref.tag, head=True)
    return push_image(store.layout, stored.descriptor, repository, tags=[ref.tag] if ref.tag else [], jobs=jobs,
                      progress=progress)


def ensure(store: ImageStore, text: str, options: Options, *, platform: Platform | None = None,
           progress: Any = None, pull_policy: str = "missing") -> tuple[StoredImage, bool]:
    """The image `text` names, pulled when missing (or always, or never); (image, whether it was pulled)."""
    found = store.maybe_find(text)
    if found is not None and pull_policy != "always":
        return found, False
    if pull_policy == "never":
        raise NotFound(f"No such image: {text}")
    return pull(store, text, options, platform=platform, progress=progress).image, True
