"""Copy an image from a source (oci.registry.sources: a registry, or another layout) into an
OCI image layout.

`pull()` works in three steps so that a failure never leaves the layout half-changed:

1. plan: read the manifest (an index resolved to one platform, or all of them), every
   document checked against its digest, size cap and schema, before anything is written;
2. transfer: the blobs the layout lacks travel in parallel, each verified while it
   streams (digest and size); an interrupted download resumes with a Range request;
3. commit: manifests are stored (children before parents) and the tag is written
   atomically, last.

A failure or Ctrl-C in step 1 writes nothing. In step 2 or 3 the index stays untouched,
partial downloads never appear under a digest name, and the blobs this pull had stored
are removed again (`roll_back`), so the layout is as it was. A pull killed outright
(SIGKILL) leaves at most verified blobs and a stray temporary, which `gc` removes.
"""

from __future__ import annotations

import time
from _thread import allocate_lock
from collections import namedtuple

from oci import log, schema
from oci.descriptor import CONFIGS, INDEXES, MANIFESTS, Descriptor
from oci.digest import Digest, verify_bytes
from oci.errors import DigestMismatch, IntegrityError, NotFound, RegistryError, Unsupported
from oci.layout import MAX_DOCUMENT, Layout

from .http import backoff_delay, describe_error
from .manifests import MAX_MANIFEST, Manifest
from .wire import IncompleteBody

TYPE_CHECKING = False
if TYPE_CHECKING:  # the interfaces, for type checkers only (typing costs a command's start ~3 ms)
    import threading
    from typing import BinaryIO, Callable

    from oci import platform as platforms

    from .sources import Source
    from .workers import Progress

MAX_DEPTH = 4  # an index may point at an index, this deep at most
PROGRESS = 64 << 10  # a break after this many new bytes (or the rest of the blob) made progress


class Interrupted(Exception):
    """Another transfer failed: this one stops early."""


class Plan:
    """What a pull stores: blobs first, then documents (children before parents)."""

    def __init__(self, root: Manifest) -> None:
        self.root = root  # what the reference named
        self.blobs: dict[Digest, Descriptor] = {}
        self.documents: list[Manifest] = []
        self.configs: set[Digest] = set()

    def add_document(self, manifest: Manifest) -> None:
        if all(d.digest != manifest.digest for d in self.documents):
            self.documents.append(manifest)


class Stats:
    """What travelled."""

    def __init__(self) -> None:
        self.blobs_fetched = 0
        self.bytes_fetched = 0
        self.blobs_present = 0


class Result(namedtuple("Result", ["layout", "descriptor", "stats"])):
    """What a pull did: the layout, the tagged descriptor, and what travelled."""

    __slots__ = ()
    layout: Layout
    descriptor: Descriptor
    stats: Stats


