"""docker-run option values parsed into runtime-config pieces: units, env files, devices, mounts, ..."""

from __future__ import annotations

import os
import posixpath
import re
import stat
from typing import Any, Mapping, NamedTuple, Sequence

from oci.errors import InvalidInput, NotFound

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
RLIM_INFINITY = 2**64 - 1
ULIMITS = {"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack"}
HOOK_STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# sysctls Docker accepts in a container: namespaced by ipc (kernel.*, fs.mqueue) or net
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced"}


class Mount(NamedTuple):
    """A mount asked for with -v, --mount or --tmpfs (source of a volume is its name)."""

    kind: str  # bind, volume or tmpfs
    destination: str
    source: str = ""
    options: Sequence[str] = ()


def parse_bytes(text: str, what: str = "size") -> int:
    """Docker's RAMInBytes: `512`, `64k`, `1.5g`, `100mb` (1024-based, case-insensitive)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)b?\s*", text, re.IGNORECASE)
    if not match:
        raise InvalidInput(f"invalid {what} {text!r}: expected a number with an optional unit b, k, m, g, t or p")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_env_entry(entry: str, environ: Mapping[str, str], where: str) -> str | None:
    """`NAME=value` as is; a bare `NAME` takes the host's value (None when unset there)."""
    name, sep, _ = entry.partition("=")
    if not name or re.search(r"\s", name):
        raise InvalidInput(f"{where}: invalid environment variable {entry!r}")
    if sep:
        return entry
    return f"{name}={environ[name]}" if name in environ else None


def read_env_file(path: str, environ: Mapping[str, str]) -> list[str]:
    """Docker's --env-file: one `NAME=value` or `NAME` a line; blank lines and `#` comments skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such env file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"{path}: cannot read env file: {err}") from None
    result = []
    for number, line in enumerate(lines, 1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        entry = parse_env_entry(line, environ, f"{path}:{number}")
        if entry is not None:
            result.append(entry)
    return result


def parse_device(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`HOST[:CONTAINER[:rwm]]` -> (linux.devices entry, device cgroup rule)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise InvalidInput(f"invalid device {text!r}: expected HOST[:CONTAINER[:PERMISSIONS]]")
    host = parts[0]
    container = host
    access = "rwm"
    if len(parts) == 2 and parts[1] and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
        access = parts[1]
    elif len(parts) >= 2:
        container = parts[1] or host
        if len(parts) == 3:
            access = parts[2]
    if not access or not set(access) <= set("rwm"):
        raise InvalidInput(f"invalid device {text!r}: permissions must be made of r, w and m")
    if not container.startswith("/"):
        raise InvalidInput(f"invalid device {text!r}: the container path must be absolute")
    try:
        st = os.stat(host)
    except FileNotFoundError:
        raise NotFound(f"device {host}: no such file") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidInput(f"device {host}: not a character or block device")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    device = {"path": posixpath.normpath(container), "type": kind, "major": major, "minor": minor,
              "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    rule = {"allow": True, "type": kind, "major": major, "minor": minor, "access": access}
    return device, rule


def parse_throttle(text: str, flag: str) -> dict[str, Any]:
    """`PATH:RATE` of --device-{read,write}-{bps,iops} -> a linux.resources.blockIO throttle entry
    (RATE a size like 1mb for bps, a number for iops)."""
    path, colon, rate_text = text.rpartition(":")
    if not colon or not path:
        raise InvalidInput(f"invalid {flag} {text!r}: expected DEVICE:RATE")
    if flag.endswith("bps"):
        rate = parse_bytes(rate_text, flag)
    elif rate_text.isdigit():
        rate = int(rate_text)
    else:
        raise InvalidInput(f"invalid {flag} {text!r}: the rate must be a number of operations per second")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"{flag}: {path}: no such file") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidInput(f"{flag}: {path}: not a block device")
    return {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev), "rate": rate}


def parse_ulimit(text: str) -> dict[str, Any]:
    """`nofile=1024[:2048]` -> an rlimit entry (`unlimited` or -1 for no limit)."""
    name, sep, values = text.partition("=")
    if not sep or name not in ULIMITS:
        raise InvalidInput(f"invalid ulimit {text!r}: expected NAME=SOFT[:HARD], "
                           f"NAME one of {', '.join(sorted(ULIMITS))}")

    def number(value: str) -> int:
        if value in ("unlimited", "-1"):
            return RLIM_INFINITY
        if not value.isdigit():
            raise InvalidInput(f"invalid ulimit {text!r}: {value!r} is not a number")
        return int(value)

    soft_text, _, hard_text = values.partition(":")
    soft = number(soft_text)
    hard = number(hard_text) if hard_text else soft
    if soft > hard:
        raise InvalidInput(f"invalid ulimit {text!r}: soft limit above hard limit")
    return {"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}


def parse_sysctl(text: str, host_network: bool) -> tuple[str, str]:
    """`name=value` for a namespaced sysctl (ipc ones, fs.mqueue.*, net.* unless on the host network)."""
    name, sep, value = text.partition("=")
    name = name.replace("/", ".")
    if not sep or not name:
        raise InvalidInput(f"invalid sysctl {text!r}: expected NAME=VALUE")
    if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
        return name, value
    if name.startswith("net."):
        if host_network:
            raise InvalidInput(f"sysctl {name} cannot be set with --network host")
        return name, value
    raise InvalidInput(f"sysctl {name} is not namespaced: it would change the host")


def parse_key_values(text: str, what: str) -> tuple[str, str]:
    """`key=value` (value may be empty)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InvalidInput(f"invalid {what} {text!r}: expected KEY=VALUE")
    return key, value


