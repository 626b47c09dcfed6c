"""oci-fetch and registry authentication: TLS with a custom CA and basic auth, token auth,
credential files and helpers (real registries, real token issuer)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import run

from . import images


@pytest.fixture
def clean_env(tmp_path):
    """An environment where no credential file is found unless the test writes one."""
    return {"HOME": str(tmp_path / "home"), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json"),
            "DOCKER_CONFIG": str(tmp_path / "no-docker"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "OCIKIT_CERT_DIR": "", "SSL_CERT_FILE": ""}


def fetch(env, *args):
    return run("fetch", "--retries", "0", *args, env=env)


@pytest.fixture
def tls_image(tls_registry, repo, small_image):
    return images.push_layout(small_image.path, small_image.tag, tls_registry, repo)


def test_tls_with_cert_dir_and_auth_json(tls_registry, tls_image, small_image, clean_env, tmp_path):
    env = {**clean_env, "REGISTRY_AUTH_FILE": images.write_auth_json(str(tmp_path / "auth.json"), tls_registry)}
    result = fetch(env, "--cert-dir", tls_registry.cert_dir, tls_image, str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == str(small_image.descriptor.digest)


def test_tls_ca_from_env_and_docker_config(tls_registry, tls_image, clean_env, tmp_path):
    docker = images.docker_config_dir(str(tmp_path / "docker"), tls_registry)
    for trust in ({"OCIKIT_CERT_DIR": tls_registry.cert_dir}, {"SSL_CERT_FILE": tls_registry.ca_file}):
        result = fetch({**clean_env, "DOCKER_CONFIG": docker, **trust}, tls_image, str(tmp_path / "out"))
        assert result.returncode == 0, (trust, result.stderr)


def test_tls_without_the_ca_is_refused(tls_registry, tls_image, clean_env, tmp_path):
    result = fetch(clean_env, tls_image, str(tmp_path / "out"))
    assert result.returncode == 5 and "certificate" in result.stderr and "--cert-dir" in result.stderr
    assert not (tmp_path / "out").exists()


def test_basic_auth_without_or_with_wrong_credentials(tls_registry, tls_image, clean_env, tmp_path):
    result = fetch(clean_env, "--cert-dir", tls_registry.cert_dir, tls_image, str(tmp_path / "out"))
    assert result.returncode == 6 and "no credentials" in result.stderr, result.stderr
    wrong = images.write_auth_json(str(tmp_path / "wrong.json"), tls_registry, password="wrong")
    result = fetch({**clean_env, "REGISTRY_AUTH_FILE": wrong}, "--cert-dir", tls_registry.cert_dir, tls_image,
                   str(tmp_path / "out"))
    assert result.returncode == 6, result.stderr
    assert not (tmp_path / "out").exists()


def _helper(tmp_path, name: str, script: str) -> str:
    folder = tmp_path / "helpers"
    folder.mkdir(exist_ok=True)
    path = folder / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def test_credential_helper(tls_registry, tls_image, clean_env, tmp_path):
    answer = json.dumps({"Username": tls_registry.username, "Secret": tls_registry.password})
    folder = _helper(tmp_path, "ocikit-test", f"cat >/dev/null; echo '{answer}'\n")
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credHelpers": {tls_registry.host: "ocikit-test"}}))
    env = {**clean_env, "DOCKER_CONFIG": str(docker), "PATH": f"{folder}:{os.environ['PATH']}"}
    result = fetch(env, "--cert-dir", tls_registry.cert_dir, tls_image, str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr


@pytest.fixture
def token_image(token_registry, repo, small_image):
    return images.push_layout(small_image.path, small_image.tag, token_registry, repo)


def test_token_auth_anonymous_pull(token_registry, token_image, repo, clean_env, tmp_path):
    before = len(token_registry.token_issuer.grants)
    result = fetch(clean_env, "--insecure", token_image, str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    grants = token_registry.token_issuer.grants[before:]
    assert len(grants) == 1  # one token, reused for the manifest and every blob
    assert grants[0].user is None and grants[0].scopes == [f"repository:{repo}:pull"]


def test_token_auth_with_credentials(token_registry, token_image, clean_env, tmp_path):
    auth = images.write_auth_json(str(tmp_path / "auth.json"), token_registry, "alice", "alice-pw")
    before = len(token_registry.token_issuer.grants)
    result = fetch({**clean_env, "REGISTRY_AUTH_FILE": auth}, "--insecure", token_image, str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert [g.user for g in token_registry.token_issuer.grants[before:]] == ["alice"]


def test_token_auth_denied(token_registry, small_image, clean_env, tmp_path):
    ref = images.push_layout(small_image.path, small_image.tag, token_registry, "private/secret")
    auth = images.write_auth_json(str(tmp_path / "auth.json"), token_registry, "bob", "bob-pw")
    result = fetch({**clean_env, "REGISTRY_AUTH_FILE": auth}, "--insecure", ref, str(tmp_path / "out"))
    assert result.returncode == 6, result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_broken_helper_falls_back_to_anonymous(token_registry, token_image, clean_env, tmp_path):
    folder = _helper(tmp_path, "broken", "echo 'helper exploded' >&2; exit 2\n")
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credsStore": "broken"}))
    env = {**clean_env, "DOCKER_CONFIG": str(docker), "PATH": f"{folder}:{os.environ['PATH']}"}
    before = len(token_registry.token_issuer.grants)
    result = fetch(env, "--insecure", token_image, str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "docker-credential-broken" in result.stderr
    assert token_registry.token_issuer.grants[before].user is None


def test_a_refused_token_is_replaced(token_registry, token_image, repo, clean_env, tmp_path):
    from .faultproxy import Fault, FaultProxy

    issuer = token_registry.token_issuer
    challenge = (f'Bearer realm="{issuer.realm}",service="{issuer.service}",scope="repository:{repo}:pull",'
                 'error="invalid_token"')
    with FaultProxy(token_registry.host).start() as proxy:
        proxy.add(Fault("GET", "/blobs/", status=401, headers={"WWW-Authenticate": challenge}))  # as if expired
        before = len(issuer.grants)
        result = fetch(clean_env, "--insecure", "--jobs", "1", f"{proxy.host}/{repo}:v1", str(tmp_path / "out"))
        assert result.returncode == 0, result.stderr
        assert len(issuer.grants) - before == 2  # the first token, then a new one after the 401
        assert proxy.count("GET", "/blobs/") == 4  # three blobs, one of them asked twice
