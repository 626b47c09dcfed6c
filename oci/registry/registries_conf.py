"""registries.conf (containers-registries.conf(5), version 2) read as podman and skopeo read it.

Files: $CONTAINERS_REGISTRIES_CONF alone when set; else ~/.config/containers/registries.conf
when it exists, else /etc/containers/registries.conf; then the drop-ins of
/etc/containers/registries.conf.d/*.conf and ~/.config/containers/registries.conf.d/*.conf, in
name order, each overriding the ones before (a `[[registry]]` of the same prefix replaces the
earlier one, aliases are merged, `unqualified-search-registries` replaced).

What is used:

* `[[registry]]` entries matched by the longest `prefix` (`host[/path]`, or `*.domain`; the
  `location` when no prefix is given): `location` rewrites the prefix, `insecure = true` reaches
  the registry with TLS unverified or plain HTTP, `blocked = true` refuses it, and the
  `[[registry.mirror]]` list (each `location`, `insecure`, `pull-from-mirror` = all,
  digest-only or tag-only; the registry's `mirror-by-digest-only`) is tried in order before
  the registry itself when pulling; pushes go to the registry.
* For a short name (no registry in the reference): `[aliases]` first, then each of the
  `unqualified-search-registries` in turn when pulling (the first when pushing), else Docker Hub
  as Docker resolves it.

Parsing TOML costs an import (tomllib, ~3 ms): a file is parsed only when it holds what the
reference needs (a `[[registry` table for a qualified reference; anything for a short name),
so Debian's defaults (comments and a shortnames.conf of aliases) cost a qualified reference
only reading them.
"""

from __future__ import annotations

import os

from oci.errors import AuthError, InvalidInput
from oci.reference import DOCKER_HUB, Reference, strip_transport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .http import Options

ENV = "CONTAINERS_REGISTRIES_CONF"
SYSTEM = "/etc/containers/registries.conf"


class Endpoint:
    """A place to pull from or push to: the reference rewritten for it, whether it is reached
    insecurely (TLS unverified, plain HTTP allowed), whether it is a mirror. (Plain classes, not
    namedtuples: making a namedtuple class costs every command's start ~0.1 ms.)"""

    __slots__ = ("reference", "insecure", "mirror")

    def __init__(self, reference: Reference, insecure: bool, mirror: bool) -> None:
        self.reference, self.insecure, self.mirror = reference, insecure, mirror

    def __repr__(self) -> str:
        return f"Endpoint({self.reference}, insecure={self.insecure}, mirror={self.mirror})"


class Registry:
    """One `[[registry]]` table."""

    __slots__ = ("prefix", "location", "insecure", "blocked", "mirrors", "digest_only")

    def __init__(self, prefix: str, location: str, insecure: bool, blocked: bool,
                 mirrors: list[tuple[str, bool, str]], digest_only: bool) -> None:
        self.prefix, self.location, self.insecure, self.blocked = prefix, location, insecure, blocked
        self.mirrors, self.digest_only = mirrors, digest_only


def files() -> list[str]:
    """The files read, in order."""
    explicit = os.environ.get(ENV)
    if explicit:
        return [explicit] + _drop_ins(explicit + ".d")
    home = os.path.join(os.path.expanduser("~"), ".config", "containers")
    user = os.path.join(home, "registries.conf")
    return [user if os.path.exists(user) else SYSTEM] + _drop_ins(SYSTEM + ".d") + _drop_ins(user + ".d")


def _drop_ins(folder: str) -> list[str]:
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".conf"))
    except OSError:
        return []
    return [os.path.join(folder, name) for name in names]


