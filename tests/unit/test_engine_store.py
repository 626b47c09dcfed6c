"""oci.engine containers, volumes, login and option parsing: what needs no root and no registry."""

import json
import os

import pytest

from oci.engine import login, networks
from oci.engine.containers import ContainerStore, new_id
from oci.engine.create import parse_restart
from oci.engine.root import StateRoot
from oci.engine.volumes import VolumeStore
from oci.errors import Conflict, InvalidInput, NotFound


def test_a_name_is_held_by_one_container(tmp_path):
    store = ContainerStore(str(tmp_path / "containers"), str(tmp_path / "names"))
    first, second = new_id(), new_id()
    for cid in (first, second):
        os.makedirs(store.folder(cid))
    assert store.reserve_name("web", first) == "web"
    store.save({"Id": first, "Name": "web"})
    with pytest.raises(Conflict, match='"/web" is already in use by container'):
        store.reserve_name("web", second)
    assert store.resolve("web") == first and store.resolve(first[:5]) == first
    made = store.reserve_name(None, second)
    assert "-" in made and store.name_owner(made) == second
    store.release_name("web", second)  # not its name: nothing happens
    assert store.name_owner("web") == first
    with pytest.raises(InvalidInput):
        store.reserve_name("bad name", second)


def test_a_name_left_by_a_removal_killed_half_way_is_taken_again(tmp_path):
    store = ContainerStore(str(tmp_path / "containers"), str(tmp_path / "names"))
    gone, cid = new_id(), new_id()
    os.makedirs(store.names)
    with open(os.path.join(store.names, "web"), "w") as f:
        f.write(gone)  # its folder is gone already
    assert store.reserve_name("web", cid) == "web"
    with pytest.raises(NotFound):
        store.resolve("nothing")


def test_volumes_are_made_listed_and_refused_removal_while_used(tmp_path):
    volumes = VolumeStore(str(tmp_path / "volumes"))
    doc = volumes.create("data", {"a": "b"})
    assert doc["Mountpoint"] == volumes.data("data") and os.path.isdir(doc["Mountpoint"])
    assert volumes.create("data") == doc  # as docker volume create: an existing volume is returned
    assert volumes.names() == ["data"]
    with pytest.raises(Conflict, match="volume is in use"):
        volumes.remove("data", ["c" * 64])
    volumes.remove("data", [])
    assert volumes.names() == [] and not os.path.exists(str(tmp_path / "volumes" / "data"))
    with pytest.raises(NotFound):
        volumes.inspect("data")
    with pytest.raises(InvalidInput):
        volumes.create("../x")


def test_a_new_volume_is_filled_from_the_image(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "www" / "sub").mkdir(parents=True)
    (rootfs / "www" / "index.html").write_text("hello")
    (rootfs / "www" / "sub" / "f").write_text("x")
    os.symlink("/etc/passwd", rootfs / "www" / "link")
    volumes = VolumeStore(str(tmp_path / "volumes"))
    volumes.create("site")
    volumes.fill_from_image("site", str(rootfs), "/www")
    data = volumes.data("site")
    assert sorted(os.listdir(data)) == ["index.html", "link", "sub"]
    assert os.readlink(os.path.join(data, "link")) == "/etc/passwd"  # copied as a link, never followed
    (rootfs / "www" / "later").write_text("y")
    volumes.fill_from_image("site", str(rootfs), "/www")  # not empty any more: left alone
    assert "later" not in os.listdir(data)


def test_login_writes_the_containers_auth_file(tmp_path, monkeypatch):
    path = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    monkeypatch.setattr(login, "check", lambda *args: None)
    assert login.login("https://127.0.0.1:5000/v2/", "me", "secret", None) == str(path)
    doc = json.loads(path.read_text())
    assert doc == {"auths": {"127.0.0.1:5000": {"auth": "bWU6c2VjcmV0"}}}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    from oci.registry.credentials import lookup

    assert lookup("127.0.0.1:5000").username == "me"
    assert login.logout("127.0.0.1:5000") is True and login.logout("127.0.0.1:5000") is False
    assert json.loads(path.read_text()) == {"auths": {}}


def test_the_auth_file_is_where_podman_keeps_it(monkeypatch):
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert login.auth_file() == "/run/user/1000/containers/auth.json"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert login.auth_file() == f"/run/containers/{os.getuid()}/auth.json"
    assert login.registry_key(None) == "docker.io" and login.registry_key("index.docker.io") == "docker.io"


def test_docker_run_options_the_front_reads_itself():
    assert parse_restart("no") == {"Name": "", "MaximumRetryCount": 0}
    assert parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    with pytest.raises(InvalidInput):
        parse_restart("sometimes")
    with pytest.raises(InvalidInput):
        parse_restart("always:3")
    free = lambda host_ip: 40000  # noqa: E731
    assert networks.parse_publish("8080:80", free) == "8080:80"
    assert networks.parse_publish("80", free) == "40000:80"
    assert networks.parse_publish("127.0.0.1::80/udp", free) == "127.0.0.1:40000:80/udp"
    assert networks.parse_publish("127.0.0.1:8080:80", free) == "127.0.0.1:8080:80"
    with pytest.raises(InvalidInput):
        networks.parse_publish("8000-8010:80", free)


def test_roots_keep_their_host_wide_names_apart(tmp_path):
    one, two = StateRoot(str(tmp_path / "one")), StateRoot(str(tmp_path / "two"))
    assert one.bridge_name("bridge") != two.bridge_name("bridge") and len(one.bridge_name("bridge")) <= 15
    assert one.nft_table != two.nft_table and one.runtime != two.runtime
    assert StateRoot("/var/lib/ocikit").nft_table == "ocikit"
