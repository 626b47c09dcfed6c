"""Making a container: an image's layers composed with overlayfs from the shared cache, a bundle
written by oci-bundle's code, named volumes resolved, and the record saved.

Nothing runs yet: `start` (foreground or through the monitor) takes it from here. A failure
part-way removes what was made (mount, folder, name), so a rerun finds nothing in its way.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from typing import Any, NamedTuple, Sequence

from oci import schema
from oci.errors import InvalidInput, NotFound, OciError
from oci.fsutil import write_atomic

from . import networks, remove, status
from .containers import new_id, now
from .engine import Engine
from .images import StoredImage

IMAGE_USERS = "image-users"  # folder of the layer cache's records for the images themselves (see remember_layers)


class RunOptions(NamedTuple):
    """`docker run`'s options the front handles itself; the rest go to oci-bundle as `bundle`."""

    image: str
    command: Sequence[str] = ()
    name: str | None = None
    detach: bool = False
    remove: bool = False
    interactive: bool = False
    tty: bool = False
    network: str = networks.DEFAULT_NETWORK
    publish: Sequence[str] = ()
    publish_all: bool = False
    aliases: Sequence[str] = ()
    volumes: Sequence[str] = ()
    mounts: Sequence[str] = ()
    hostname: str | None = None
    restart: str = "no"
    labels: Sequence[str] = ()
    cgroup_parent: str = "/ocikit"
    bundle: dict[str, Any] = {}  # BundleOptions fields: env, user, workdir, entrypoint, resources, security
    oci_net: Sequence[str] = ()  # the argv prefix that runs oci-net, for the network hooks


def parse_restart(text: str) -> dict[str, Any]:
    """`no`, `always`, `unless-stopped`, `on-failure[:N]` as Docker's HostConfig.RestartPolicy."""
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (count and (
            name != "on-failure" or not count.isdigit())):
        raise InvalidInput(f"invalid restart policy {text!r} (no, always, unless-stopped, on-failure[:N])")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count or 0)}


def create(engine: Engine, stored: StoredImage, opts: RunOptions) -> dict[str, Any]:
    """Make the container for `opts` from `stored`; its record (status `created`)."""
    from oci.bundle import build as builder

    image = engine.images.load_image(stored)
    restart = parse_restart(opts.restart)
    if opts.remove and restart["Name"]:
        raise InvalidInput("Conflicting options: --restart and --rm")
    cid = new_id()
    engine.root.ensure()
    if opts.name:
        reap(engine, opts.name)
    name = engine.containers.reserve_name(opts.name, cid)
    folder = engine.containers.folder(cid)
    rootfs = os.path.join(folder, "rootfs")
    made: list[str] = []
    try:
        os.mkdir(folder, 0o711)
        made.append("folder")
        network = opts.network
        if networks.is_named(network):
            networks.ensure(engine.root, network)
        asked = list(opts.publish)
        if opts.publish_all:  # -P: every port the image exposes, each on a free host port
            asked += [port for port in sorted((image.config.get("config") or {}).get("ExposedPorts") or {})
                      if not any(p.rsplit(":", 1)[-1] == port or p.rsplit(":", 1)[-1] == port.split("/")[0]
                                 for p in asked)]
        publish = [networks.parse_publish(p, _free_port) for p in asked]
        mounts, volume_names = _volumes(engine, opts.volumes, opts.mounts)
        spec = mount_rootfs(engine, image, rootfs)
        made.append("rootfs")
        for volume, destination in volume_names:
            engine.volumes.fill_from_image(volume, rootfs, destination)
        make_workdir(rootfs, opts.bundle.get("workdir") or (image.config.get("config") or {}).get("WorkingDir"))
        hostname = opts.hostname or (None if network == "host" else host_name(name, cid))
        fields = dict(opts.bundle)
        fields.update(args=list(opts.command), tty=opts.tty, hostname=hostname, network=network, publish=publish,
                      name=name if networks.is_named(network) else None,
                      aliases=[cid[:12], *opts.aliases] if networks.is_named(network) else [],
                      volumes=mounts["volumes"], mounts=mounts["mounts"], annotations=[
                          *fields.get("annotations", ()), f"org.ocikit.container.name={name}"],
                      oci_net=list(opts.oci_net) if networks.is_named(network) else [],
                      net_state_dir=engine.root.net, environ=dict(os.environ))
        bundle_opts = builder.BundleOptions(**fields)
        config = builder.build(image.config, rootfs, folder, bundle_opts, spec)
        config["linux"]["cgroupsPath"] = f"{opts.cgroup_parent.rstrip('/')}/{cid}"  # as Docker's /docker/ID
        write_config(folder, config)
        record = _record(engine, cid, name, stored, image.config, config, opts, restart, publish, mounts)
        engine.containers.save(record)
        return record
    except BaseException:
        _undo(engine, cid, name, folder, rootfs, made)
        raise


