"""The OCI image layout store: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.

Store semantics:

* A blob appears under its digest name only complete and verified: it is written to
  `.ocikit/tmp/`, hashed while written, fsynced and renamed into place. A killed writer
  leaves at most a stray temporary: the next session that finds no other writer at work
  removes every temporary (and so does `gc()`).
* Blobs are immutable; putting one that exists is a no-op.
* `index.json` is replaced atomically under an exclusive lock (`.ocikit/index.lock`),
  re-read inside the lock, so concurrent taggers never lose each other's entries.
* Writers hold `.ocikit/gc.lock` shared for a whole session (`with layout.session():`);
  `gc()` holds it exclusively, so it never deletes a blob between its put and its tag.
  A session that can take the lock exclusively for a moment knows that no writer is at work:
  it removes the temporaries killed writers left, then holds the lock shared.
* Readers never write into the layout (it may be read-only, or another user's): `reading()`
  holds `.ocikit/gc.lock` shared when it exists and creates nothing.
* A failed writer removes the blobs it added that nothing references (`roll_back`), so the
  layout is as it was.
* Reads verify: `read_blob` checks digest and size, and JSON documents are validated
  against their schema before use. A document's validity depends only on its bytes, so
  oci.schema's validation cache answers for documents seen before (no jsonschema import).
"""

from __future__ import annotations

import fcntl
import os

from oci import schema
from oci.descriptor import INDEXES, MANIFESTS, OCI_INDEX, REF_NAME, Descriptor
from oci.digest import Digest, VerifyingReader, copy_hashing, verify_bytes
from oci.errors import DigestMismatch, IntegrityError, InvalidInput, NotFound, OciError
from oci.fsutil import TMP_PREFIX, atomic_file, fsync_dir, locked, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import Any

    from oci.digest import IntoReader

LAYOUT_VERSION = "1.0.0"
MAX_DOCUMENT = 4 << 20  # manifests, indexes and configs larger than this are refused