class Puller:
    """Copies images from one source into one layout."""

    def __init__(self, source: Source, layout_path: str, *, jobs: int = 4, progress: Progress | None = None,
                 backoff: float = 0.5, retries: int = 5) -> None:
        self.source = source
        self.jobs = max(1, jobs)
        self.progress = progress
        self.backoff = backoff
        self.retries = retries
        self.existing = _open_existing(layout_path)  # None until the layout exists
        self._stop: threading.Event | None = None  # made when blobs travel
        self._added_lock = allocate_lock()
        self.added: list[Digest] = []  # blobs this pull stored, for a rollback when it fails

    # -- step 1: plan --------------------------------------------------

    def plan(self, reference: str, platform: platforms.Platform | None, all_platforms: bool) -> tuple[Plan, Manifest]:
        """Read and check every document of the image; nothing is written yet. Returns the plan
        and the manifest to tag (the root with `all_platforms`, else the platform's manifest)."""
        root = self.source.manifest(reference)
        _validate(root, f"{self.source}:{reference}")
        plan = Plan(root)
        chosen = root
        if all_platforms:
            self._walk(plan, root, 0)
            return plan, root
        for _ in range(MAX_DEPTH):
            if chosen.media_type not in INDEXES:
                break
            from oci.platform import Platform, choose

            index = schema.load(chosen.data, chosen.media_type, str(chosen.digest), remember=True)
            entry = choose(index.get("manifests", []), platform or Platform.host(), f"{self.source}@{chosen.digest}")
            chosen = self._document(Descriptor.from_json(entry))
        if chosen.media_type in INDEXES:
            raise Unsupported(f"{self.source}@{root.digest}: indexes nested deeper than {MAX_DEPTH}")
        self._walk(plan, chosen, 0)
        return plan, chosen

    def _walk(self, plan: Plan, manifest: Manifest, depth: int) -> None:
        # validated before: a hit of the validation memo, no JSON parsing
        doc = schema.load(manifest.data, manifest.media_type, str(manifest.digest), remember=True)
        if manifest.media_type in INDEXES:
            if depth >= MAX_DEPTH:
                raise Unsupported(f"{self.source}@{manifest.digest}: indexes nested deeper than {MAX_DEPTH}")
            for entry in doc.get("manifests", []):
                child = Descriptor.from_json(entry)
                if child.media_type in MANIFESTS | INDEXES:
                    self._walk(plan, self._document(child), depth + 1)
                else:
                    plan.blobs.setdefault(child.digest, child)
        else:
            config = Descriptor.from_json(doc["config"])
            plan.blobs.setdefault(config.digest, config)
            if config.media_type in CONFIGS:
                plan.configs.add(config.digest)
            for layer in doc.get("layers", []):
                descriptor = Descriptor.from_json(layer)
                plan.blobs.setdefault(descriptor.digest, descriptor)
        plan.add_document(manifest)

    def _document(self, descriptor: Descriptor) -> Manifest:
        """A child manifest by digest: from the target layout when it has it, else the source."""
        where = f"{self.source}@{descriptor.digest}"
        if descriptor.size > MAX_MANIFEST:
            raise IntegrityError(f"{where}: manifest size {descriptor.size} exceeds the cap of {MAX_MANIFEST}")
        if self.existing is not None and self.existing.has_blob(descriptor.digest, descriptor.size):
            data = self.existing.read_blob(descriptor, MAX_MANIFEST)
            manifest = Manifest(descriptor.media_type, descriptor.digest, data)
        else:
            manifest = self.source.manifest(str(descriptor.digest))
            if manifest.digest != descriptor.digest or len(manifest.data) != descriptor.size:
                raise IntegrityError(f"{where}: served manifest ({manifest.digest}, {len(manifest.data)} bytes) "
                                     f"does not match its descriptor ({descriptor.size} bytes)")
            if manifest.media_type != descriptor.media_type:
                raise IntegrityError(f"{where}: the registry serves a {manifest.media_type}, "
                                     f"the index says {descriptor.media_type}")
        _validate(manifest, where)
        return manifest

    # -- step 2 and 3: transfer and commit -------------------------------

    def store(self, plan: Plan, layout: Layout) -> Stats:
        """Fetch the missing blobs of `plan` and store its documents; the caller tags."""
        stats = Stats()
        missing = []
        for descriptor in plan.blobs.values():
            if layout.has_blob(descriptor.digest, descriptor.size):
                stats.blobs_present += 1
            else:
                missing.append(descriptor)
        missing.sort(key=lambda d: -d.size)  # the largest first keeps every worker busy
        if missing:
            if self.progress:
                self.progress.begin(missing)
            self._transfer(missing, layout, plan)
            stats.blobs_fetched = len(missing)
            stats.bytes_fetched = sum(d.size for d in missing)
        for manifest in plan.documents:
            if not layout.has_blob(manifest.digest, len(manifest.data)):
                layout.put_bytes(manifest.data, manifest.digest)
                self._record(manifest.digest)
        return stats

    def _record(self, digest: Digest) -> None:
        with self._added_lock:
            self.added.append(digest)

    def _transfer(self, missing: list[Descriptor], layout: Layout, plan: Plan) -> None:
        import threading
        from concurrent.futures import FIRST_EXCEPTION, wait

        from .workers import transfer_pool

        self._stop = stop = threading.Event()
        pool = transfer_pool(min(self.jobs, len(missing)), "oci-fetch")
        try:
            futures = [pool.submit(self._fetch_blob, d, layout, d.digest in plan.configs) for d in missing]
            wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if errors:  # the first real failure, not the transfers it stopped
                raise next((e for e in errors if not isinstance(e, Interrupted)), errors[0])  # type: ignore[misc]
        except BaseException:
            stop.set()
            self.source.abort()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fetch_blob(self, descriptor: Descriptor, layout: Layout, is_config: bool) -> None:
        """Download and store one blob. Bytes of the right size whose digest differs were altered
        on the way (a proxy, a flaky link): the blob is downloaded once more before that is an
        integrity error. A size that differs from the descriptor is a lie no retry mends."""
        stop = self._stop
        assert stop is not None
        for attempt in (1, 2):
            if stop.is_set():
                raise Interrupted()
            reader = ResumingReader(self.source, descriptor, stop, self.progress, self.backoff, self.retries)
            try:
                self._store_blob(reader, descriptor, layout, is_config)
                break
            except DigestMismatch as err:
                if attempt == 2:
                    raise DigestMismatch(f"{err.message} (downloaded twice)") from None
                log.warning("%s; downloading it once more", err.message)
            finally:
                reader.close()
        self._record(descriptor.digest)

    def _store_blob(self, reader: ResumingReader, descriptor: Descriptor, layout: Layout, is_config: bool) -> None:
        where = f"{self.source}@{descriptor.digest}"
        if is_config:
            if descriptor.size > MAX_DOCUMENT:
                raise IntegrityError(f"{where}: config size {descriptor.size} exceeds the cap of {MAX_DOCUMENT}")
            buffer = memoryview(bytearray(descriptor.size + 1))  # one byte more shows a longer config
            got = 0
            while count := reader.readinto(buffer[got:]):
                got += count
            data = bytes(buffer[:got])
            verify_bytes(data, descriptor.digest, descriptor.size, where)
            schema.load(data, descriptor.media_type, where, remember=True)
            layout.put_bytes(data, descriptor.digest)
            return
        try:
            layout.put_blob(reader, descriptor.digest, descriptor.size)
        except IntegrityError as err:
            raise type(err)(f"{where}: {err.message}") from None

    def referrers(self, subjects: list[Digest], layout: Layout) -> list[tuple[str, Descriptor]]:
        """Copy the artifacts that refer to `subjects`; returns the tags that keep them reachable
        in the layout, for the caller to write: each subject's referrers index as `<alg>-<hex>`
        (the tag schema) and cosign signatures as `<alg>-<hex>.sig`."""
        tagged = []
        for subject in dict.fromkeys(subjects):
            index = self.source.referrers(subject)
            if index is not None:
                _validate(index, f"{self.source}@{subject}: referrers")
                plan = Plan(index)
                self._walk(plan, index, 0)
                self.store(plan, layout)
                tagged.append((f"{subject.algorithm}-{subject.hex}", index.descriptor))
            signature_tag = f"{subject.algorithm}-{subject.hex}.sig"
            try:
                signatures = self.source.manifest(signature_tag)
            except NotFound:
                continue
            _validate(signatures, f"{self.source}:{signature_tag}")
            plan = Plan(signatures)
            self._walk(plan, signatures, 0)
            self.store(plan, layout)
            tagged.append((signature_tag, signatures.descriptor))
        return tagged


