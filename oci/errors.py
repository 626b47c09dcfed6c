"""One exception hierarchy for every ocikit command, each class carrying its exit code.

Exit codes (documented in README.md):

====  ==========================================================
0     success
1     failure not covered below (a container exited badly, ...)
2     usage error or invalid input (bad flag, invalid JSON document, bad reference)
3     not found (tag, blob, container, network, file)
4     integrity error (digest or size mismatch, cap exceeded, unsafe tar entry)
5     registry or network error (unreachable, unexpected HTTP answer)
6     authentication or authorisation refused
7     conflict (already exists, locked, wrong state)
8     not implemented or unsupported (media type, config field)
130   interrupted (SIGINT)
====  ==========================================================
"""

from __future__ import annotations


class OciError(Exception):
    """Base of every error an ocikit command reports as one line and an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def lines(self) -> list[str]:
        """The error as the lines printed on stderr (one unless there are several violations)."""
        prefix = f"{self.source}: " if self.source else ""
        return [prefix + self.message]

    def __str__(self) -> str:
        return "\n".join(self.lines())


class UsageError(OciError):
    """A command line that cannot be carried out as written."""

    exit_code = 2


class InvalidInput(OciError):
    """Input that is malformed: a reference, a flag value, a file that is not what it claims."""

    exit_code = 2


def json_pointer(*path: str | int) -> str:
    """The JSON pointer (RFC 6901) of a place in a document, from its keys and indexes: what every
    message about a document names (`/mounts/0/options`)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class InvalidDocument(InvalidInput):
    """A JSON document that fails its schema: one violation per line, `FILE: /pointer: message`."""

    def __init__(self, source: str, violations: list[tuple[str, str]]) -> None:
        self.violations = violations
        first = violations[0] if violations else ("", "invalid document")
        super().__init__(f"{first[0] or '/'}: {first[1]}", source=source)

    def lines(self) -> list[str]:
        return [f"{self.source}: {pointer or '/'}: {message}" for pointer, message in self.violations]


class NotFound(OciError):
    """Something named does not exist: a tag, a blob, a container, a file."""

    exit_code = 3


class IntegrityError(OciError):
    """Content that does not match what was promised: digest, size, caps, unsafe paths."""

    exit_code = 4


class DigestMismatch(IntegrityError):
    """Content of the promised size whose digest differs: bytes altered on the way (a transfer
    tries once more) or damaged at rest."""


class RegistryError(OciError):
    """A registry or the network between us failed or answered unexpectedly."""

    exit_code = 5


class AuthError(RegistryError):
    """The registry refused our credentials or we have none it accepts."""

    exit_code = 6


class Conflict(OciError):
    """The operation clashes with existing state: already exists, locked, wrong state."""

    exit_code = 7


class Unsupported(OciError):
    """A feature, media type or config field that ocikit does not implement."""

    exit_code = 8


INTERRUPTED_EXIT_CODE = 130
