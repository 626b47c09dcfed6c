"""Validate JSON documents against the vendored OCI schemas in `spec/`, fully offline.

`load(data, kind, source)` parses and validates; every violation is reported as
`(json-pointer, message)` inside an InvalidDocument. The cost of importing jsonschema is
paid on first use only, and compiled validators are cached per process. With
`remember=True` a document that validated is kept on disk together with its parsed form,
so a runtime that is handed the same config.json again skips both the schema work and the
JSON parsing (and the imports of jsonschema, json and re they need). A remembered entry
holds the schema set (`spec/README.md`, which records every schema file's sha256), the
kind, the exact bytes and the parsed document; it is used only when all three match.
"""

from __future__ import annotations

import os

from oci.errors import InvalidDocument, InvalidInput, NotFound, json_pointer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_DIR = next(
    (p for p in (os.path.join(_HERE, "spec"), os.path.join(os.path.dirname(_HERE), "spec")) if os.path.isdir(p)),
    os.path.join(os.path.dirname(_HERE), "spec"),
)

# kind -> (spec folder, schema file)
KINDS = {
    "manifest": ("image", "image-manifest-schema.json"),
    "index": ("image", "image-index-schema.json"),
    "config": ("image", "config-schema.json"),
    "layout": ("image", "image-layout-schema.json"),
    "descriptor": ("image", "content-descriptor.json"),
    "runtime-config": ("runtime", "config-schema.json"),
    "state": ("runtime", "state-schema.json"),
    "features": ("runtime", "features-schema.json"),
}

# media type -> kind; Docker's schema 2 types share the OCI structure.
MEDIA_TYPE_KINDS = {
    "application/vnd.oci.image.manifest.v1+json": "manifest",
    "application/vnd.docker.distribution.manifest.v2+json": "manifest",
    "application/vnd.oci.image.index.v1+json": "index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "index",
    "application/vnd.oci.image.config.v1+json": "config",
    "application/vnd.docker.container.image.v1+json": "config",
    "application/vnd.oci.descriptor.v1+json": "descriptor",
    "application/vnd.oci.layout.header.v1+json": "layout",
}

MAX_MESSAGE = 300
_validators: dict[str, Any] = {}
_schemas: bytes | None = None  # spec/README.md, once read


def kind_of(media_type: str) -> str:
    """The schema kind for a media type; InvalidInput for types that have no schema."""
    try:
        return MEDIA_TYPE_KINDS[media_type]
    except KeyError:
        raise InvalidInput(f"no schema for media type {media_type!r}") from None


def parse(data: bytes | str, source: str) -> Any:
    """Parse JSON, reporting a syntax error as a one-violation InvalidDocument."""
    import json

    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise InvalidDocument(source, [("", f"not valid JSON{where}: {getattr(err, 'msg', err)}")]) from None


def load(data: bytes | str, kind: str, source: str, *, remember: bool = False,
         prepare: Callable[[Any], None] | None = None) -> Any:
    """Parse `data` and validate it as `kind` (a key of KINDS or a media type). `prepare` may change the
    parsed document in place before validation (a reader's tolerance of a writer's quirks); with
    `remember`, the prepared document is what is remembered."""
    kind = kind if kind in KINDS else kind_of(kind)
    raw = data.encode() if isinstance(data, str) else data
    memo_kind = kind if prepare is None else f"{kind}+prepared"
    if remember:
        found = _memo_get(raw, memo_kind)
        if found is not None:
            return found[0]
    doc = parse(raw, source)
    if prepare is not None:
        prepare(doc)
    validate(doc, kind, source)
    if remember:
        _memo_put(raw, memo_kind, doc)
    return doc


def recall(data: bytes, kinds: tuple[str, ...]) -> Any | None:
    """The parsed document if these exact bytes were remembered as valid as one of `kinds`
    (a key of KINDS), else None; neither parses nor validates."""
    for kind in kinds:
        found = _memo_get(data, kind)
        if found is not None:
            return found[0]
    return None


