"""`build`: a Dockerfile built by oci-build's library (issue 17) into the image store.

The build tags the image under a staging name in the store's layout (so its cache lives
beside the images), then the store names it with each `-t` reference, as `docker build -t`.
"""

from __future__ import annotations

import secrets
from typing import Any, Sequence

from .engine import Engine
from .images import parse_reference

STAGING = "ocikit-build-"


def build(engine: Engine, *, context: str, dockerfile: str | None, dockerfile_text: str | None, names: Sequence[str],
          build_args: dict[str, str], target: str | None, labels: dict[str, str], no_cache: bool, pull: bool,
          network: str, platform: Any, squash: bool, epoch: int | None, registry: Any, progress: Any,
          output: int | None) -> Any:
    """Build; the stored image (its names given)."""
    from oci.dockerfile.build import BuildOptions
    from oci.dockerfile.build import build as build_image

    full = [str(parse_reference(n)) for n in names]
    staging = STAGING + secrets.token_hex(6)
    images = engine.images
    images.layout  # noqa: B018 -- the store exists before the build tags in it
    options = BuildOptions(context=context, dockerfile=dockerfile, dockerfile_text=dockerfile_text,
                           tags=[f"{images.path}:{staging}"], build_args=build_args, target=target, labels=labels,
                           no_cache=no_cache, pull=pull, network=network, net_state_dir=engine.root.net,
                           platform=platform, squash=squash, epoch=epoch, layer_cache=engine.root.layers,
                           registry=registry, progress=progress, output=output)
    try:
        result = build_image(options)
        images.name(full or [str(result.descriptor.digest)], result.descriptor)
    finally:
        try:
            images.untag(staging)
        except Exception:  # noqa: BLE001 -- a build that failed tagged nothing
            pass
    return images.find(full[0] if full else str(result.descriptor.digest))
