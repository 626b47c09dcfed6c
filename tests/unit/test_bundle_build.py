"""oci.bundle.build, defaults and seccomp: every option lands in a config that validates."""

import json
import os
import platform

import pytest
from bundle_testimage import make_rootfs

from oci import schema
from oci.bundle import build, defaults, etcfiles, seccomp
from oci.errors import InvalidInput, NotFound, Unsupported, UsageError
from oci.linux.capabilities import DOCKER_DEFAULT_CAPS

IMAGE = {"architecture": "amd64", "os": "linux",
         "config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "LANG=C"], "User": "alice", "Volumes": {"/data": {}}}}


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return str(make_rootfs(tmp_path_factory.mktemp("build") / "rootfs"))


@pytest.fixture
def make(rootfs, tmp_path):
    """Build a config with options, validate it against the runtime-spec schema, return it."""
    def make_config(image=IMAGE, **kwargs):
        opts = build.BundleOptions(**kwargs)
        config = build.build(image, rootfs, str(tmp_path / "bundle"), opts)
        schema.validate(config, "runtime-config", "test")
        return config
    return make_config


def mount_at(config, destination):
    return next(m for m in config["mounts"] if m["destination"] == destination)


def test_defaults_are_docker_like(make, tmp_path):
    config = make()
    process, linux = config["process"], config["linux"]
    assert config["ociVersion"] == "1.3.0"
    assert process["args"] == ["sh"] and process["cwd"] == "/"
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert process["env"][:2] == ["PATH=/bin", "LANG=C"] and "HOME=/home/alice" in process["env"]
    assert process["noNewPrivileges"] is True and process["terminal"] is False
    assert sorted(process["capabilities"]["bounding"]) == sorted(DOCKER_DEFAULT_CAPS)
    assert "inheritable" not in process["capabilities"] and "ambient" not in process["capabilities"]
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert {ns["type"] for ns in linux["namespaces"]} == {"pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert "/proc/kcore" in linux["maskedPaths"] and "/proc/sys" in linux["readonlyPaths"]
    assert linux["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert "ro" in mount_at(config, "/sys")["options"] and "ro" in mount_at(config, "/sys/fs/cgroup")["options"]
    for destination in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"):
        mount_at(config, destination)
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    bundle = tmp_path / "bundle"
    for name, target in etcfiles.FILES.items():
        assert mount_at(config, target) == {"destination": target, "type": "bind", "source": str(bundle / name),
                                            "options": ["rbind", "rprivate"]}
    volume = mount_at(config, "/data")
    assert volume["type"] == "bind" and os.path.isdir(volume["source"])
    assert volume["source"].startswith(str(bundle / "volumes"))
    assert (bundle / "hostname").read_text() == config["hostname"] + "\n"
    assert config["root"]["path"].startswith("/")  # the rootfs lives outside this bundle


def test_rootfs_inside_the_bundle_is_relative(tmp_path):
    bundle = tmp_path / "b"
    make_rootfs(bundle / "rootfs")
    config = build.build(IMAGE, str(bundle / "rootfs"), str(bundle), build.BundleOptions(oci_version="1.1.0"))
    assert config["root"] == {"path": "rootfs", "readonly": False} and config["ociVersion"] == "1.1.0"
    with pytest.raises(NotFound):
        build.build(IMAGE, str(tmp_path / "nothing"), str(bundle), build.BundleOptions())


def test_process_options(make, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("LANG=fr\nFROM_FILE=1\nX=file\n")
    config = make(args=["echo", "hi"], env=["X=flag", "HOST_VAR", "GONE"], env_files=[str(env_file)],
                  user="bob:audio", workdir="/tmp", tty=True, environ={"HOST_VAR": "h"}, group_add=["staff", "77"],
                  ulimits=["nofile=100:200", "nproc=10"], hostname="box")
    process = config["process"]
    assert process["args"] == ["echo", "hi"] and process["cwd"] == "/tmp" and process["terminal"] is True
    assert process["env"] == ["PATH=/bin", "LANG=fr", "FROM_FILE=1", "X=flag", "HOST_VAR=h", "HOSTNAME=box",
                              "HOME=/home/bob", "TERM=xterm"]
    assert process["user"] == {"uid": 1001, "gid": 29, "additionalGids": [50, 77]}
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                                  {"type": "RLIMIT_NPROC", "soft": 10, "hard": 10}]
    assert config["hostname"] == "box"
    assert make(entrypoint="/bin/true")["process"]["args"] == ["/bin/true"]


def test_ulimit_above_our_hard_limit_is_refused_without_cap_sys_resource(make):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    assert make(ulimits=[f"nofile={hard}"])["process"]["rlimits"][-1]["hard"] == hard
    if "CAP_SYS_RESOURCE" in defaults.effective_caps() or resource.getrlimit(resource.RLIMIT_NOFILE)[1] == \
            resource.RLIM_INFINITY:  # this process could raise the limit: so may the container
        assert make(ulimits=[f"nofile=1:{hard + 1}"])["process"]["rlimits"][-1]["hard"] == hard + 1
        return
    with pytest.raises(InvalidInput, match="CAP_SYS_RESOURCE"):
        make(ulimits=[f"nofile=1:{hard + 1}"])


def test_unknown_user_is_an_error(make):
    with pytest.raises(NotFound, match="mallory"):
        make(user="mallory")


def test_capabilities_and_security(make, tmp_path):
    config = make(cap_add=["SYS_ADMIN", "sys_ptrace"], cap_drop=["MKNOD"])
    caps = config["process"]["capabilities"]["effective"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_SYS_PTRACE" in caps and "CAP_MKNOD" not in caps
    allowed = config["linux"]["seccomp"]["syscalls"][0]["names"]
    assert "mount" in allowed and "unshare" in allowed and "kexec_load" not in allowed
    assert make(cap_drop=["ALL"])["process"]["capabilities"]["bounding"] == []
    everything = make(cap_add=["ALL"])["process"]["capabilities"]["bounding"]
    assert everything == defaults.host_caps()
    assert "seccomp" not in make(security_opts=["seccomp=unconfined"])["linux"]
    assert make(security_opts=["no-new-privileges=false"])["process"]["noNewPrivileges"] is False
    assert make(security_opts=["no-new-privileges"])["process"]["noNewPrivileges"] is True
    assert make(security_opts=["systempaths=unconfined"])["linux"]["maskedPaths"] == []
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO"}]}))
    assert make(security_opts=[f"seccomp={profile}"])["linux"]["seccomp"]["syscalls"][0]["names"] == ["chmod"]
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_NOPE"}))
    with pytest.raises(InvalidInput, match="profile.json: /linux/seccomp/defaultAction"):
        make(security_opts=[f"seccomp={profile}"])
    with pytest.raises(Unsupported):
        make(security_opts=["apparmor=foo"])
    with pytest.raises(NotFound):
        make(security_opts=["seccomp=/no/such/profile.json"])


def test_privileged(make):
    config = make(privileged=True)
    linux = config["linux"]
    assert config["process"]["capabilities"]["bounding"] == defaults.host_caps()
    assert "seccomp" not in linux and linux["maskedPaths"] == [] and linux["readonlyPaths"] == []
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" for d in linux["devices"])
    assert "ro" not in mount_at(config, "/sys")["options"]
    assert config["process"]["noNewPrivileges"] is False


def test_resources(make):
    config = make(memory="64m", memory_swap="128m", cpus="1.5", cpu_shares=512, cpuset_cpus="0-1",
                  pids_limit=32, devices=["/dev/null:/dev/n:r"])
    resources = config["linux"]["resources"]
    assert resources["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert resources["cpu"] == {"quota": 150000, "period": 100000, "shares": 512, "cpus": "0-1"}
    assert resources["pids"] == {"limit": 32}
    assert resources["devices"][1] == {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}
    assert config["linux"]["devices"][0]["path"] == "/dev/n"
    assert make(memory="64m", memory_swap="-1")["linux"]["resources"]["memory"]["swap"] == -1
    assert make(pids_limit=0)["linux"]["resources"]["pids"] == {"limit": -1}
    if build._swap_accounting():  # as Docker: swap defaults to as much again as memory
        assert make(memory="64m")["linux"]["resources"]["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    for bad in ({"memory": "1m"}, {"memory": "64m", "memory_swap": "32m"}, {"cpuset_cpus": "0-"},
                {"cpu_shares": 1}, {"cpus": "-2"}):
        with pytest.raises(InvalidInput):
            make(**bad)
    with pytest.raises(UsageError):
        make(memory_swap="1g")


@pytest.mark.root
def test_block_io_throttles(make, tmp_path):
    import stat

    disk = tmp_path / "disk"
    os.mknod(disk, stat.S_IFBLK | 0o600, os.makedev(7, 201))
    config = make(device_read_bps=[f"{disk}:10mb"], device_write_iops=[f"{disk}:200"])
    assert config["linux"]["resources"]["blockIO"] == {
        "throttleReadBpsDevice": [{"major": 7, "minor": 201, "rate": 10 << 20}],
        "throttleWriteIOPSDevice": [{"major": 7, "minor": 201, "rate": 200}]}
    schema.validate(config, "runtime-config", "config.json")


def test_mounts(make, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    config = make(volumes=[f"{host}:/srv:ro", "named:/data", "/anon", f"{tmp_path}/new:/new"],
                  mounts=["type=tmpfs,target=/scratch,tmpfs-size=1m", f"type=bind,src={host},dst=/b"],
                  tmpfs=["/run:exec,size=1m", "/dev/shm"], read_only=True)
    assert config["root"]["readonly"] is True
    assert mount_at(config, "/srv") == {"destination": "/srv", "type": "bind", "source": str(host),
                                        "options": ["rbind", "rprivate", "ro"]}
    data = mount_at(config, "/data")  # -v NAME replaces the image's anonymous volume at /data
    assert data["source"] == str(tmp_path / "bundle" / "volumes" / "named")
    assert len([m for m in config["mounts"] if m["destination"] == "/data"]) == 1
    assert os.path.isdir(mount_at(config, "/anon")["source"]) and (tmp_path / "new").is_dir()
    assert mount_at(config, "/scratch")["options"] == ["nosuid", "nodev", "noexec", f"size={1 << 20}"]
    assert mount_at(config, "/run")["options"] == ["nosuid", "nodev", "exec", "size=1m"]
    assert mount_at(config, "/dev/shm")["type"] == "tmpfs"
    assert len([m for m in config["mounts"] if m["destination"] == "/dev/shm"]) == 1
    destinations = [m["destination"] for m in config["mounts"]]
    assert destinations.index("/dev") < destinations.index("/dev/shm")


def test_network_modes(make, tmp_path):
    config = make(network="host", add_hosts=["db:10.0.0.9"])
    assert "network" not in {ns["type"] for ns in config["linux"]["namespaces"]}
    assert config["hostname"] == os.uname().nodename
    hosts = (tmp_path / "bundle" / "hosts").read_text()
    assert hosts.startswith(open("/etc/hosts").read().rstrip("\n")) and hosts.endswith("10.0.0.9\tdb\n")
    config = make(network="ns:/run/netns/x", sysctls=["net.ipv4.ping_group_range=0 0", "kernel.shmmax=1"])
    assert {"type": "network", "path": "/run/netns/x"} in config["linux"]["namespaces"]
    assert config["linux"]["sysctl"] == {"net.ipv4.ping_group_range": "0 0", "kernel.shmmax": "1"}
    with pytest.raises(InvalidInput):
        make(network="host", sysctls=["net.ipv4.ip_forward=1"])
    with pytest.raises(InvalidInput):
        make(network="ns:relative")
    with pytest.raises(UsageError, match="publish"):
        make(publish=["80:80"])
    with pytest.raises(NotFound, match="oci-net"):
        make(network="web")


def test_named_network_hooks(make):
    config = make(network="web", publish=["8080:80", "53/udp"], name="api", aliases=["a1", "a2"],
                  oci_net=["/opt/ocikit/oci-net"], hooks=["createRuntime=/bin/true first", "poststop=/bin/true"])
    net = "/opt/ocikit/oci-net"
    assert config["hooks"]["createRuntime"][0] == {"path": net, "args": [
        net, "hook", "connect", "web", "--publish", "8080:80", "--publish", "53/udp", "--name", "api",
        "--alias", "a1", "--alias", "a2"]}
    assert config["hooks"]["createRuntime"][1]["args"] == ["/bin/true", "first"]
    assert config["hooks"]["poststop"][-1] == {"path": net, "args": [net, "hook", "disconnect", "web"]}
    assert {"type": "network"} in config["linux"]["namespaces"]


def test_named_network_hooks_through_an_interpreter_with_a_state_dir(make):
    config = make(network="web", name="api", oci_net=["/venv/bin/python", "/src/bin/oci_net.py"],
                  net_state_dir="/srv/net")
    py, script = "/venv/bin/python", "/src/bin/oci_net.py"
    assert config["hooks"]["createRuntime"] == [{"path": py, "args": [
        py, script, "hook", "connect", "web", "--state-dir", "/srv/net", "--name", "api"]}]
    assert config["hooks"]["poststop"] == [{"path": py, "args": [
        py, script, "hook", "disconnect", "web", "--state-dir", "/srv/net"]}]


def test_user_namespace(make, tmp_path):
    config = make(uid_maps=["0:100000:65536"], gid_maps=["0:200000:65536"])
    assert {"type": "user"} in config["linux"]["namespaces"]
    if os.geteuid() == 0:  # the container's root owns its etc files and volumes
        for path in (tmp_path / "bundle" / "hosts", mount_at(config, "/data")["source"]):
            assert (os.stat(path).st_uid, os.stat(path).st_gid) == (100000, 200000)
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert "gid=5" in mount_at(config, "/dev/pts")["options"]
    config = make(uid_maps=["0:100000:1"], gid_maps=["0:100000:1"])
    assert "gid=5" not in mount_at(config, "/dev/pts")["options"]
    with pytest.raises(UsageError):
        make(uid_maps=["0:1:1"])


def test_etc_files_and_annotations(make, tmp_path):
    config = make(hostname="web1", add_hosts=["db:10.1.2.3", "v6:fd00::1"], dns=["192.0.2.53"],
                  dns_search=["example.test"], dns_options=["ndots:2"], annotations=["com.example=yes",
                                                                                    "org.opencontainers.image.os=x"])
    bundle = tmp_path / "bundle"
    hosts = (bundle / "hosts").read_text()
    assert hosts.startswith("127.0.0.1\tlocalhost\n") and "127.0.1.1\tweb1\n" in hosts
    assert hosts.endswith("10.1.2.3\tdb\nfd00::1\tv6\n")
    assert (bundle / "resolv.conf").read_text() == "nameserver 192.0.2.53\nsearch example.test\noptions ndots:2\n"
    assert config["annotations"]["com.example"] == "yes" and config["annotations"]["org.opencontainers.image.os"] == "x"
    for bad in ({"dns": ["not-an-ip"]}, {"hostname": "a\nb"}, {"hostname": "-x"}, {"dns_search": ["a b"]},
                {"add_hosts": ["a\nb:1.2.3.4"]}):
        with pytest.raises(InvalidInput):
            make(**bad)


def test_resolv_conf_from_the_host_drops_loopback(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\n"
                    "search corp.test\noptions edns0\n")
    assert etcfiles.resolv_conf([], [], [], str(host)) == \
        "nameserver 192.0.2.1\nsearch corp.test\noptions edns0\n"
    assert "nameserver 127.0.0.53" in etcfiles.resolv_conf([], [], [], str(host), keep_loopback=True)
    assert etcfiles.resolv_conf([], ["x.test"], [], str(host)) == \
        "nameserver 192.0.2.1\noptions edns0\nsearch x.test\n"


def test_write_validates_before_writing(tmp_path, make):
    config = make()
    path = build.write(str(tmp_path / "bundle"), config)
    assert json.loads(open(path).read()) == config
    config["process"]["cwd"] = 7
    with pytest.raises(InvalidInput, match=r"config.json: /process/cwd"):
        build.write(str(tmp_path / "bundle"), config)
    assert json.loads(open(path).read())["process"]["cwd"] == "/"  # the old config is untouched


def test_seccomp_profile_gates_calls_by_capability():
    def allowed(profile):
        return set(profile["syscalls"][0]["names"])

    base = seccomp.default_profile(DOCKER_DEFAULT_CAPS, "x86_64", (6, 1))
    names = allowed(base)
    assert {"read", "write", "openat", "execve", "socketcall", "chroot", "ptrace"} <= names
    refused = {"kexec_load", "open_by_handle_at", "add_key", "keyctl", "request_key", "bpf", "mount", "umount2",
               "unshare", "setns", "reboot", "swapon", "swapoff", "init_module", "finit_module", "delete_module",
               "iopl", "ioperm", "acct", "settimeofday", "clock_settime", "personality", "clone", "clone3"}
    assert not refused & names
    assert base["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    rules = {json.dumps(r["names"]): r for r in base["syscalls"][1:]}
    assert rules['["clone"]']["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    assert rules['["clone3"]'] == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    personas = [r["args"][0]["value"] for r in base["syscalls"] if r["names"] == ["personality"]]
    assert sorted(personas) == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert "ptrace" not in allowed(seccomp.default_profile(DOCKER_DEFAULT_CAPS, "x86_64", (4, 4)))
    assert "ptrace" in allowed(seccomp.default_profile(["CAP_SYS_PTRACE"], "x86_64", (4, 4)))
    for cap, calls in [("CAP_SYS_ADMIN", {"mount", "unshare", "setns", "umount2"}), ("CAP_SYS_BOOT", {"reboot"}),
                       ("CAP_SYS_MODULE", {"init_module", "finit_module"}), ("CAP_SYS_TIME", {"settimeofday"}),
                       ("CAP_SYS_RAWIO", {"iopl", "ioperm"}), ("CAP_SYS_PACCT", {"acct"})]:
        assert calls <= allowed(seccomp.default_profile([cap], "x86_64", (6, 1))), cap
    assert "kexec_load" not in allowed(seccomp.default_profile(defaults.ALL_CAPS, "x86_64", (6, 1)))
    admin = seccomp.default_profile(["CAP_SYS_ADMIN"], "x86_64", (6, 1))
    assert {"names": ["clone", "clone3"], "action": "SCMP_ACT_ALLOW"} in admin["syscalls"]
    with pytest.raises(Unsupported):
        seccomp.default_profile([], "pdp11")


def test_docker_format_profiles_are_evaluated_for_the_container(make, tmp_path):
    docker = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
              "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                          {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
              "syscalls": [
                  {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
                  {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                  {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                  {"names": ["iopl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
                  {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                  {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]},
                   "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    converted = seccomp.from_docker(docker, ["CAP_CHOWN"], "x86_64", (6, 1))
    assert seccomp.is_docker_format(docker) and not seccomp.is_docker_format(converted)
    assert converted["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert [r["names"][0] for r in converted["syscalls"]] == ["read", "ptrace", "iopl", "clone"]
    assert "comment" not in converted["syscalls"][0]
    admin = seccomp.from_docker(docker, ["CAP_SYS_ADMIN"], "x86_64", (4, 4))
    assert [r["names"][0] for r in admin["syscalls"]] == ["read", "mount", "iopl"]
    path = tmp_path / "docker.json"
    path.write_text(json.dumps(docker))
    if platform.machine() == "x86_64":
        assert make(security_opts=[f"seccomp={path}"])["linux"]["seccomp"]["syscalls"][-1]["names"] == ["clone"]


def test_seccomp_profile_loads_into_libseccomp():
    """Every rule of the profile is one libseccomp accepts (what runc and crun do with it)."""
    import seccomp as libseccomp

    profile = seccomp.default_profile(DOCKER_DEFAULT_CAPS)
    f = libseccomp.SyscallFilter(libseccomp.ERRNO(1))
    for rule in profile["syscalls"]:
        action = libseccomp.ALLOW if rule["action"] == "SCMP_ACT_ALLOW" else libseccomp.ERRNO(rule.get("errnoRet", 1))
        ops = {"SCMP_CMP_EQ": libseccomp.EQ, "SCMP_CMP_NE": libseccomp.NE, "SCMP_CMP_MASKED_EQ": libseccomp.MASKED_EQ}
        args = [libseccomp.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0))
                for a in rule.get("args", [])]
        for name in rule["names"]:
            f.add_rule(action, name, *args)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_new_volumes_take_the_owner_and_mode_of_the_image_directory(tmp_path):
    rootfs = make_rootfs(tmp_path / "rootfs")
    (rootfs / "data").mkdir(mode=0o700)
    os.chown(rootfs / "data", 1000, 1000)
    os.symlink("/../../..", rootfs / "escape")  # resolved inside the rootfs: its root, owned by root
    image = {"config": {"Cmd": ["sh"], "Volumes": {"/data": {}, "/escape": {}, "/missing": {}}}}
    config = build.build(image, str(rootfs), str(tmp_path / "b"), build.BundleOptions())
    data = os.stat(mount_at(config, "/data")["source"])
    assert (data.st_uid, data.st_gid, data.st_mode & 0o7777) == (1000, 1000, 0o700)
    assert os.stat(mount_at(config, "/escape")["source"]).st_mode & 0o7777 == os.stat(rootfs).st_mode & 0o7777
    assert os.stat(mount_at(config, "/missing")["source"]).st_mode & 0o7777 == 0o755


@pytest.mark.skipif(not os.path.exists("/usr/share/containers/seccomp.json"), reason="containers-common (skopeo)")
def test_docker_format_profile_of_containers_common(make):
    config = make(security_opts=["seccomp=/usr/share/containers/seccomp.json"])
    rules = config["linux"]["seccomp"]["syscalls"]
    assert rules and all("includes" not in r and "excludes" not in r for r in rules)
