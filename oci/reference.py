"""Image references in Docker's grammar: `[host[:port]/]path[:tag][@digest]`.

Normalisation follows Docker: a first component that has no `.` or `:` and is not
`localhost` is a path on Docker Hub (`docker.io`), single-component Hub paths gain
`library/`, `index.docker.io` becomes `docker.io`, and the tag defaults to `latest`
when neither tag nor digest is given.
"""

from __future__ import annotations

from collections import namedtuple

from oci.digest import Digest
from oci.errors import InvalidInput

TRANSPORT = "docker://"  # skopeo's and podman's prefix of a registry reference, accepted wherever one is typed
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MAX_NAME = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|[-]+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # ASCII, as Go's \w: Python's \w takes any letter
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# The grammar. Compiling it costs a command's start ~1 ms, so the plainest spellings (see
# `_plain`) are checked without it; `re` compiles it for anything else.
_DOMAIN_RE = rf"^{_DOMAIN}$"
_REMAINDER = rf"^(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HOST_CHARS = _ALNUM | {"-"}
_TAG_CHARS = _ALNUM | {"_", ".", "-"}
_HEX_DIGITS = "0123456789abcdefABCDEF"


def check_tag(tag: str, where: str = "") -> str:
    """`tag` when it is a tag by the OCI distribution grammar (up to 128 ASCII letters, digits,
    `_`, `.` and `-`, not starting with `.` or `-`); InvalidInput naming `where` otherwise."""
    if 0 < len(tag) <= 128 and tag[0] not in ".-" and _TAG_CHARS.issuperset(tag):
        return tag
    prefix = f"{where}: " if where else ""
    raise InvalidInput(f"{prefix}invalid tag {tag!r}: up to 128 letters, digits, '_', '.' and '-', "
                       "not starting with '.' or '-'")


def strip_transport(text: str) -> str:
    """A reference as typed, without the `docker://` transport prefix."""
    return text[len(TRANSPORT):] if text.startswith(TRANSPORT) else text


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
        path, tag, digest_text = _plain(domain, rest) or _by_grammar(text, domain, rest)
        if domain is None:
            domain = DOCKER_HUB
            if "/" not in path:
                path = f"library/{path}"
        if domain == "index.docker.io":
            domain = DOCKER_HUB
        if len(f"{domain}/{path}") > MAX_NAME:
            raise InvalidInput(f"invalid reference {text!r}: name longer than {MAX_NAME} characters")
        digest = Digest.parse(digest_text) if digest_text else None
        tag = tag or (None if digest else "latest")
        return cls(domain, path, tag, digest)

    @staticmethod
    def is_short(text: str) -> bool:
        """True for a reference that names no registry (`busybox`, `library/debian:12`): Docker
        takes it from Docker Hub, podman resolves it by registries.conf."""
        return _split_domain(text)[0] is None

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


def _plain(domain: str | None, rest: str) -> tuple[str, str | None, str | None] | None:
    """(path, tag, digest) of a reference spelt plainly (host labels of letters, digits and
    inner hyphens, an optional port; path components of lowercase letters and digits joined by
    single `.`, `_` or `-`; an ASCII tag; an `alg:hex` digest), checked without the grammar's
    regular expressions; None for anything else, which the grammar then judges."""
    if domain is not None:
        host, colon, port = domain.partition(":")
        if colon and not (port.isascii() and port.isdigit()):
            return None
        for label in host.split("."):
            if not label or label[0] == "-" or label[-1] == "-" or not _HOST_CHARS.issuperset(label):
                return None
    name, at, digest = rest.partition("@")
    if at:
        algorithm, colon, encoded = digest.partition(":")
        if not colon or algorithm not in ("sha256", "sha512") or len(encoded) < 32 or encoded.strip(_HEX_DIGITS):
            return None
    path, colon, tag = name.partition(":")
    if colon and not (0 < len(tag) <= 128 and tag[0] not in ".-" and _TAG_CHARS.issuperset(tag)):
        return None
    for component in path.split("/"):
        if not component or component[0] not in _LOWER_ALNUM or component[-1] not in _LOWER_ALNUM:
            return None
        for i, c in enumerate(component):
            if c not in _LOWER_ALNUM and (c not in "._-" or component[i - 1] not in _LOWER_ALNUM):
                return None
    return path, (tag if colon else None), (digest if at else None)


def _by_grammar(text: str, domain: str | None, rest: str) -> tuple[str, str | None, str | None]:
    """(path, tag, digest) as the full grammar reads them; InvalidInput says what is wrong."""
    import re

    if domain is not None and not re.match(_DOMAIN_RE, domain):
        raise InvalidInput(f"invalid reference {text!r}: malformed registry host {domain!r}")
    match = re.match(_REMAINDER, rest)
    if not match:
        raise InvalidInput(f"invalid reference {text!r}: {_explain(rest)}")
    return match["path"], match["tag"], match["digest"]


def _split_domain(text: str) -> tuple[str | None, str]:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first, rest
    return None, text


def _explain(rest: str) -> str:
    import re

    name = rest.split("@", 1)[0].split(":", 1)[0]
    if name != name.lower():
        return "repository name must be lowercase"
    if "@" in rest and not re.search(rf"@{_DIGEST}$", rest):
        return "malformed digest"
    if ":" in rest.split("@", 1)[0] and not re.search(rf":{_TAG}(?:@|$)", rest):
        return "malformed tag"
    return "does not match [host[:port]/]path[:tag][@digest]"
