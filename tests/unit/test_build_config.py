"""oci.build.config: creating and editing image configs."""

import pytest

from oci import schema
from oci.build import config as configs
from oci.digest import Digest
from oci.errors import InvalidInput
from oci.platform import Platform

BASE = {"architecture": "arm64", "os": "linux", "variant": "v8",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv", "Labels": {"keep": "me"},
                   "ExposedPorts": {"22/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": []}}


def test_new_config_is_valid_and_carries_the_platform():
    config = configs.new_config(Platform.parse("linux/arm/v7"))
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
    schema.validate(config, "config", "test")


def test_apply_sets_and_merges_fields_without_touching_the_base():
    changes = configs.Changes(cmd=["run", "-v"], env=[("A", "2"), ("B", "x=y")], workdir="app", user="1000:1000",
                              labels={"new": "label"}, exposed_ports=["80/tcp"], volumes=["/data"],
                              stop_signal="SIGINT")
    config = configs.apply(BASE, changes)
    settings = config["config"]
    assert settings["Cmd"] == ["run", "-v"] and settings["Env"] == ["PATH=/bin", "A=2", "B=x=y"]
    assert settings["WorkingDir"] == "/srv/app" and settings["User"] == "1000:1000"
    assert settings["Labels"] == {"keep": "me", "new": "label"}
    assert settings["ExposedPorts"] == {"22/tcp": {}, "80/tcp": {}} and settings["Volumes"] == {"/data": {}}
    assert settings["StopSignal"] == "SIGINT"
    assert BASE["config"]["Cmd"] == ["sh"] and "User" not in BASE["config"]
    schema.validate(config, "config", "test")


def test_entrypoint_resets_the_base_cmd_and_empty_clears():
    assert "Cmd" not in configs.apply(BASE, configs.Changes(entrypoint=["/init"]))["config"]
    both = configs.apply(BASE, configs.Changes(entrypoint=["/init"], cmd=["x"]))["config"]
    assert both["Entrypoint"] == ["/init"] and both["Cmd"] == ["x"]
    assert "Cmd" not in configs.apply(BASE, configs.Changes(cmd=[""]))["config"]
    assert configs.apply(BASE, configs.Changes(workdir="/abs/../x"))["config"]["WorkingDir"] == "/x"


def test_history_and_diff_ids():
    config = configs.apply(BASE, configs.Changes())
    diff_id = Digest.of(b"layer")
    configs.add_history(config, configs.timestamp(0), "made", diff_id, "why")
    configs.add_history(config, configs.timestamp(86400), "config", None)
    assert config["rootfs"]["diff_ids"] == [str(diff_id)] and config["created"] == "1970-01-02T00:00:00Z"
    assert config["history"] == [
        {"created": "1970-01-01T00:00:00Z", "created_by": "made", "comment": "why"},
        {"created": "1970-01-02T00:00:00Z", "created_by": "config", "empty_layer": True}]
    schema.validate(config, "config", "test")


@pytest.mark.parametrize("text,expected", [("80", "80/tcp"), ("53/UDP", "53/udp"), ("9/sctp", "9/sctp")])
def test_ports(text, expected):
    assert configs.parse_port(text) == expected


@pytest.mark.parametrize("call", [
    lambda: configs.parse_port("0"), lambda: configs.parse_port("80/icmp"), lambda: configs.parse_port("http"),
    lambda: configs.parse_pair("NOEQUALS", "--env"), lambda: configs.parse_pair("=v", "--env"),
    lambda: configs.parse_epoch("yesterday"), lambda: configs.parse_signal("SIG TERM"),
    lambda: configs.check_volume("relative"),
])
def test_bad_values_are_invalid_input(call):
    with pytest.raises(InvalidInput):
        call()


def test_signal_and_epoch():
    assert configs.parse_signal("term") == "SIGTERM" and configs.parse_signal("9") == "9"
    assert configs.parse_epoch("") is None and configs.parse_epoch("42") == 42
