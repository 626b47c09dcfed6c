"""Registry habits users bring from skopeo, crane and docker: `docker://REF`, loopback registries
without flags, `--tls-verify=false`, registries.conf (mirrors, insecure registries, aliases,
blocked registries) as podman and skopeo read it."""

from __future__ import annotations

import json

import pytest

from oci.layout import Layout

from . import images
from .push_support import environment


def one_line(result, code: int, *parts: str) -> str:
    assert result.returncode == code, result.stderr
    [line] = result.stderr.splitlines()
    for part in parts:
        assert part in line, line
    return line


# -- plain HTTP on loopback, TLS without verification --------------------------------------


def test_push_and_fetch_to_a_loopback_registry_without_flags(oci, tmp_path, registry, repo, small_image):
    env = environment(tmp_path)
    pushed = oci("push", small_image.arg, f"docker://localhost:{registry.host.split(':')[1]}/{repo}:v1", env=env)
    assert pushed.returncode == 0, pushed.stderr
    fetched = oci("fetch", registry.ref(repo, "v1"), str(tmp_path / "out"), env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["digest"] == str(small_image.descriptor.digest)


@pytest.fixture
def tls_image(tls_registry, repo, small_image):
    """The small image in the TLS registry (self-signed CA, basic auth)."""
    images.push_layout(small_image.path, small_image.tag, tls_registry, repo)
    return tls_registry.ref(repo, small_image.tag)


def test_tls_verify_false_reaches_a_self_signed_registry(oci, tmp_path, tls_registry, repo, small_image, tls_image):
    env = environment(tmp_path, tls_registry)
    fetched = oci("fetch", "--tls-verify=false", tls_image, str(tmp_path / "out"), env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["digest"] == str(small_image.descriptor.digest)
    pushed = oci("push", "--tls-verify=false", small_image.arg, tls_registry.ref(f"{repo}-pushed", "v1"), env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert images.skopeo_manifest_digest(tls_registry.ref(f"{repo}-pushed", "v1"), tls_registry) == \
        str(small_image.descriptor.digest)


@pytest.mark.parametrize("flags, message", [
    ([], "TLS certificate not trusted (unable to get local issuer certificate); see --cert-dir, or "
         "--tls-verify=false"),
    (["--insecure"], "the registry speaks TLS, not plain HTTP: drop --insecure (--tls-verify=false skips the "
                     "certificate check)"),
], ids=["no flag", "insecure"])
def test_a_self_signed_registry_without_tls_verify_false(oci, tmp_path, tls_registry, tls_image, flags, message):
    """Not a bare `HTTP 400`: one line that says what to do, exit 5, nothing written."""
    out = tmp_path / "out"
    result = oci("fetch", *flags, tls_image, str(out), env=environment(tmp_path, tls_registry))
    one_line(result, 5, message)
    assert not out.exists()


def test_insecure_and_tls_verify_false_exclude_each_other(oci, tmp_path, registry):
    result = oci("fetch", "--insecure", "--tls-verify=false", registry.ref("any/thing"), str(tmp_path / "out"))
    one_line(result, 2, "--insecure (plain HTTP) and --tls-verify=false (TLS unverified) exclude each other")


# -- registries.conf ------------------------------------------------------------------------


def registries_conf(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "registries.conf"
    path.write_text(text)
    return {"CONTAINERS_REGISTRIES_CONF": str(path)}


def test_a_mirror_is_pulled_from_first(oci, tmp_path, registry, new_registry, repo, small_image):
    mirror = new_registry()
    images.push_layout(small_image.path, small_image.tag, mirror, f"copy/{repo}")
    conf = registries_conf(tmp_path, f"""
[[registry]]
prefix = "{registry.host}/{repo}"
location = "{registry.host}/{repo}"
[[registry.mirror]]
location = "{mirror.host}/copy/{repo}"
""")
    env = {**environment(tmp_path), **conf}
    primary, copy = registry.mark(), mirror.mark()
    result = oci("fetch", registry.ref(repo, small_image.tag), str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == str(small_image.descriptor.digest)
    assert registry.requests_since(primary) == []  # the registry itself was not asked
    assert sum(1 for r in mirror.requests_since(copy) if "/blobs/" in r.path and r.status == 200) == 3
    # the layout remembers where the image came from: the mirror
    assert Layout.open(str(tmp_path / "out")).resolve(small_image.tag).annotations["org.ocikit.source"] == \
        f"{mirror.host}/copy/{repo}:{small_image.tag}"


def test_a_mirror_without_the_image_is_passed_over(oci, tmp_path, registry, new_registry, repo, small_image):
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    mirror = new_registry()  # empty
    conf = registries_conf(tmp_path, f"""
[[registry]]
location = "{registry.host}"
[[registry.mirror]]
location = "{mirror.host}"
""")
    result = oci("fetch", registry.ref(repo, small_image.tag), str(tmp_path / "out"),
                 env={**environment(tmp_path), **conf})
    assert result.returncode == 0, result.stderr
    warning, summary = result.stderr.splitlines()
    assert warning.startswith(f"oci-fetch: warning: {mirror.host}/{repo}:{small_image.tag}: ") and \
        warning.endswith(f"trying {registry.host}/{repo}:{small_image.tag}")
    assert " 3 blobs fetched " in summary


def test_a_digest_only_mirror_serves_pulls_by_digest(oci, tmp_path, registry, new_registry, repo, small_image):
    mirror = new_registry()
    images.push_layout(small_image.path, small_image.tag, mirror, repo)
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    conf = registries_conf(tmp_path, f"""
[[registry]]
location = "{registry.host}"
[[registry.mirror]]
location = "{mirror.host}"
pull-from-mirror = "digest-only"
""")
    env = {**environment(tmp_path), **conf}
    mark = mirror.mark()
    by_tag = oci("fetch", registry.ref(repo, small_image.tag), str(tmp_path / "a"), env=env)
    assert by_tag.returncode == 0 and mirror.requests_since(mark) == []
    by_digest = oci("fetch", registry.ref(repo, str(small_image.descriptor.digest)), str(tmp_path / "b"),
                    "--tag", "d", env=env)
    assert by_digest.returncode == 0 and mirror.requests_since(mark) != []


def test_an_insecure_registry_needs_no_flag(oci, tmp_path, tls_registry, repo, small_image, tls_image):
    conf = registries_conf(tmp_path, f"""
[[registry]]
location = "{tls_registry.host}"
insecure = true
""")
    env = {**environment(tmp_path, tls_registry), **conf}
    result = oci("fetch", tls_image, str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    pushed = oci("push", small_image.arg, tls_registry.ref(f"{repo}-back", "v1"), env=env)
    assert pushed.returncode == 0, pushed.stderr


def test_aliases_and_search_registries_resolve_short_names(oci, tmp_path, registry, repo, small_image):
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    conf = registries_conf(tmp_path, f"""
unqualified-search-registries = ["{registry.host}"]
[aliases]
"myapp" = "{registry.host}/{repo}"
""")
    env = {**environment(tmp_path), **conf}
    by_alias = oci("fetch", f"myapp:{small_image.tag}", str(tmp_path / "a"), env=env)
    assert by_alias.returncode == 0, by_alias.stderr
    by_search = oci("fetch", f"{repo}:{small_image.tag}", str(tmp_path / "b"), env=env)
    assert by_search.returncode == 0, by_search.stderr
    pushed = oci("push", small_image.arg, "myapp:pushed", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert images.skopeo_manifest_digest(registry.ref(repo, "pushed"), registry) == str(small_image.descriptor.digest)


def test_a_blocked_registry_is_refused(oci, tmp_path, registry, small_image):
    conf = registries_conf(tmp_path, f"""
[[registry]]
prefix = "{registry.host}/blocked"
blocked = true
""")
    env = {**environment(tmp_path), **conf}
    fetched = oci("fetch", registry.ref("blocked/app", "v1"), str(tmp_path / "out"), env=env)
    one_line(fetched, 6, "registry blocked by registries.conf")
    pushed = oci("push", small_image.arg, registry.ref("blocked/app", "v1"), env=env)
    one_line(pushed, 6, "registry blocked by registries.conf")
    assert not (tmp_path / "out").exists()


def test_a_broken_registries_conf_is_one_line(oci, tmp_path, registry):
    conf = registries_conf(tmp_path, "[[registry]\nlocation = ")
    result = oci("fetch", registry.ref("any/app", "v1"), str(tmp_path / "out"), env=conf)
    one_line(result, 2, str(tmp_path / "registries.conf"), "not valid TOML")

