"""Keys read as Go's encoding/json reads them into structs (oci.gojson), and the CNI configuration and
oci-run's config.json through it."""

from __future__ import annotations

import json

import pytest

from oci import gojson
from oci.net import cni

PORT = {"hostPort": None, "containerPort": None, "protocol": None, "hostIP": None}
FIELDS = {"name": None, "runtimeConfig": {"portMappings": [PORT]}, "ipam": {"subnet": None}}


def test_keys_match_fields_ignoring_case_and_unknown_ones_are_named():
    unknown: list[str] = []
    doc = {"Name": "n", "RUNTIMECONFIG": {"portMappings": [{"HostPort": 80, "containerport": 8080, "Protocol": "tcp",
                                                             "HostIP": "", "Name": "web"}],
                                          "bandwidth": {"IngressRate": 1}},
           "ipam": {"subnet": "10.0.0.0/24", "ranges": []}, "a/b~c": 1}
    out = gojson.decode(doc, FIELDS, unknown=unknown)
    assert out == {"name": "n", "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 8080,
                                                                    "protocol": "tcp", "hostIP": ""}]},
                   "ipam": {"subnet": "10.0.0.0/24"}}
    assert unknown == ["/runtimeConfig/portMappings/0/Name", "/runtimeConfig/bandwidth", "/ipam/ranges", "/a~1b~0c"]


def test_the_last_matching_key_wins_as_in_go():
    assert gojson.decode({"name": "a", "NAME": "b"}, FIELDS, unknown=[]) == {"name": "b"}
    assert gojson.decode({"NAME": "b", "name": "a"}, FIELDS, unknown=[]) == {"name": "a"}


def test_go_folds_the_kelvin_sign_and_the_long_s():
    fields = {"kind": None, "subnet": None}
    assert gojson.decode({"\u212aind": 1, "\u017fubnet": 2}, fields, unknown=[]) == {"kind": 1, "subnet": 2}


def test_an_exact_field_name_is_preferred_to_a_folded_one():
    """Two fields that differ only in case: each key goes to the field spelled exactly as it is."""
    fields = {"ab": None, "AB": None}
    assert gojson.decode({"AB": 1, "ab": 2, "Ab": 3}, fields, unknown=[]) == {"AB": 1, "ab": 3}


def test_go_folds_one_letter_at_a_time():
    """bytes.EqualFold: ß is not ss (Unicode's full folding would make it so)."""
    unknown: list[str] = []
    assert gojson.decode({"STRASSE": 1, "straße": 2}, {"straße": None}, unknown=unknown) == {"straße": 2}
    assert unknown == ["/STRASSE"]
    assert gojson.fold("Hostname") == gojson.fold("HOSTNAME") == gojson.fold("hostname")
    assert gojson.fold("\u212a") == gojson.fold("k") and gojson.fold("\u017f") == gojson.fold("s")


def test_null_leaves_a_field_as_it_was():
    assert gojson.decode({"name": "a", "Name": None}, FIELDS, unknown=[]) == {"name": "a"}
    assert gojson.decode({"name": None}, FIELDS, unknown=[]) == {}


def test_a_later_object_is_decoded_into_the_struct_an_earlier_one_filled():
    fields = {"ipam": {"subnet": None, "gateway": None, "opts": {"a": None, "b": None}}}
    doc = {"ipam": {"subnet": "10.0.0.0/24", "opts": {"a": 1}}, "IPAM": {"gateway": "10.0.0.1", "opts": {"b": 2}}}
    assert gojson.decode(doc, fields, unknown=[]) == {"ipam": {"subnet": "10.0.0.0/24", "gateway": "10.0.0.1",
                                                               "opts": {"a": 1, "b": 2}}}
    assert gojson.decode({"ipam": {"subnet": "x"}, "ipam ": 1}, fields, unknown=[]) == {"ipam": {"subnet": "x"}}


def test_unknown_keys_stay_for_a_review_when_not_collected():
    """oci-run keeps unknown properties in place: its review names them in --log."""
    folded: list[str] = []
    doc = {"Hostname": "h", "extra": {"X": 1}, "process": {"Cwd": "/", "other": None}}
    out = gojson.decode(doc, {"hostname": None, "process": {"cwd": None}}, folded=folded)
    assert out == {"hostname": "h", "extra": {"X": 1}, "process": {"cwd": "/", "other": None}}
    assert folded == ["/Hostname: read as 'hostname', as Go's JSON decoder reads it",
                      "/process/Cwd: read as 'cwd', as Go's JSON decoder reads it"]


def test_oci_run_reads_a_config_with_gos_rules(tmp_path):
    """A later key overrides an earlier one (runc's decoder), whichever spelling it has."""
    from oci.runtime import config
    from oci.runtime.defaults import default_config

    doc = default_config()
    text = json.dumps(doc)[:-1] + ', "Hostname": "later"}'
    (tmp_path / "config.json").write_text(text)
    assert config.load(str(tmp_path))["hostname"] == "later"


def test_values_that_are_not_objects_are_left_for_the_schema():
    assert gojson.decode({"runtimeConfig": [1]}, FIELDS, unknown=[]) == {"runtimeConfig": [1]}
    assert gojson.decode("x", FIELDS, unknown=[]) == "x"


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
