"""Times as oci-mon writes and reads them (oci.monitor.times)."""

import pytest

from oci.errors import InvalidInput
from oci.monitor import times


def test_format_and_parse_round_trip_with_nanoseconds():
    ns = 1714564800123456789
    text = times.format_ns(ns)
    assert text == "2024-05-01T12:00:00.123456789Z"
    assert times.parse_rfc3339(text) == ns


def test_parse_offsets_and_short_fractions():
    assert times.parse_rfc3339("2024-05-01T14:00:00+02:00") == times.parse_rfc3339("2024-05-01T12:00:00Z")
    assert times.parse_rfc3339("2024-05-01T12:00:00.5Z") % times.NS == 500_000_000
    for bad in ("2024-05-01", "2024-05-01T12:00:00", "2024-05-01T12:00:00.Z", "yesterday"):
        with pytest.raises(ValueError):
            times.parse_rfc3339(bad)


def test_since_takes_times_unix_seconds_and_durations():
    now = 2_000_000_000 * times.NS
    assert times.parse_since("2024-05-01T12:00:00Z") == 1714564800 * times.NS
    assert times.parse_since("1700000000.5") == 1700000000_500_000_000
    assert times.parse_since("10m", now_ns=now) == now - 600 * times.NS
    assert times.parse_since("1h30m", now_ns=now) == now - 5400 * times.NS
    with pytest.raises(InvalidInput, match="--until"):
        times.parse_since("soon", "--until")


def test_human_durations_as_docker_words_them():
    assert times.human_duration(0.5) == "Less than a second"
    assert times.human_duration(1) == "1 second"
    assert times.human_duration(45) == "45 seconds"
    assert times.human_duration(61) == "About a minute"
    assert times.human_duration(600) == "10 minutes"
    assert times.human_duration(3600) == "About an hour"
    assert times.human_duration(5 * 3600) == "5 hours"
    assert times.human_duration(3 * 86400) == "3 days"
