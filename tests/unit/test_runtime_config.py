"""config.json handling: schema validation, version range, and refusal of every unimplemented field."""

import json

import pytest

from oci.errors import InvalidDocument, Unsupported
from oci.runtime import config
from oci.runtime.defaults import default_config


def write(tmp_path, doc):
    (tmp_path / "config.json").write_text(json.dumps(doc))
    return str(tmp_path)


def test_the_default_config_is_fully_supported(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))
    doc = config.load(write(tmp_path, default_config()))
    assert doc["process"]["args"] == ["sh"]
    assert config.unsupported_fields(default_config(rootless=True)) == []


@pytest.mark.parametrize("path, value, pointer", [
    (("linux", "intelRdt"), {"closID": "x"}, "/linux/intelRdt"),
    (("linux", "resources", "cpu"), {"realtimePeriod": 1000}, "/linux/resources/cpu/realtimePeriod"),
    (("process", "apparmorProfile"), "docker-default", "/process/apparmorProfile"),
    (("linux", "mountLabel"), "system_u:x", "/linux/mountLabel"),
    (("linux", "personality"), {"domain": "LINUX", "flags": ["x"]}, "/linux/personality/flags"),
    (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/s"}, "/linux/seccomp/listenerPath"),
    (("linux", "netDevices"), {"eth0": {}}, "/linux/netDevices"),
])
def test_unimplemented_fields_are_refused_by_pointer(tmp_path, monkeypatch, path, value, pointer):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))
    doc = default_config()
    target = doc
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    with pytest.raises(Unsupported) as info:
        config.load(write(tmp_path, doc))
    assert f": {pointer}: not supported by oci-run" in str(info.value)
    assert info.value.exit_code == 8


def test_mount_idmaps_are_refused(tmp_path):
    doc = default_config()
    doc["mounts"][0]["uidMappings"] = [{"containerID": 0, "hostID": 1, "size": 1}]
    assert config.unsupported_fields(doc) == ["/mounts/0/uidMappings"]


def test_empty_security_labels_are_accepted():
    doc = default_config()
    doc["process"]["apparmorProfile"] = ""
    doc["process"]["selinuxLabel"] = ""
    assert config.unsupported_fields(doc) == []


def test_invalid_config_names_file_and_pointer(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))
    doc = default_config()
    doc["process"]["args"] = "sh"
    with pytest.raises(InvalidDocument) as info:
        config.load(write(tmp_path, doc))
    assert info.value.lines()[0].startswith(f"{tmp_path}/config.json: /process/args")


@pytest.mark.parametrize("version, ok", [("1.0.0", True), ("1.2.1", True), ("1.3.0", True), ("1.1.0-rc.1", True),
                                         ("2.0.0", False), ("0.9.0", False)])
def test_oci_version_range(tmp_path, monkeypatch, version, ok):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))
    doc = default_config()
    doc["ociVersion"] = version
    if ok:
        config.load(write(tmp_path, doc))
    else:
        with pytest.raises(Unsupported, match="/ociVersion"):
            config.load(write(tmp_path, doc))


@pytest.mark.parametrize("options, pointer", [(["rbind", "ratime"], "/mounts/7/options/1"),
                                              (["bind", "size=1k"], "/mounts/7/options/1"),
                                              (["idmap"], "/mounts/7/options/0")])
def test_unimplemented_mount_options_are_refused(tmp_path, monkeypatch, options, pointer):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))
    doc = default_config()
    doc["mounts"].append({"destination": "/x", "type": "bind" if "idmap" not in options else "tmpfs",
                          "source": "/tmp", "options": options})
    with pytest.raises(Unsupported, match=pointer):
        config.load(write(tmp_path, doc))
