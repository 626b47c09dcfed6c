"""Mount flags and the config's mount options as the kernel takes them: constants only.

Apart from oci.linux.mounts (the rootfs builder), so that checking a config's mount options
costs `create` only these tables before its cgroup exists.
"""

from __future__ import annotations

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS = 1, 2, 4, 8, 16
MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC, MS_NOSYMFOLLOW = 32, 64, 128, 256
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_MOVE, MS_REC, MS_SILENT = 1024, 2048, 4096, 8192, 16384, 32768
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_I_VERSION, MS_STRICTATIME, MS_LAZYTIME = 1 << 21, 1 << 23, 1 << 24, 1 << 25

# option -> (clear?, flag)
FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID), "nosuid": (False, MS_NOSUID), "dev": (True, MS_NODEV), "nodev": (False, MS_NODEV),
    "exec": (True, MS_NOEXEC), "noexec": (False, MS_NOEXEC), "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS), "dirsync": (False, MS_DIRSYNC), "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK), "atime": (True, MS_NOATIME),
    "noatime": (False, MS_NOATIME), "diratime": (True, MS_NODIRATIME), "nodiratime": (False, MS_NODIRATIME),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC), "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME), "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME), "iversion": (False, MS_I_VERSION),
    "noiversion": (True, MS_I_VERSION), "lazytime": (False, MS_LAZYTIME), "nolazytime": (True, MS_LAZYTIME),
    "silent": (False, MS_SILENT), "loud": (True, MS_SILENT), "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
}
PROPAGATION_OPTIONS = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC, "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# recursive options, applied with mount_setattr(AT_RECURSIVE): option -> (attributes set, attributes cleared)
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV, ATTR_NOEXEC, ATTR__ATIME = 0x1, 0x2, 0x4, 0x8, 0x70
ATTR_RELATIME, ATTR_NOATIME, ATTR_STRICTATIME, ATTR_NODIRATIME, ATTR_NOSYMFOLLOW = 0x0, 0x10, 0x20, 0x80, 0x200000
RECURSIVE_OPTIONS: dict[str, tuple[int, int]] = {
    "rro": (ATTR_RDONLY, 0), "rrw": (0, ATTR_RDONLY), "rnosuid": (ATTR_NOSUID, 0), "rsuid": (0, ATTR_NOSUID),
    "rnodev": (ATTR_NODEV, 0), "rdev": (0, ATTR_NODEV), "rnoexec": (ATTR_NOEXEC, 0), "rexec": (0, ATTR_NOEXEC),
    "rnodiratime": (ATTR_NODIRATIME, 0), "rdiratime": (0, ATTR_NODIRATIME),
    "rnosymfollow": (ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, ATTR_NOSYMFOLLOW),
    "rnoatime": (ATTR_NOATIME, ATTR__ATIME), "rrelatime": (ATTR_RELATIME, ATTR__ATIME),
    "rstrictatime": (ATTR_STRICTATIME, ATTR__ATIME),
    # atime and nostrictatime undo noatime and strictatime: the kernel's default mode, relatime; norelatime
    # changes nothing, as with mount(2), which makes a mount relatime unless strictatime is asked for
    "ratime": (ATTR_RELATIME, ATTR__ATIME), "rnostrictatime": (ATTR_RELATIME, ATTR__ATIME), "rnorelatime": (0, 0),
}
# options the runtime carries out itself, never handed to the kernel: tmpcopyup fills a new tmpfs with
# what the directory it covers holds (podman's --read-only, --tmpfs, --mount type=tmpfs, --systemd);
# idmap and ridmap make an idmapped mount (oci.linux.idmap)
RUNTIME_OPTIONS = {"tmpcopyup", "idmap", "ridmap"}


def wants_idmap(mount: dict) -> bool:
    """Whether a mount asks for an idmapping (oci.linux.idmap): an option, or mappings of its own (as runc reads
    them: mappings without the option are idmapped too)."""
    return bool(mount.get("uidMappings") or mount.get("gidMappings")) or \
        any(option in ("idmap", "ridmap") for option in mount.get("options") or ())


MOUNT_OPTIONS = sorted([*FLAG_OPTIONS, *PROPAGATION_OPTIONS, *RECURSIVE_OPTIONS, *RUNTIME_OPTIONS])

# statvfs f_flag bits -> mount flags the kernel locks in a user namespace
USERNS_LOCKED_FLAGS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME, 2048: MS_NODIRATIME,
           4096: MS_RELATIME}