class Config:
    """The merged configuration."""

    def __init__(self) -> None:
        self.registries: dict[str, Registry] = {}
        self.aliases: dict[str, str] = {}
        self.search: list[str] | None = None

    @classmethod
    def load(cls, short_name: bool, paths: list[str] | None = None) -> Config:
        """The configuration as far as a reference needs it (see the module's note on cost)."""
        config = cls()
        for path in files() if paths is None else paths:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            text = _without_comments(data)
            if not text or (not short_name and b"[[registry" not in text):
                continue
            config._merge(path, data)
        return config

    def _merge(self, path: str, data: bytes) -> None:
        import tomllib

        try:
            doc = tomllib.loads(data.decode())
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidInput(f"{path}: not valid TOML: {err}") from None
        if "registries" in doc and "registry" not in doc:
            raise InvalidInput(f"{path}: a version 1 registries.conf ([registries.*] tables): rewrite it as "
                               "version 2 ([[registry]] tables), as podman 4 reads it")
        search = doc.get("unqualified-search-registries")
        if isinstance(search, list):
            self.search = [str(s) for s in search]
        aliases = doc.get("aliases")
        if isinstance(aliases, dict):
            self.aliases.update({str(k): str(v) for k, v in aliases.items()})
        for table in doc.get("registry") or []:
            if not isinstance(table, dict):
                continue
            location = str(table.get("location") or "")
            prefix = str(table.get("prefix") or location)
            if not prefix:
                raise InvalidInput(f"{path}: a [[registry]] without prefix or location")
            mirrors = [(str(m.get("location") or ""), bool(m.get("insecure", False)),
                        str(m.get("pull-from-mirror") or "all"))
                       for m in table.get("mirror") or [] if isinstance(m, dict) and m.get("location")]
            self.registries[prefix] = Registry(prefix, location or prefix, bool(table.get("insecure", False)),
                                               bool(table.get("blocked", False)), mirrors,
                                               bool(table.get("mirror-by-digest-only", False)))

    def matching(self, name: str) -> Registry | None:
        """The `[[registry]]` whose prefix matches `name` (`host/path`) longest."""
        best: Registry | None = None
        for prefix, entry in self.registries.items():
            if prefix.startswith("*."):
                host = name.split("/", 1)[0]
                hit = host.endswith(prefix[1:])
            else:
                hit = name == prefix or name.startswith(prefix + "/")
            if hit and (best is None or len(prefix) > len(best.prefix)):
                best = entry
        return best


def _without_comments(data: bytes) -> bytes:
    return b"\n".join(line for line in (raw.split(b"#", 1)[0].strip() for raw in data.splitlines()) if line)


def endpoints(text: str, *, pull: bool, config: Config | None = None) -> list[Endpoint]:
    """Where the reference `text` (`docker://` accepted) is pulled from (mirrors first) or
    pushed to, by registries.conf; InvalidInput for a bad reference, AuthError for a blocked
    registry."""
    text = strip_transport(text)
    short = Reference.is_short(text)
    ref = Reference.parse(text)
    config = config if config is not None else Config.load(short)
    if short:
        candidates = _short_name_candidates(text, ref, config)
        if not pull:
            candidates = candidates[:1]
    else:
        candidates = [ref]
    found: list[Endpoint] = []
    for candidate in candidates:
        found += _for_reference(candidate, config, pull)
    return found


def resolve(text: str, *, pull: bool, options: Options | None = None) -> tuple[list[Endpoint], Options]:
    """Where the reference `text` is pulled from or pushed to (`endpoints`), and the transport
    `options` (default: Options()) for them: the hosts registries.conf calls insecure among
    them are reached with TLS unverified, plain HTTP allowed."""
    if options is None:
        from .http import Options

        options = Options()
    found = endpoints(text, pull=pull)
    hosts = frozenset(place.reference.api_host for place in found if place.insecure)
    return found, options._replace(insecure_hosts=options.insecure_hosts | hosts) if hosts else options


def _short_name_candidates(text: str, ref: Reference, config: Config) -> list[Reference]:
    name = text.split("@", 1)[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    suffix = ("@" + str(ref.digest)) if ref.digest else f":{ref.tag}"
    alias = config.aliases.get(name)
    if alias:
        return [Reference.parse(alias + suffix)]
    if config.search:
        return [Reference.parse(f"{registry}/{'library/' if registry == DOCKER_HUB and '/' not in name else ''}"
                                f"{name}{suffix}") for registry in config.search]
    return [ref]  # Docker Hub, as Docker normalises it


def _for_reference(ref: Reference, config: Config, pull: bool) -> list[Endpoint]:
    entry = config.matching(ref.name) if config.registries else None
    if entry is None:
        return [Endpoint(ref, False, False)]
    if entry.blocked:
        raise AuthError(f"{ref.name}: registry blocked by registries.conf (prefix {entry.prefix!r})")
    # A `*.domain` entry names no location: it rewrites nothing (its mirrors name whole repositories).
    rest = "" if entry.prefix.startswith("*.") else ref.name[len(entry.prefix):]
    location = ref.name if entry.prefix.startswith("*.") else entry.location + rest
    found = []
    if pull:
        by_digest = ref.digest is not None
        for mirror, insecure, when in entry.mirrors:
            if (entry.digest_only or when == "digest-only") and not by_digest:
                continue
            if when == "tag-only" and by_digest:
                continue
            found.append(Endpoint(_rewritten(ref, mirror + rest), insecure, True))
    found.append(Endpoint(_rewritten(ref, location), entry.insecure, False))
    return found


def _rewritten(ref: Reference, name: str) -> Reference:
    host, _, repository = name.partition("/")
    if not repository:
        raise InvalidInput(f"{name}: a registries.conf location must name a registry and a repository path")
    if host == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return Reference(host, repository, ref.tag, ref.digest)
