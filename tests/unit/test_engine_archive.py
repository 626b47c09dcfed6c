"""oci.engine.archive: save and load round-trip to the same digests; Docker's archives load; bad ones are refused."""

import io
import json
import tarfile

import pytest

from oci.engine import archive
from oci.engine.images import ImageStore
from oci.errors import IntegrityError, InvalidInput
from oci.layout import Layout
from tests.integration.images import layer_tar, write_manifest


def stored_image(tmp_path, name="docker.io/library/app:1", files=None):
    store = ImageStore(str(tmp_path / "images"))
    layout = Layout.open(store.path, create=True)
    with layout.session():
        descriptor = write_manifest(layout, [files or {"etc/app": b"one"}, {"bin/tool": b"two"}])
    store.name([name], descriptor)
    return store, descriptor


@pytest.mark.parametrize("fmt", ["docker-oci", "oci-archive"])
def test_save_then_load_gives_the_same_digests(tmp_path, fmt):
    store, descriptor = stored_image(tmp_path)
    out = io.BytesIO()
    archive.save(store, ["app:1"], out, fmt)
    other = ImageStore(str(tmp_path / "other"))
    lines = archive.load(other, io.BytesIO(out.getvalue()))
    assert lines == ["Loaded image: app:1"]
    loaded = other.find("app:1")
    assert loaded.descriptor.digest == descriptor.digest
    assert loaded.id == store.find("app:1").id
    assert Layout.open(other.path).reachable() == Layout.open(store.path).reachable()


def test_the_default_archive_is_both_a_docker_archive_and_an_oci_layout(tmp_path):
    store, _ = stored_image(tmp_path)
    out = io.BytesIO()
    archive.save(store, ["app:1"], out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= set(names)
    stored = store.find("app:1")
    assert manifest == [{"Config": f"blobs/sha256/{stored.id.split(':')[1]}", "RepoTags": ["app:1"],
                         "Layers": [f"blobs/sha256/{d.digest.hex}" for d in stored.image.layers]}]
    assert index["manifests"][0]["annotations"] == {"io.containerd.image.name": "docker.io/library/app:1",
                                                    "org.opencontainers.image.ref.name": "1"}


def docker_save_archive(config: dict, layers: list[bytes], tags: list[str]) -> bytes:
    """An archive in the form `docker save` of Docker 20.10 writes: ID.json, LAYERID/layer.tar, manifest.json."""
    import hashlib

    config_data = json.dumps(config).encode()
    config_name = hashlib.sha256(config_data).hexdigest() + ".json"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        paths = []
        for n, data in enumerate(layers):
            paths.append(f"layer{n}/layer.tar")
            add(paths[-1], data)
        add(config_name, config_data)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": paths}]).encode())
    return out.getvalue()


def test_a_docker_save_archive_loads_with_the_image_id_docker_gives(tmp_path):
    import hashlib

    raw = layer_tar({"etc/hello": b"hello\n"})
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
    data = docker_save_archive(config, [raw], ["busybox:latest"])
    store = ImageStore(str(tmp_path / "images"))
    assert archive.load(store, io.BytesIO(data)) == ["Loaded image: busybox:latest"]
    stored = store.find("busybox")
    assert stored.id == "sha256:" + hashlib.sha256(json.dumps(config).encode()).hexdigest()
    assert stored.image.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar"


def test_a_layer_that_does_not_match_its_diff_id_is_refused(tmp_path):
    raw = layer_tar({"etc/hello": b"hello\n"})
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
    store = ImageStore(str(tmp_path / "images"))
    with pytest.raises(IntegrityError, match="the config says"):
        archive.load(store, io.BytesIO(docker_save_archive(config, [raw], ["x:1"])))
    assert store.images() == []


def test_a_tampered_blob_is_refused(tmp_path):
    store, descriptor = stored_image(tmp_path)
    out = io.BytesIO()
    archive.save(store, ["app:1"], out, "oci-archive")
    tampered = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as source, tarfile.open(fileobj=tampered, mode="w") as tar:
        for member in source:
            data = source.extractfile(member).read() if member.isreg() else None
            if member.name.endswith(descriptor.digest.hex):
                data = data.replace(b'"schemaVersion"', b'"schemaversion"')
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(IntegrityError):
        archive.load(ImageStore(str(tmp_path / "other")), io.BytesIO(tampered.getvalue()))


def test_something_else_is_not_an_image_archive(tmp_path):
    with pytest.raises(InvalidInput, match="not a tar archive"):
        archive.load(ImageStore(str(tmp_path / "x")), io.BytesIO(b"hello"))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("readme")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(InvalidInput, match="neither index.json nor manifest.json"):
        archive.load(ImageStore(str(tmp_path / "y")), io.BytesIO(out.getvalue()))
