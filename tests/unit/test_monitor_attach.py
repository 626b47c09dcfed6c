"""The attach protocol: frames, detach keys, and the JSON decoding the commands use."""

import math

import pytest

from oci.errors import Conflict, NotFound, OciError
from oci.monitor import attach, proto


def test_frames_survive_any_split():
    stream = proto.frame(b"o", b"hello") + proto.frame(b"x", b"3") + proto.frame(b"e", b"")
    for cut in range(len(stream) + 1):
        frames = proto.Frames()
        assert frames.feed(stream[:cut]) + frames.feed(stream[cut:]) == [(b"o", b"hello"), (b"x", b"3"), (b"e", b"")]


def test_docker_detach_keys():
    assert attach.parse_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert attach.parse_keys("ctrl-@,a,ctrl-[") == b"\x00a\x1b"
    for bad in ("ctrl-1", "ctrl-pq", "", "shift-a"):
        with pytest.raises(OciError):
            attach.parse_keys(bad)


def test_detach_scanner_holds_a_started_sequence_and_releases_a_broken_one():
    scanner = attach.DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == (b"ab", False)
    assert scanner.feed(b"c") == (b"\x10c", False)
    assert scanner.feed(b"\x10\x10") == (b"\x10", False)
    assert scanner.feed(b"\x11rest") == (b"", True)
    assert scanner.feed(b"x\x10\x11") == (b"x", True)


def test_decode_without_json_reads_what_json_reads():
    doc = '{"a": [1, 2.5, true, null, "\\u00e9\\n"], "b": {"c": -0}} '
    assert proto.decode(doc) == {"a": [1, 2.5, True, None, "é\n"], "b": {"c": 0}}
    assert math.isinf(proto.decode("[Infinity]")[0])
    for bad in ("", "{", "[1] [2]", "{'a': 1}"):
        with pytest.raises(ValueError):
            proto.decode(bad)


def test_answers_carry_exit_codes():
    assert isinstance(proto.error_from({"ok": False, "error": "x", "code": 3}), NotFound)
    assert isinstance(proto.error_from({"ok": False, "error": "x", "code": 7}), Conflict)
    assert proto.error_answer(Conflict("busy")) == {"ok": False, "error": "busy", "code": 7}
