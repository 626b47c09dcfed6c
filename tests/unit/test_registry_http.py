"""The registry transport: backoff, Retry-After, retries, keep-alive, size caps, references -> URLs."""

import _socket
import email.utils
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oci.errors import IntegrityError, RegistryError, Unsupported
from oci.reference import Reference
from oci.registry import tls
from oci.registry.client import connect, content_range_start, upload_range_end
from oci.registry.http import HttpError, Options, Transport, backoff_delay, cert_dirs, parse_retry_after
from oci.registry.manifests import manifest_media_type
from oci.registry.tls import tls_context


def test_backoff_grows_and_is_capped():
    assert 0.5 <= backoff_delay(0, 0.5, 10) <= 0.625
    assert 4.0 <= backoff_delay(3, 0.5, 10) <= 5.0
    assert 10.0 <= backoff_delay(30, 0.5, 10) <= 12.5


def test_retry_after_seconds_date_and_garbage():
    assert parse_retry_after("3") == 3.0
    now = time.time()
    assert parse_retry_after(email.utils.formatdate(now + 20, usegmt=True), now=now) == pytest.approx(20, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 20, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


class Server:
    """Answers each request with the next planned (status, headers, body); records connections."""

    def __init__(self, plan):
        self.plan = list(plan)
        self.requests = []
        self.ports = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self):
                outer.requests.append((self.command, self.path))
                outer.ports.add(self.client_address[1])
                status, headers, body = outer.plan.pop(0) if outer.plan else (200, {}, b"ok")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = handle_one

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(*plan):
        servers.append(Server(plan))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def fast(**kw):
    return Transport(Options(insecure=True, backoff=0.01, max_backoff=0.02, timeout=2, **kw))


def test_5xx_and_429_are_retried_honouring_retry_after(serve):
    server = serve((503, {}, b"busy"), (429, {"Retry-After": "0"}, b""), (200, {}, b"done"))
    response = fast().request("GET", f"http://{server.host}/v2/")
    assert response.status == 200 and response.read_all(100) == b"done"
    assert len(server.requests) == 3
    assert len(server.ports) == 1  # one keep-alive connection for all three


def test_retries_run_out_and_the_last_answer_is_returned(serve):
    server = serve(*[(500, {}, b"x")] * 3)
    response = fast(retries=2).request("GET", f"http://{server.host}/v2/")
    assert response.status == 500 and len(server.requests) == 3


def test_a_long_retry_after_is_not_waited_for(serve):
    server = serve((429, {"Retry-After": "3600"}, b""))
    assert fast().request("GET", f"http://{server.host}/v2/").status == 429
    assert len(server.requests) == 1


def test_no_retry_when_not_asked(serve):
    server = serve((500, {}, b""), (200, {}, b""))
    assert fast().request("PUT", f"http://{server.host}/x", body=b"data", retry=False).status == 500


def test_connection_refused_is_a_registry_error():
    with pytest.raises(HttpError, match="connection refused"):
        fast(retries=1).request("GET", "http://127.0.0.1:9/v2/")


def test_size_cap(serve):
    server = serve((200, {}, b"x" * 1000))
    with pytest.raises(IntegrityError, match="size cap"):
        fast().request("GET", f"http://{server.host}/big").read_all(999, "manifest")


def test_bad_ca_file_is_reported(tmp_path):
    (tmp_path / "ca.crt").write_text("not a certificate")
    with pytest.raises(RegistryError, match="cannot load CA certificate"):
        tls_context(cert_dirs("reg", str(tmp_path)))


def test_reference_to_urls():
    repo = connect(Reference.parse("127.0.0.1:5000/team/app:1"), Options(insecure=True))
    assert repo._url("manifests/1") == "http://127.0.0.1:5000/v2/team/app/manifests/1"
    assert repo.scopes == ("repository:team/app:pull",)
    hub = connect(Reference.parse("debian"), push=True)
    assert hub._url("tags/list") == "https://registry-1.docker.io/v2/library/debian/tags/list"
    assert hub.registry.name == "docker.io" and hub.scopes == ("repository:library/debian:pull,push",)


def test_header_parsers():
    assert content_range_start("bytes 100-199/200") == 100
    assert content_range_start("bytes */200") is None
    assert upload_range_end("0-1023") == 1023 and upload_range_end("0--1") == -1 and upload_range_end(None) == -1


def test_manifest_media_type_prefers_the_document():
    oci = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    assert manifest_media_type(oci, "application/json", "x") == "application/vnd.oci.image.index.v1+json"
    bare = b'{"schemaVersion":2,"config":{},"layers":[]}'
    assert manifest_media_type(bare, "application/vnd.oci.image.manifest.v1+json; charset=utf-8", "x") == \
        "application/vnd.oci.image.manifest.v1+json"
    with pytest.raises(Unsupported, match="schema 1"):
        manifest_media_type(b'{"schemaVersion":1}', "application/json", "x")


def test_head_answers_free_their_connection(serve):
    server = serve((200, {}, b""), (404, {}, b""), (200, {}, b"body"))
    transport = fast()
    assert transport.request("HEAD", f"http://{server.host}/a").status == 200
    assert transport.request("HEAD", f"http://{server.host}/b").status == 404
    assert transport.request("GET", f"http://{server.host}/c").read_all(10) == b"body"
    assert len(server.ports) == 1 and not transport._busy


