"""What `oci-mon run` asks for, made into a container's config (record.schema.json's `config`).

The monitor does this, not the command: `oci-mon run` sits on every detached container's
start path (README, Performance), and the monitor has these modules loaded already. The
command sends its flags as it read them, with what only the caller knows made absolute:
paths against its working directory, the bundle with its symlinks resolved, its $PATH and
its own folder (where `oci-run` is looked for). The answer to a bad flag or a bad
config.json is the same one line and exit code the command used to give itself.
"""

from __future__ import annotations

import os
from typing import Any

from oci.errors import InvalidDocument, InvalidInput, NotFound
from oci.monitor import policy, proto, runtimes
from oci.monitor.paths import Root
from oci.runtime.lifecycle import parse_signal, signal_name

CONFIG_MAX = 64 << 20  # a config.json past this is refused (the monitor reads it between other work)
# Every option `oci-mon run` sends, with its types; its flags' defaults stay with its flags (bin/oci_mon.py).
OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "bundle": (str,), "runtime": (str,), "runtimeRoot": (str, type(None)), "path": (str, type(None)),
    "commandDir": (str, type(None)), "restart": (str,), "rm": (bool,), "stopSignal": (str, type(None)),
    "stopTimeout": (int,), "logPath": (str, type(None)), "logMaxSize": (str, type(None)), "logMaxFiles": (int,),
    "interactive": (bool,), "tty": (bool,),
}


def options_of(doc: Any) -> dict[str, Any]:
    """The request's options, checked for their presence and types; unknown ones are the caller's to hear about."""
    if not isinstance(doc, dict):
        raise InvalidInput("request: options must be an object")
    for key, types in OPTION_TYPES.items():
        if key not in doc:
            raise InvalidInput(f"request: options/{key}: missing")
        if not isinstance(doc[key], types) or (int in types and isinstance(doc[key], bool)):
            raise InvalidInput(f"request: options/{key}: wrong type")
    return doc


def config(options: dict[str, Any], root: Root, container_id: str) -> dict[str, Any]:
    """The container's config from `options` (options_of's) and its bundle's config.json."""
    restart = policy.parse(options["restart"])
    if options["rm"] and restart.name != "no":
        raise InvalidInput("--rm and --restart: a container removed once it ends cannot be restarted")
    if options["stopTimeout"] < 0:
        raise InvalidInput("--stop-timeout: must be 0 or more")
    if options["logMaxFiles"] < 1:
        raise InvalidInput("--log-max-files: must be 1 or more")
    max_size = 0
    if options["logMaxSize"]:
        from oci.bundle.options import parse_bytes

        max_size = parse_bytes(options["logMaxSize"], "--log-max-size")
    bundle = options["bundle"]
    path = os.path.join(bundle, "config.json")
    process, annotations = _read_bundle(path, bool(options["tty"]))
    stop = options["stopSignal"] or annotations.get("org.opencontainers.image.stopSignal") or "SIGTERM"
    runtime = runtimes.resolve(options["runtime"], options["path"], options["commandDir"])
    return {"bundle": bundle, "runtime": {"path": runtime, "root": options["runtimeRoot"]},
            "command": [str(arg) for arg in process.get("args", [])], "tty": bool(process.get("terminal")),
            "interactive": options["interactive"], "restartPolicy": restart.to_json(),
            "stopSignal": signal_name(parse_signal(str(stop))), "stopTimeout": options["stopTimeout"],
            "log": {"path": options["logPath"] or root.default_log(container_id), "maxSize": max_size,
                    "maxFiles": options["logMaxFiles"]},
            "autoRemove": options["rm"]}


def _read_bundle(path: str, tty: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """config.json's process and annotations, checked for what a run needs."""
    try:
        with open(path, "rb") as f:
            data = f.read(CONFIG_MAX + 1)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file (is {os.path.dirname(path)} a bundle?)") from None
    except OSError as err:
        raise InvalidInput(f"{path}: {err.strerror}") from None
    if len(data) > CONFIG_MAX:
        raise InvalidInput(f"{path}: larger than {CONFIG_MAX >> 20} MiB")
    try:
        config = proto.decode(data)
    except (ValueError, UnicodeDecodeError):
        from oci.monitor import record

        config = record.parse(data, path)  # raises, saying what is wrong where
    process = config.get("process") if isinstance(config, dict) else None
    if not isinstance(process, dict) or not isinstance(process.get("args", []), list):
        raise InvalidDocument(path, [("/process", "a process with args is required")])
    if tty and not process.get("terminal"):
        raise InvalidDocument(path, [("/process/terminal", "false, but -t asks for a terminal (make the bundle "
                                                           "with a terminal: oci-bundle -t)")])
    annotations = config.get("annotations") or {}
    return process, annotations if isinstance(annotations, dict) else {}

