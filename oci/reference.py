"""Image references in Docker's grammar: `[host[:port]/]path[:tag][@digest]`.

Normalisation follows Docker: a first component that has no `.` or `:` and is not
`localhost` is a path on Docker Hub (`docker.io`), single-component Hub paths gain
`library/`, `index.docker.io` becomes `docker.io`, and the tag defaults to `latest`
when neither tag nor digest is given.
"""

from __future__ import annotations

import re
from collections import namedtuple

from oci.digest import Digest
from oci.errors import InvalidInput

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MAX_NAME = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|[-]+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_REMAINDER = re.compile(
    rf"^(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)


class Reference(namedtuple("Reference", ["registry", "repository", "tag", "digest"], defaults=(None, None))):
    """A normalised image reference."""

    __slots__ = ()
    registry: str
    repository: str
    tag: str | None
    digest: Digest | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise; InvalidInput says what is wrong with a bad reference."""
        if not text:
            raise InvalidInput("invalid reference: empty")
        if text != text.strip() or any(c.isspace() for c in text):
            raise InvalidInput(f"invalid reference {text!r}: contains white space")
        domain, rest = _split_domain(text)
        match = _REMAINDER.match(rest)
        if domain is not None and not _DOMAIN_RE.match(domain):
            raise InvalidInput(f"invalid reference {text!r}: malformed registry host {domain!r}")
        if not match:
            raise InvalidInput(f"invalid reference {text!r}: {_explain(rest)}")
        path = match["path"]
        if domain is None:
            domain = DOCKER_HUB
            if "/" not in path:
                path = f"library/{path}"
        if domain == "index.docker.io":
            domain = DOCKER_HUB
        if len(f"{domain}/{path}") > MAX_NAME:
            raise InvalidInput(f"invalid reference {text!r}: name longer than {MAX_NAME} characters")
        digest = Digest.parse(match["digest"]) if match["digest"] else None
        tag = match["tag"] or (None if digest else "latest")
        return cls(domain, path, tag, digest)

    @property
    def api_host(self) -> str:
        """The host serving the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest if any, else the tag."""
        return str(self.digest) if self.digest else (self.tag or "latest")

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """The short form Docker prints (`debian:bookworm` for `docker.io/library/debian:bookworm`)."""
        text = str(self)
        if self.registry == DOCKER_HUB:
            text = text[len(DOCKER_HUB) + 1:]
            if text.startswith("library/") and "/" not in self.repository[len("library/"):]:
                text = text[len("library/"):]
        return text


def _split_domain(text: str) -> tuple[str | None, str]:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first, rest
    return None, text


def _explain(rest: str) -> str:
    name = rest.split("@", 1)[0].split(":", 1)[0]
    if name != name.lower():
        return "repository name must be lowercase"
    if "@" in rest and not re.search(rf"@{_DIGEST}$", rest):
        return "malformed digest"
    if ":" in rest.split("@", 1)[0] and not re.search(rf":{_TAG}(?:@|$)", rest):
        return "malformed tag"
    return "does not match [host[:port]/]path[:tag][@digest]"
