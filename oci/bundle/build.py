"""Put it together: image config + rootfs + docker-run options -> a validated runtime config.

`build()` returns the config and writes the bundle's support files (hostname, hosts,
resolv.conf, volume directories); `write()` validates the config against the runtime-spec
schema and only then replaces BUNDLE/config.json atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from typing import Any, Mapping, NamedTuple, Sequence

from oci import RUNTIME_SPEC_VERSION
from oci.bundle import convert, defaults, etcfiles, options, users
from oci.errors import InvalidInput, NotFound, Unsupported, UsageError
from oci.linux.capabilities import DOCKER_DEFAULT_CAPS
from oci.linux.cgroups.base import is_cpu_list
from oci.linux.inroot import open_in_root

ROOTFS_MOUNT_ANNOTATION = "org.ocikit.rootfs.mount"
TMPFS_DEFAULTS = ["nosuid", "nodev", "noexec"]
_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
SKIPPED_HOST_DEVICES = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "console"}


class BundleOptions(NamedTuple):
    """What the caller asked for, with the names of `docker run`'s options."""

    oci_version: str = RUNTIME_SPEC_VERSION
    args: Sequence[str] = ()
    entrypoint: str | None = None
    env: Sequence[str] = ()
    env_files: Sequence[str] = ()
    user: str | None = None
    group_add: Sequence[str] = ()
    workdir: str | None = None
    tty: bool = False
    hostname: str | None = None
    read_only: bool = False
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    devices: Sequence[str] = ()
    memory: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    device_read_bps: Sequence[str] = ()
    device_write_bps: Sequence[str] = ()
    device_read_iops: Sequence[str] = ()
    device_write_iops: Sequence[str] = ()
    ulimits: Sequence[str] = ()
    sysctls: Sequence[str] = ()
    volumes: Sequence[str] = ()
    mounts: Sequence[str] = ()
    tmpfs: Sequence[str] = ()
    security_opts: Sequence[str] = ()
    privileged: bool = False
    uid_maps: Sequence[str] = ()
    gid_maps: Sequence[str] = ()
    network: str = "none"
    publish: Sequence[str] = ()
    name: str | None = None
    aliases: Sequence[str] = ()
    add_hosts: Sequence[str] = ()
    dns: Sequence[str] = ()
    dns_search: Sequence[str] = ()
    dns_options: Sequence[str] = ()
    annotations: Sequence[str] = ()
    hooks: Sequence[str] = ()
    oci_net: Sequence[str] = ()  # the command (argv prefix) that runs oci-net, needed for --network NAME
    net_state_dir: str | None = None  # oci-net's state directory, passed to its hooks when not the default
    environ: Mapping[str, str] = {}  # the host environment, for bare `-e NAME`