def reap(engine: Engine, name: str | None = None, monitor: Any = None) -> None:
    """Remove the `--rm` containers run detached that have exited (all of them, or the one holding
    `name`): nothing removes them when they exit, so the next command that looks does, as Docker would
    have done already."""
    if name is not None:
        owner = engine.containers.name_owner(name)
        candidates = [owner] if owner else []
    else:
        candidates = engine.containers.ids()
    for cid in candidates:
        try:
            record = engine.containers.load(cid)
        except (OciError, OSError):
            continue
        if not (record["HostConfig"].get("AutoRemove") and record.get("Monitored")):
            continue
        if status.current(engine, record, monitor) in ("exited", "dead"):
            try:
                remove.remove(engine, cid, force=True, monitor=monitor)
            except (OciError, OSError):
                continue


_warming: list[Any] = []


def warm_validator() -> None:
    """Import jsonschema and compile the runtime-config validator in a thread, while this one parses,
    mounts and writes (mostly waiting on the kernel): `write_config` finds it ready."""
    import threading


    thread = threading.Thread(target=schema.validator, args=("runtime-config",), name="warm-validator", daemon=True)
    thread.start()
    _warming.append(thread)


def write_config(folder: str, config: dict[str, Any]) -> None:
    """BUNDLE/config.json, validated as the runtime reads it (oci-run's loader, which remembers the
    exact bytes as valid): the runtime, called next in this process, then skips the schema work."""
    while _warming:
        _warming.pop().join()
    from oci.runtime import config as config_mod

    path = os.path.join(folder, "config.json")
    data = json.dumps(config, indent=2).encode() + b"\n"
    config_mod.load_document(data, "runtime-config", path, None, remember=True)
    write_atomic(path, data)


def make_workdir(rootfs: str, workdir: str | None) -> None:
    """The working directory made in the rootfs when the image lacks it, as Docker makes it."""

    from oci.linux.inroot import open_in_root
    from oci.unpack.safepath import Root

    if not workdir:
        return
    path = posixpath.normpath(posixpath.join("/", workdir)).lstrip("/")
    if not path:
        return
    try:
        os.close(open_in_root(rootfs, path))
        return
    except NotFound:
        pass
    try:
        with Root(rootfs) as root:
            root.dir_fd(path, create=True)
    except OciError:
        pass  # a symlink on the way: the runtime says what is wrong with the working directory


def host_name(name: str, cid: str) -> str:
    """The container's name as its host name when it is a valid one (no `_`), else its short ID, as Docker's."""
    from oci.bundle.build import HOSTNAME

    return name if HOSTNAME.match(name) else cid[:12]


def mount_rootfs(engine: Engine, image: Any, rootfs: str) -> dict[str, Any]:
    """Unpack the missing layers into the cache and mount the overlay at `rootfs`; its mount spec."""
    from oci.unpack import overlay as ov
    from oci.unpack.options import Budget, Options

    cache = engine.layer_cache()
    with cache.session():
        layers = cache.ensure(image, Options(), Budget(64 << 30, 2_000_000))
        remember_layers(engine, image, layers)
        spec = ov.mount_spec(rootfs, layers)
        ov.prepare_dirs(rootfs)
        os.makedirs(rootfs, 0o755, exist_ok=True)
        try:
            ov.mount(spec)
            cache.record(rootfs, layers)
        except BaseException:
            ov.remove_dirs(rootfs)
            raise
    return spec


def remember_layers(engine: Engine, image: Any, layers: list[str]) -> None:
    """Record that the image itself uses its cached layers, so the cache keeps them while the
    image exists (a record's path is a folder named after the image's config digest)."""
    marker = os.path.join(engine.root.sub(IMAGE_USERS), image.config_descriptor.digest.hex)
    if os.path.isdir(marker):
        return
    os.makedirs(marker, 0o700, exist_ok=True)
    engine.layer_cache().record(marker, layers)


def _free_port(host_ip: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host_ip.strip("[]") or "0.0.0.0", 0))
        return s.getsockname()[1]


def _volumes(engine: Engine, volumes: Sequence[str], mounts: Sequence[str]
             ) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """-v and --mount with named volumes turned into binds of the state root's volumes (made if
    missing); anonymous ones stay the bundle's. Returns the options and (volume, destination) pairs."""
    from oci.bundle import options

    out: dict[str, list[str]] = {"volumes": [], "mounts": []}
    named: list[tuple[str, str]] = []
    for text in volumes:
        mount = options.parse_volume(text)
        if mount.kind == "volume" and mount.source:
            engine.volumes.create(mount.source)
            named.append((mount.source, mount.destination))
            suffix = f":{','.join(mount.options)}" if mount.options else ""
            out["volumes"].append(f"{engine.volumes.data(mount.source)}:{mount.destination}{suffix}")
        else:
            out["volumes"].append(text)
    for text in mounts:
        mount = options.parse_mount(text)
        if mount.kind == "volume" and mount.source:
            engine.volumes.create(mount.source)
            named.append((mount.source, mount.destination))
            readonly = ",readonly" if "ro" in mount.options else ""
            out["mounts"].append(f"type=bind,source={engine.volumes.data(mount.source)},"
                                 f"target={mount.destination}{readonly}")
        else:
            out["mounts"].append(text)
    return out, named


