"""oci.linux.capabilities: what cannot be granted is left out with a warning (config.md#linux-process), decided by
capset(2)'s rules against the capabilities a fake kernel holds; the sets applied in the kernel's order."""

from __future__ import annotations

import pytest

from oci.linux import capabilities

CHOWN, KILL, NET_RAW, SYS_ADMIN, SYS_BOOT = 0, 5, 13, 21, 22


def bits(*numbers: int) -> int:
    return sum(1 << n for n in numbers)


@pytest.fixture
def held(monkeypatch, fake_kernel):
    """Hold CHOWN, KILL, NET_RAW and SYS_ADMIN (not SYS_BOOT) in bounding and permitted, nothing inheritable."""
    monkeypatch.setattr(capabilities, "last_cap", lambda: 40)
    fake_kernel.bounding = fake_kernel.permitted = fake_kernel.effective = bits(CHOWN, KILL, NET_RAW, SYS_ADMIN)
    fake_kernel.inheritable = 0
    return fake_kernel


def test_what_is_held_is_kept_as_is(held):
    config = {kind: ["CAP_CHOWN", "CAP_KILL"] for kind in ("bounding", "effective", "permitted", "inheritable")}
    assert capabilities.grantable_only(config) == (config, [])


def test_unknown_names_are_ignored_with_one_warning(held):
    config = {"bounding": ["CAP_KILL", "CAP_TEST"], "permitted": ["CAP_KILL", "CAP_TEST"]}
    result, warnings = capabilities.grantable_only(config)
    assert result == {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    assert warnings == ["/process/capabilities: CAP_TEST: unknown to this kernel, ignored"]


def test_a_capability_the_runtime_lacks_is_left_out_of_every_set(held):
    sets = ("bounding", "effective", "permitted", "inheritable", "ambient")
    result, warnings = capabilities.grantable_only({kind: ["CAP_KILL", "CAP_SYS_BOOT"] for kind in sets})
    assert result == {kind: ["CAP_KILL"] for kind in sets}
    assert warnings == ["/process/capabilities: CAP_SYS_BOOT: cannot be granted (oci-run does not hold it here), "
                        "left out"]


def test_sets_made_inconsistent_by_the_config_follow_capset(held):
    """effective within permitted, inheritable within bounding (or already inheritable), ambient within both."""
    config = {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL", "CAP_NET_RAW"],
              "inheritable": ["CAP_KILL", "CAP_CHOWN"], "ambient": ["CAP_KILL", "CAP_SYS_ADMIN"]}
    result, warnings = capabilities.grantable_only(config)
    assert result == {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL"],
                      "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
    assert warnings == ["/process/capabilities/effective: CAP_NET_RAW: not permitted, left out",
                        "/process/capabilities/inheritable: CAP_CHOWN: neither bounding nor permitted, left out",
                        "/process/capabilities/ambient: CAP_SYS_ADMIN: not both permitted and inheritable, left out"]


def test_an_inheritable_capability_already_held_stays(held):
    held.inheritable = bits(NET_RAW)
    result, warnings = capabilities.grantable_only({"bounding": ["CAP_KILL"], "inheritable": ["CAP_NET_RAW"]})
    assert result == {"bounding": ["CAP_KILL"], "inheritable": ["CAP_NET_RAW"]}
    assert warnings == []
