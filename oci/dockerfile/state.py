"""What the steps of a build share: the settings, a stage's state, cache keys and small helpers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from oci.bundle import users
from oci.descriptor import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_ZSTD,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
)
from oci.digest import Digest
from oci.dockerfile.cache import BuildCache
from oci.dockerfile.context import SourceRoot
from oci.dockerfile.progress import Progress
from oci.errors import OciError
from oci.layout import Layout
from oci.platform import Platform
from oci.unpack.options import Budget

KEY_VERSION = "oci-build/2"
MAX_SIZE = 64 << 30  # bytes, as oci-unpack's default --max-size
MAX_ENTRIES = 2_000_000  # as oci-unpack's default --max-entries
DEFAULT_SHELL = ["/bin/sh", "-c"]
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")
_OCI_LAYER_TYPES = {DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_LAYER_ZSTD: OCI_LAYER_ZSTD}


class StepFailed(OciError):
    """A step that failed; the source names FILE:LINE, the message the instruction."""


def step_key(*parts: str) -> str:
    """A cache key: the sha256 of the parts."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class Settings:
    """What every step of a build needs."""

    store: Layout
    cache: BuildCache
    context: SourceRoot
    progress: Progress
    build_args: dict[str, str] = field(default_factory=dict)
    platform: Platform = field(default_factory=Platform.host)
    epoch: int | None = None
    compression: str = "gzip"
    no_cache: bool = False
    pull: bool = False
    network: str = "host"
    net_state_dir: str | None = None
    registry: Any = None  # oci.registry.http.Options
    layer_cache: str | None = None
    output: int | None = 2  # where RUN output goes (None: captured, shown when the step fails)
    workspace_dir: Callable[[], str] | None = None
    max_size: int = MAX_SIZE  # caps on what the build unpacks or downloads (--max-size, --max-entries)
    max_entries: int = MAX_ENTRIES

    def budget(self) -> Budget:
        """Fresh caps for one image's layers, one archive ADD unpacks or one URL it downloads."""
        from oci.unpack.options import Budget

        return Budget(self.max_size, self.max_entries)


@dataclass
class State:
    """A stage's image in the making."""

    config: dict[str, Any]
    layers: list[Descriptor]
    dirs: list[str | None]  # the folder of each layer's files, when at hand
    key: str
    platform: Platform
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in the stage, with values
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False
    base_digest: str | None = None
    name: str | None = None
    index: int = -1
    base_layers: int = 0  # how many layers came from the base image (--squash keeps them)

    @property
    def settings(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})

    @property
    def diff_ids(self) -> list[Digest]:
        return [Digest.parse(d) for d in self.config.get("rootfs", {}).get("diff_ids", [])]

    def env(self) -> dict[str, str]:
        """What `$NAME` expands to: the stage's ARGs, then its ENV (which wins)."""
        found = dict(self.args)
        for item in self.settings.get("Env") or []:
            key, _, value = item.partition("=")
            found[key] = value
        return found


def keyed_config(state: State) -> dict[str, Any]:
    """The parts of the config a filesystem step depends on."""
    settings = state.settings
    return {k: settings.get(k) for k in ("Env", "User", "WorkingDir", "Shell")}


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def oci_layer(layer: Descriptor) -> Descriptor:
    return Descriptor(_OCI_LAYER_TYPES.get(layer.media_type, layer.media_type), layer.digest, layer.size,
                      layer.annotations)


def owner_of(rootfs: str, spec: str, numeric_group: bool = False) -> tuple[int, int]:
    """`user[:group]` (names or numbers) resolved in the image's /etc/passwd and /etc/group.

    A number without a group is also the group (Docker's rule for --chown)."""
    user_part, sep, _ = spec.partition(":")
    resolved = users.resolve(rootfs, spec)
    if numeric_group and not sep and user_part.isdigit():
        return resolved.uid, resolved.uid
    return resolved.uid, resolved.gid