def build(image_config: dict[str, Any], rootfs: str, bundle: str, opts: BundleOptions,
          rootfs_mount: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runtime config for the image in `rootfs`; writes hostname, hosts, resolv.conf and volumes into `bundle`."""
    bundle = os.path.abspath(bundle)
    rootfs = os.path.abspath(rootfs)
    if not os.path.isdir(rootfs):
        raise NotFound(f"{rootfs}: the root filesystem does not exist")
    cfg = defaults.base_config(opts.oci_version)
    process = cfg["process"]
    linux = cfg["linux"]
    inside = os.path.relpath(rootfs, bundle)
    outside = inside == ".." or inside.startswith("../")
    cfg["root"] = {"path": rootfs if outside else inside, "readonly": opts.read_only}

    process["args"] = convert.process_args(image_config, opts.entrypoint, opts.args)
    process["cwd"] = convert.working_dir(image_config, opts.workdir)
    process["terminal"] = opts.tty
    user = users.resolve(rootfs, opts.user if opts.user is not None else (image_config.get("config") or {}).get("User"))
    process["user"] = {"uid": user.uid, "gid": user.gid}
    extra_gids = list(user.additional_gids) + [_group_id(rootfs, g) for g in opts.group_add]
    if extra_gids:
        process["user"]["additionalGids"] = list(dict.fromkeys(extra_gids))

    network = _network(opts.network)
    if opts.hostname is not None and not HOSTNAME.match(opts.hostname):
        raise InvalidInput(f"invalid --hostname {opts.hostname!r}: expected an RFC 1123 host name")
    for word in [*opts.dns_search, *opts.dns_options]:
        if not word or any(c.isspace() for c in word):
            raise InvalidInput(f"invalid --dns-search or --dns-option {word!r}: empty or with white space")
    cfg["hostname"] = opts.hostname or (os.uname().nodename if network == "host" else _default_hostname(bundle))
    process["env"] = _environment(image_config, opts, user.home, cfg["hostname"])

    caps = _capabilities(opts)
    process["capabilities"] = {"bounding": caps, "effective": list(caps), "permitted": list(caps)}
    _security(cfg, opts, caps)
    _namespaces(cfg, opts, network)
    _resources(cfg, opts)
    _rlimits(process, opts.ulimits)
    for text in opts.sysctls:
        key, value = options.parse_sysctl(text, network == "host")
        linux.setdefault("sysctl", {})[key] = value
    if opts.privileged:
        _privileged(cfg)

    notes = convert.implicit_annotations(image_config)
    for text in opts.annotations:
        key, value = options.parse_key_values(text, "annotation")
        notes[key] = value
    if rootfs_mount:
        notes[ROOTFS_MOUNT_ANNOTATION] = json.dumps(rootfs_mount, sort_keys=True)
    if notes:
        cfg["annotations"] = notes
    _hooks(cfg, opts, network)
    asked = _parse_mounts(image_config, opts)
    extra_hosts = [options.parse_add_host(h) for h in opts.add_hosts]
    files = {
        "hostname": cfg["hostname"] + "\n",
        "hosts": etcfiles.hosts(cfg["hostname"], extra_hosts, "/etc/hosts" if network == "host" else None),
        "resolv.conf": etcfiles.resolv_conf(opts.dns, opts.dns_search, opts.dns_options,
                                            keep_loopback=network == "host"),
    }

    # Everything is checked: only now touch the disk.
    os.makedirs(bundle, exist_ok=True)
    etc_mounts = etcfiles.write(bundle, files)
    cfg["mounts"] = _mounts(cfg["mounts"], etc_mounts, _user_mounts(asked, bundle, rootfs))
    if "uidMappings" in linux and os.geteuid() == 0:  # the container's root owns its etc files and new volumes
        owner = (_host_id(linux["uidMappings"], 0), _host_id(linux["gidMappings"], 0))
        volumes = os.path.join(bundle, "volumes", "")
        made = [m["source"] for m in etc_mounts] + [m["source"] for m in cfg["mounts"]
                                                    if m["source"].startswith(volumes)]
        for path in made:
            if os.stat(path).st_uid == 0:  # not given the image directory's owner
                os.chown(path, *owner)
    return cfg


def write(bundle: str, config: dict[str, Any]) -> str:
    """Validate `config` against the runtime-spec schema, then write BUNDLE/config.json atomically."""
    from oci import schema
    from oci.fsutil import write_atomic

    path = os.path.join(os.path.abspath(bundle), "config.json")
    schema.validate(config, "runtime-config", path)
    write_atomic(path, json.dumps(config, indent=2).encode() + b"\n")
    return path


def _default_hostname(bundle: str) -> str:
    return hashlib.sha256(bundle.encode()).hexdigest()[:12]


def _group_id(rootfs: str, group: str) -> int:
    if group.isdigit():
        return int(group)
    return users.resolve(rootfs, f"0:{group}").gid


def _environment(image_config: dict[str, Any], opts: BundleOptions, home: str, hostname: str) -> list[str]:
    overrides: list[str] = []
    for path in opts.env_files:
        overrides += options.read_env_file(path, opts.environ)
    for entry in opts.env:
        parsed = options.parse_env_entry(entry, opts.environ, "--env")
        if parsed is not None:
            overrides.append(parsed)
    env = convert.merge_env(list((image_config.get("config") or {}).get("Env") or []), overrides)
    implied = [f"PATH={defaults.DEFAULT_PATH}", f"HOSTNAME={hostname}", f"HOME={home}"]
    if opts.tty:
        implied.append("TERM=xterm")
    return convert.add_missing(env, implied)


def _capabilities(opts: BundleOptions) -> list[str]:
    everything = defaults.host_caps()
    if opts.privileged:
        return everything
    return options.capabilities(DOCKER_DEFAULT_CAPS, everything, opts.cap_add, opts.cap_drop)


def _security(cfg: dict[str, Any], opts: BundleOptions, caps: list[str]) -> None:
    profile = "unconfined" if opts.privileged else "default"
    nnp = not opts.privileged
    for text in opts.security_opts:
        key, sep, value = text.partition("=")
        if not sep:
            key, sep, value = text.partition(":")  # Docker's older `seccomp:FILE` spelling
        if key == "seccomp" and value:
            profile = value
        elif key == "no-new-privileges" and value in ("", "true", "false"):
            nnp = value != "false"
        elif key == "systempaths" and value == "unconfined":
            cfg["linux"]["maskedPaths"], cfg["linux"]["readonlyPaths"] = [], []
        else:
            raise Unsupported(f"--security-opt {text!r} is not supported (seccomp=FILE|unconfined, "
                              "no-new-privileges[=true|false], systempaths=unconfined)")
    cfg["process"]["noNewPrivileges"] = nnp
    if profile == "unconfined":
        return
    from oci.bundle import seccomp

    if profile == "default":
        cfg["linux"]["seccomp"] = seccomp.default_profile(caps)
    else:
        from oci import schema

        try:
            with open(profile, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"{profile}: no such seccomp profile") from None
        loaded = schema.parse(data, profile)
        if seccomp.is_docker_format(loaded):
            loaded = seccomp.from_docker(loaded, caps)
        probe = {"ociVersion": opts.oci_version, "linux": {"seccomp": loaded}}
        schema.validate(probe, "runtime-config", profile)
        cfg["linux"]["seccomp"] = loaded


def _network(value: str) -> str:
    if value in ("none", "host") or value.startswith("ns:"):
        if value.startswith("ns:") and not value[3:].startswith("/"):
            raise InvalidInput(f"invalid --network {value!r}: ns:PATH needs an absolute path")
        return value
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", value):
        raise InvalidInput(f"invalid --network {value!r}: expected none, host, ns:PATH or a network name")
    return value


def _namespaces(cfg: dict[str, Any], opts: BundleOptions, network: str) -> None:
    linux = cfg["linux"]
    spaces = linux["namespaces"]
    if network == "host":
        spaces[:] = [ns for ns in spaces if ns["type"] != "network"]
    elif network.startswith("ns:"):
        for ns in spaces:
            if ns["type"] == "network":
                ns["path"] = network[3:]
    uid_maps = [options.parse_id_map(m) for m in opts.uid_maps]
    gid_maps = [options.parse_id_map(m) for m in opts.gid_maps]
    if uid_maps or gid_maps:
        if not (uid_maps and gid_maps):
            raise UsageError("a user namespace needs both uid and gid maps (--userns MAP or --uidmap and --gidmap)")
        spaces.append({"type": "user"})
        linux["uidMappings"], linux["gidMappings"] = uid_maps, gid_maps
        if not any(m["containerID"] <= 5 < m["containerID"] + m["size"] for m in gid_maps):
            for mount in cfg["mounts"]:
                if mount["type"] == "devpts":
                    mount["options"].remove("gid=5")
        if network == "host":  # sysfs cannot be mounted without owning the network namespace
            for mount in cfg["mounts"]:
                if mount["destination"] == "/sys":
                    mount.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])


def _resources(cfg: dict[str, Any], opts: BundleOptions) -> None:
    resources = cfg["linux"]["resources"]
    for text in opts.devices:
        device, rule = options.parse_device(text)
        cfg["linux"].setdefault("devices", []).append(device)
        resources["devices"].append(rule)
    if opts.memory_swap and not opts.memory:
        raise UsageError("--memory-swap needs --memory")
    if opts.memory:
        limit = options.parse_bytes(opts.memory, "--memory")
        if limit < 6 << 20:
            raise InvalidInput("--memory must be at least 6MB")
        memory: dict[str, Any] = {"limit": limit}
        if opts.memory_swap:
            swap = -1 if opts.memory_swap == "-1" else options.parse_bytes(opts.memory_swap, "--memory-swap")
            if swap != -1 and swap < limit:
                raise InvalidInput("--memory-swap must be at least --memory (it counts memory plus swap)")
            memory["swap"] = swap
        elif _swap_accounting():
            memory["swap"] = 2 * limit
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    if opts.cpus:
        cpu.update(quota=options.parse_cpus(opts.cpus), period=100000)
    if opts.cpu_shares is not None:
        if opts.cpu_shares < 2:
            raise InvalidInput("--cpu-shares must be at least 2")
        cpu["shares"] = opts.cpu_shares
    if opts.cpuset_cpus:
        if not is_cpu_list(opts.cpuset_cpus):
            raise InvalidInput(f"invalid --cpuset-cpus {opts.cpuset_cpus!r}: expected a list like 0-2,4")
        cpu["cpus"] = opts.cpuset_cpus
    if cpu:
        resources["cpu"] = cpu
    if opts.pids_limit is not None:
        resources["pids"] = {"limit": opts.pids_limit if opts.pids_limit > 0 else -1}
    block_io = {key: [options.parse_throttle(text, flag) for text in texts] for key, flag, texts in (
        ("throttleReadBpsDevice", "--device-read-bps", opts.device_read_bps),
        ("throttleWriteBpsDevice", "--device-write-bps", opts.device_write_bps),
        ("throttleReadIOPSDevice", "--device-read-iops", opts.device_read_iops),
        ("throttleWriteIOPSDevice", "--device-write-iops", opts.device_write_iops)) if texts}
    if block_io:
        resources["blockIO"] = block_io


def _swap_accounting() -> bool:
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or \
        os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _rlimits(process: dict[str, Any], ulimits: Sequence[str]) -> None:
    """--ulimit entries; a hard limit above ours is refused now when we could not raise it (no CAP_SYS_RESOURCE)."""
    can_raise = "CAP_SYS_RESOURCE" in defaults.effective_caps()
    for text in ulimits:
        limit = options.parse_ulimit(text)
        if not can_raise:
            import resource

            ours = resource.getrlimit(getattr(resource, limit["type"]))[1]
            ours = options.RLIM_INFINITY if ours == resource.RLIM_INFINITY else ours
            if limit["hard"] > ours:
                raise InvalidInput(f"--ulimit {text}: the hard limit is above this host's {ours}, and raising it "
                                   "needs CAP_SYS_RESOURCE, which is missing")
        process["rlimits"] = [r for r in process["rlimits"] if r["type"] != limit["type"]] + [limit]


def _privileged(cfg: dict[str, Any]) -> None:
    linux = cfg["linux"]
    linux["maskedPaths"], linux["readonlyPaths"] = [], []
    for mount in cfg["mounts"]:
        if mount["destination"] in ("/sys", "/sys/fs/cgroup"):
            mount["options"] = [o for o in mount["options"] if o != "ro"]
    linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    known = {d["path"] for d in linux.get("devices", [])}
    linux["devices"] = linux.get("devices", []) + [d for d in host_devices() if d["path"] not in known]


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every character and block device under /dev (for --privileged), as linux.devices entries."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_HOST_DEVICES]
        for name in sorted(files):
            if name in SKIPPED_HOST_DEVICES:
                continue
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else None
            if kind:
                found.append({"path": path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                              "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return found


def _host_id(mappings: list[dict[str, int]], container_id: int) -> int:
    for m in mappings:
        if m["containerID"] <= container_id < m["containerID"] + m["size"]:
            return m["hostID"] + container_id - m["containerID"]
    return 65534  # unmapped: the overflow id

def _volume_dir(bundle: str, rootfs: str, mount: options.Mount) -> str:
    """BUNDLE/volumes/NAME; a new one takes the owner and mode of the image's directory there, as Docker's."""
    name = mount.source or "anon-" + hashlib.sha256(mount.destination.encode()).hexdigest()[:16]
    path = os.path.join(bundle, "volumes", name)
    if os.path.isdir(path):
        return path
    os.makedirs(path, mode=0o755)
    try:
        fd = open_in_root(rootfs, mount.destination)
    except NotFound:
        return path
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if stat.S_ISDIR(st.st_mode):
        if os.geteuid() == 0:
            os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, stat.S_IMODE(st.st_mode))
    return path


def _parse_mounts(image_config: dict[str, Any], opts: BundleOptions) -> list[options.Mount]:
    """-v, --mount and --tmpfs, after the image's volumes they do not replace."""
    asked = [options.parse_volume(v) for v in opts.volumes] + [options.parse_mount(m) for m in opts.mounts]
    asked += [options.parse_tmpfs(t) for t in opts.tmpfs]
    taken = {m.destination for m in asked}
    return [options.Mount("volume", path) for path in convert.volumes(image_config) if path not in taken] + asked


def _user_mounts(asked: list[options.Mount], bundle: str, rootfs: str) -> list[dict[str, Any]]:
    """Runtime mounts for the parsed ones, making volume directories (and missing -v host directories)."""
    result = []
    for mount in asked:
        if mount.kind == "tmpfs":
            opts_list = [o for o in TMPFS_DEFAULTS if not (o == "noexec" and "exec" in mount.options)]
            result.append({"destination": mount.destination, "type": "tmpfs", "source": "tmpfs",
                           "options": opts_list + [o for o in mount.options if o not in opts_list]})
            continue
        if mount.kind == "bind":
            if not os.path.exists(mount.source):
                os.makedirs(mount.source, mode=0o755)  # as `docker run -v` does
            source = mount.source
        else:
            source = _volume_dir(bundle, rootfs, mount)
        extra = [o for o in mount.options if o in ("ro", "rw")]
        propagation = [o for o in mount.options if o in options.PROPAGATIONS] or ["rprivate"]
        result.append({"destination": mount.destination, "type": "bind", "source": source,
                       "options": ["rbind"] + propagation + extra})
    return result


def _mounts(standard: list[dict[str, Any]], etc: list[dict[str, Any]],
            user: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Standard mounts first (minus those the user replaces), then the rest, parents before children."""
    wanted = {m["destination"] for m in user}
    etc = [m for m in etc if m["destination"] not in wanted]
    rest = sorted(etc + user, key=lambda m: m["destination"].rstrip("/").count("/"))
    return [m for m in standard if m["destination"] not in wanted] + rest


def _hooks(cfg: dict[str, Any], opts: BundleOptions, network: str) -> None:
    hooks: dict[str, list[dict[str, Any]]] = {}
    for text in opts.hooks:
        stage, hook = options.parse_hook(text)
        hooks.setdefault(stage, []).append(hook)
    named = network not in ("none", "host") and not network.startswith("ns:")
    if opts.publish and not named:
        raise UsageError("-p/--publish needs --network NAME (ports are published by oci-net)")
    if named:
        if not opts.oci_net:
            raise NotFound("oci-net not found beside oci-bundle or on PATH (needed for --network NAME)")
        state = ["--state-dir", opts.net_state_dir] if opts.net_state_dir else []
        connect = [*opts.oci_net, "hook", "connect", network, *state]
        for value in opts.publish:
            connect += ["--publish", value]
        if opts.name:
            connect += ["--name", opts.name]
        for alias in opts.aliases:
            connect += ["--alias", alias]
        disconnect = [*opts.oci_net, "hook", "disconnect", network, *state]
        hooks.setdefault("createRuntime", []).insert(0, {"path": opts.oci_net[0], "args": connect})
        hooks.setdefault("poststop", []).append({"path": opts.oci_net[0], "args": disconnect})
    if hooks:
        cfg["hooks"] = hooks
