"""WWW-Authenticate parsing and the bearer/basic flow of oci.registry.auth."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oci.errors import AuthError
from oci.registry.auth import Authenticator, Challenge, basic_header, parse_challenges
from oci.registry.credentials import Credentials
from oci.registry.http import Options, Transport


def test_bearer_challenge_with_quoted_params():
    header = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    assert parse_challenges(header) == [Challenge("bearer", {
        "realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"})]


def test_several_challenges_and_unquoted_values():
    found = parse_challenges('Basic realm="Registry Realm", Bearer realm=https://t.example/x,service=svc')
    assert [c.scheme for c in found] == ["basic", "bearer"]
    assert found[0].params == {"realm": "Registry Realm"}
    assert found[1].params == {"realm": "https://t.example/x", "service": "svc"}


def test_escaped_quotes_and_case_insensitive_names():
    (challenge,) = parse_challenges(r'BEARER Realm="a\"b", Error="insufficient_scope"')
    assert challenge == Challenge("bearer", {"realm": 'a"b', "error": "insufficient_scope"})


def test_token68_and_garbage_do_not_crash():
    assert parse_challenges("Negotiate abc123==")[0].scheme == "negotiate"
    assert parse_challenges("") == []
    assert parse_challenges(",,,")[0:1] == []


def test_basic_header():
    assert basic_header(Credentials("u", "p:w")) == "Basic " + base64.b64encode(b"u:p:w").decode()


class TokenServer:
    """A token realm on 127.0.0.1 that records what it is asked and hands out numbered tokens."""

    def __init__(self, status: int = 200):
        self.asked = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.asked.append((self.path, self.headers.get("Authorization")))
                body = json.dumps({"token": f"t{len(outer.asked)}", "expires_in": 300}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_server():
    server = TokenServer()
    yield server
    server.close()


def test_bearer_token_is_fetched_for_the_scope_and_cached(token_server):
    auth = Authenticator(Transport(Options(retries=0)), "reg.example", lambda: Credentials("alice", "pw"))
    scopes = ("repository:a/b:pull",)
    assert auth.header(scopes) is None  # nothing known before the first challenge
    auth.challenged(f'Bearer realm="{token_server.realm}",service="reg"', scopes)
    assert auth.header(scopes) == "Bearer t1"
    assert auth.header(scopes) == "Bearer t1"  # cached
    path, authorization = token_server.asked[0]
    assert "service=reg" in path and "scope=repository%3Aa%2Fb%3Apull" in path
    assert authorization == basic_header(Credentials("alice", "pw"))


def test_a_401_with_a_token_asks_for_a_new_one(token_server):
    auth = Authenticator(Transport(Options(retries=0)), "reg.example", lambda: None)
    scopes = ("repository:x:pull",)
    challenge = f'Bearer realm="{token_server.realm}",service="reg"'
    auth.challenged(challenge, scopes)
    assert auth.header(scopes) == "Bearer t1"
    auth.challenged(challenge + ',error="invalid_token"', scopes)
    assert auth.header(scopes) == "Bearer t2"
    assert token_server.asked[0][1] is None  # anonymous


def test_basic_challenge_without_credentials_is_an_auth_error():
    auth = Authenticator(Transport(), "reg.example", lambda: None)
    with pytest.raises(AuthError, match="no credentials"):
        auth.challenged('Basic realm="r"', ("repository:x:pull",))


def test_basic_challenge_with_credentials():
    auth = Authenticator(Transport(), "reg.example", lambda: Credentials("u", "p"))
    auth.challenged('Basic realm="r"', ("repository:x:pull",))
    assert auth.header(("repository:x:pull",)) == basic_header(Credentials("u", "p"))


def test_unsupported_challenge():
    auth = Authenticator(Transport(), "reg.example", lambda: None)
    with pytest.raises(AuthError, match="no challenge ocikit supports"):
        auth.challenged("Negotiate abc", ())


def test_refusing_token_server_is_an_auth_error():
    server = TokenServer(status=401)
    try:
        auth = Authenticator(Transport(Options(retries=0)), "reg.example", lambda: Credentials("u", "bad"))
        auth.challenged(f'Bearer realm="{server.realm}"', ("repository:x:pull",))
        with pytest.raises(AuthError, match="refused user 'u'"):
            auth.header(("repository:x:pull",))
    finally:
        server.close()
