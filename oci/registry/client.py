"""A client for the OCI distribution API, the one code path of oci-fetch and oci-push.

    repo = connect(Reference.parse("127.0.0.1:5000/library/busybox:1"), Options(insecure=True))

Pulling:
    manifest = repo.get_manifest("1")            # Manifest(media_type, digest, data): bytes as served
    response, start = repo.open_blob(digest, offset=0)   # a streaming Response, Range-resumable
    repo.list_tags(); repo.referrers(digest)     # referrers API, with the tag-schema fallback

Pushing (`connect(ref, options, push=True)` asks for pull and push rights):
    repo.blob_size(digest) -> int | None         # HEAD: None when the blob is not there
    repo.mount_blob(digest, "other/repo") -> Upload | None   # None: mounted, nothing to upload
    upload = repo.start_upload()                 # Upload(location, offset=0)
    repo.finish_upload(upload, digest, body, size)           # monolithic: one PUT with the body
    upload = repo.upload_chunk(upload, data)     # chunked: PATCH with Content-Range, offset moves on
    upload = repo.upload_status(upload)          # after a failure: where the registry's copy ends
    repo.finish_upload(upload, digest)           # PUT ?digest= closes a chunked upload
    repo.cancel_upload(upload)
    repo.put_manifest("tag-or-digest", data, media_type) -> Digest

Every request authenticates as the registry asks (anonymous, basic, bearer token), is
retried on 408/429/5xx and connection errors (uploads of streamed bodies and PATCH
chunks are not: the caller resumes from `upload_status`), and maps failures to
oci.errors: NotFound (3), IntegrityError (4), RegistryError/HttpError (5), AuthError (6).
"""

from __future__ import annotations

from oci import log, schema
from oci.descriptor import OCI_INDEX, Descriptor
from oci.digest import Digest
from oci.errors import AuthError, DigestMismatch, IntegrityError, NotFound, OciError, RegistryError
from oci.reference import Reference

from . import urls
from .http import HttpError, Options, Response, SentBytes, Transport
from .manifests import MANIFEST_ACCEPT, MANIFEST_TYPES, MAX_MANIFEST, Manifest, manifest_media_type
from .session import Registry, credentials_for, error_detail

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .http import Body

MAX_TAG_LIST = 16 << 20
MAX_REDIRECTS = 5
_LINK_NEXT = r'<([^>]+)>\s*;\s*rel="?next"?'


class Upload:
    """A blob upload session: where to send the next request and how many bytes it holds. (A plain
    class, as Manifest.)"""

    __slots__ = ("location", "offset")

    def __init__(self, location: str, offset: int = 0) -> None:
        self.location, self.offset = location, offset

    def __repr__(self) -> str:
        return f"Upload({self.location!r}, {self.offset})"


