"""config.json handling (config.md): schema validation, version range, the engines' quirks read as runc reads
them, unknown properties ignored and logged, what cannot apply refused in one line."""

import json
import os

import pytest

from oci.errors import InvalidDocument, InvalidInput, NotFound, Unsupported
from oci.runtime import config
from oci.runtime.defaults import default_config

DATA = os.path.join(os.path.dirname(__file__), "data", "engines")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))


def write(tmp_path, doc):
    (tmp_path / "config.json").write_text(json.dumps(doc))
    return str(tmp_path)


def with_value(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return doc


def test_the_default_config_is_taken_whole(tmp_path):
    notes: list[str] = []
    doc = config.load(write(tmp_path, default_config()), notes)
    assert doc["process"]["args"] == ["sh"]
    assert notes == []
    found = config.review(default_config(rootless=True))
    assert (found.refused, found.notes) == ([], [])


def test_an_unknown_top_level_property_is_ignored_and_noted(tmp_path):
    """config.md: implementations MUST NOT error on unknown properties, and MUST ignore them."""
    doc = default_config()
    doc["ociKitFuture"] = {"anything": [1, 2]}
    doc["linux"]["somethingNew"] = True
    doc["process"]["capabilities"]["future"] = ["CAP_X"]
    notes: list[str] = []
    assert config.load(write(tmp_path, doc), notes)["ociKitFuture"] == {"anything": [1, 2]}
    path = f"{tmp_path}/config.json"
    assert notes == [f"{path}: /process/capabilities/future: unknown property ignored",
                     f"{path}: /linux/somethingNew: unknown property ignored",
                     f"{path}: /ociKitFuture: unknown property ignored"]


@pytest.mark.parametrize("path, value, note", [
    (("linux", "resources", "memory", "kernel"), 1 << 20, "/linux/resources/memory/kernel: ignored"),
    (("linux", "memoryPolicy"), {"mode": "MPOL_BIND", "nodes": "0"}, "/linux/memoryPolicy: ignored"),
    (("linux", "netDevices"), {"eth0": {}}, "/linux/netDevices: ignored"),
    (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/s"},
     "/linux/seccomp/listenerPath: ignored"),
    (("windows",), {"layerFolders": ["x"]}, "/windows: ignored"),
    (("process", "user", "username"), "root", "/process/user/username: ignored"),
])
def test_what_runc_carries_on_without_is_ignored_and_noted(tmp_path, path, value, note):
    notes: list[str] = []
    config.load(write(tmp_path, with_value(default_config(), path, value)), notes)
    assert [n.split(": ", 1)[1] for n in notes if note in n], notes


@pytest.mark.parametrize("value", [{"disableOOMKiller": False}, {"kernel": 0, "kernelTCP": 0, "swappiness": None}])
def test_no_op_values_say_nothing(tmp_path, value):
    """Docker writes disableOOMKiller false and blockIO.weight 0 into every config."""
    doc = with_value(default_config(), ("linux", "resources", "memory"), value)
    doc["linux"]["resources"]["blockIO"] = {"weight": 0}
    notes: list[str] = []
    config.load(write(tmp_path, doc), notes)
    assert notes == []


@pytest.mark.parametrize("path, value, pointer", [
    (("linux", "intelRdt"), {"closID": "x"}, "/linux/intelRdt"),
    (("linux", "personality"), {"domain": "LINUX", "flags": ["x"]}, "/linux/personality/flags"),
    (("linux", "resources", "rdma"), {"mlx5_1": {"hcaHandles": 3}}, "/linux/resources/rdma"),
])
def test_what_would_weaken_isolation_or_limits_is_refused_by_pointer(tmp_path, path, value, pointer):
    with pytest.raises(Unsupported) as info:
        config.load(write(tmp_path, with_value(default_config(), path, value)))
    assert str(info.value).startswith(f"{tmp_path}/config.json: {pointer}: ")
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 8


def test_security_labels_without_the_lsm(tmp_path, monkeypatch):
    """As runc: a process label needs SELinux (AppArmor), a mount label without SELinux is ignored."""
    monkeypatch.setattr(config, "security_enabled", lambda kind: False)
    doc = default_config()
    doc["process"]["apparmorProfile"] = ""
    doc["process"]["selinuxLabel"] = ""
    doc["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0"
    notes: list[str] = []
    config.load(write(tmp_path, doc), notes)
    assert [n.split(": ", 1)[1] for n in notes] == [
        "/linux/mountLabel: ignored: SELinux is not enabled on this host (as runc ignores it)"]
    for key in ("apparmorProfile", "selinuxLabel"):
        with pytest.raises(Unsupported, match=f"/process/{key}: "):
            config.load(write(tmp_path, with_value(default_config(), ("process", key), "x")))


def test_mount_idmaps_are_read():
    """A mount's mappings (oci.linux.idmap applies them at create) are neither refused nor noted."""
    doc = default_config()
    doc["mounts"][0]["uidMappings"] = [{"containerID": 0, "hostID": 1, "size": 1}]
    found = config.review(doc)
    assert (found.refused, found.notes) == ([], [])


def test_one_line_for_the_whole_config(tmp_path):
    """podman --privileged lists every host device: one error line, not one per entry (conmon's pipe)."""
    doc = default_config()
    doc["linux"]["devices"] = [{"path": f"/dev/x{i}", "type": "c", "major": 1, "minor": i, "fileMode": "bad"}
                               for i in range(50)]
    with pytest.raises(InvalidDocument) as info:
        config.load(write(tmp_path, doc))
    lines = info.value.lines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{tmp_path}/config.json: /linux/devices/0/fileMode: ")
    assert lines[0].endswith("(and 49 more: /linux/devices/1/fileMode, /linux/devices/10/fileMode, "
                             "/linux/devices/11/fileMode, ...)")


def test_file_type_bits_in_device_file_modes_are_dropped(tmp_path):
    """podman 4.3 writes stat(2)'s st_mode: S_IFCHR|0666 (8630), S_IFBLK|0600 (24960)."""
    doc = default_config()
    doc["linux"]["devices"] = [{"path": "/dev/a", "type": "c", "major": 1, "minor": 3, "fileMode": 8630},
                               {"path": "/dev/b", "type": "b", "major": 7, "minor": 0, "fileMode": 24960},
                               {"path": "/dev/c", "type": "c", "major": 1, "minor": 5, "fileMode": 0o644}]
    loaded = config.load(write(tmp_path, doc))
    assert [d["fileMode"] for d in loaded["linux"]["devices"]] == [0o666, 0o600, 0o644]


def test_keys_are_matched_as_go_matches_them(tmp_path):
    doc = default_config()
    doc["Hostname"] = doc.pop("hostname")
    del doc["linux"]["resources"]
    doc["linux"]["Resources"] = {"Pids": {"limit": 5}, "memory": None}
    notes: list[str] = []
    loaded = config.load(write(tmp_path, doc), notes)
    assert (loaded["hostname"], loaded["linux"]["resources"]["pids"]["limit"]) == ("oci-run", 5)
    assert len(notes) == 3 and all("as Go's JSON decoder reads it" in n for n in notes)


@pytest.mark.parametrize("engine", sorted(os.listdir(DATA)))
def test_engines_configs_are_taken(tmp_path, engine):
    """Configs Docker 20.10 and podman 4.3 wrote (tests/unit/data/engines, their paths shortened)."""
    with open(os.path.join(DATA, engine)) as f:
        doc = json.load(f)
    notes: list[str] = []
    monkey_root = tmp_path / "rootfs"
    monkey_root.mkdir()
    doc["root"]["path"] = str(monkey_root)
    loaded = config.load(write(tmp_path, doc), notes)
    assert config.rootfs_of(str(tmp_path), loaded) == str(monkey_root)
    assert [n for n in notes if "unknown" in n] == []


def test_invalid_config_names_file_and_pointer(tmp_path):
    doc = default_config()
    doc["process"]["args"] = "sh"
    with pytest.raises(InvalidDocument) as info:
        config.load(write(tmp_path, doc))
    assert info.value.lines()[0].startswith(f"{tmp_path}/config.json: /process/args")


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(args=[]), "/process/args: must not be empty"),
    (lambda p: p.update(cwd="work"), "/process/cwd: 'work' is not an absolute path"),
    (lambda p: p.update(rlimits=[{"type": "RLIMIT_FROB", "soft": 1, "hard": 1}]),
     "/process/rlimits/0/type: unknown rlimit RLIMIT_FROB"),
    (lambda p: p.update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2),
     "/process/rlimits/1/type: rlimit RLIMIT_NOFILE listed twice"),
])
def test_the_process_is_checked_before_anything_starts(tmp_path, change, message):
    doc = default_config()
    change(doc["process"])
    with pytest.raises(InvalidInput) as info:
        config.load(write(tmp_path, doc))
    assert str(info.value) == f"{tmp_path}/config.json: {message}"
    assert info.value.exit_code == 2


