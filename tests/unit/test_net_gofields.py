"""Keys read as Go's encoding/json reads them into structs (oci.net.gofields), and the CNI configuration through it."""

from __future__ import annotations

import json

import pytest

from oci.net import cni, gofields

PORT = {"hostPort": None, "containerPort": None, "protocol": None, "hostIP": None}
FIELDS = {"name": None, "runtimeConfig": {"portMappings": [PORT]}, "ipam": {"subnet": None}}


def test_keys_match_fields_ignoring_case_and_unknown_ones_are_named():
    unknown: list[str] = []
    doc = {"Name": "n", "RUNTIMECONFIG": {"portMappings": [{"HostPort": 80, "containerport": 8080, "Protocol": "tcp",
                                                             "HostIP": "", "Name": "web"}],
                                          "bandwidth": {"IngressRate": 1}},
           "ipam": {"subnet": "10.0.0.0/24", "ranges": []}, "a/b~c": 1}
    out = gofields.match(doc, FIELDS, "", unknown)
    assert out == {"name": "n", "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 8080,
                                                                    "protocol": "tcp", "hostIP": ""}]},
                   "ipam": {"subnet": "10.0.0.0/24"}}
    assert unknown == ["/runtimeConfig/portMappings/0/Name", "/runtimeConfig/bandwidth", "/ipam/ranges", "/a~1b~0c"]


def test_the_last_matching_key_wins_as_in_go():
    assert gofields.match({"name": "a", "NAME": "b"}, FIELDS, "", []) == {"name": "b"}
    assert gofields.match({"NAME": "b", "name": "a"}, FIELDS, "", []) == {"name": "a"}


def test_go_folds_the_kelvin_sign_and_the_long_s():
    fields = {"kind": None, "subnet": None}
    assert gofields.match({"\u212aind": 1, "\u017fubnet": 2}, fields, "", []) == {"kind": 1, "subnet": 2}


def test_values_that_are_not_objects_are_left_for_the_schema():
    assert gofields.match({"runtimeConfig": [1]}, FIELDS, "", []) == {"runtimeConfig": [1]}
    assert gofields.match("x", FIELDS, "", []) == "x"


def test_parse_config_logs_what_it_ignores_in_one_line(capsys):
    conf = cni.parse_config(json.dumps({"cniVersion": "1.0.0", "Name": "n", "type": "ocikit", "isGateway": True,
                                        "ipam": {"subnet": "10.0.0.0/24"}}).encode(), "ADD")
    assert conf["name"] == "n" and "isGateway" not in conf
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/isGateway" in err and err.startswith("oci-net: ADD n: ignored")


@pytest.mark.parametrize("data, code", [(b"{", cni.DECODE_FAILURE), (b"[]", cni.DECODE_FAILURE),
                                        (b'{"cniVersion": "0.1.0"}', cni.INCOMPATIBLE_VERSION)])
def test_parse_config_errors(data, code):
    with pytest.raises(cni.CniError) as caught:
        cni.parse_config(data)
    assert caught.value.code == code


def test_version_echoes_the_input_version_and_check_needs_0_4_0(monkeypatch):
    assert cni.main(b'{"cniVersion": "0.4.0"}', {"CNI_COMMAND": "VERSION"}) == (
        0, {"cniVersion": "0.4.0", "supportedVersions": cni.SUPPORTED})
    monkeypatch.setenv("CNI_COMMAND", "CHECK")
    old = {"cniVersion": "0.3.1", "name": "n", "type": "ocikit", "ipam": {"subnet": "10.0.0.0/24"},
           "stateDir": "/nonexistent/ocikit-test"}
    code, out = cni.main(json.dumps(old).encode())
    assert code == 1 and out["code"] == cni.INCOMPATIBLE_VERSION and "CHECK" in out["msg"]