class Repository:
    """One repository of a registry: the distribution-spec endpoints under /v2/NAME/."""

    def __init__(self, registry: Registry, name: str, push: bool = False) -> None:
        self.registry = registry
        self.name = name
        self.scopes = (f"repository:{name}:pull,push" if push else f"repository:{name}:pull",)

    def __str__(self) -> str:
        return f"{self.registry.name}/{self.name}"

    def _url(self, suffix: str) -> str:
        return self.registry.url(f"/v2/{self.name}/{suffix}")

    def _request(self, method: str, url: str, headers: dict[str, str] | None = None, body: Body = None,
                 *, retry: bool = True, scopes: tuple[str, ...] | None = None) -> Response:
        return self.registry.request(method, url, scopes or self.scopes, headers, body, retry=retry)

    def _fail(self, response: Response, what: str) -> OciError:
        """The error for an unexpected answer (the body is read for the registry's message)."""
        detail = error_detail(response)
        if response.status == 404:
            return NotFound(f"{what}: not found{detail}")
        if response.status in (401, 403):
            return AuthError(f"{what}: access denied (HTTP {response.status}){detail}")
        return HttpError(f"{what}: registry answered HTTP {response.status}{detail}", response.status)

    # -- pulling -----------------------------------------------------------

    def prefetch_manifest(self, reference: str, head: bool = False) -> None:
        """Ask for the manifest `get_manifest(reference)` (or `head_manifest`, with `head`) then
        reads, without waiting for the answer."""
        self.registry.send_ahead("HEAD" if head else "GET", self._url(f"manifests/{reference}"), self.scopes,
                                 {"Accept": MANIFEST_ACCEPT})

    def prefetch_blob_size(self, digest: Digest) -> None:
        """Ask now what `blob_size(digest)` then reads (a HEAD on a connection of its own)."""
        self.registry.send_ahead("HEAD", self._url(f"blobs/{digest}"), self.scopes)

    def get_manifest(self, reference: str, limit: int = MAX_MANIFEST,
                     accept: tuple[str, ...] = MANIFEST_TYPES) -> Manifest:
        """The manifest or index tagged or digested `reference`, bytes kept exactly as served."""
        what = f"{self}:{reference}" if not reference.startswith(("sha256:", "sha512:")) else f"{self}@{reference}"
        for attempt in (1, 2):  # bytes altered on the way are fetched once more
            response = self._request("GET", self._url(f"manifests/{reference}"), {"Accept": ", ".join(accept)})
            if response.status != 200:
                raise self._fail(response, what)
            data = response.read_all(limit, f"{what}: manifest")
            expected = Digest.parse(reference) if reference.startswith(("sha256:", "sha512:")) else None
            served = response.header("Docker-Content-Digest")
            if expected is None and served:
                try:
                    expected = Digest.parse(served)
                except OciError:
                    expected = None
            digest = Digest.of(data, expected.algorithm if expected else "sha256")
            if expected is None or digest == expected:
                break
            if attempt == 2:
                raise DigestMismatch(f"{what}: manifest digest {digest} does not match {expected} (fetched twice)")
            log.warning("%s: manifest digest %s does not match %s; fetching it once more", what, digest, expected)
        return Manifest(manifest_media_type(data, response.header("Content-Type"), what), digest, data)

    def head_manifest(self, reference: str) -> Descriptor | None:
        """The descriptor of a manifest without its body (None when it does not exist)."""
        response = self._request("HEAD", self._url(f"manifests/{reference}"), {"Accept": MANIFEST_ACCEPT})
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._fail(response, f"{self}:{reference}")
        digest, size = response.header("Docker-Content-Digest"), response.length
        if not digest or size is None:
            return None
        media_type = (response.header("Content-Type") or "").split(";", 1)[0].strip()
        return Descriptor(media_type, Digest.parse(digest), size)

    def open_blob(self, digest: Digest, offset: int = 0) -> tuple[Response, int]:
        """Stream a blob from `offset` (an HTTP Range request); returns the response and the
        offset its body actually starts at (0 when the registry ignored the range)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        what = f"{self}@{digest}"
        url = self._url(f"blobs/{digest}")
        response = self._request("GET", url, headers)
        for _ in range(MAX_REDIRECTS):
            if response.status not in (301, 302, 303, 307, 308):
                break
            location = response.header("Location")
            response.drain()
            if not location:
                raise RegistryError(f"{what}: redirect without a Location")
            target = urls.join(url, location)
            if _origin(target) == _origin(url):
                response = self._request("GET", target, headers)
            else:  # a storage backend: never send our registry credentials there
                response = self.registry.transport.request("GET", target, headers)
            url = target
        if response.status == 206 and offset:
            start = content_range_start(response.header("Content-Range"))
            if start != offset:
                response.close()
                raise RegistryError(f"{what}: asked for bytes from {offset}, got a range starting at {start}")
            return response, offset
        if response.status == 200:
            return response, 0
        if response.status == 416 and offset:
            response.drain()
            return self.open_blob(digest, 0)
        raise self._fail(response, f"{what}: blob")

    def list_tags(self, limit: int = MAX_TAG_LIST) -> list[str]:
        """Every tag of the repository (following `Link: <...>; rel="next"` pages)."""
        tags: list[str] = []
        url: str | None = self._url("tags/list")
        while url:
            response = self._request("GET", url)
            if response.status != 200:
                raise self._fail(response, f"{self}: tags")
            doc = _json(response.read_all(limit, f"{self}: tag list"), f"{self}: tag list")
            tags += [t for t in (doc.get("tags") or []) if isinstance(t, str)]
            link = next_link(response.header("Link"))
            url = urls.join(url, link) if link else None
        return tags

    def referrers(self, digest: Digest, artifact_type: str | None = None) -> Manifest | None:
        """The index of manifests whose `subject` is `digest`: from the referrers API, else the
        `<alg>-<hex>` tag of the fallback tag schema; None when there are none."""
        query = f"?{urls.encode_query({'artifactType': artifact_type})}" if artifact_type else ""
        response = self._request("GET", self._url(f"referrers/{digest}{query}"), {"Accept": OCI_INDEX})
        content_type = (response.header("Content-Type") or "").split(";", 1)[0].strip()
        if response.status == 200 and content_type == OCI_INDEX:
            data = response.read_all(MAX_MANIFEST, f"{self}@{digest}: referrers")
            index = schema.load(data, "index", f"{self}@{digest}: referrers")
            return Manifest(OCI_INDEX, Digest.of(data), data) if index.get("manifests") else None
        if response.status not in (200, 404):
            raise self._fail(response, f"{self}@{digest}: referrers")
        response.drain()
        try:
            fallback = self.get_manifest(f"{digest.algorithm}-{digest.hex}", accept=(OCI_INDEX,))
        except NotFound:
            return None
        if fallback.media_type != OCI_INDEX:
            return None
        return fallback

    # -- pushing -----------------------------------------------------------

    def blob_size(self, digest: Digest) -> int | None:
        """The size of the blob in the repository (HEAD), or None when it is not there."""
        response = self._request("HEAD", self._url(f"blobs/{digest}"))
        if response.status == 404:
            return None
        if response.status != 200:
            raise self._fail(response, f"{self}@{digest}: blob")
        return response.length

    def mount_blob(self, digest: Digest, from_repository: str) -> Upload | None:
        """Ask the registry to mount a blob from another repository; None when it did, else the
        upload session it opened instead."""
        query = urls.encode_query({"mount": str(digest), "from": from_repository})
        scopes = self.scopes + (f"repository:{from_repository}:pull",)
        response = self._request("POST", self._url(f"blobs/uploads/?{query}"), scopes=scopes)
        if response.status == 201:
            response.drain()
            return None
        return self._upload_from(response, f"{self}@{digest}: mount from {from_repository}")

    def start_upload(self) -> Upload:
        """Open a blob upload session (POST)."""
        response = self._request("POST", self._url("blobs/uploads/"))
        return self._upload_from(response, f"{self}: start upload")

    def upload_chunk(self, upload: Upload, data: bytes | Body) -> Upload:
        """Send the next chunk (PATCH with Content-Range; `data` bytes, or a sized body that
        reports progress); not retried: on failure ask `upload_status` where the registry's
        copy ends and continue from there."""
        size = len(data)  # type: ignore[arg-type]
        end = upload.offset + size - 1
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size),
                   "Content-Range": f"{upload.offset}-{end}"}
        response = self._request("PATCH", upload.location, headers, data, retry=False)
        if response.status != 202:
            raise self._fail(response, f"{self}: upload chunk at {upload.offset}")
        moved = self._upload_from(response, f"{self}: upload chunk")
        return Upload(moved.location, upload.offset + size)

    def upload_status(self, upload: Upload) -> Upload:
        """Where an interrupted upload stands: the registry's Range gives the next offset."""
        response = self._request("GET", upload.location)
        if response.status != 204:
            raise self._fail(response, f"{self}: upload status")
        moved = self._upload_from(response, f"{self}: upload status", expect=204)
        end = upload_range_end(response.header("Range"))
        if end == 0 and upload.offset == 0:
            end = -1  # distribution answers "0-0" for an empty upload too
        return Upload(moved.location, end + 1)

    def finish_upload(self, upload: Upload, digest: Digest, body: Body = None, size: int | None = None) -> None:
        """Close an upload with PUT ?digest=, sending `body` (the whole blob, for a monolithic
        upload, or the last chunk) when given. A file body is not retried."""
        separator = "&" if "?" in upload.location else "?"
        url = f"{upload.location}{separator}{urls.encode_query({'digest': str(digest)})}"
        headers = {"Content-Type": "application/octet-stream"}
        replayable = body is None or isinstance(body, (bytes, SentBytes))
        if body is not None:
            length = len(body) if isinstance(body, (bytes, SentBytes)) else size
            if length is None:
                raise ValueError("finish_upload: size is required with a streamed body")
            headers["Content-Length"] = str(length)
        response = self._request("PUT", url, headers, body, retry=replayable)
        if response.status != 201:
            raise self._fail(response, f"{self}@{digest}: upload")
        response.drain()

    def cancel_upload(self, upload: Upload) -> None:
        """Abandon an upload session (errors are ignored: the registry expires it anyway)."""
        try:
            self._request("DELETE", upload.location, retry=False).drain()
        except RegistryError:
            pass

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> Digest:
        """Upload a manifest or index under a tag or its digest; returns its digest."""
        digest = Digest.of(data)
        response = self._request("PUT", self._url(f"manifests/{reference}"), {"Content-Type": media_type}, data)
        if response.status != 201:
            raise self._fail(response, f"{self}:{reference}: put manifest")
        served = response.header("Docker-Content-Digest")
        response.drain()
        if served and served.startswith("sha256:") and served != str(digest):
            raise IntegrityError(f"{self}:{reference}: registry stored digest {served}, expected {digest}")
        return digest

    def _upload_from(self, response: Response, what: str, expect: int = 202) -> Upload:
        if response.status != expect:
            raise self._fail(response, what)
        location = response.header("Location")
        response.drain()
        if not location:
            raise RegistryError(f"{what}: registry gave no upload Location")
        return Upload(urls.join(response.url, location))