def test_a_missing_root_is_not_found(tmp_path):
    loaded = config.load(write(tmp_path, default_config()))
    with pytest.raises(NotFound, match="/root/path: .* does not exist"):
        config.rootfs_of(str(tmp_path), loaded)


@pytest.mark.parametrize("namespaces, sysctl, ok", [
    (["ipc", "network", "uts", "mount"], {"kernel.shmmax": "1", "net.ipv4.ip_forward": "1"}, True),
    (["mount"], {"net.ipv4.ip_forward": "1"}, False),
    (["network", "mount"], {"kernel.shmmax": "1"}, False),
    (["ipc", "network", "uts", "mount"], {"vm.swappiness": "1"}, False),
])
def test_sysctls_only_in_the_containers_own_namespaces(tmp_path, namespaces, sysctl, ok):
    doc = default_config()
    doc["linux"]["namespaces"] = [{"type": kind} for kind in namespaces]
    doc["linux"]["sysctl"] = sysctl
    if ok:
        config.load(write(tmp_path, doc))
    else:
        with pytest.raises(InvalidInput, match="/linux/sysctl/"):
            config.load(write(tmp_path, doc))


def test_no_mount_namespace(tmp_path):
    """An empty namespaces list runs (as runc runs it); paths cannot be masked without a mount namespace."""
    doc = default_config()
    doc["linux"]["namespaces"] = []
    del doc["hostname"]
    with pytest.raises(InvalidInput, match="/linux/maskedPaths: needs a mount namespace"):
        config.load(write(tmp_path, doc))
    del doc["linux"]["maskedPaths"], doc["linux"]["readonlyPaths"]
    config.load(write(tmp_path, doc))


