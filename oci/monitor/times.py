"""Points in time as oci-mon writes and reads them: RFC 3339 UTC with nanoseconds, Docker's --since.

Records, events and log lines carry `2024-05-01T12:00:00.123456789Z` (fixed width, so the text
sorts as the time does; Go's time.RFC3339Nano parses it, as the kubelet and containerd do).
"""

from __future__ import annotations

import time

from oci.errors import InvalidInput

NS = 1_000_000_000
_UNITS = {"h": 3600 * NS, "m": 60 * NS, "s": NS, "ms": 1_000_000, "us": 1_000, "µs": 1_000, "ns": 1}


def format_ns(ns: int) -> str:
    """`ns` (nanoseconds since the epoch) as RFC 3339 UTC with nine fraction digits."""
    seconds, fraction = divmod(ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def now() -> str:
    return format_ns(time.time_ns())


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (`Z` or `+HH:MM`, any fraction); ValueError if not one."""
    import calendar

    if len(text) < 20 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt" or text[13] != ":":
        raise ValueError(text)
    base = calendar.timegm((int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                            int(text[17:19]), 0, 0, 0))
    rest = text[19:]
    fraction = 0
    if rest.startswith("."):
        digits = len(rest) - len(rest[1:].lstrip("0123456789"))
        if digits == 1:
            raise ValueError(text)
        fraction = int((rest[1:digits] + "000000000")[:9])
        rest = rest[digits:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 60 + int(rest[4:6])) * 60 * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(text)
    return (base - offset) * NS + fraction


def parse_duration_ns(text: str) -> int:
    """A Go duration (`10m`, `1h30m`, `500ms`) in nanoseconds; ValueError if it is not one."""
    total, number, i = 0, "", 0
    if not text:
        raise ValueError(text)
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            number += c
            i += 1
            continue
        unit = next((u for u in ("ms", "us", "µs", "ns", "h", "m", "s") if text.startswith(u, i)), None)
        if unit is None or not number:
            raise ValueError(text)
        total += int(float(number) * _UNITS[unit])
        number, i = "", i + len(unit)
    if number:
        raise ValueError(text)
    return total


def parse_since(text: str, flag: str = "--since", now_ns: int | None = None) -> int:
    """Docker's --since/--until: an RFC 3339 time, Unix seconds (`1700000000.5`), or a duration before now."""
    try:
        return parse_rfc3339(text)
    except ValueError:
        pass
    try:
        return int(float(text) * NS)
    except ValueError:
        pass
    try:
        return (time.time_ns() if now_ns is None else now_ns) - parse_duration_ns(text)
    except ValueError:
        raise InvalidInput(f"{flag}: {text!r} is no time (2024-05-01T12:00:00Z, Unix seconds, or a duration "
                           "like 10m)") from None


def human_duration(seconds: float) -> str:
    """Docker's HumanDuration: `Less than a second`, `5 seconds`, `About a minute`, `3 hours`, `2 weeks`."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