def connect(reference: Reference, options: Options | None = None, push: bool = False,
            transport: Transport | None = None) -> Repository:
    """The repository a reference names, reached with `options`."""
    registry = Registry(reference.api_host, options, name=reference.registry, transport=transport,
                        credentials=lambda: credentials_for(reference.registry, reference.repository))
    return Repository(registry, reference.repository, push)


def _origin(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) of a URL, or two empty strings when it is not http(s)."""
    try:
        return urls.split(url)[:2]
    except ValueError:
        return "", ""


def next_link(value: str | None) -> str | None:
    """The target of `Link: <URL>; rel="next"` (pagination), or None."""
    import re

    match = re.search(_LINK_NEXT, value or "")
    return match[1] if match else None


def content_range_start(value: str | None) -> int | None:
    """The first byte of `Content-Range: bytes START-END/TOTAL`."""
    import re

    match = re.match(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", value or "")
    return int(match[1]) if match else None


def upload_range_end(value: str | None) -> int:
    """The last byte an upload holds from its `Range: 0-END` header (-1 when empty)."""
    import re

    match = re.match(r"\s*(?:bytes=)?0-(-?\d+)\s*$", value or "")
    return max(-1, int(match[1])) if match else -1


def _json(data: bytes, what: str) -> dict:
    doc = schema.parse(data, what)
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: not a JSON object")
    return doc

