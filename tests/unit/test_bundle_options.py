"""oci.bundle.options: the values of docker-run options."""

import os

import pytest

from oci.bundle import options
from oci.errors import InvalidInput, NotFound


@pytest.mark.parametrize("text,value", [
    ("512", 512), ("64k", 65536), ("64K", 65536), ("100m", 100 << 20), ("100mb", 100 << 20), ("1g", 1 << 30),
    ("1.5g", 3 << 29), ("2GB", 2 << 30), ("1t", 1 << 40), ("7b", 7),
])
def test_memory_units(text, value):
    assert options.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "m", "-1m", "12x", "1..2g", "ten"])
def test_memory_units_refused(text):
    with pytest.raises(InvalidInput, match="invalid size"):
        options.parse_bytes(text)


def test_env_file(tmp_path):
    path = tmp_path / "env"
    path.write_text("# comment\n\nA=1\n  B=two words \nC=\nFROM_HOST\nMISSING\nD=x=y\n")
    assert options.read_env_file(str(path), {"FROM_HOST": "h"}) == ["A=1", "B=two words ", "C=", "FROM_HOST=h",
                                                                     "D=x=y"]
    path.write_text("A=1\nBAD NAME=2\n")
    with pytest.raises(InvalidInput, match=r"env:2: invalid environment variable"):
        options.read_env_file(str(path), {})
    path.write_text("=nothing\n")
    with pytest.raises(InvalidInput):
        options.read_env_file(str(path), {})
    with pytest.raises(NotFound):
        options.read_env_file(str(tmp_path / "nope"), {})


@pytest.mark.root
def test_throttle(tmp_path):
    import stat

    disk = tmp_path / "disk"
    os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 200))
    assert options.parse_throttle(f"{disk}:1mb", "--device-read-bps") == {"major": 7, "minor": 200, "rate": 1 << 20}
    assert options.parse_throttle(f"{disk}:300", "--device-write-iops") == {"major": 7, "minor": 200, "rate": 300}
    for bad in (f"{disk}", f"{disk}:fast", "/dev/null:1mb", f"{disk}:1.5"):
        with pytest.raises(InvalidInput):
            options.parse_throttle(bad, "--device-write-iops" if bad.endswith("1.5") else "--device-read-bps")
    with pytest.raises(NotFound):
        options.parse_throttle("/dev/does-not-exist:1mb", "--device-read-bps")


def test_env_entry():
    assert options.parse_env_entry("A=b", {}, "-e") == "A=b"
    assert options.parse_env_entry("HOME", {"HOME": "/h"}, "-e") == "HOME=/h"
    assert options.parse_env_entry("UNSET", {}, "-e") is None


