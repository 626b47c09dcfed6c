"""config.json: read it as runc reads it, validate it against the schema, and decide on every property.

The runtime spec (config.md) says that implementations MUST NOT error on unknown properties and
MUST ignore them. `RULES` mirrors the config's shape (a dict lists the properties of an object,
a one-element list describes every item of an array) and says, for each property the spec
defines, what oci-run does with it:

* ANY: applied (the code applying it checks the value further);
* Ignore(why): known but not applied, and runc and crun carry on without it too: logged unless
  its value is a no-op (absent, 0, false, empty);
* Refuse(why): known but not applied, and carrying on would silently weaken the isolation or a
  limit the config asks for: refused unless its value is a no-op.

A property that RULES does not name is unknown: ignored and logged. Every refusal is one line
for the whole config (the first problem, and how many more), never one line per entry.

Quirks of the engines that write configs, read as runc (Go) reads them and tolerated before
validation (the vendored schemas stay unmodified):

* podman 4.3 writes `linux.devices[].fileMode` with the file-type bits of stat(2) (`--device`,
  `--privileged`: 8630 = S_IFCHR|0666; 24960 = S_IFBLK|0600): runc hands the mode to mknod,
  which takes the permission bits; the type bits are dropped before the schema check.
* runc, podman and containerd are Go programs: a config is whatever Go's encoding/json takes,
  and runc reads it with Go's rules (oci.gojson): a key that differs from a property of RULES
  only in case is read as that property (logged: `"Hostname"` fills `hostname`), a later key
  overrides an earlier one, and null leaves a property unset (the schema would refuse it).
"""

from __future__ import annotations

import os

from oci import RUNTIME_SPEC_VERSION, schema
from oci.errors import InvalidDocument, InvalidInput, NotFound, Unsupported, json_pointer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ANY = True
MIN_VERSION, MAX_VERSION = (1, 0, 0), tuple(map(int, RUNTIME_SPEC_VERSION.split(".")))


class Ignore:
    """A known property oci-run does not apply, as runc and crun carry on without it."""

    def __init__(self, why: str) -> None:
        self.why = why


class Refuse:
    """A known property oci-run does not apply, where carrying on would weaken isolation or a limit."""

    def __init__(self, why: str) -> None:
        self.why = why


