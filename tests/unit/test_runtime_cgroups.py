"""cgroup helpers that need no root: paths, the v2 device program's shape."""

import struct

from oci.linux.cgroups import normalize_path
from oci.linux.cgroups.devices_bpf import EXIT, MOV32_K, program


def test_cgroup_paths():
    assert normalize_path(None, "c1") == "/oci-run/c1"
    assert normalize_path("/a/b/", "c1") == "/a/b"
    assert normalize_path("a/b", "c1") == "/a/b"
    assert normalize_path("machine.slice:libpod:abc", "c1") == "/machine.slice/libpod-abc.scope"
    assert normalize_path("/a/../../b", "c1") == "/b"  # never above the hierarchy's root
    assert normalize_path("../../../x/./y", "c1") == "/x/y"
    assert normalize_path("..:p:n", "c1") == "/p-n.scope"


def decode(code: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]


def test_device_program_checks_the_last_rule_first_and_denies_by_default():
    insns = decode(program([{"allow": False, "access": "rwm"},
                            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]))
    # prologue (6), the allow rule: type, access (3), major, minor, verdict (2); then the all-devices deny
    assert len(insns) == 6 + 1 + 3 + 1 + 1 + 2 + 2
    assert insns[6][0] == 0x55 and insns[6][2] == 7  # wrong type: skip the rest of the block
    assert (insns[12][0], insns[12][3]) == (MOV32_K, 1) and insns[13][0] == EXIT
    assert (insns[14][0], insns[14][3]) == (MOV32_K, 0) and insns[15][0] == EXIT


def test_device_program_without_an_all_devices_rule_ends_in_deny():
    insns = decode(program([{"allow": True, "type": "b", "access": "m"}]))
    assert (insns[-2][0], insns[-2][3], insns[-1][0]) == (MOV32_K, 0, EXIT)
