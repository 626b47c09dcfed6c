"""Pushing an image from a layout to a registry: only missing blobs travel, manifests last.

    result = push(layout, descriptor, repository, tags=["1.0"], jobs=4)

* Every blob (configs and layers of every manifest, for an index every platform) is first
  asked for with HEAD (two per job at once, each on a kept-alive connection of its own);
  present blobs are skipped. A missing blob is mounted from another
  repository of the same registry when one is known to hold it (the repositories earlier
  pulls and pushes saw holding it, `oci.registry.locations`; `mount_from`, and the
  repository the layout says the image came from), else uploaded.
* Blobs up to `chunk_size` go up monolithically (POST, then PUT with the body); larger ones
  in PATCH chunks of `chunk_size` with Content-Range. A chunk that fails is resumed from the
  offset the registry reports for the upload (its `Range`); when the registry dropped the
  upload, the blob starts over in a new one. Attempts back off like every other request.
* The bytes sent are hashed on the way and checked against the layout's digest; a registry
  refusing a digest is reported as an integrity error naming the blob.
* Child manifests are put by digest after their blobs, the top manifest or index by each
  tag (or by digest when there is none), unless a HEAD (asked before the blobs) showed the
  registry serving that very digest there already.
* When the repository holds the top manifest or index already (a tag serves it, else a HEAD
  by digest finds it), no blob or child is asked for: registries take a manifest only when
  they hold every blob and child manifest it names (distribution checks on each put), so
  only missing tags are put. A second push of an image is one HEAD.
* A manifest with a `subject` is recorded in the referrers tag schema (`<alg>-<hex>` index)
  when the registry has no referrers API.
"""

from __future__ import annotations

import json
from _thread import allocate_lock

from oci import schema
from oci.descriptor import INDEXES, MANIFESTS, OCI_INDEX, Descriptor
from oci.digest import Digest
from oci.errors import AuthError, IntegrityError, InvalidInput, NotFound, OciError, RegistryError
from oci.layout import Layout
from oci.reference import Reference

from .client import Repository, Upload
from .http import HttpError, SentBytes, transient
from .locations import SOURCE_ANNOTATION, BlobLocations
from .manifests import MAX_MANIFEST

DEFAULT_CHUNK_SIZE = 32 << 20
BLOB_ATTEMPTS = 4  # fresh upload sessions per blob before giving up
MAX_DEPTH = 4
BASE_NAME_ANNOTATION = "org.opencontainers.image.base.name"  # manifest: the image this one builds on
DIGEST_REFUSALS = ("DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID")
AHEAD_PER_JOB = 2  # blobs (and child manifests) asked for at once per --jobs, each HEAD on a connection of its own

TYPE_CHECKING = False
if TYPE_CHECKING:  # for type checkers only (typing costs a command's start ~3 ms)
    import threading

    from .workers import Progress


