"""Creating and editing an image config: the fields `docker commit --change` and a
Dockerfile set, plus the layer's diff_id and its history entry.

Times come from SOURCE_DATE_EPOCH when it is set (the reproducible-builds convention),
else from the clock.
"""

from __future__ import annotations

import copy
import datetime
import posixpath
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from oci.digest import Digest
from oci.errors import InvalidInput
from oci.platform import Platform
from oci.runtime.lifecycle import parse_signal as signal_number

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass
class Changes:
    """Config fields to set; None (or empty) leaves the base image's value alone.

    An entrypoint or cmd of `[""]` clears the field. Setting the entrypoint without a cmd
    clears the base image's cmd, as a Dockerfile ENTRYPOINT does.
    """

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[tuple[str, str]] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    stop_signal: str | None = None


def parse_pair(text: str, what: str) -> tuple[str, str]:
    """`KEY=VALUE` (for --env and --label); the key must not be empty."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"invalid {what} {text!r}: expected KEY=VALUE")
    return key, value


def parse_port(text: str) -> str:
    """`PORT[/PROTO]` -> `PORT/proto` as the config's ExposedPorts keys spell it."""
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if not port.isdigit() or not 1 <= int(port) <= 65535 or proto not in PROTOCOLS:
        raise InvalidInput(f"invalid port {text!r}: expected PORT[/tcp|udp|sctp] with PORT in 1-65535")
    return f"{int(port)}/{proto}"


def parse_signal(text: str) -> str:
    """A stop signal as the image config writes it: a name (SIGTERM; TERM and sigterm are
    accepted, SIGRTMIN+3 too) or a number, known to this system's kernel as oci-run reads it."""
    name = text.strip().upper()
    if not name.isdigit() and not name.startswith("SIG"):
        name = "SIG" + name

    try:
        if not 0 < signal_number(name) < signal.NSIG:
            raise InvalidInput(name)
    except InvalidInput:
        raise InvalidInput(f"invalid stop signal {text!r}: expected a signal name (SIGTERM, TERM, "
                           "SIGRTMIN+3) or number") from None
    return name


def parse_epoch(text: str | None) -> int | None:
    """The value of SOURCE_DATE_EPOCH: seconds since 1970, or None when unset or empty."""
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(f"invalid SOURCE_DATE_EPOCH {text!r}: expected a number of seconds")
    return int(text)


def timestamp(epoch: int | None) -> str:
    """RFC 3339 UTC time of `epoch`, or of now when None."""
    moment = datetime.datetime.fromtimestamp(time.time() if epoch is None else epoch, datetime.UTC)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_config(platform: Platform) -> dict[str, Any]:
    """The config of an empty image for `platform`."""
    config: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        config["variant"] = platform.variant
    config["config"] = {}
    config["rootfs"] = {"type": "layers", "diff_ids": []}
    config["history"] = []
    return config


def apply(base: dict[str, Any], changes: Changes) -> dict[str, Any]:
    """A copy of the config `base` with `changes` made to its `config` object."""
    config = copy.deepcopy(base)
    settings = config.setdefault("config", {})
    if changes.entrypoint is not None:
        _set_list(settings, "Entrypoint", changes.entrypoint)
        if changes.cmd is None:
            settings.pop("Cmd", None)
    if changes.cmd is not None:
        _set_list(settings, "Cmd", changes.cmd)
    if changes.env:
        env = dict(item.partition("=")[::2] for item in settings.get("Env") or [])
        env.update(changes.env)
        settings["Env"] = [f"{key}={value}" for key, value in env.items()]
    if changes.workdir is not None:
        settings["WorkingDir"] = posixpath.normpath(posixpath.join(settings.get("WorkingDir") or "/", changes.workdir))
    if changes.user is not None:
        settings["User"] = changes.user
    if changes.labels:
        settings["Labels"] = {**(settings.get("Labels") or {}), **changes.labels}
    for key, values in (("ExposedPorts", changes.exposed_ports), ("Volumes", changes.volumes)):
        if values:
            settings[key] = {**(settings.get(key) or {}), **{value: {} for value in values}}
    if changes.stop_signal is not None:
        settings["StopSignal"] = changes.stop_signal
    return config


def _set_list(settings: dict[str, Any], key: str, values: list[str]) -> None:
    if values == [""]:
        settings.pop(key, None)
    else:
        settings[key] = list(values)


def add_history(config: dict[str, Any], created: str, created_by: str, diff_id: Digest | None,
                comment: str | None = None) -> None:
    """Record a step: the layer's diff_id (None for a config-only step) and a history entry."""
    config["created"] = created
    if diff_id is not None:
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []}).setdefault("diff_ids", []).append(str(diff_id))
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if comment:
        entry["comment"] = comment
    if diff_id is None:
        entry["empty_layer"] = True
    config.setdefault("history", []).append(entry)


def check_volume(path: str) -> str:
    """A volume must be an absolute path."""
    if not path.startswith("/"):
        raise InvalidInput(f"invalid volume {path!r}: expected an absolute path")
    return path
