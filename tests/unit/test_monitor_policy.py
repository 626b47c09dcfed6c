"""Restart policies and Docker's back-off (oci.monitor.policy)."""

import pytest

from oci.errors import InvalidInput
from oci.monitor import policy
from oci.monitor.policy import Backoff, RestartPolicy


def test_parse_docker_spellings():
    assert policy.parse("no") == RestartPolicy("no")
    assert policy.parse("on-failure") == RestartPolicy("on-failure", 0)
    assert policy.parse("on-failure:5") == RestartPolicy("on-failure", 5)
    assert str(policy.parse("on-failure:5")) == "on-failure:5"
    for bad in ("sometimes", "always:3", "on-failure:x", "on-failure:-1"):
        with pytest.raises(InvalidInput):
            policy.parse(bad)


@pytest.mark.parametrize("spec, code, stopped, count, expected", [
    ("no", 1, False, 0, False),
    ("always", 0, False, 0, True),
    ("always", 1, True, 0, False),
    ("unless-stopped", 0, False, 9, True),
    ("unless-stopped", 0, True, 0, False),
    ("on-failure", 0, False, 0, False),
    ("on-failure", 1, False, 100, True),
    ("on-failure:3", 1, False, 2, True),
    ("on-failure:3", 1, False, 3, False),
    ("on-failure:3", None, False, 0, True),
])
def test_should_restart(spec, code, stopped, count, expected):
    assert policy.should_restart(policy.parse(spec), code, stopped, count) is expected


def test_after_a_reboot_always_starts_even_what_a_user_stopped():
    assert policy.restart_at_boot(policy.parse("always"), 0, True, 0)
    assert not policy.restart_at_boot(policy.parse("unless-stopped"), 0, True, 0)
    assert policy.restart_at_boot(policy.parse("unless-stopped"), 0, False, 0)
    assert not policy.restart_at_boot(policy.parse("no"), 1, False, 0)


def test_backoff_doubles_from_100_ms_to_a_minute_and_resets_after_10_s():
    backoff = Backoff()
    delays = [backoff.next(0.5) for _ in range(12)]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert delays[-1] == 60.0 and max(delays) == 60.0
    assert backoff.next(10.0) == 0.1
    assert backoff.next(1.0) == 0.2
    backoff.reset()
    assert backoff.next(0) == 0.1
