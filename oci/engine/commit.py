"""`commit`: a container's changes (its overlay upper folder) as a new layer on its image, with
oci-commit's deterministic layer code; the config is the container's (Cmd, Entrypoint, Env,
WorkingDir, User as it ran), as Docker's, then `--change` instructions."""

from __future__ import annotations

import json
import os
import shlex
from typing import Any, Sequence

from oci.errors import InvalidInput

from . import status
from .engine import Engine
from .images import parse_reference

STAGING = "ocikit-commit-staging"


def parse_change(text: str, changes: Any) -> None:
    """One `--change` Dockerfile instruction into `changes`."""
    from oci.build import config as configs

    instruction, _, rest = text.strip().partition(" ")
    word = instruction.upper()
    rest = rest.strip()

    def words() -> list[str]:
        if rest.startswith("["):
            try:
                value = json.loads(rest)
            except ValueError:
                raise InvalidInput(f"--change {text!r}: not a JSON array") from None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidInput(f"--change {text!r}: expected a JSON array of strings")
            return value
        return ["/bin/sh", "-c", rest]

    if word == "CMD":
        changes.cmd = words()
    elif word == "ENTRYPOINT":
        changes.entrypoint = words()
    elif word == "ENV":
        key, sep, value = rest.partition("=")
        if not sep:
            key, _, value = rest.partition(" ")
        changes.env.append((key.strip(), value.strip().strip('"')))
    elif word == "LABEL":
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            changes.labels[key] = value
    elif word == "EXPOSE":
        changes.exposed_ports += [configs.parse_port(p) for p in rest.split()]
    elif word == "VOLUME":
        paths = json.loads(rest) if rest.startswith("[") else rest.split()
        changes.volumes += [configs.check_volume(p) for p in paths]
    elif word == "WORKDIR":
        changes.workdir = rest
    elif word == "USER":
        changes.user = rest
    elif word == "STOPSIGNAL":
        changes.stop_signal = configs.parse_signal(rest)
    else:
        raise InvalidInput(f"--change {text!r}: {instruction} is not supported (CMD, ENTRYPOINT, ENV, EXPOSE, "
                           "LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)")


def commit(engine: Engine, cid: str, repository: str | None, *, author: str | None = None,
           message: str | None = None, changes: Sequence[str] = (), pause: bool = True) -> str:
    """Make the image; its ID (`sha256:` and the config digest)."""
    from oci.build import config as configs
    from oci.build import source
    from oci.build.commit import commit as commit_image
    from oci.build.entry import Policy
    from oci.runtime import control
    from oci.unpack.overlay import overlay_dirs


    record = engine.containers.load(cid)
    name = str(parse_reference(repository)) if repository else None
    base = engine.images.find(record["ImageManifest"])
    image = engine.images.load_image(base)
    container_config = record["Config"]
    wanted = configs.Changes(cmd=list(container_config.get("Cmd") or []) or None,
                             entrypoint=list(container_config.get("Entrypoint") or []) or None,
                             env=[tuple(e.partition("=")[::2]) for e in container_config.get("Env") or []],
                             workdir=container_config.get("WorkingDir") or None,
                             user=container_config.get("User") or None,
                             exposed_ports=sorted(container_config.get("ExposedPorts") or {}))
    if wanted.entrypoint is None and (image.config.get("config") or {}).get("Entrypoint"):
        wanted.entrypoint = [""]  # the container ran with --entrypoint ""
    for text in changes:
        parse_change(text, wanted)
    upper, _ = overlay_dirs(os.path.join(engine.containers.folder(cid), "rootfs"))
    store = engine.runtime_store()
    paused = False
    if pause and status.current(engine, record) == "running":
        control.pause(store, cid)
        paused = True
    try:
        config_base = image._replace(config={**image.config, "author": author} if author else image.config)
        descriptor = commit_image(engine.images.layout, STAGING + "-" + cid[:12], base=config_base,
                                  entries=source.from_directory(upper, upper=True), changes=wanted,
                                  policy=Policy(), created_by=f"ocikit commit {record['Name']}", comment=message)
    finally:
        if paused:
            control.resume(store, cid)
    images = engine.images
    images.name([name] if name else [str(descriptor.digest)], descriptor)
    images.untag(STAGING + "-" + cid[:12])
    return images.find(str(descriptor.digest)).id
