"""`inspect` documents in the shapes Docker prints (containers, images, volumes, networks), and
skopeo's shape for an image still in its registry (`docker://REF`, nothing pulled)."""

from __future__ import annotations

from typing import Any

from oci import schema
from oci.descriptor import INDEXES, Descriptor
from oci.digest import verify_bytes
from oci.errors import NotFound
from oci.reference import TRANSPORT, Reference
from oci.registry.http import Options

from . import networks, status
from .engine import Engine
from .images import familiar, parse_reference


def container(engine: Engine, name: str, monitor: Any = None) -> dict[str, Any]:
    record = status.refresh(engine, engine.containers.load(engine.containers.resolve(name)), monitor)
    doc = {k: v for k, v in record.items() if k not in ("ImageManifest", "Monitored")}
    doc["Name"] = "/" + record["Name"]
    folder = engine.containers.folder(record["Id"])
    doc["ResolvConfPath"] = f"{folder}/resolv.conf"
    doc["HostnamePath"] = f"{folder}/hostname"
    doc["HostsPath"] = f"{folder}/hosts"
    doc["GraphDriver"] = {"Name": "overlay", "Data": {"MergedDir": f"{folder}/rootfs"}}
    settings: dict[str, Any] = {"Ports": _ports(record), "Networks": {}}
    for net_name, lease in networks.leases_of(engine.root, record["Id"]).items():
        address = lease["addresses"][0] if lease.get("addresses") else ""
        ip, _, prefix = address.partition("/")
        gateway = (lease.get("gateways") or [""])[0]
        settings["Networks"][net_name] = {"IPAddress": ip, "IPPrefixLen": int(prefix or 0), "Gateway": gateway,
                                          "MacAddress": lease.get("mac", ""), "Aliases": lease.get("aliases", []),
                                          "NetworkID": net_name}
        if "IPAddress" not in settings:
            settings.update(IPAddress=ip, IPPrefixLen=int(prefix or 0), Gateway=gateway,
                            MacAddress=lease.get("mac", ""))
    doc["NetworkSettings"] = settings
    return doc


def _ports(record: dict[str, Any]) -> dict[str, Any]:
    bindings = (record.get("HostConfig") or {}).get("PortBindings") or {}
    return {key: [{"HostIp": b.get("HostIp") or "0.0.0.0", "HostPort": b["HostPort"]} for b in hosts]
            for key, hosts in bindings.items()}


def image(engine: Engine, name: str) -> dict[str, Any]:
    stored = engine.images.find(name)
    config = stored.config
    inner = config.get("config") or {}

    return {
        "Id": stored.id,
        "RepoTags": [familiar(n) for n in stored.names if "@" not in n],
        "RepoDigests": [_familiar_digest(d) for d in stored.repo_digests()],
        "Parent": "",
        "Comment": next((h.get("comment", "") for h in reversed(config.get("history") or []) if h.get("comment")),
                        ""),
        "Created": stored.created,
        "Author": config.get("author", ""),
        "Config": {"Env": inner.get("Env") or [], "Cmd": inner.get("Cmd"), "Entrypoint": inner.get("Entrypoint"),
                   "WorkingDir": inner.get("WorkingDir", ""), "User": inner.get("User", ""),
                   "ExposedPorts": inner.get("ExposedPorts"), "Volumes": inner.get("Volumes"),
                   "Labels": inner.get("Labels"), "StopSignal": inner.get("StopSignal")},
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant"),
        "Os": config.get("os", ""),
        "Size": stored.size,
        "RootFS": {"Type": "layers", "Layers": list((config.get("rootfs") or {}).get("diff_ids") or [])},
        "Descriptor": stored.descriptor.to_json(),
        "Metadata": {"LastTagTime": ""},
    }


def _familiar_digest(text: str) -> str:
    name, _, digest = text.partition("@")
    return Reference.parse(name).familiar().removesuffix(":latest") + "@" + digest


def remote(name: str, registry: Options | None = None, platform: Any = None) -> dict[str, Any]:
    """skopeo inspect's document for an image in its registry: manifest and config fetched, no layer."""

    from .transfer import repository as find_repository

    ref = parse_reference(name)
    repository = find_repository(name, registry)
    manifest = repository.get_manifest(ref.identifier)
    digest = manifest.digest
    doc = schema.load(manifest.data, manifest.media_type, str(ref), remember=True)
    if manifest.media_type in INDEXES:
        from oci.platform import Platform, choose

        entry = choose(doc.get("manifests", []), platform or Platform.host(), str(ref))
        manifest = repository.get_manifest(entry["digest"])
        doc = schema.load(manifest.data, manifest.media_type, str(ref), remember=True)
    config_descriptor = Descriptor.from_json(doc["config"])
    response, _ = repository.open_blob(config_descriptor.digest)
    with response:
        data = response.read_all(4 << 20, "config")

    verify_bytes(data, config_descriptor.digest, config_descriptor.size, f"{ref} config")
    config = schema.parse(data, f"{ref} config")
    inner = config.get("config") or {}
    tags: list[str] = []
    try:
        tags = repository.list_tags()
    except Exception:  # noqa: BLE001 -- some registries refuse listing; the rest is still worth showing
        pass
    return {"Name": ref.name, "Digest": str(digest), "RepoTags": tags, "Created": config.get("created", ""),
            "DockerVersion": config.get("docker_version", ""), "Labels": inner.get("Labels"),
            "Architecture": config.get("architecture", ""), "Os": config.get("os", ""),
            "Layers": [layer["digest"] for layer in doc.get("layers", [])],
            "LayersData": [{"MIMEType": la["mediaType"], "Digest": la["digest"], "Size": la["size"],
                            "Annotations": la.get("annotations")} for la in doc.get("layers", [])],
            "Env": inner.get("Env") or []}


def volume(engine: Engine, name: str) -> dict[str, Any]:
    return engine.volumes.inspect(name)


def network(engine: Engine, name: str) -> dict[str, Any]:
    net = networks.load(engine.root, name)
    containers = {}
    for key, lease in networks.attachments(engine.root, net).items():
        cid = key.split("/", 1)[0]
        containers[cid] = {"Name": lease.get("name", ""), "IPv4Address": (lease.get("addresses") or [""])[0],
                           "MacAddress": lease.get("mac", "")}
    return {"Name": net["name"], "Id": net["name"], "Created": net.get("created", ""), "Scope": "local",
            "Driver": "bridge", "EnableIPv6": "subnet6" in net,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": net["subnet"], "Gateway": net["gateway"]}]},
            "Internal": not net.get("masquerade", True), "Containers": containers,
            "Options": {"com.docker.network.bridge.name": net["bridge"], "ocikit.nftables.table": net["nftTable"]},
            "Labels": {}}


def any_object(engine: Engine, name: str, kind: str | None, monitor: Any, registry: Options | None = None
               ) -> dict[str, Any]:
    """Docker's `inspect`: the first kind of object that has the name (container, image, volume, network);
    `docker://REF` is an image in its registry, reached with the transport options `registry`."""
    if name.startswith(TRANSPORT):
        return remote(name, registry)
    finders = {"container": lambda: container(engine, name, monitor), "image": lambda: image(engine, name),
               "volume": lambda: volume(engine, name), "network": lambda: network(engine, name)}
    for key in ([kind] if kind else list(finders)):
        try:
            return finders[key]()
        except NotFound:
            continue
    raise NotFound(f"Error: No such object: {name}")
