"""config.json: load, validate against the schema, and refuse every field oci-run does not implement.

`SUPPORTED` mirrors the config's shape: a dict lists the keys understood inside an object,
`ANY` accepts the whole subtree, and a one-element list describes every array item.
"""

from __future__ import annotations

import os

from oci import schema
from oci.errors import InvalidInput, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ANY = True
MIN_VERSION, MAX_VERSION = (1, 0, 0), (1, 3, 0)

_HOOK = [{"path": ANY, "args": ANY, "env": ANY, "timeout": ANY}]
_CAPS = {k: ANY for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}

SUPPORTED: dict[str, Any] = {
    "ociVersion": ANY,
    "root": {"path": ANY, "readonly": ANY},
    "mounts": [{"destination": ANY, "type": ANY, "source": ANY, "options": ANY}],
    "process": {
        "terminal": ANY, "consoleSize": ANY, "cwd": ANY, "env": ANY, "args": ANY,
        "rlimits": ANY, "noNewPrivileges": ANY, "oomScoreAdj": ANY, "capabilities": _CAPS,
        "user": {"uid": ANY, "gid": ANY, "umask": ANY, "additionalGids": ANY},
        "ioPriority": ANY, "scheduler": ANY,
        "apparmorProfile": "", "selinuxLabel": "",
    },
    "hostname": ANY,
    "domainname": ANY,
    "hooks": {phase: _HOOK for phase in ("prestart", "createRuntime", "createContainer", "startContainer",
                                          "poststart", "poststop")},
    "annotations": ANY,
    "linux": {
        "namespaces": ANY, "uidMappings": ANY, "gidMappings": ANY, "timeOffsets": ANY, "devices": ANY,
        "cgroupsPath": ANY, "sysctl": ANY, "rootfsPropagation": ANY, "maskedPaths": ANY,
        "readonlyPaths": ANY, "mountLabel": "",
        "resources": {
            "memory": {"limit": ANY, "reservation": ANY, "swap": ANY},
            "pids": {"limit": ANY},
            "cpu": {"shares": ANY, "quota": ANY, "period": ANY, "cpus": ANY, "mems": ANY},
            "devices": ANY,
            "unified": ANY,
            "blockIO": {"throttleReadBpsDevice": ANY, "throttleWriteBpsDevice": ANY,
                        "throttleReadIOPSDevice": ANY, "throttleWriteIOPSDevice": ANY},
        },
        "seccomp": {"defaultAction": ANY, "defaultErrnoRet": ANY, "architectures": ANY, "flags": ANY,
                    "syscalls": [{"names": ANY, "action": ANY, "errnoRet": ANY, "args": ANY}]},
        "personality": {"domain": ANY, "flags": []},
    },
}


def _pointer_part(key: str | int) -> str:
    return "/" + str(key).replace("~", "~0").replace("/", "~1")


def unsupported_fields(doc: Any, rule: Any = None, pointer: str = "") -> list[str]:
    """JSON pointers of every field in `doc` that `rule` (default SUPPORTED) does not accept."""
    rule = SUPPORTED if rule is None else rule
    if rule is ANY:
        return []
    if isinstance(rule, str):  # only the empty value (or the same string) is accepted
        return [] if doc in ("", None) else [pointer]
    if isinstance(rule, list):
        if not isinstance(doc, list):
            return []
        if not rule:
            return [pointer] if doc else []
        found = []
        for i, item in enumerate(doc):
            found += unsupported_fields(item, rule[0], pointer + _pointer_part(i))
        return found
    if not isinstance(doc, dict):
        return []
    found = []
    for key, value in doc.items():
        if key not in rule:
            found.append(pointer + _pointer_part(key))
        else:
            found += unsupported_fields(value, rule[key], pointer + _pointer_part(key))
    return found


def check_version(version: str, source: str) -> None:
    try:
        numbers = tuple(int(p) for p in version.split("-", 1)[0].split(".")[:3])
    except ValueError:
        raise InvalidInput(f"{source}: /ociVersion: not a version: {version!r}") from None
    if not MIN_VERSION <= numbers <= MAX_VERSION:
        raise Unsupported(f"{source}: /ociVersion: {version} is outside the supported range "
                          f"{'.'.join(map(str, MIN_VERSION))} to {'.'.join(map(str, MAX_VERSION))}")


# Options of features.md's list that oci-run recognizes but does not implement.
UNIMPLEMENTED_MOUNT_OPTIONS = {"ratime", "rnorelatime", "rnostrictatime", "idmap", "ridmap", "tmpcopyup", "acl",
                               "noacl"}


def check_mount_options(doc: dict[str, Any], path: str) -> None:
    """Refuse mount options oci-run does not implement, and data options a bind mount would ignore."""
    from oci.linux.mountopts import FLAG_OPTIONS, PROPAGATION_OPTIONS, RECURSIVE_OPTIONS

    for i, mount in enumerate(doc.get("mounts") or []):
        options = mount.get("options") or []
        bind = mount.get("type") == "bind" or "bind" in options or "rbind" in options
        for j, option in enumerate(options):
            if option in UNIMPLEMENTED_MOUNT_OPTIONS:
                raise Unsupported(f"{path}: /mounts/{i}/options/{j}: mount option {option} is not supported by oci-run")
            if bind and option not in FLAG_OPTIONS and option not in PROPAGATION_OPTIONS \
                    and option not in RECURSIVE_OPTIONS:
                raise Unsupported(f"{path}: /mounts/{i}/options/{j}: {option!r} means nothing to a bind mount")


def load(bundle: str) -> dict[str, Any]:
    """Read BUNDLE/config.json, validate it, and refuse fields oci-run does not implement."""
    path = os.path.join(bundle, "config.json")
    doc = schema.load_file(path, "runtime-config", remember=True)
    check_version(doc.get("ociVersion", ""), path)
    unknown = unsupported_fields(doc)
    if unknown:
        raise Unsupported(f"{path}: {unknown[0]}: not supported by oci-run"
                          + (f" (and {len(unknown) - 1} more: {', '.join(unknown[1:4])})" if len(unknown) > 1 else ""))
    check_mount_options(doc, path)
    if "linux" not in doc:
        raise Unsupported(f"{path}: /linux: only Linux containers are supported")
    return doc
