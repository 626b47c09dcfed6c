"""JSON output without the json package (oci.jsonout): the same text json.dumps writes."""

import json

from hypothesis import given
from hypothesis import strategies as st

from oci import jsonout

plain = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=20)


@given(plain)
def test_dumps_writes_what_json_dumps_writes(document):
    assert jsonout.dumps(document) == json.dumps(document)
    assert jsonout.dumps(document, separators=(",", ":")) == json.dumps(document, separators=(",", ":"))
    assert jsonout.dumps(document, indent=2) == json.dumps(document, indent=2)
    assert jsonout.dumps(document, indent=0) == json.dumps(document, indent=0)


def test_indented_keys_that_are_not_strings():
    document = {7: [], 2.5: {}, True: [1, {"a": None}], None: "x"}
    assert jsonout.dumps(document, indent=2) == json.dumps(document, indent=2)


def test_state_document():
    state = {"ociVersion": "1.2.1", "id": "c\u00e9", "pid": 7, "status": "running", "bundle": "/b",
             "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00.000000000Z", "annotations": {"k": "v\n"},
             "owner": ""}
    assert json.loads(jsonout.dumps(state)) == state