def _record(engine: Engine, cid: str, name: str, stored: StoredImage, image_config: dict[str, Any],
            config: dict[str, Any], opts: RunOptions, restart: dict[str, Any], publish: list[str],
            mounts: dict[str, list[str]]) -> dict[str, Any]:
    """The container's record, in the shape of `docker inspect`."""
    from oci.net import nat

    process = config["process"]
    image_cfg = image_config.get("config") or {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for text in publish:
        port = nat.parse_port(text)
        bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(
            {"HostIp": port.host_ip, "HostPort": str(port.host_port)})
    volumes_root = os.path.join(engine.root.volumes, "")
    mount_list = []
    for m in config.get("mounts", []):
        if m.get("type") != "bind" or m["destination"] in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
            continue
        source = m["source"]
        rw = "ro" not in m.get("options", [])
        if source.startswith(volumes_root):
            volume = os.path.relpath(source, volumes_root).split("/", 1)[0]
            mount_list.append({"Type": "volume", "Name": volume, "Source": source, "Destination": m["destination"],
                               "Driver": "local", "Mode": "", "RW": rw, "Propagation": ""})
        else:
            mount_list.append({"Type": "bind", "Source": source, "Destination": m["destination"], "Mode": "",
                               "RW": rw, "Propagation": "rprivate"})
    entrypoint = opts.bundle.get("entrypoint")
    return {
        "Id": cid,
        "Created": now(),
        "Path": process["args"][0],
        "Args": process["args"][1:],
        "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
                  "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": "0001-01-01T00:00:00Z",
                  "FinishedAt": "0001-01-01T00:00:00Z"},
        "Image": stored.id,
        "ImageManifest": str(stored.descriptor.digest),
        "Name": name,
        "RestartCount": 0,
        "Driver": "overlay",
        "LogPath": os.path.join(engine.containers.folder(cid), "ctr.log"),
        "HostConfig": {"AutoRemove": opts.remove, "RestartPolicy": restart, "NetworkMode": opts.network,
                       "PortBindings": bindings, "Binds": list(mounts["volumes"]), "Mounts": list(mounts["mounts"])},
        "Mounts": mount_list,
        "Config": {
            "Hostname": config.get("hostname", ""),
            "User": opts.bundle.get("user") or image_cfg.get("User") or "",
            "Tty": opts.tty,
            "OpenStdin": opts.interactive,
            "Env": _asked_env(process.get("env", []), image_cfg, opts.bundle),
            "Cmd": list(opts.command) or ([] if entrypoint is not None else list(image_cfg.get("Cmd") or [])),
            "Entrypoint": ([entrypoint] if entrypoint else []) if entrypoint is not None else list(
                image_cfg.get("Entrypoint") or []),
            "Image": opts.image,
            "WorkingDir": opts.bundle.get("workdir") or image_cfg.get("WorkingDir") or "",
            "Labels": {**(image_cfg.get("Labels") or {}), **dict(t.partition("=")[::2] for t in opts.labels)},
            "ExposedPorts": {**(image_cfg.get("ExposedPorts") or {}), **{key: {} for key in bindings}},
            "StopSignal": image_cfg.get("StopSignal") or "SIGTERM",
            "Volumes": image_cfg.get("Volumes") or None,
        },
    }


def _asked_env(env: list[str], image_cfg: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    """The container's environment as Docker records it: the image's and the -e/--env-file variables,
    without those the bundle adds for the process (HOSTNAME, HOME, TERM), so that commit keeps them out."""
    from oci.bundle import options

    asked = {e.partition("=")[0] for e in image_cfg.get("Env") or []}
    asked |= {e.partition("=")[0] for e in fields.get("env", ())}
    for path in fields.get("env_files", ()):
        asked |= {e.partition("=")[0] for e in options.read_env_file(path, dict(os.environ))}
    return [e for e in env if e.partition("=")[0] in asked]


def _undo(engine: Engine, cid: str, name: str, folder: str, rootfs: str, made: list[str]) -> None:
    from .remove import release_rootfs

    if "rootfs" in made:
        release_rootfs(engine, rootfs)
    if "folder" in made:
        shutil.rmtree(folder, ignore_errors=True)
    engine.containers.release_name(name, cid)
