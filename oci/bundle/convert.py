"""Image config -> runtime config fields, as the image-spec's conversion.md prescribes."""

from __future__ import annotations

import posixpath
from typing import Any, Sequence

from oci.errors import UsageError

ANNOTATION_PREFIX = "org.opencontainers.image."
# image config field -> annotation key (conversion.md, "Annotation Fields")
IMAGE_ANNOTATIONS = {
    "os": "org.opencontainers.image.os",
    "architecture": "org.opencontainers.image.architecture",
    "variant": "org.opencontainers.image.variant",
    "os.version": "org.opencontainers.image.os.version",
    "os.features": "org.opencontainers.image.os.features",
    "author": "org.opencontainers.image.author",
    "created": "org.opencontainers.image.created",
}
STOP_SIGNAL = "org.opencontainers.image.stopSignal"
EXPOSED_PORTS = "org.opencontainers.image.exposedPorts"


def process_args(config: dict[str, Any], entrypoint: str | None = None, args: Sequence[str] | None = None
                 ) -> list[str]:
    """Entrypoint + Cmd, where `--entrypoint` replaces the entrypoint (and drops Cmd) and trailing args replace Cmd.

    As `docker run`: `--entrypoint ""` clears the image's entrypoint.
    """
    image = config.get("config") or {}
    if entrypoint is not None:
        head = [entrypoint] if entrypoint else []
        tail = list(args or [])
    else:
        head = list(image.get("Entrypoint") or [])
        tail = list(args) if args else list(image.get("Cmd") or [])
    result = head + tail
    if not result:
        raise UsageError("no command: the image has no Entrypoint or Cmd and none was given")
    return result


def env_name(entry: str) -> str:
    """The variable name of an `NAME=value` entry."""
    return entry.split("=", 1)[0]


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """`base` with each `NAME=value` of `overrides` replacing its namesake in place, or appended."""
    merged = list(base)
    where = {env_name(e): i for i, e in enumerate(merged)}
    for entry in overrides:
        name = env_name(entry)
        if name in where:
            merged[where[name]] = entry
        else:
            where[name] = len(merged)
            merged.append(entry)
    return merged


def add_missing(env: list[str], defaults: list[str]) -> list[str]:
    """Add implementation defaults whose names are not set yet (conversion.md: never change the image's)."""
    present = {env_name(e) for e in env}
    return env + [d for d in defaults if env_name(d) not in present]


def working_dir(config: dict[str, Any], override: str | None = None) -> str:
    """`-w` or `Config.WorkingDir`, made absolute; `/` when neither is set."""
    cwd = override or (config.get("config") or {}).get("WorkingDir") or "/"
    return posixpath.normpath(posixpath.join("/", cwd))


def implicit_annotations(config: dict[str, Any]) -> dict[str, str]:
    """The implicit annotations of conversion.md, with `Config.Labels` taking precedence."""
    image = config.get("config") or {}
    result: dict[str, str] = {}
    for field, key in IMAGE_ANNOTATIONS.items():
        value = config.get(field)
        if isinstance(value, list):
            value = ",".join(value)
        if value:
            result[key] = str(value)
    if image.get("StopSignal"):
        result[STOP_SIGNAL] = image["StopSignal"]
    if image.get("ExposedPorts"):
        result[EXPOSED_PORTS] = ",".join(sorted(image["ExposedPorts"]))
    result.update(image.get("Labels") or {})
    return result


def volumes(config: dict[str, Any]) -> list[str]:
    """The image's `Config.Volumes` as normalised absolute paths, sorted."""
    paths = (config.get("config") or {}).get("Volumes") or {}
    return sorted({posixpath.normpath(posixpath.join("/", p)) for p in paths})