class Plan:
    """What an image consists of: blobs to ensure, then manifests in the order to put them."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, Descriptor] = {}
        self.manifests: list[tuple[Descriptor, bytes]] = []  # children first, root last
        self.mount_from: list[str] = []


class Result:
    """What a push did."""

    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.blobs_uploaded = 0
        self.bytes_uploaded = 0
        self.blobs_mounted = 0
        self.blobs_present = 0
        self.tags: list[str] = []


def plan(layout: Layout, descriptor: Descriptor) -> Plan:
    """Walk an image (a manifest or an index, with every platform) in the layout."""
    result = Plan()
    _walk(layout, descriptor, result, 0)
    return result


def _walk(layout: Layout, descriptor: Descriptor, result: Plan, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise IntegrityError(f"{layout.path}@{descriptor.digest}: indexes nested deeper than {MAX_DEPTH}")
    if descriptor.media_type not in MANIFESTS | INDEXES:
        raise InvalidInput(f"{layout.path}@{descriptor.digest}: not a manifest or index ({descriptor.media_type})")
    data, doc = layout.read_manifest(descriptor, MAX_MANIFEST)  # refused before any blob travels
    if descriptor.media_type in INDEXES:
        for child in doc.get("manifests", []):
            child_descriptor = Descriptor.from_json(child)
            if child_descriptor.media_type in MANIFESTS | INDEXES:
                _walk(layout, child_descriptor, result, depth + 1)
            else:
                result.blobs.setdefault(child_descriptor.digest, child_descriptor)
    else:
        for blob in [doc["config"], *doc.get("layers", [])]:
            if blob.get("urls") and not layout.has_blob(blob["digest"]):
                continue  # a foreign layer: it lives elsewhere
            blob_descriptor = Descriptor.from_json(blob)
            result.blobs.setdefault(blob_descriptor.digest, blob_descriptor)
        base = (doc.get("annotations") or {}).get(BASE_NAME_ANNOTATION)
        if base:
            result.mount_from.append(base)
    if not any(d.digest == descriptor.digest for d, _ in result.manifests):
        result.manifests.append((descriptor, data))


def mount_sources(target: Repository, hints: list[str]) -> list[str]:
    """The repositories of the target's registry that the hints (repository names or full
    references) name, without the target itself."""
    found: list[str] = []
    for hint in hints:
        name = hint
        if "/" in hint and ("." in hint.split("/", 1)[0] or ":" in hint.split("/", 1)[0]
                            or hint.split("/", 1)[0] == "localhost"):
            try:
                ref = Reference.parse(hint)
            except OciError:
                continue
            if ref.registry != target.registry.name:
                continue
            name = ref.repository
        name = name.split("@", 1)[0]
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        if name and name != target.name and name not in found:
            found.append(name)
    return found


class Pusher:
    """Copies an image from a layout to one repository."""

    def __init__(self, layout: Layout, repository: Repository, *, jobs: int = 4,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, mount_from: list[str] | None = None,
                 progress: Progress | None = None) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.layout = layout
        self.repository = repository
        self.jobs = max(1, jobs)
        self.chunk_size = chunk_size
        self.hints = list(mount_from or [])
        self.progress = progress
        self._stop: threading.Event | None = None  # made when blobs travel
        self._lock = allocate_lock()
        self.locations = BlobLocations(repository.registry.host)

    def push(self, descriptor: Descriptor, tags: list[str]) -> Result:
        """Ensure every blob, put the manifests, tag the root; the pushed root's descriptor."""
        references = tags or [str(descriptor.digest)]
        for reference in references:  # answered while the layout is read
            self.repository.prefetch_manifest(reference, head=True)
        image = plan(self.layout, descriptor)
        result = Result(Descriptor(descriptor.media_type, descriptor.digest, descriptor.size,
                                   platform=descriptor.platform, artifact_type=descriptor.artifact_type))
        *children, (root, root_data) = image.manifests
        served = {reference for reference in references if self._serves(reference, root)}
        if served or self._serves(str(root.digest), root):  # held, so with every blob and child it names
            result.blobs_present = len(image.blobs)
        else:
            for child, _ in children[:AHEAD_PER_JOB * self.jobs]:
                self.repository.prefetch_manifest(str(child.digest), head=True)
            sources = mount_sources(self.repository, self.hints + image.mount_from
                                    + _source_hints(self.layout, descriptor))
            self._ensure_blobs(list(image.blobs.values()), sources, result)
            for child, data in children:
                if not self._serves(str(child.digest), child):
                    self._put_manifest(str(child.digest), child, data)
        for tag in references:
            if tag not in served:
                self._put_manifest(tag, root, root_data)
            if tag != str(root.digest):
                result.tags.append(tag)
        subject = _subject(root, root_data)
        if subject is not None:
            self._record_referrer(subject, root, root_data)
        self.locations.record(self.repository.name, list(image.blobs))
        return result

    def _serves(self, reference: str, descriptor: Descriptor) -> bool:
        """True when the registry serves exactly `descriptor` as `reference` (HEAD); any doubt
        (an error, a registry without HEAD) means no: the manifest is put."""
        try:
            found = self.repository.head_manifest(reference)
        except OciError:
            return False
        return found is not None and found.digest == descriptor.digest and found.size == descriptor.size

    # -- blobs -------------------------------------------------------------

    def _ensure_blobs(self, blobs: list[Descriptor], sources: list[str], result: Result) -> None:
        # Two per job are asked for at once (HEADs sent ahead, one connection each: a second
        # push of an image costs one round trip and no thread); the answers are read in turn
        # while the registry has the blobs, and from the first missing blob on the rest travel
        # in parallel.
        blobs = sorted(blobs, key=lambda d: -d.size)  # the largest first keeps every worker busy
        for blob in blobs[:AHEAD_PER_JOB * self.jobs]:
            self.repository.prefetch_blob_size(blob.digest)
        while blobs and self.repository.blob_size(blobs[0].digest) is not None:
            self._count(result, "present", blobs.pop(0))
        if not blobs:
            return
        import threading
        from concurrent.futures import FIRST_EXCEPTION, wait

        from .workers import transfer_pool

        self._stop = threading.Event()
        first, *rest = blobs
        pool = transfer_pool(min(self.jobs, len(blobs)), "oci-push")
        try:
            futures = [pool.submit(self._ensure_blob, first, sources, result, True)]
            futures += [pool.submit(self._ensure_blob, blob, sources, result) for blob in rest]
            wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if errors:
                self._stop.set()
                real = [e for e in errors if not isinstance(e, _Stopped)]
                raise (real or errors)[0]  # type: ignore[misc]
        except BaseException:
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _ensure_blob(self, blob: Descriptor, sources: list[str], result: Result, missing: bool = False) -> None:
        """Make the registry hold `blob`: asked for first (unless known `missing`), then mounted or uploaded."""
        if self._stop is not None and self._stop.is_set():
            raise _Stopped()
        if not missing and self.repository.blob_size(blob.digest) is not None:
            self._count(result, "present", blob)
            return
        if not self.layout.has_blob(blob.digest, blob.size):  # a sparse layout is fine while the registry has it
            raise NotFound(f"{self.layout.path}: blob {blob.digest} ({blob.size} bytes) is missing from the layout")
        upload: Upload | None = None
        known = [name for name in self.locations.where(blob.digest) if name != self.repository.name]
        for source in dict.fromkeys(known + sources):  # where the registry was seen holding it first
            try:
                upload = self.repository.mount_blob(blob.digest, source)
            except (AuthError, NotFound, HttpError):
                continue  # a hint we may not read, or a registry without mounts: upload it
            if upload is None:
                self._count(result, "mounted", blob)
                return
            break  # the registry opened an upload instead: use it
        if self.progress:
            self.progress.begin([blob])  # it travels
        for attempt in range(BLOB_ATTEMPTS):
            if upload is None:
                upload = self.repository.start_upload()
            try:
                self._upload(blob, upload)
                self._count(result, "uploaded", blob)
                return
            except _UploadLost as lost:
                if attempt == BLOB_ATTEMPTS - 1:
                    raise RegistryError(f"{self.repository}@{blob.digest}: upload failed {BLOB_ATTEMPTS} times: "
                                        f"{lost.reason}") from None
                self.repository.registry.transport.pause(attempt, None, f"{self.repository}@{blob.digest}: "
                                                         f"{lost.reason}; starting the upload over")
                upload = None

    def _count(self, result: Result, how: str, blob: Descriptor) -> None:
        with self._lock:
            if how == "present":
                result.blobs_present += 1
            elif how == "mounted":
                result.blobs_mounted += 1
            else:
                result.blobs_uploaded += 1
                result.bytes_uploaded += blob.size
        if self.progress and how == "uploaded":
            self.progress.advance(blob, blob.size)

    def _sending(self, blob: Descriptor, data: bytes, offset: int = 0) -> bytes | SentBytes:
        """`data` as a request body that tells the progress display each block sent (from
        `offset` in the blob); the bytes themselves without one."""
        if self.progress is None:
            return data
        progress = self.progress
        return SentBytes(data, lambda sent: progress.advance(blob, offset + sent))

    def _upload(self, blob: Descriptor, upload: Upload) -> None:
        """Send the blob into `upload` and close it; _UploadLost when the session must start over."""
        with open(self.layout.blob_path(blob.digest), "rb") as f:
            if blob.size <= self.chunk_size:
                data = f.read(blob.size + 1)
                _check(data, blob, self.layout)
                self._finish(blob, upload, self._sending(blob, data))
                return
            hasher, hashed = blob.digest.hasher(), 0
            failures = 0
            while upload.offset < blob.size:
                if self._stop is not None and self._stop.is_set():
                    self.repository.cancel_upload(upload)
                    raise _Stopped()
                f.seek(upload.offset)
                data = f.read(min(self.chunk_size, blob.size - upload.offset))
                if not data:
                    raise IntegrityError(f"{self.layout.path}: blob {blob.digest} is shorter than {blob.size} bytes")
                if upload.offset + len(data) > hashed:
                    hasher.update(data[hashed - upload.offset:])
                    hashed = upload.offset + len(data)
                try:
                    upload = self.repository.upload_chunk(upload, self._sending(blob, data, upload.offset))
                    failures = 0
                except (HttpError, NotFound) as err:
                    if isinstance(err, HttpError) and not (transient(err.status) or err.status == 416):
                        raise  # refused as asked (400, 413, ...): asking again does not help
                    failures += 1
                    if failures > self.repository.registry.transport.options.retries:
                        raise
                    self.repository.registry.transport.pause(failures - 1, None, f"{self.repository}@{blob.digest}: "
                                                             f"chunk at {upload.offset}: {err.message}")
                    upload = self._resume(upload, blob, err)
                    continue
                if self.progress:
                    self.progress.advance(blob, upload.offset)
            if hashed != blob.size or f.read(1):
                raise IntegrityError(f"{self.layout.path}: blob {blob.digest} is not {blob.size} bytes long")
            if hasher.hexdigest() != blob.digest.hex:
                self.repository.cancel_upload(upload)
                raise IntegrityError(f"{self.layout.path}: blob {blob.digest} does not match its digest "
                                     "(the layout is damaged)")
            self._finish(blob, upload, None)

    def _resume(self, upload: Upload, blob: Descriptor, err: OciError) -> Upload:
        """Ask the registry where the upload stands; _UploadLost when it forgot the upload."""
        try:
            status = self.repository.upload_status(upload)
        except (NotFound, HttpError) as lost:
            raise _UploadLost(f"chunk at {upload.offset} failed ({err.message}) and the registry dropped "
                              f"the upload ({lost.message})") from None
        if status.offset > upload.offset + self.chunk_size or status.offset > blob.size:
            raise _UploadLost(f"the registry holds {status.offset} bytes, more than were sent")
        return status

    def _finish(self, blob: Descriptor, upload: Upload, data: bytes | SentBytes | None) -> None:
        try:
            self.repository.finish_upload(upload, blob.digest, data)
        except HttpError as err:
            if err.status == 400 and any(code in err.message for code in DIGEST_REFUSALS):
                raise IntegrityError(f"{self.repository}: the registry refused blob {blob.digest} from "
                                     f"{self.layout.path}: {_detail(err.message)}") from None
            if not transient(err.status):
                raise  # refused as asked (400, 413, ...): a new upload would be refused alike
            raise _UploadLost(err.message) from None
        except NotFound as err:
            raise _UploadLost(err.message) from None

    # -- manifests ---------------------------------------------------------

    def _put_manifest(self, reference: str, descriptor: Descriptor, data: bytes) -> None:
        try:
            self.repository.put_manifest(reference, data, descriptor.media_type)
        except HttpError as err:
            if err.status == 400 and any(code in err.message for code in ("MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN")):
                raise NotFound(f"{self.repository}:{reference}: the registry misses a blob of manifest "
                               f"{descriptor.digest} {_detail(err.message)}") from None
            raise

    def _record_referrer(self, subject: Descriptor, artifact: Descriptor, data: bytes) -> None:
        """Add the artifact to its subject's referrers tag (`<alg>-<hex>`) unless the registry
        serves the referrers API itself."""
        registry = self.repository.registry
        url = registry.url(f"/v2/{self.repository.name}/referrers/{subject.digest}")
        response = registry.request("GET", url, self.repository.scopes, {"Accept": OCI_INDEX})
        content_type = (response.header("Content-Type") or "").split(";", 1)[0].strip()
        response.drain()
        if response.status == 200 and content_type == OCI_INDEX:
            return
        tag = f"{subject.digest.algorithm}-{subject.digest.hex}"
        try:
            current = self.repository.get_manifest(tag, accept=(OCI_INDEX,))
            index = schema.load(current.data, "index", f"{self.repository}:{tag}")
        except NotFound:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        doc = json.loads(data)
        entry = {"mediaType": artifact.media_type, "digest": str(artifact.digest), "size": len(data)}
        artifact_type = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
        if artifact_type:
            entry["artifactType"] = artifact_type
        if doc.get("annotations"):
            entry["annotations"] = doc["annotations"]
        if any(m.get("digest") == entry["digest"] for m in index.get("manifests", [])):
            return
        index["manifests"] = [*index.get("manifests", []), entry]
        self.repository.put_manifest(tag, json.dumps(index, separators=(",", ":")).encode(), OCI_INDEX)