class Layout:
    """An OCI image layout directory."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._private = os.path.join(self.path, ".ocikit")
        self.added: list[Digest] = []  # blobs this process put that were not there before

    # -- opening ---------------------------------------------------------

    @classmethod
    def open(cls, path: str, create: bool = False) -> Layout:
        """Open an existing layout (validating `oci-layout`), or create it when asked."""
        layout = cls(path)
        header = os.path.join(layout.path, "oci-layout")
        if not os.path.exists(header):
            if os.path.lexists(layout.path) and not os.path.isdir(layout.path):
                raise InvalidInput(f"{path}: exists and is not a directory (expected an OCI image layout)")
            if not create:
                raise NotFound(f"{path}: not an OCI image layout (no oci-layout file)")
            try:
                layout._create()
            except OSError as err:
                raise OciError(f"{path}: cannot create an OCI image layout: {_reason(err)}") from None
        else:
            doc = schema.load_file(header, "layout", remember=True)
            if doc["imageLayoutVersion"] != LAYOUT_VERSION:
                raise InvalidInput(f"{header}: unsupported imageLayoutVersion")
        return layout

    @staticmethod
    def unfinished(path: str) -> bool:
        """True for a directory holding only what a layout's creation, killed before it wrote
        `oci-layout` (last), leaves: empty blob folders, `.ocikit`, `index.json`, temporaries.
        Opening it with `create` finishes the layout."""
        try:
            names = set(os.listdir(path))
            blobs = os.listdir(os.path.join(path, "blobs")) if "blobs" in names else []
            empty = all(not os.listdir(os.path.join(path, "blobs", name)) for name in blobs)
        except OSError:
            return False
        names = {name for name in names if not name.startswith(TMP_PREFIX)}
        return "oci-layout" not in names and names <= {"blobs", ".ocikit", "index.json"} and empty

    def _create(self) -> None:
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        os.makedirs(self._private, exist_ok=True)
        with locked(self._lock("index")):
            if not os.path.exists(os.path.join(self.path, "index.json")):
                self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
            header = os.path.join(self.path, "oci-layout")
            if not os.path.exists(header):
                import json

                write_atomic(header, json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())

    def _lock(self, name: str) -> str:
        os.makedirs(self._private, exist_ok=True)
        return os.path.join(self._private, f"{name}.lock")

    def session(self) -> AbstractContextManager[None]:
        """A context that holds off garbage collection while its block puts blobs and tags them;
        entering it removes the temporaries of killed writers when no writer is at work."""
        return _Session(self)

    def reading(self) -> AbstractContextManager[None]:
        """A context that holds off garbage collection while its block reads blobs, writing
        nothing into the layout (which may be read-only)."""
        return _Reading(os.path.join(self._private, "gc.lock"))

    def remove_temporaries(self) -> list[str]:
        """Remove every temporary in the layout (call only when no writer is at work, as the
        exclusive gc lock shows); returns their paths. `index.json`'s temporaries beside it are
        removed under the index lock its writers hold."""
        removed = []
        tmp_dir = os.path.join(self._private, "tmp")
        for name in os.listdir(tmp_dir) if os.path.isdir(tmp_dir) else []:
            removed += _unlink(os.path.join(tmp_dir, name))
        if any(name.startswith(TMP_PREFIX) for name in os.listdir(self.path)):
            with locked(self._lock("index")):
                for name in os.listdir(self.path):
                    if name.startswith(TMP_PREFIX):
                        removed += _unlink(os.path.join(self.path, name))
        return removed

    # -- blobs -----------------------------------------------------------

    def blob_path(self, digest: Digest | str) -> str:
        """Where the blob with this digest lives (whether or not it exists)."""
        d = Digest.parse(digest) if isinstance(digest, str) else digest
        return os.path.join(self.path, "blobs", d.algorithm, d.hex)

    def has_blob(self, digest: Digest | str, size: int | None = None) -> bool:
        """True if the blob exists (with the given size, when given)."""
        try:
            st = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def put_blob(self, source: IntoReader, expected: Digest | None = None, size: int | None = None,
                 limit: int | None = None) -> tuple[Digest, int]:
        """Store a stream as a blob; verify it against `expected`/`size` when given.

        Returns the digest and size. Nothing appears under a digest name unless complete
        and verified.
        """
        algorithm = expected.algorithm if expected else "sha256"
        tmp_dir = os.path.join(self._private, "tmp")
        os.makedirs(tmp_dir, exist_ok=True)
        cap = size if size is not None else limit
        holder: dict[str, Any] = {}
        # Write to a temporary first: we only learn the final name once hashed.
        tmp_target = os.path.join(tmp_dir, f"put-{os.getpid()}-{id(holder)}")
        try:
            with atomic_file(tmp_target, 0o644, tmp_dir=tmp_dir) as f:
                digest, count = copy_hashing(source, f, algorithm, limit=cap)
                if size is not None and count != size:
                    raise IntegrityError(f"blob {digest}: size {count} does not match expected {size}")
                if expected is not None and digest != expected:
                    raise DigestMismatch(f"blob digest {digest} does not match expected {expected}")
            final = self.blob_path(digest)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            new = not os.path.exists(final)
            os.rename(tmp_target, final)
            fsync_dir(os.path.dirname(final))
        except OSError as err:  # a full disk, a read-only layout: one line naming the layout
            raise OciError(f"{self.path}: cannot store a blob: {_reason(err)}") from None
        finally:
            try:
                os.unlink(tmp_target)
            except OSError:
                pass
        if new:
            self.added.append(digest)
        return digest, count

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        """Store a byte string as a blob (a no-op if it exists)."""
        import io

        digest = Digest.of(data, expected.algorithm if expected else "sha256")
        if expected is not None and digest != expected:
            raise DigestMismatch(f"blob digest {digest} does not match expected {expected}")
        if not self.has_blob(digest, len(data)):
            self.put_blob(io.BytesIO(data), digest, len(data))
        return digest

    def open_blob(self, descriptor: Descriptor) -> VerifyingReader:
        """A reader of the blob that fails at EOF unless digest and size match."""
        try:
            raw = open(self.blob_path(descriptor.digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"{self.path}: blob {descriptor.digest} is missing") from None
        return VerifyingReader(raw, descriptor.digest, descriptor.size, what=f"blob {descriptor.digest}")

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_DOCUMENT) -> bytes:
        """Read a (small) blob completely, verified against its descriptor."""
        if descriptor.size > limit:
            raise IntegrityError(f"blob {descriptor.digest}: size {descriptor.size} exceeds the cap of {limit}")
        try:
            with open(self.blob_path(descriptor.digest), "rb") as f:
                data = f.read(descriptor.size + 1)
        except FileNotFoundError:
            raise NotFound(f"{self.path}: blob {descriptor.digest} is missing") from None
        if len(data) > descriptor.size:
            raise IntegrityError(f"blob {descriptor.digest}: more than the expected {descriptor.size} bytes")
        verify_bytes(data, descriptor.digest, descriptor.size, f"blob {descriptor.digest}")
        return data

    def read_document(self, descriptor: Descriptor) -> dict[str, Any]:
        """Read a manifest, index or config blob, verified and validated by its media type.

        Blobs are immutable and verified by digest, so a blob that validated once is
        remembered as valid (oci.schema's validation cache) and not validated again.
        """
        return self.read_manifest(descriptor)[1]

    def read_manifest(self, descriptor: Descriptor, limit: int = MAX_DOCUMENT) -> tuple[bytes, dict[str, Any]]:
        """The bytes and the validated document of a manifest, index or config blob. A document
        whose own `mediaType` differs from its descriptor's is refused (InvalidInput): readers
        would take it for one thing, registries for another."""
        data = self.read_blob(descriptor, limit)
        where = f"{self.path}@{descriptor.digest}"
        doc = schema.load(data, schema.kind_of(descriptor.media_type), where, remember=True)
        declared = doc.get("mediaType")
        if declared is not None and declared != descriptor.media_type:
            raise InvalidInput(f"{where}: the document says mediaType {declared}, its descriptor says "
                               f"{descriptor.media_type}")
        return data, doc

    # -- index -----------------------------------------------------------

    def index(self) -> dict[str, Any]:
        """The validated `index.json` (whose validity, like a blob's, depends only on its bytes)."""
        return schema.load_file(os.path.join(self.path, "index.json"), "index", remember=True)

    def descriptors(self) -> list[Descriptor]:
        """The descriptors in `index.json`."""
        return [Descriptor.from_json(d) for d in self.index().get("manifests", [])]

    def resolve(self, tag: str | None = None) -> Descriptor:
        """The descriptor tagged `tag`, or the only one in the index when `tag` is None."""
        entries = self.descriptors()
        if tag is None:
            if len(entries) == 1:
                return entries[0]
            tags = sorted(filter(None, (d.ref_name for d in entries)))
            raise InvalidInput(f"{self.path}: {len(entries)} images in the layout, name one of: {', '.join(tags)}")
        if tag.startswith(("sha256:", "sha512:")):
            digest = Digest.parse(tag)
            for entry in entries:
                if entry.digest == digest:
                    return entry
            raise NotFound(f"{self.path}: no image with digest {tag}")
        for entry in entries:
            if entry.ref_name == tag:
                return entry
        raise NotFound(f"{self.path}: no image tagged {tag!r}")

    def tag(self, name: str, descriptor: Descriptor) -> Descriptor:
        """Point tag `name` at `descriptor` (replacing any previous entry of that name).

        Tagging what the tag already names exactly leaves `index.json` untouched.
        """
        return self.tag_all([(name, descriptor)])[0]

    def tag_all(self, tags: list[tuple[str, Descriptor]]) -> list[Descriptor]:
        """Point several tags at their descriptors in one replacement of `index.json`: a reader
        sees all of them or none. Returns the entries; an unchanged index is not rewritten."""
        entries = []
        for name, descriptor in tags:
            if not self.has_blob(descriptor.digest, descriptor.size):
                raise NotFound(f"{self.path}: cannot tag {name!r}: blob {descriptor.digest} is missing")
            entries.append(descriptor.with_annotations(**{REF_NAME: name}))
        wanted = {name: entry.to_json() for (name, _), entry in zip(tags, entries, strict=True)}  # the last wins
        with locked(self._lock("index")):
            index = self.index()
            manifests = index.get("manifests", [])
            if all(entry in manifests for entry in wanted.values()):
                return entries
            kept = [d for d in manifests if (d.get("annotations") or {}).get(REF_NAME) not in wanted]
            index["manifests"] = kept + list(wanted.values())
            self._write_index(index)
        return entries

    def untag(self, name: str) -> None:
        """Remove the index entry tagged `name`."""
        with locked(self._lock("index")):
            index = self.index()
            kept = [d for d in index.get("manifests", []) if (d.get("annotations") or {}).get(REF_NAME) != name]
            if len(kept) == len(index.get("manifests", [])):
                raise NotFound(f"{self.path}: no image tagged {name!r}")
            index["manifests"] = kept
            self._write_index(index)

    def _write_index(self, index: dict[str, Any]) -> None:
        import json

        path = os.path.join(self.path, "index.json")
        data = json.dumps(index, indent=2).encode() + b"\n"
        schema.load(data, "index", path, remember=True)  # validated before written, remembered for readers
        try:
            write_atomic(path, data)
        except OSError as err:
            raise OciError(f"{path}: cannot write: {_reason(err)}") from None

    def roll_back(self, added: list[Digest]) -> None:
        """Remove the blobs a failed writer added, so the layout is as it was before.

        This follows the garbage-collection protocol (`.ocikit/gc.lock` held exclusively,
        reachability computed under `.ocikit/index.lock`): a concurrent writer that found one
        of these blobs and tagged an image with it has finished its session by then, and the
        blob, now reachable, stays."""
        if not added:
            return
        with locked(self._lock("gc")):
            with locked(self._lock("index")):
                keep = self.reachable()
            for digest in added:
                if digest not in keep:
                    try:
                        os.unlink(self.blob_path(digest))
                    except FileNotFoundError:
                        pass

    # -- garbage collection ---------------------------------------------

    def reachable(self) -> set[Digest]:
        """Every blob reachable from `index.json` through indexes, manifests and subjects."""
        seen: set[Digest] = set()
        pending = self.descriptors()
        while pending:
            desc = pending.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if desc.media_type in INDEXES | MANIFESTS and self.has_blob(desc.digest):
                doc = self.read_document(desc)
                children = list(doc.get("manifests", [])) + list(doc.get("layers", []))
                children += [doc[k] for k in ("config", "subject") if k in doc]
                pending.extend(Descriptor.from_json(c) for c in children)
        return seen

    def gc(self) -> list[Digest]:
        """Delete unreferenced blobs and stray temporaries; return the deleted digests."""
        removed: list[Digest] = []
        with locked(self._lock("gc")):
            with locked(self._lock("index")):
                keep = self.reachable()
            blobs = os.path.join(self.path, "blobs")
            for algorithm in sorted(os.listdir(blobs)):
                folder = os.path.join(blobs, algorithm)
                for name in sorted(os.listdir(folder)):
                    try:
                        digest = Digest.parse(f"{algorithm}:{name}")
                    except OciError:
                        continue  # not ours to judge
                    if digest not in keep:
                        os.unlink(os.path.join(folder, name))
                        removed.append(digest)
                fsync_dir(folder)
            self.remove_temporaries()
        return removed


class _Session:
    """`.ocikit/gc.lock` held shared; taken exclusively for a moment first, when free, to
    remove what killed writers left."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def __enter__(self) -> None:
        self.fd = os.open(self.layout._lock("gc"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another writer is at work (or a gc, which the shared lock waits for)
            else:
                self.layout.remove_temporaries()
            fcntl.flock(self.fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class _Reading:
    """A shared flock on an existing lock file; nothing at all when there is none."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return  # a layout no ocikit command wrote to: no gc of ours runs on it
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _unlink(path: str) -> list[str]:
    try:
        os.unlink(path)
    except IsADirectoryError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        return []
    return [path]


def _reason(err: OSError) -> str:
    """What an OSError says, lowercased as our messages are (`no space left on device`)."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