class ResumingReader:
    """A blob's bytes from a source; a broken connection resumes where it stopped (Range).

    `retries` breaks in a row without progress (PROGRESS new bytes since the last break) end
    the download; a break after progress starts the count again, so a link that drops every
    few megabytes still delivers a large blob. A source that ends cleanly before the
    descriptor's size, or announces another size, lies about the blob: an IntegrityError at once."""

    def __init__(self, source: Source, descriptor: Descriptor, stop: threading.Event,
                 progress: Progress | None, backoff: float = 0.5, retries: int = 5) -> None:
        self.source = source
        self.descriptor = descriptor
        self.offset = 0
        self.resumes = 0
        self.failures = 0  # breaks in a row without progress
        self._mark = 0  # the offset of the last break
        self._retries = retries
        self._stop = stop
        self._progress = progress
        self._backoff = backoff
        self._stream: BinaryIO | None = None

    def _open(self) -> BinaryIO:
        stream, start = self.source.open_blob(self.descriptor, self.offset)
        length = getattr(stream, "length", None)  # a registry's Content-Length
        if length is not None and start + length != self.descriptor.size:
            stream.close()
            raise IntegrityError(f"{self.source}@{self.descriptor.digest}: the registry serves "
                                 f"{start + length} bytes, the descriptor says {self.descriptor.size}")
        skip = self.offset - start
        while skip > 0:  # the source ignored the range: skip what we have
            chunk = stream.read(min(skip, 1 << 20))
            if not chunk:
                raise IncompleteBody("the source ended before the resumed offset")
            skip -= len(chunk)
        return stream

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Fill `buffer` with the next bytes of the blob (0 at its end). Bytes count once they are
        returned: what a broken read had received is fetched again from the resumed offset."""
        while True:
            if self._stop.is_set():
                raise Interrupted()
            try:
                if self._stream is None:
                    self._stream = self._open()
                count = self._stream.readinto(buffer)  # type: ignore[attr-defined]
                if not count and self.offset < self.descriptor.size:
                    self._ended_early()
            except OSError as err:
                if self._stop.is_set():
                    raise Interrupted() from None
                self._resume(err)
                continue
            self.offset += count
            if count and self._progress:
                self._progress.advance(self.descriptor, self.offset)
            return count

    def _ended_early(self) -> None:
        """The body ended before the descriptor's size: a cut connection when nothing framed the
        body (it ends with the connection), else a blob shorter than its descriptor says."""
        missing = self.descriptor.size - self.offset
        if getattr(self._stream, "unframed", False):
            raise IncompleteBody(f"connection closed with {missing} bytes missing")
        raise IntegrityError(f"{self.source}@{self.descriptor.digest}: the blob ends at byte {self.offset}, "
                             f"the descriptor says {self.descriptor.size}")

    def _resume(self, err: BaseException) -> None:
        self.close()
        progressed = self.offset - self._mark >= max(1, min(PROGRESS, self.descriptor.size - self._mark))
        if progressed:
            self.failures = 0
        self._mark = self.offset
        if self.failures >= self._retries:
            tries = f"{self.failures + 1} attempts in a row without progress" if self.failures else "no retries"
            raise RegistryError(f"{self.source}@{self.descriptor.digest}: download failed at byte "
                                f"{self.offset} ({tries}): {describe_error(err)}") from None
        delay = 0.0 if progressed else backoff_delay(self.failures, self._backoff, 10.0)  # after progress: at once
        self.failures += 1
        self.resumes += 1
        log.warning("%s@%s: interrupted at byte %d (%s); resuming in %.1fs",
                    self.source, self.descriptor.digest, self.offset, describe_error(err), delay)
        time.sleep(delay)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            try:
                stream.close()
            except OSError:
                pass


def pull(source: Source, reference: str, layout_path: str, *, tag: str, platform: platforms.Platform | None = None,
         all_platforms: bool = False, referrers: bool = False, jobs: int = 4,
         progress: Progress | None = None, backoff: float = 0.5, retries: int = 5,
         annotations: dict[str, str] | None = None, verify: Callable[[Digest], object] | None = None) -> Result:
    """Copy the image `reference` names from `source` into the layout at `layout_path`, tag it
    `tag` there (with extra `annotations` on the index entry), and return the tagged
    descriptor with transfer figures. A broken download resumes until `retries` breaks in a row
    made no progress. `verify(digest)` is asked about the image's root
    manifest before anything is written; it raises to refuse the image."""
    puller = Puller(source, layout_path, jobs=jobs, progress=progress, backoff=backoff, retries=retries)
    plan, target = puller.plan(reference, platform, all_platforms)
    if verify is not None:
        verify(plan.root.digest)
    layout = puller.existing or Layout.open(layout_path, create=True)
    try:
        with layout.session():
            stats = puller.store(plan, layout)
            found = puller.referrers([d.digest for d in plan.documents], layout) if referrers else []
            # The image and its referrers are tagged together, in one index.json, or not at all.
            descriptor = layout.tag_all([(tag, target.descriptor.with_annotations(**(annotations or {}))), *found])[0]
    except BaseException:
        layout.roll_back(puller.added)
        raise
    remember = getattr(source, "remember", None)
    if remember is not None:
        remember(list(plan.blobs))
    return Result(layout, descriptor, stats)


def _validate(manifest: Manifest, where: str) -> None:
    """Check a served manifest or index against its schema."""
    doc = schema.load(manifest.data, manifest.media_type, where, remember=True)
    declared = doc.get("mediaType")
    if declared and declared != manifest.media_type:
        raise IntegrityError(f"{where}: the document says mediaType {declared}, its descriptor says "
                             f"{manifest.media_type}")


def _open_existing(path: str) -> Layout | None:
    """The layout at `path`; None where there is none yet (a path of the wrong kind, or a
    layout that cannot be read, is refused now, before anything travels)."""
    try:
        return Layout.open(path)
    except NotFound:
        return None