class _Stopped(Exception):
    """Another blob failed: this one stops early."""


class _UploadLost(Exception):
    """The upload session cannot continue; the blob starts over in a new one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check(data: bytes, blob: Descriptor, layout: Layout) -> None:
    if len(data) != blob.size or Digest.of(data, blob.digest.algorithm) != blob.digest:
        raise IntegrityError(f"{layout.path}: blob {blob.digest} does not match its digest or size "
                             "(the layout is damaged)")


def _detail(message: str) -> str:
    """The registry's own words from an HttpError message: `(CODE: message)`, else the message."""
    start = message.rfind(" (")
    return message[start + 1:] if start >= 0 and message.endswith(")") else message


def _subject(descriptor: Descriptor, data: bytes) -> Descriptor | None:
    if descriptor.media_type not in MANIFESTS | INDEXES:
        return None
    subject = json.loads(data).get("subject")
    return Descriptor.from_json(subject) if isinstance(subject, dict) else None


def _source_hints(layout: Layout, descriptor: Descriptor) -> list[str]:
    """Where the layout says this image came from: the source annotation of its index entries."""
    hints = [descriptor.annotations.get(SOURCE_ANNOTATION, "")]
    try:
        hints += [d.annotations.get(SOURCE_ANNOTATION, "") for d in layout.descriptors()
                  if d.digest == descriptor.digest]
    except OciError:
        pass
    return [h for h in hints if h]


def push(layout: Layout, descriptor: Descriptor, repository: Repository, *, tags: list[str] | None = None,
         jobs: int = 4, chunk_size: int = DEFAULT_CHUNK_SIZE, mount_from: list[str] | None = None,
         progress: Progress | None = None) -> Result:
    """Push the image `descriptor` names in `layout` to `repository`, under each of `tags`
    (by digest when none); only blobs the registry lacks travel."""
    with layout.reading():  # a push only reads the layout: it may be read-only
        return Pusher(layout, repository, jobs=jobs, chunk_size=chunk_size, mount_from=mount_from,
                      progress=progress).push(descriptor, list(dict.fromkeys(tags or [])))


def parse_size(text: str) -> int:
    """`1048576`, `512K`, `16M`, `1G` (powers of 1024) as a number of bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1] if value and value[-1] in units else ""
    number = value[: -1] if unit else value
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"invalid size {text!r}: expected a positive number with an optional K, M or G")
    return int(number) * units[unit]