def read_bytes(path: str) -> bytes:
    """A document's bytes; a missing or unreadable file is one line naming it."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read: {err.strerror}") from None


def load_file(path: str, kind: str, *, remember: bool = False) -> Any:
    """Read and validate a JSON file, naming the file in every error."""
    return load(read_bytes(path), kind, path, remember=remember)


def violations(doc: Any, kind: str) -> list[tuple[str, str]]:
    """Every schema violation of `doc` as (json-pointer, message), sorted by pointer."""
    found = []
    for error in validator(kind).iter_errors(doc):
        found.append((json_pointer(*error.absolute_path), _message(error)))
    return sorted(set(found))


def validate(doc: Any, kind: str, source: str) -> None:
    """Raise InvalidDocument listing every violation of `doc` as `kind`."""
    kind = kind if kind in KINDS else kind_of(kind)
    problems = violations(doc, kind)
    if problems:
        raise InvalidDocument(source, problems)


def validator(kind: str) -> Any:
    """The compiled Draft 4 validator for `kind`, cached per process."""
    cached = _validators.get(kind)
    if cached is None:
        cached = _validators[kind] = _compile(*KINDS[kind])
    return cached


def _compile(folder: str, filename: str) -> Any:
    import json
    from urllib.parse import urljoin

    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    # The OCI schemas name each other by file name under ids that differ from file to file:
    # register every file of the folder under each top-level id once, so that validation
    # never has to look anything up again; anything else is still found by file name.
    base = os.path.join(SPEC_DIR, folder)
    documents = {}
    for name in sorted(os.listdir(base)):
        if name.endswith(".json"):
            with open(os.path.join(base, name), "rb") as f:
                documents[name] = json.load(f)
    bases = {""} | {doc.get("id", "") for doc in documents.values()}
    pairs = []
    for name, doc in documents.items():
        resource = Resource.from_contents(doc, default_specification=DRAFT4)
        pairs += [(urljoin(b, name) if b else name, resource) for b in bases]

    def retrieve(uri: str) -> Resource:
        name = uri.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return Resource.from_contents(documents[name], default_specification=DRAFT4)

    # `retrieve` is the attrs alias of Registry's private `_retrieve` field (referencing's documented
    # argument); mypy's attrs plugin does not see aliases through referencing's own `define` wrapper.
    registry = Registry(retrieve=retrieve).with_resources(pairs).crawl()  # type: ignore[call-arg]
    return Draft4Validator(documents[filename], registry=registry)


def own_violations(doc: Any, path: str) -> list[tuple[str, str]]:
    """Every violation of `doc` against one of ocikit's own JSON schemas (Draft 7, beside the module
    that uses it: the CNI configuration, oci-mon's records, the build cache's records), as sorted
    (JSON pointer, message) pairs."""
    import json

    from jsonschema import Draft7Validator

    with open(path, "rb") as f:
        validator = Draft7Validator(json.load(f))
    return sorted({(json_pointer(*error.absolute_path), error.message[:300]) for error in validator.iter_errors(doc)})


def _message(error: Any) -> str:
    # For anyOf/oneOf, the most specific sub-error says more than "is not valid under any".
    if error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            error = deepest
    message = error.message
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _memo_dir() -> str:
    explicit = os.environ.get("OCIKIT_CACHE_DIR")
    if explicit:
        return os.path.join(explicit, "validated")
    if os.geteuid() == 0:
        return "/var/cache/ocikit/validated"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocikit", "validated")


def _schema_set() -> bytes | None:
    """`spec/README.md` (every schema file's sha256), read once per process."""
    global _schemas
    if _schemas is None:
        try:
            with open(os.path.join(SPEC_DIR, "README.md"), "rb") as f:
                _schemas = f.read()
        except OSError:
            return None
    return _schemas


MEMO_MAX_BYTES = 1 << 20  # larger documents are validated every time


def _memo_path(raw: bytes, kind: str) -> str:
    """Where a document would be remembered: named by kind, size and CRC-32 (entries hold the
    bytes, so a CRC collision is a miss, never a wrong answer)."""
    import zlib

    return os.path.join(_memo_dir(), f"{kind}-{len(raw)}-{zlib.crc32(raw):08x}")


def _memo_get(raw: bytes, kind: str) -> tuple[Any] | None:
    """(parsed document,) if exactly these bytes validated as `kind` against this schema set."""
    schemas = _schema_set()
    if schemas is None or len(raw) > MEMO_MAX_BYTES:
        return None
    import marshal

    try:
        with open(_memo_path(raw, kind), "rb") as f:
            entry = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if type(entry) is not tuple or len(entry) != 4 or entry[:3] != (schemas, kind, raw):
        return None
    return (entry[3],)


def _memo_put(raw: bytes, kind: str, doc: Any) -> None:
    """Remember a validated document (temporary file and rename: readers see all or nothing)."""
    schemas = _schema_set()
    if schemas is None or len(raw) > MEMO_MAX_BYTES:
        return
    import marshal

    path = _memo_path(raw, kind)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps((schemas, kind, raw, doc)))
        os.rename(tmp, path)
    except (OSError, ValueError):  # a cache that cannot be written only costs speed
        try:
            os.unlink(tmp)
        except OSError:
            pass