def _destination(path: str, text: str) -> str:
    if not path.startswith("/"):
        raise InvalidInput(f"invalid mount {text!r}: the container path {path!r} must be absolute")
    if posixpath.normpath(path) == "/":
        raise InvalidInput(f"invalid mount {text!r}: cannot mount over /")
    return posixpath.normpath(path)


def parse_volume(text: str) -> Mount:
    """-v: `CONTAINER`, `HOST:CONTAINER[:OPTS]` (bind) or `NAME:CONTAINER[:OPTS]` (named volume)."""
    parts = text.split(":")
    if len(parts) == 1:
        return Mount("volume", _destination(parts[0], text))
    if len(parts) > 3:
        raise InvalidInput(f"invalid volume {text!r}: expected [HOST|NAME:]CONTAINER[:OPTIONS]")
    source, target = parts[0], parts[1]
    options = []
    for option in (parts[2].split(",") if len(parts) == 3 and parts[2] else []):
        if option in ("ro", "rw") or option in PROPAGATIONS:
            options.append(option)
        elif option in ("z", "Z", "nocopy", "copy"):
            continue  # SELinux relabelling and volume seeding have no runtime-config meaning
        else:
            raise InvalidInput(f"invalid volume {text!r}: unknown option {option!r}")
    if source.startswith(("/", ".")):
        return Mount("bind", _destination(target, text), os.path.abspath(source), options)
    if not VOLUME_NAME.match(source):
        raise InvalidInput(f"invalid volume {text!r}: {source!r} is neither an absolute path nor a volume name")
    return Mount("volume", _destination(target, text), source, options)


def parse_mount(text: str) -> Mount:
    """--mount `type=bind|volume|tmpfs,source=..,target=..,readonly,bind-propagation=..,tmpfs-size=..`."""
    import csv

    fields = next(csv.reader([text]), [])
    values: dict[str, str] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        values[key] = value if sep else "true"
    kind = values.pop("type", "volume")
    source = values.pop("source", values.pop("src", ""))
    target = values.pop("target", values.pop("destination", values.pop("dst", "")))
    if not target:
        raise InvalidInput(f"invalid mount {text!r}: target is missing")
    options = []
    readonly = values.pop("readonly", values.pop("ro", "false"))
    if readonly in ("true", "1"):
        options.append("ro")
    elif readonly not in ("false", "0"):
        raise InvalidInput(f"invalid mount {text!r}: readonly must be true or false")
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidInput(f"invalid mount {text!r}: a bind source must be an absolute path")
        if not os.path.exists(source):
            raise NotFound(f"invalid mount {text!r}: bind source {source} does not exist")
        propagation = values.pop("bind-propagation", "")
        if propagation:
            if propagation not in PROPAGATIONS:
                raise InvalidInput(f"invalid mount {text!r}: unknown bind-propagation {propagation!r}")
            options.append(propagation)
    elif kind == "tmpfs":
        if source:
            raise InvalidInput(f"invalid mount {text!r}: a tmpfs has no source")
        if "tmpfs-size" in values:
            options.append(f"size={parse_bytes(values.pop('tmpfs-size'), 'tmpfs-size')}")
        if "tmpfs-mode" in values:
            mode = values.pop("tmpfs-mode")
            if not re.fullmatch(r"[0-7]{1,4}", mode):
                raise InvalidInput(f"invalid mount {text!r}: tmpfs-mode must be octal")
            options.append(f"mode={mode}")
    elif kind == "volume":
        if source and not VOLUME_NAME.match(source):
            raise InvalidInput(f"invalid mount {text!r}: {source!r} is not a volume name")
        values.pop("volume-nocopy", None)
    else:
        raise InvalidInput(f"invalid mount {text!r}: type must be bind, volume or tmpfs")
    if values:
        raise InvalidInput(f"invalid mount {text!r}: unknown option {sorted(values)[0]!r}")
    return Mount(kind, _destination(target, text), source, options)