def test_missing_cert_dir_is_reported(tmp_path):
    from oci.errors import NotFound

    with pytest.raises(NotFound, match="no such certificate directory"):
        tls_context(cert_dirs("reg", str(tmp_path / "missing")))


def test_a_request_sent_ahead_is_answered_to_the_request_that_follows(serve):
    server = serve((200, {}, b"manifest"))
    transport = fast()
    url = f"http://{server.host}/v2/a/manifests/1"
    transport.send_ahead("GET", url, {"Accept": "x"})
    transport.send_ahead("GET", url, {"Accept": "x"})  # already on its way: not sent twice
    response = transport.request("GET", url, {"Accept": "x"})
    assert response.status == 200 and response.read_all(100) == b"manifest"
    assert server.requests == [("GET", "/v2/a/manifests/1")]
    assert not transport._busy and not transport._ahead


def test_heads_sent_ahead_travel_on_connections_of_their_own(serve):
    server = serve()
    transport = fast()
    urls = [f"http://{server.host}/v2/a/blobs/{n}" for n in range(3)]
    for url in urls:
        transport.send_ahead("HEAD", url)
    assert [transport.request("HEAD", url).status for url in urls] == [200] * 3
    assert len(server.requests) == 3 and len(server.ports) == 3
    assert not transport._busy and sum(len(c) for c in transport._idle.values()) == 3


def test_an_answer_asked_differently_is_dropped_and_the_request_sent_anew(serve):
    server = serve((401, {}, b""), (200, {}, b"ok"))
    transport = fast()
    url = f"http://{server.host}/v2/a/manifests/1"
    transport.send_ahead("GET", url)
    response = transport.request("GET", url, {"Authorization": "Bearer t"})  # learnt meanwhile
    assert response.status == 200 and response.read_all(10) == b"ok"
    assert len(server.requests) == 2 and not transport._busy


def test_an_answer_sent_ahead_is_retried_like_any_other(serve):
    server = serve((503, {}, b"busy"), (200, {}, b"done"))
    transport = fast()
    url = f"http://{server.host}/v2/"
    transport.send_ahead("GET", url)
    assert transport.request("GET", url).read_all(10) == b"done"
    assert len(server.requests) == 2


def test_only_requests_without_a_body_are_sent_ahead_and_close_drops_them(serve):
    server = serve()
    transport = fast()
    with pytest.raises(ValueError):
        transport.send_ahead("PUT", f"http://{server.host}/x")
    transport.send_ahead("GET", f"http://{server.host}/x")
    transport.close()
    assert not transport._ahead and not transport._busy


def test_a_request_that_could_not_be_sent_ahead_is_sent_later():
    transport = fast(retries=0)
    transport.send_ahead("GET", "http://127.0.0.1:9/v2/")  # refused: forgotten, no error yet
    assert not transport._ahead and not transport._busy
    with pytest.raises(HttpError, match="connection refused"):
        transport.request("GET", "http://127.0.0.1:9/v2/")


class RecordingContext:
    def __init__(self):
        self.calls = []

    def load_verify_locations(self, cafile=None, capath=None):
        self.calls.append(("locations", cafile, capath))

    def load_default_certs(self):
        self.calls.append(("default",))


@pytest.mark.parametrize("bundle_inside, hashed, expected", [
    (True, True, "capath"),  # Debian's layout: the hashed directory alone, read one issuer at a time
    (True, False, "default"),
    (False, True, "default"),  # a bundle elsewhere ($SSL_CERT_FILE): the default paths, as they are
])
def test_system_roots(tmp_path, monkeypatch, bundle_inside, hashed, expected):
    import ssl


    certs, other = tmp_path / "certs", tmp_path / "other"
    certs.mkdir()
    other.mkdir()
    bundle = (certs if bundle_inside else other) / "ca-certificates.crt"
    bundle.write_text("")
    if hashed:
        (certs / "002c0b4f.0").write_text("")
    paths = ssl.DefaultVerifyPaths(str(bundle), str(certs), "SSL_CERT_FILE", str(bundle), "SSL_CERT_DIR", str(certs))
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
    context = RecordingContext()
    tls._load_system_roots(context)
    assert context.calls == ([("locations", None, str(certs))] if expected == "capath" else [("default",)])


@pytest.mark.parametrize("code, attempts", [(_socket.EAI_NONAME, 1), (_socket.EAI_AGAIN, 3)])
def test_an_unknown_host_fails_at_once_a_busy_resolver_is_asked_again(monkeypatch, code, attempts):
    calls = []

    def lookup(*args, **kwargs):
        calls.append(args[0])
        raise _socket.gaierror(code, "Name or service not known" if code == _socket.EAI_NONAME else "busy")

    monkeypatch.setattr(_socket, "getaddrinfo", lookup)
    transport = Transport(Options(insecure=True, retries=2, backoff=0.001))
    with pytest.raises(HttpError) as caught:
        transport.request("GET", "http://registry.example.invalid/v2/")
    assert len(calls) == attempts
    if code == _socket.EAI_NONAME:
        assert "host name lookup failed (name or service not known)" in caught.value.message
