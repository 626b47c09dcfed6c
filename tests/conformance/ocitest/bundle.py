"""Bundles for the conformance suite: a tiny root filesystem and a config.json builder."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "echo", "ls", "id", "sleep", "true", "false", "mkdir", "touch", "env")
PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001:Bob:/home/bob:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
tty:x:5:
alice:x:1000:
bob:x:1001:
staff:x:50:alice,bob
nogroup:x:65534:
"""
ROOTFS_DIRS = ("bin", "etc", "proc", "sys", "dev", "tmp", "out", "mnt", "root", "home/alice")

# Capabilities of a default container, as small as runtimes give by default.
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
DEFAULT_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]
DEFAULT_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def make_rootfs_template(target: Path, checker: Path) -> Path:
    """Lay out the template root filesystem: busybox with applet links, the checker, users and groups."""
    target.chmod(0o755)
    for name in ROOTFS_DIRS:
        (target / name).mkdir(parents=True, exist_ok=True)
    (target / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, target / "bin" / "busybox")
    for applet in APPLETS:
        (target / "bin" / applet).symlink_to("busybox")
    shutil.copy2(checker, target / "checker")
    (target / "checker").chmod(0o755)
    (target / "etc" / "passwd").write_text(PASSWD)
    (target / "etc" / "group").write_text(GROUP)
    (target / "etc" / "hostname").write_text("template\n")
    return target


def copy_rootfs(template: Path, target: Path) -> None:
    """A private copy of the template for one container: files hard-linked, directories fresh."""
    shutil.copytree(template, target, symlinks=True, copy_function=os.link)


def default_config(args: list[str], oci_version: str) -> dict[str, Any]:
    """A minimal valid config.json for Linux: the usual namespaces, /proc, /dev, /sys, few capabilities."""
    caps = list(DEFAULT_CAPS)
    return {
        "ociVersion": oci_version,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/bin:/usr/bin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {key: list(caps) for key in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(DEFAULT_MASKED),
            "readonlyPaths": list(DEFAULT_READONLY),
        },
    }


class Bundle:
    """A bundle directory whose config is a dict that tests tweak before writing it."""

    def __init__(self, path: Path, template: Path, oci_version: str, args: list[str] | None = None):
        self.path = path
        self.rootfs = path / "rootfs"
        copy_rootfs(template, self.rootfs)
        self.config = default_config(args or ["/checker", "report"], oci_version)

    @property
    def process(self) -> dict[str, Any]:
        return self.config["process"]

    @property
    def linux(self) -> dict[str, Any]:
        return self.config["linux"]

    def args(self, *args: str) -> Bundle:
        self.process["args"] = list(args)
        return self

    def checker(self, *args: str) -> Bundle:
        """Make the container's process `/checker ARGS...`."""
        return self.args("/checker", *args)

    def checks(self, *commands: str) -> Bundle:
        """Make the process a shell running several `/checker ...` command lines, one JSON line each."""
        return self.args("/bin/sh", "-c", "; ".join(f"/checker {command}" for command in commands))

    def set_namespace(self, kind: str, path: str | None = None) -> Bundle:
        """Ask for namespace KIND (new, or joined at PATH), replacing an entry of the same type."""
        namespaces = [ns for ns in self.linux["namespaces"] if ns["type"] != kind]
        namespaces.append({"type": kind, **({"path": path} if path else {})})
        self.linux["namespaces"] = namespaces
        return self

    def drop_namespace(self, kind: str) -> Bundle:
        self.linux["namespaces"] = [ns for ns in self.linux["namespaces"] if ns["type"] != kind]
        return self

    def add_mount(self, destination: str, type_: str | None, source: str, options: list[str] | None = None) -> Bundle:
        mount: dict[str, Any] = {"destination": destination, "source": source}
        if type_:
            mount["type"] = type_
        if options is not None:
            mount["options"] = options
        self.config["mounts"].append(mount)
        return self

    def bind_out(self, host_dir: Path, destination: str = "/out") -> Bundle:
        """Bind a host directory read-write into the container (where hooks and processes leave files)."""
        return self.add_mount(destination, None, str(host_dir), ["rbind", "rw"])

    def write(self) -> Path:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))
        return self.path

    def copy_config(self) -> dict[str, Any]:
        return copy.deepcopy(self.config)