def parse_tmpfs(text: str) -> Mount:
    """--tmpfs `PATH[:OPTIONS]`, mounted nosuid,nodev,noexec unless the options say otherwise."""
    path, _, options = text.partition(":")
    return Mount("tmpfs", _destination(path, text), "tmpfs", [o for o in options.split(",") if o])


def parse_id_map(text: str) -> dict[str, int]:
    """`CONTAINER_ID:HOST_ID:SIZE` -> a runtime-spec id mapping."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[2]) == 0:
        raise InvalidInput(f"invalid id map {text!r}: expected CONTAINER_ID:HOST_ID:SIZE")
    return {"containerID": int(parts[0]), "hostID": int(parts[1]), "size": int(parts[2])}


def parse_add_host(text: str) -> tuple[str, str]:
    """`NAME:IP` or `NAME=IP` (IPv6 addresses keep their colons)."""
    import ipaddress

    separator = "=" if "=" in text else ":"
    name, _, address = text.partition(separator)
    address = address.strip("[]")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise InvalidInput(f"invalid --add-host {text!r}: expected NAME:IP with a literal IP address") from None
    if not name or re.search(r"\s", name):
        raise InvalidInput(f"invalid --add-host {text!r}: bad host name")
    return name, address


def parse_hook(text: str) -> tuple[str, dict[str, Any]]:
    """`STAGE=COMMAND ARGS...` -> (stage, runtime-spec hook); COMMAND found on PATH when not absolute."""
    import shlex
    import shutil

    stage, sep, command = text.partition("=")
    if not sep or stage not in HOOK_STAGES:
        raise InvalidInput(f"invalid hook {text!r}: expected STAGE=COMMAND, STAGE one of {', '.join(HOOK_STAGES)}")
    args = shlex.split(command)
    if not args:
        raise InvalidInput(f"invalid hook {text!r}: the command is empty")
    path = args[0] if args[0].startswith("/") else shutil.which(args[0])
    if not path:
        raise NotFound(f"hook command {args[0]!r} not found on PATH")
    return stage, {"path": os.path.abspath(path), "args": args}


def parse_cpus(text: str) -> int:
    """--cpus `1.5` -> a CFS quota in microseconds per 100 ms period."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise InvalidInput(f"invalid --cpus {text!r}: expected a positive number")
    return int(value * 100000)


def parse_capability(name: str) -> str:
    """`net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` -> `CAP_NET_ADMIN` (ALL stays ALL)."""
    from oci.bundle.defaults import ALL_CAPS

    upper = name.upper()
    if upper == "ALL":
        return upper
    cap = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if cap not in ALL_CAPS:
        raise InvalidInput(f"unknown capability {name!r}")
    return cap


def capabilities(default: Sequence[str], everything: Sequence[str], add: Sequence[str], drop: Sequence[str]
                 ) -> list[str]:
    """Docker's --cap-add/--cap-drop arithmetic, ALL included."""
    added = [parse_capability(c) for c in add]
    dropped = [parse_capability(c) for c in drop]
    if "ALL" in added:
        base = list(everything)
    elif "ALL" in dropped:
        base = []
    else:
        base = list(default)
    result = [c for c in base if c not in dropped or c in added]
    result += [c for c in added if c != "ALL" and c not in result]
    return result