_HOOK = [{"path": ANY, "args": ANY, "env": ANY, "timeout": ANY}]
_CAPS = {k: ANY for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
_NOT_LINUX = Ignore("a section for another platform")
_KERNEL_MEMORY = Ignore("kernel memory limits are ignored (as runc 1.1 ignores them; kernels drop them)")

PROCESS_RULES: dict[str, Any] = {
    "terminal": ANY, "consoleSize": {"height": ANY, "width": ANY}, "cwd": ANY, "env": ANY, "args": ANY,
    "rlimits": ANY, "noNewPrivileges": ANY, "oomScoreAdj": ANY, "capabilities": _CAPS,
    "user": {"uid": ANY, "gid": ANY, "umask": ANY, "additionalGids": ANY,
             "username": Ignore("a Windows property")},
    "ioPriority": ANY, "scheduler": ANY, "apparmorProfile": ANY, "selinuxLabel": ANY,
    "execCPUAffinity": {"initial": ANY, "final": ANY},
    "commandLine": Ignore("a Windows property"),
}
RESOURCES_RULES: dict[str, Any] = {
    "devices": ANY,
    "memory": {"limit": ANY, "reservation": ANY, "swap": ANY, "swappiness": ANY, "disableOOMKiller": ANY,
               "kernel": _KERNEL_MEMORY, "kernelTCP": _KERNEL_MEMORY,
               "useHierarchy": Ignore("memory.use_hierarchy is the kernel's choice (always on since Linux 6.0)"),
               "checkBeforeUpdate": Ignore("it concerns updates")},
    "cpu": {"shares": ANY, "quota": ANY, "burst": ANY, "period": ANY, "realtimeRuntime": ANY,
            "realtimePeriod": ANY, "cpus": ANY, "mems": ANY, "idle": ANY},
    "pids": {"limit": ANY},
    "blockIO": {"weight": ANY, "leafWeight": ANY, "weightDevice": ANY, "throttleReadBpsDevice": ANY,
                "throttleWriteBpsDevice": ANY, "throttleReadIOPSDevice": ANY, "throttleWriteIOPSDevice": ANY},
    "hugepageLimits": ANY,
    "network": {"classID": ANY, "priorities": ANY},
    "rdma": Refuse("rdma limits are not implemented"),
    "unified": ANY,
}
RULES: dict[str, Any] = {
    "ociVersion": ANY,
    "root": {"path": ANY, "readonly": ANY},
    "mounts": [{"destination": ANY, "type": ANY, "source": ANY, "options": ANY,
                "uidMappings": ANY, "gidMappings": ANY}],
    "process": PROCESS_RULES,
    "hostname": ANY,
    "domainname": ANY,
    "hooks": {phase: _HOOK for phase in ("prestart", "createRuntime", "createContainer", "startContainer",
                                          "poststart", "poststop")},
    "annotations": ANY,
    "linux": {
        "namespaces": ANY, "uidMappings": ANY, "gidMappings": ANY, "timeOffsets": ANY, "devices": ANY,
        "cgroupsPath": ANY, "sysctl": ANY, "rootfsPropagation": ANY, "maskedPaths": ANY,
        "readonlyPaths": ANY, "mountLabel": ANY, "resources": RESOURCES_RULES,
        "seccomp": {"defaultAction": ANY, "defaultErrnoRet": ANY, "architectures": ANY, "flags": ANY,
                    "listenerPath": Ignore("no seccomp action notifies a listener"),
                    "listenerMetadata": Ignore("no seccomp action notifies a listener"),
                    "syscalls": [{"names": ANY, "action": ANY, "errnoRet": ANY, "args": ANY}]},
        "personality": {"domain": ANY, "flags": Refuse("personality flags are not implemented")},
        "intelRdt": Refuse("Intel RDT (resctrl) is not implemented"),
        "memoryPolicy": Ignore("NUMA memory policies are not implemented (runc 1.1 and crun 1.8 ignore them)"),
        "netDevices": Ignore("moving network devices is not implemented (runc 1.1 and crun 1.8 ignore it)"),
    },
    "solaris": _NOT_LINUX, "windows": _NOT_LINUX, "vm": _NOT_LINUX, "zos": _NOT_LINUX, "freebsd": _NOT_LINUX,
}


def is_noop(value: Any) -> bool:
    """Whether a value asks for nothing: absent, null, 0, false or empty."""
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


class Review:
    """What the checks found: problems as (pointer, why), and notes (what was ignored, for the log)."""

    def __init__(self) -> None:
        self.invalid: list[tuple[str, str]] = []  # what no runtime can do (exit 2)
        self.refused: list[tuple[str, str]] = []  # what oci-run does not do here (exit 8)
        self.notes: list[str] = []


def review(doc: Any, rules: Any = None, pointer: str = "", found: Review | None = None) -> Review:
    """Walk `doc` along `rules` (default RULES): unknown and ignored properties become notes, refused
    ones refusals."""
    found = Review() if found is None else found
    rules = RULES if rules is None else rules
    if rules is ANY:
        return found
    if isinstance(rules, (Ignore, Refuse)):
        if not is_noop(doc):
            if isinstance(rules, Refuse):
                found.refused.append((pointer, rules.why))
            else:
                found.notes.append(f"{pointer}: ignored: {rules.why}")
        return found
    if isinstance(rules, list):
        if isinstance(doc, list):
            for i, item in enumerate(doc):
                review(item, rules[0], pointer + json_pointer(i), found)
        return found
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in rules:
                review(value, rules[key], pointer + json_pointer(key), found)
            else:
                found.notes.append(f"{pointer}{json_pointer(key)}: unknown property ignored")
    return found


def fold_keys(doc: Any, rules: Any, pointer: str, notes: list[str]) -> None:
    """Read the objects RULES describes as Go's encoding/json reads them, in place (oci.gojson: a key
    that matches a property only when case is folded is that property, a later key overrides an earlier
    one, null leaves a property unset); unknown keys stay for `review` to note."""
    if isinstance(doc, dict):
        from oci import gojson  # only for a config not remembered yet (schema.load's memo)

        decoded = gojson.decode(doc, rules, pointer, folded=notes)
        doc.clear()
        doc.update(decoded)


S_IFMT = 0o170000


def tolerate(doc: Any, notes: list[str] | None = None) -> None:
    """The engines' quirks, read as runc reads them (see the module doc), before schema validation."""
    if not isinstance(doc, dict):
        return
    fold_keys(doc, RULES, "", [] if notes is None else notes)
    linux = doc.get("linux")
    devices = linux.get("devices") if isinstance(linux, dict) else None
    for device in devices if isinstance(devices, list) else []:
        mode = device.get("fileMode") if isinstance(device, dict) else None
        if type(mode) is int and mode & S_IFMT:  # podman: stat(2)'s st_mode, type bits and all
            device["fileMode"] = mode & ~S_IFMT


def check_version(version: str, source: str) -> None:
    try:
        numbers = tuple(int(p) for p in version.split("-", 1)[0].split(".")[:3])
    except ValueError:
        raise InvalidInput(f"{source}: /ociVersion: not a version: {version!r}") from None
    if not MIN_VERSION <= numbers <= MAX_VERSION:
        raise Unsupported(f"{source}: /ociVersion: {version} is outside the supported range "
                          f"{'.'.join(map(str, MIN_VERSION))} to {'.'.join(map(str, MAX_VERSION))}")


# Options of features.md's list that oci-run recognizes but does not implement.
UNIMPLEMENTED_MOUNT_OPTIONS = {"acl", "noacl"}


def check_mount_options(doc: dict[str, Any], found: Review) -> None:
    """Refuse mount options oci-run does not implement; note data options a bind mount ignores (the kernel
    ignores them, and runc 1.1 and crun pass them on)."""
    from oci.linux.mountopts import FLAG_OPTIONS, PROPAGATION_OPTIONS, RECURSIVE_OPTIONS, RUNTIME_OPTIONS

    for i, mount in enumerate(doc.get("mounts") or []):
        options = mount.get("options") or []
        bind = mount.get("type") == "bind" or "bind" in options or "rbind" in options
        for j, option in enumerate(options):
            if option in UNIMPLEMENTED_MOUNT_OPTIONS:
                found.refused.append((f"/mounts/{i}/options/{j}", f"mount option {option} is not implemented"))
            elif bind and option not in FLAG_OPTIONS and option not in PROPAGATION_OPTIONS \
                    and option not in RECURSIVE_OPTIONS and option not in RUNTIME_OPTIONS:
                found.notes.append(f"/mounts/{i}/options/{j}: {option!r} ignored: it means nothing to a bind mount")


def check_process(process: dict[str, Any], found: Review, base: str = "/process") -> None:
    """What runc checks of a process before it starts anything: args, an absolute cwd, known and
    unique rlimits."""
    from oci.linux.kernel import RLIMITS

    if not process.get("args"):
        found.invalid.append((f"{base}/args", "must not be empty"))
    cwd = process.get("cwd", "/")
    if not cwd.startswith("/"):
        found.invalid.append((f"{base}/cwd", f"{cwd!r} is not an absolute path"))
    seen = set()
    for i, limit in enumerate(process.get("rlimits") or []):
        if limit["type"] not in RLIMITS:
            found.invalid.append((f"{base}/rlimits/{i}/type", f"unknown rlimit {limit['type']}"))
        elif limit["type"] in seen:
            found.invalid.append((f"{base}/rlimits/{i}/type", f"rlimit {limit['type']} listed twice"))
        seen.add(limit["type"])


def security_enabled(kind: str) -> bool:
    """Whether the kernel enforces `selinux` or `apparmor` here."""
    if kind == "selinux":
        return os.path.exists("/sys/fs/selinux/enforce")
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def check_labels(doc: dict[str, Any], found: Review) -> None:
    """SELinux and AppArmor as runc handles them: a process label needs the LSM (refused otherwise, as runc
    refuses it); a mount label without SELinux means nothing (ignored); with SELinux it would be needed and is
    not implemented (refused)."""
    process, linux = doc.get("process") or {}, doc.get("linux") or {}
    if process.get("selinuxLabel") and not security_enabled("selinux"):
        found.refused.append(("/process/selinuxLabel", "SELinux is not enabled on this host"))
    if process.get("apparmorProfile") and not security_enabled("apparmor"):
        found.refused.append(("/process/apparmorProfile", "AppArmor is not enabled on this host"))
    if linux.get("mountLabel"):
        if security_enabled("selinux"):
            found.refused.append(("/linux/mountLabel", "SELinux mount labels are not implemented"))
        else:
            found.notes.append("/linux/mountLabel: ignored: SELinux is not enabled on this host (as runc ignores it)")


NAMESPACED_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def check_sysctls(linux: dict[str, Any], found: Review) -> None:
    """A sysctl is written only where the container has the namespace that holds it (as runc checks):
    otherwise it would change the host's."""
    sysctl = linux.get("sysctl") or {}
    if not sysctl:
        return
    kinds = {ns.get("type"): ns.get("path") for ns in linux.get("namespaces") or []}
    for key in sysctl:
        name = key.replace("/", ".")
        if name in NAMESPACED_SYSCTLS or name.startswith("fs.mqueue."):
            need = "ipc"
        elif name.startswith("net."):
            need = "network"
        elif name in ("kernel.domainname", "kernel.hostname"):
            need = "uts"
        elif name.startswith("user."):
            need = "user"
        else:
            found.invalid.append((f"/linux/sysctl/{key}", "not in a namespace of the container's own"))
            continue
        if need not in kinds:
            found.invalid.append((f"/linux/sysctl/{key}", f"the container shares the host's {need} namespace"))


def check_namespaces(doc: dict[str, Any], found: Review) -> None:
    """Without a mount namespace of its own the container cannot hide or protect paths; without a UTS
    namespace its hostname and domainname would be the host's (runtime.md#create: a property that cannot be
    applied is an error, never silently dropped; runc and crun refuse both)."""
    linux = doc["linux"]
    kinds = {ns.get("type") for ns in linux.get("namespaces") or []}
    if "mount" not in kinds:
        for key in ("maskedPaths", "readonlyPaths"):
            if linux.get(key):
                found.invalid.append((f"/linux/{key}", "needs a mount namespace of the container's own"))
    if "uts" not in kinds:
        for key in ("hostname", "domainname"):
            if doc.get(key):
                found.invalid.append((f"/{key}", "needs a UTS namespace of the container's own"))
    if any(ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces") or []):
        for key in ("uidMappings", "gidMappings"):  # nobody is root in it otherwise (runc refuses it alike)
            if not linux.get(key):
                found.invalid.append((f"/linux/{key}", "a new user namespace needs mappings"))


def and_more(problems: list[tuple[str, str]]) -> str:
    if len(problems) < 2:
        return ""
    return f" (and {len(problems) - 1} more: {', '.join(p or '/' for p, _ in problems[1:4])}" \
           f"{', ...' if len(problems) > 4 else ''})"


def one_line(source: str, problems: list[tuple[str, str]]) -> str:
    """`SOURCE: POINTER: WHY`, and how many more there are, in one line."""
    pointer, why = problems[0]
    return f"{source}: {pointer or '/'}: {why}{and_more(problems)}"


def load_document(data: bytes, kind: str, source: str, notes: list[str] | None, *, remember: bool) -> Any:
    """Parse, tolerate, validate: the schema's violations as one line."""
    folded: list[str] = []
    try:
        doc = schema.load(data, kind, source, remember=remember, prepare=lambda doc: tolerate(doc, folded))
    except InvalidDocument as err:
        pointer, why = err.violations[0]
        raise InvalidDocument(source, [(pointer, why + and_more(err.violations))]) from None
    if notes is not None:
        notes += [f"{source}: {note}" for note in folded]
    return doc


def load(bundle: str, notes: list[str] | None = None) -> dict[str, Any]:
    """Read BUNDLE/config.json: tolerate, validate, review; refuse in one line, append what was ignored to
    `notes`."""
    path = os.path.join(bundle, "config.json")
    doc = load_document(schema.read_bytes(path), "runtime-config", path, notes, remember=True)
    check_version(doc.get("ociVersion", ""), path)
    if "linux" not in doc:
        raise Unsupported(f"{path}: /linux: only Linux containers are supported")
    found = review(doc)
    check_mount_options(doc, found)
    if "process" in doc:  # optional until start (config.md#process), which fails without one
        check_process(doc["process"], found)
    check_labels(doc, found)
    check_sysctls(doc["linux"], found)
    check_namespaces(doc, found)
    if found.invalid:
        raise InvalidInput(one_line(path, found.invalid + found.refused))
    if found.refused:
        raise Unsupported(one_line(path, found.refused))
    if notes is not None:
        notes += [f"{path}: {note}" for note in found.notes]
    return doc


def rootfs_of(bundle: str, doc: dict[str, Any]) -> str:
    """The root filesystem's real path; NotFound when it is missing, InvalidInput when not a directory."""
    root = doc["root"]["path"]
    path = os.path.realpath(root if os.path.isabs(root) else os.path.join(bundle, root))
    if not os.path.isdir(path):
        if os.path.lexists(path):
            raise InvalidInput(f"{bundle}/config.json: /root/path: {path} is not a directory")
        raise NotFound(f"{bundle}/config.json: /root/path: {path} does not exist")
    return path