@pytest.mark.parametrize("key", ["hostname", "domainname"])
def test_a_hostname_needs_a_uts_namespace(tmp_path, key):
    """Not applied would be silently dropped, applied would rename the host: refused, as runc and crun do."""
    doc = default_config()
    doc.pop("hostname", None)
    doc[key] = "c1"
    doc["linux"]["namespaces"] = [ns for ns in doc["linux"]["namespaces"] if ns["type"] != "uts"]
    with pytest.raises(InvalidInput, match=f"/{key}: needs a UTS namespace"):
        config.load(write(tmp_path, doc))
    doc["linux"]["namespaces"].append({"type": "uts", "path": "/proc/1/ns/uts"})
    config.load(write(tmp_path, doc))


@pytest.mark.parametrize("version, ok", [("1.0.0", True), ("1.2.1", True), ("1.3.0", True), ("1.1.0-rc.1", True),
                                         ("2.0.0", False), ("0.9.0", False)])
def test_oci_version_range(tmp_path, version, ok):
    doc = default_config()
    doc["ociVersion"] = version
    if ok:
        config.load(write(tmp_path, doc))
    else:
        with pytest.raises(Unsupported, match="/ociVersion"):
            config.load(write(tmp_path, doc))


@pytest.mark.parametrize("options, pointer", [(["rbind", "acl"], "/mounts/7/options/1"),
                                              (["noacl"], "/mounts/7/options/0")])
def test_unimplemented_mount_options_are_refused(tmp_path, options, pointer):
    doc = default_config()
    doc["mounts"].append({"destination": "/x", "type": "bind" if "bind" in options[0] else "tmpfs",
                          "source": "/tmp", "options": options})
    with pytest.raises(Unsupported, match=pointer):
        config.load(write(tmp_path, doc))


def test_data_options_of_a_bind_mount_are_ignored_and_noted(tmp_path):
    """runc 1.1 and crun run bind mounts with tmpfs-style options; the kernel ignores them."""
    doc = default_config()
    doc["mounts"].append({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind", "mode=755"]})
    doc["mounts"].append({"destination": "/y", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]})
    notes: list[str] = []
    config.load(write(tmp_path, doc), notes)
    assert [n.split(": ", 1)[1] for n in notes] == [
        "/mounts/7/options/1: 'mode=755' ignored: it means nothing to a bind mount"]


def test_a_new_user_namespace_needs_mappings(tmp_path):
    doc = default_config()
    doc["linux"]["namespaces"].append({"type": "user"})
    with pytest.raises(InvalidInput, match="/linux/uidMappings: a new user namespace needs mappings"):
        config.load(write(tmp_path, doc))
    doc["linux"]["namespaces"][-1]["path"] = "/proc/1/ns/user"  # joined: its mappings are made already
    config.load(write(tmp_path, doc))


def test_one_runtime_spec_version_everywhere():
    """The version oci-run reports, writes and accepts at most is the vendored schemas' (spec/README.md)."""
    from pathlib import Path

    from oci import RUNTIME_SPEC_VERSION
    from oci.bundle.build import BundleOptions
    from oci.runtime.features import features

    readme = (Path(__file__).resolve().parents[2] / "spec" / "README.md").read_text()
    assert f"| OCI runtime-spec | v{RUNTIME_SPEC_VERSION} |" in readme
    assert default_config()["ociVersion"] == RUNTIME_SPEC_VERSION == BundleOptions().oci_version
    assert features()["ociVersionMax"] == RUNTIME_SPEC_VERSION
    assert ".".join(map(str, config.MAX_VERSION)) == RUNTIME_SPEC_VERSION
