"""oci-net's validation: the memo of valid documents and the shortcuts for per-container documents."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oci import schema
from oci.errors import InvalidDocument
from oci.net import cni, validation

# Values of every JSON kind, the edges of the port range and the protocol enum among them
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.sampled_from([0, 1, 65535, 65536]),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["tcp", "udp", "TCP", "Tcp", "sctp"]), st.text(max_size=4))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner,
                                                                                           max_size=2), max_leaves=4)
MAPPING = st.dictionaries(st.sampled_from(["hostPort", "containerPort", "protocol", "hostIP", "other"]),
                          SCALARS | VALUES, max_size=5)
ATTACHMENT = st.dictionaries(st.sampled_from(["containerID", "ifname", "other"]), SCALARS, max_size=3)
VOLATILE = st.fixed_dictionaries({}, optional={
    "prevResult": st.dictionaries(st.text(max_size=3), SCALARS, max_size=2) | SCALARS,
    "runtimeConfig": st.fixed_dictionaries({}, optional={
        "portMappings": st.lists(MAPPING, max_size=3) | SCALARS,
        "aliases": VALUES,
        "ips": st.lists(st.sampled_from(["10.0.0.5", "10.0.0.5/24", "fd00::5/64", "10.0.0.5\n", "/24", "x"])
                        | st.text(max_size=6), max_size=2) | SCALARS,
        "mac": st.sampled_from(["02:42:0a:00:00:02", "02:42:0A:00:00:2", "02:42:0a:00:00:02\n"]) | SCALARS,
    }) | SCALARS,
    "cni.dev/valid-attachments": st.lists(ATTACHMENT, max_size=2) | SCALARS,
})
BASE = {"cniVersion": "1.0.0", "name": "n", "type": "ocikit", "ipam": {"subnet": "10.0.0.0/24"}}


@settings(max_examples=300, deadline=None)
@given(VOLATILE)
def test_the_shortcut_never_accepts_what_the_schema_rejects(parts):
    conf = {**BASE, **parts}
    if validation.plainly_valid_volatile(conf):
        assert validation.violations(conf, "cni-config") == []


def test_the_shortcut_accepts_plain_published_ports():
    conf = {**BASE, "prevResult": {"ips": []}, "runtimeConfig": {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"},
                         {"hostPort": 53, "containerPort": 53, "protocol": "udp"}],
        "aliases": {"n": ["web"]}, "ips": ["10.0.0.5/24"], "mac": "02:42:0a:00:00:05"}}
    assert validation.plainly_valid_volatile(conf)


def test_bad_published_ports_are_reported_by_the_schema(tmp_path):
    ports = [{"hostPort": 0, "containerPort": 80}]
    conf = {**BASE, "stateDir": str(tmp_path), "runtimeConfig": {"portMappings": ports}}
    with pytest.raises(InvalidDocument) as caught:
        cni.load_config(cni.json.dumps(conf).encode())
    assert any("/runtimeConfig/portMappings/0/hostPort" in line for line in caught.value.lines())


def test_memo_keeps_valid_documents_only_and_checks_entries_whole(tmp_path):
    memo = str(tmp_path / "validated")
    validation.validate(BASE, "cni-config", "<x>", memo_dir=memo)
    (entry,) = [os.path.join(memo, name) for name in os.listdir(memo)]
    with open(entry, "rb") as f:
        content = f.read()
    with open(entry, "wb") as f:  # an entry whose content differs is a miss, never an answer
        f.write(content[:-1])
    validation.validate(BASE, "cni-config", "<x>", memo_dir=memo)
    with open(entry, "rb") as f:
        assert f.read() == content
    with pytest.raises(InvalidDocument):
        validation.validate({**BASE, "ipam": {"subnet": "10.0.0.0/2x"}}, "cni-config", "<x>", memo_dir=memo)
    assert os.listdir(memo) == [os.path.basename(entry)]


STATE = st.fixed_dictionaries({}, optional={
    "ociVersion": SCALARS, "id": SCALARS, "bundle": SCALARS, "pid": SCALARS,
    "status": st.sampled_from(["creating", "created", "running", "stopped", "paused", ""]) | SCALARS,
    "annotations": st.dictionaries(st.text(max_size=2), SCALARS, max_size=2) | SCALARS,
    "other": VALUES,
})


@settings(max_examples=300, deadline=None)
@given(STATE)
def test_the_state_shortcut_never_accepts_what_the_runtime_schema_rejects(state):
    if validation.plainly_valid_state(state):
        assert schema.violations(state, "state") == []


def test_the_state_shortcut_accepts_what_runtimes_send():
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "created", "pid": 4242, "bundle": "/b",
             "annotations": {"org.opencontainers.image.title": "web"}}
    assert validation.plainly_valid_state(state)
    assert not validation.plainly_valid_state({**state, "pid": -1})
