"""Credentials from Docker's config.json, containers' auth.json and credential helpers."""

import base64
import json
import logging
import os
import stat

import pytest

from oci.registry import credentials
from oci.registry.credentials import Credentials, lookup


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty HOME, no credential environment, and a bin/ folder first on PATH for helpers."""
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    return tmp_path


def write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def auth(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def helper(home, name, script):
    path = home / "bin" / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_nothing_configured(home):
    assert lookup("reg.example:5000") is None


def test_docker_config_auth_entry(home):
    write(home / ".docker" / "config.json", {"auths": {"reg.example:5000": {"auth": auth("alice", "s:cret")}}})
    assert lookup("reg.example:5000") == Credentials("alice", "s:cret")


def test_docker_config_from_env_and_url_keys(home, monkeypatch):
    write(home / "dc" / "config.json", {"auths": {"https://reg.example/v1/": {"username": "u", "password": "p"}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(home / "dc"))
    assert lookup("reg.example") == Credentials("u", "p")


def test_docker_hub_key(home):
    write(home / ".docker" / "config.json", {"auths": {"https://index.docker.io/v1/": {"auth": auth("hub", "pw")}}})
    assert lookup("docker.io") == Credentials("hub", "pw")


def test_identity_token(home):
    write(home / ".docker" / "config.json", {"auths": {"reg": {"auth": auth("u", "p"), "identitytoken": "refresh"}}})
    assert lookup("reg").identity_token == "refresh"


def test_registry_auth_file_wins_and_repository_scoped_entries(home, monkeypatch):
    write(home / ".docker" / "config.json", {"auths": {"reg": {"auth": auth("docker", "x")}}})
    path = write(home / "auth.json", {"auths": {"reg": {"auth": auth("host", "x")},
                                                "reg/team": {"auth": auth("team", "x")},
                                                "reg/team/app": {"auth": auth("app", "x")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    assert lookup("reg", "team/app").username == "app"
    assert lookup("reg", "team/other").username == "team"
    assert lookup("reg", "else/where").username == "host"


def test_xdg_runtime_dir_auth_json(home, monkeypatch):
    write(home / "run" / "containers" / "auth.json", {"auths": {"reg": {"auth": auth("rt", "x")}}})
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    assert lookup("reg").username == "rt"


def test_cred_helper_for_the_host(home):
    helper(home, "fake", 'read server; printf \'{"ServerURL":"%s","Username":"h","Secret":"s3"}\' "$server"\n')
    config = {"credHelpers": {"reg": "fake"}, "auths": {"reg": {"auth": auth("a", "b")}}}
    write(home / ".docker" / "config.json", config)
    assert lookup("reg") == Credentials("h", "s3")


def test_creds_store_and_token_username(home):
    helper(home, "store", 'cat >/dev/null; echo \'{"Username":"<token>","Secret":"idtok"}\'\n')
    write(home / ".docker" / "config.json", {"credsStore": "store"})
    assert lookup("reg") == Credentials(identity_token="idtok")


def test_helper_without_credentials_is_silent(home, caplog):
    helper(home, "empty", 'echo "credentials not found in native keychain"; exit 1\n')
    write(home / ".docker" / "config.json", {"credsStore": "empty"})
    with caplog.at_level(logging.WARNING, "oci.registry"):
        assert lookup("reg") is None
    assert caplog.records == []


@pytest.mark.parametrize("script", ["echo boom >&2; exit 3\n", "echo not-json\n", None])
def test_broken_helper_falls_back_to_anonymous_with_a_warning(home, caplog, script):
    if script is not None:
        helper(home, "broken", script)
    write(home / ".docker" / "config.json", {"credHelpers": {"reg": "broken"}})
    with caplog.at_level(logging.WARNING, "oci.registry"):
        assert lookup("reg") is None
    assert "docker-credential-broken" in caplog.text and "without credentials" in caplog.text


def test_unreadable_config_is_a_warning(home, caplog):
    write(home / ".docker" / "config.json", "{not json")
    with caplog.at_level(logging.WARNING, "oci.registry"):
        assert lookup("reg") is None
    assert "not valid JSON" in caplog.text


def test_secrets_stay_out_of_repr():
    assert "pw" not in repr(Credentials("u", "pw"))
    assert credentials.normalise_key("https://reg:5000/v1/") == "reg:5000"
