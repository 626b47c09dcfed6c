"""Restart policies as Docker has them: no, on-failure[:N], always, unless-stopped, with its back-off.

Docker's restart manager (moby/restartmanager): the first restart waits 100 ms, each further
one twice as long, at most a minute; a run of 10 s or more resets the wait to 100 ms. A
container the user stopped (`stop`, or `kill` with SIGKILL or its stop signal) is never
restarted. `always` and `unless-stopped` differ only when the monitor starts after a reboot:
`always` containers start again even if a user had stopped them.
"""

from __future__ import annotations

from oci.errors import InvalidInput

NAMES = ("no", "on-failure", "always", "unless-stopped")
FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


class RestartPolicy:
    """A policy name and, for on-failure, the most restarts (0: no limit)."""

    def __init__(self, name: str = "no", maximum: int = 0) -> None:
        self.name, self.maximum = name, maximum

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "maximumRetryCount": self.maximum}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> RestartPolicy:
        return cls(str(doc.get("name", "no")), int(doc.get("maximumRetryCount", 0) or 0))  # type: ignore[call-overload]

    def __str__(self) -> str:
        return f"on-failure:{self.maximum}" if self.name == "on-failure" and self.maximum else self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RestartPolicy) and (self.name, self.maximum) == (other.name, other.maximum)


def parse(text: str) -> RestartPolicy:
    """`no`, `on-failure`, `on-failure:N`, `always` or `unless-stopped` (Docker's --restart)."""
    name, colon, count = text.partition(":")
    if name not in NAMES:
        raise InvalidInput(f"--restart: unknown policy {text!r} (no, on-failure[:N], always, unless-stopped)")
    if colon and name != "on-failure":
        raise InvalidInput(f"--restart: {name} takes no count (only on-failure:N does)")
    maximum = 0
    if colon:
        if not count.isdigit():
            raise InvalidInput(f"--restart: {text!r}: the count must be a number")
        maximum = int(count)
    return RestartPolicy(name, maximum)


def should_restart(policy: RestartPolicy, exit_code: int | None, manually_stopped: bool, restart_count: int) -> bool:
    """Whether a container that just exited goes again. An unknown exit code counts as a failure."""
    if manually_stopped or policy.name == "no":
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    return exit_code != 0 and (policy.maximum == 0 or restart_count < policy.maximum)


def restart_at_boot(policy: RestartPolicy, exit_code: int | None, manually_stopped: bool, restart_count: int) -> bool:
    """Whether a container not running when the monitor starts after a reboot is started (Docker's daemon start)."""
    if policy.name == "always":
        return True
    return should_restart(policy, exit_code, manually_stopped, restart_count)


class Backoff:
    """The wait before the next restart: 100 ms doubling to a minute, back to 100 ms after a 10 s run."""

    def __init__(self) -> None:
        self.delay = 0.0

    def next(self, ran_for: float) -> float:
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0 else min(self.delay * 2, MAX_DELAY)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0
