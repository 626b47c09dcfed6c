"""Test images in OCI layouts (oci.layout + tarfile), and getting them into registries with skopeo.

* `build_image(layout_dir, tag, layers=[{path: bytes}, ...])` writes a single-platform image
  (gzip layers, deterministic tar entries) and returns its manifest descriptor;
  `random_layer(size)` makes incompressible layer content of about `size` bytes.
* `build_index(layout_dir, tag, {"linux/amd64": [...], "linux/arm64": [...]})` writes a
  multi-platform image (an OCI index over per-platform manifests).
* `skopeo_copy(src, dest, registry)` copies with skopeo, trusting/logging into `registry`;
  `push_layout(layout_dir, tag, registry, repository)` is the common case.
* `write_auth_json(path, registry)` writes a containers auth.json / Docker config.json with
  the registry's credentials; `docker_config_dir(dir, registry)` a `$DOCKER_CONFIG` folder.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from typing import Any

from oci.descriptor import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
)
from oci.digest import Digest
from oci.layout import Layout

from .registry_server import Registry

EPOCH = 1_700_000_000


def random_layer(size: int, seed: str = "ocikit", path: str = "data.bin") -> dict[str, bytes]:
    """Layer content of `size` incompressible bytes, deterministic for a seed."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return {path: bytes(out[:size])}


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of `files` (sorted, fixed owners and mtimes, parent dirs added)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(files[path]), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(files[path]))
    return buf.getvalue()


def _put_json(layout: Layout, doc: dict[str, Any], media_type: str) -> Descriptor:
    data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return Descriptor(media_type, layout.put_bytes(data), len(data))


def write_manifest(layout: Layout, layers: list[dict[str, bytes]], platform: str = "linux/amd64",
                   config_extra: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
                   subject: Descriptor | None = None, docker: bool = False) -> Descriptor:
    """Put the layers, config and manifest of one image in `layout`; the manifest descriptor
    (Docker schema 2 media types when `docker`)."""
    manifest_type, config_type, layer_type = ((DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP) if docker
                                              else (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP))
    os_name, arch = platform.split("/")[:2]
    layer_descs, diff_ids = [], []
    for files in layers:
        raw = layer_tar(files)
        diff_ids.append(str(Digest.of(raw)))
        blob = gzip.compress(raw, compresslevel=1, mtime=0)
        layer_descs.append(Descriptor(layer_type, layout.put_bytes(blob), len(blob)))
    config = {"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "config": {"Cmd": ["/bin/sh"]}, **(config_extra or {})}
    config_desc = _put_json(layout, config, config_type)
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": manifest_type, "config": config_desc.to_json(),
                                "layers": [d.to_json() for d in layer_descs]}
    if annotations:
        manifest["annotations"] = annotations
    if subject is not None:
        manifest["subject"] = subject.to_json()
    return _put_json(layout, manifest, manifest_type)


def build_image(layout_dir: str, tag: str, layers: list[dict[str, bytes]] | None = None,
                platform: str = "linux/amd64", **kwargs: Any) -> Descriptor:
    """A single-platform image tagged `tag` in the layout at `layout_dir` (created if needed)."""
    layout = Layout.open(layout_dir, create=True)
    layers = layers if layers is not None else [{"etc/hello": f"hello {tag}\n".encode()}]
    with layout.session():
        desc = write_manifest(layout, layers, platform, **kwargs)
        return layout.tag(tag, desc)


def build_index(layout_dir: str, tag: str, platforms: dict[str, list[dict[str, bytes]]]) -> Descriptor:
    """A multi-platform image: an OCI index over one manifest per platform."""
    layout = Layout.open(layout_dir, create=True)
    with layout.session():
        entries = []
        for platform, layers in platforms.items():
            desc = write_manifest(layout, layers, platform)
            os_name, arch = platform.split("/")[:2]
            entries.append({**desc.to_json(), "platform": {"os": os_name, "architecture": arch}})
        index = _put_json(layout, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX)
        return layout.tag(tag, index)


# -- skopeo ------------------------------------------------------------------


def skopeo_flags(registry: Registry, direction: str) -> list[str]:
    """skopeo options to reach `registry` (direction: "src", "dest" or "" for inspect)."""
    prefix = f"--{direction}-" if direction else "--"
    flags = []
    if registry.insecure:
        flags.append(f"{prefix}tls-verify=false")
    else:
        flags.append(f"{prefix}cert-dir={registry.cert_dir}")
    if registry.username:
        flags.append(f"{prefix}creds={registry.username}:{registry.password}")
    return flags


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run skopeo, raising with its stderr on failure."""
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {proc.stderr}")
    return proc


def skopeo_copy(src: str, dest: str, src_registry: Registry | None = None, dest_registry: Registry | None = None,
                *extra: str) -> None:
    """`skopeo copy SRC DEST` (transports included: `oci:DIR:TAG`, `docker://HOST/REPO:TAG`)."""
    flags = list(extra)
    if src_registry:
        flags += skopeo_flags(src_registry, "src")
    if dest_registry:
        flags += skopeo_flags(dest_registry, "dest")
    skopeo("copy", "--quiet", *flags, src, dest)


def push_layout(layout_dir: str, tag: str, registry: Registry, repository: str, dest_tag: str | None = None,
                all_platforms: bool = True) -> str:
    """Copy `layout_dir:tag` to `registry/repository:dest_tag` with skopeo; the reference pushed."""
    ref = registry.ref(repository, dest_tag or tag)
    extra = ("--all", "--preserve-digests") if all_platforms else ("--preserve-digests",)
    skopeo_copy(f"oci:{layout_dir}:{tag}", f"docker://{ref}", None, registry, *extra)
    return ref


def skopeo_inspect(ref: str, registry: Registry, raw: bool = False) -> Any:
    """`skopeo inspect [--raw] docker://REF` as parsed JSON (raw: the manifest bytes' JSON)."""
    out = skopeo("inspect", *(["--raw"] if raw else []), *skopeo_flags(registry, ""), f"docker://{ref}").stdout
    return json.loads(out)


def skopeo_manifest_digest(ref: str, registry: Registry) -> str:
    """The digest of the manifest bytes the registry serves for `ref`."""
    out = skopeo("inspect", "--raw", *skopeo_flags(registry, ""), f"docker://{ref}").stdout
    return "sha256:" + hashlib.sha256(out.encode()).hexdigest()


# -- credentials -------------------------------------------------------------


def auth_document(registry: Registry, username: str | None = None, password: str | None = None) -> dict[str, Any]:
    """`{"auths": {HOST: {"auth": base64(user:password)}}}` for the registry's (or given) credentials."""
    user, secret = username or registry.username, password or registry.password
    pair = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"auths": {registry.host: {"auth": pair}}}


def write_auth_json(path: str, registry: Registry, username: str | None = None, password: str | None = None) -> str:
    """Write an auth.json (also valid as Docker's config.json); returns its path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(auth_document(registry, username, password), f)
    return path


def docker_config_dir(directory: str, registry: Registry, **kwargs: Any) -> str:
    """A `$DOCKER_CONFIG` folder holding `config.json` with the registry's credentials."""
    write_auth_json(os.path.join(directory, "config.json"), registry, **kwargs)
    return directory