def test_device():
    st = os.stat("/dev/null")
    device, rule = options.parse_device("/dev/null")
    assert device == {"path": "/dev/null", "type": "c", "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                      "fileMode": 0o666, "uid": st.st_uid, "gid": st.st_gid}
    assert rule == {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    device, rule = options.parse_device("/dev/null:/dev/mynull:r")
    assert device["path"] == "/dev/mynull" and rule["access"] == "r"
    device, rule = options.parse_device("/dev/zero:rw")
    assert device["path"] == "/dev/zero" and rule["access"] == "rw"
    for bad in ("/dev/null:/x:rwz", "/dev/null:relative", "/a:/b:/c:/d", "/etc/passwd"):
        with pytest.raises(InvalidInput):
            options.parse_device(bad)
    with pytest.raises(NotFound):
        options.parse_device("/dev/does-not-exist")


def test_ulimit():
    assert options.parse_ulimit("nofile=512:1024") == {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}
    assert options.parse_ulimit("nproc=64") == {"type": "RLIMIT_NPROC", "soft": 64, "hard": 64}
    assert options.parse_ulimit("core=unlimited")["hard"] == 2**64 - 1
    for bad in ("nofile", "bogus=1", "nofile=2:1", "nofile=x"):
        with pytest.raises(InvalidInput):
            options.parse_ulimit(bad)


def test_sysctl():
    assert options.parse_sysctl("net.ipv4.ip_forward=1", False) == ("net.ipv4.ip_forward", "1")
    assert options.parse_sysctl("kernel.shmmax=100", True) == ("kernel.shmmax", "100")
    assert options.parse_sysctl("fs/mqueue/msg_max=20", True) == ("fs.mqueue.msg_max", "20")
    with pytest.raises(InvalidInput, match="network host"):
        options.parse_sysctl("net.ipv4.ip_forward=1", True)
    with pytest.raises(InvalidInput, match="not namespaced"):
        options.parse_sysctl("kernel.panic=1", False)


def test_volume():
    assert options.parse_volume("/data") == options.Mount("volume", "/data")
    assert options.parse_volume("cache:/var/cache:ro") == options.Mount("volume", "/var/cache", "cache", ["ro"])
    assert options.parse_volume("/srv:/srv/:rw,rshared,z") == options.Mount("bind", "/srv", "/srv",
                                                                           ["rw", "rshared"])
    for bad in ("relative", "a b:/x", "/a:/b:bogus", "/a:/", "/a:rel", "a:b:c:d"):
        with pytest.raises(InvalidInput):
            options.parse_volume(bad)


def test_mount(tmp_path):
    assert options.parse_mount(f"type=bind,source={tmp_path},target=/x,readonly,bind-propagation=rslave") == \
        options.Mount("bind", "/x", str(tmp_path), ["ro", "rslave"])
    assert options.parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770") == \
        options.Mount("tmpfs", "/t", "", [f"size={1 << 20}", "mode=1770"])
    assert options.parse_mount("type=volume,src=v1,target=/v") == options.Mount("volume", "/v", "v1", [])
    assert options.parse_mount("target=/anon") == options.Mount("volume", "/anon", "", [])
    with pytest.raises(NotFound):
        options.parse_mount("type=bind,source=/does/not/exist,target=/x")
    for bad in ("type=bind,source=rel,target=/x", "type=nfs,target=/x", "type=tmpfs,target=/t,bogus=1",
                "type=volume,source=v", "type=tmpfs,target=/t,tmpfs-mode=999", "type=tmpfs,src=x,target=/t"):
        with pytest.raises(InvalidInput):
            options.parse_mount(bad)


def test_tmpfs_id_maps_hosts_cpus():
    assert options.parse_tmpfs("/run:size=1m,exec") == options.Mount("tmpfs", "/run", "tmpfs", ["size=1m", "exec"])
    assert options.parse_id_map("0:100000:65536") == {"containerID": 0, "hostID": 100000, "size": 65536}
    for bad in ("0:1", "a:b:c", "0:1:0"):
        with pytest.raises(InvalidInput):
            options.parse_id_map(bad)
    assert options.parse_add_host("db:10.0.0.2") == ("db", "10.0.0.2")
    assert options.parse_add_host("v6:2001:db8::1") == ("v6", "2001:db8::1")
    assert options.parse_add_host("eq=::1") == ("eq", "::1")
    with pytest.raises(InvalidInput):
        options.parse_add_host("db:not-an-ip")
    assert options.parse_cpus("1.5") == 150000
    with pytest.raises(InvalidInput):
        options.parse_cpus("0")


def test_hook():
    stage, hook = options.parse_hook("poststop=true --flag 'a b'")
    assert stage == "poststop" and hook["path"].endswith("/true") and hook["args"] == ["true", "--flag", "a b"]
    with pytest.raises(InvalidInput):
        options.parse_hook("later=/bin/true")
    with pytest.raises(NotFound):
        options.parse_hook("prestart=no-such-command-xyz")


def test_capabilities():
    default = ["CAP_CHOWN", "CAP_KILL"]
    everything = ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]
    assert options.capabilities(default, everything, ["sys_admin"], ["CAP_KILL"]) == ["CAP_CHOWN", "CAP_SYS_ADMIN"]
    assert options.capabilities(default, everything, ["ALL"], ["chown"]) == ["CAP_KILL", "CAP_SYS_ADMIN"]
    assert options.capabilities(default, everything, ["NET_ADMIN"], ["all"]) == ["CAP_NET_ADMIN"]
    with pytest.raises(InvalidInput):
        options.capabilities(default, everything, ["CAP_FLY"], [])
