"""Which scheme a registry host gets, and registries.conf read as podman and skopeo read it."""

from __future__ import annotations

import pytest

from oci.errors import AuthError, InvalidInput
from oci.registry.http import Options, Transport
from oci.registry.registries_conf import Config, endpoints, files
from oci.registry.urls import is_loopback


@pytest.mark.parametrize("netloc, expected", [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.8.9.10", True),
    ("[::1]:5000", True), ("registry.localhost:443", True), ("10.0.0.1:5000", False), ("example.com", False),
    ("127.0.0.1.example.com", False), ("localhostname:5000", False),
])
def test_loopback_hosts(netloc, expected):
    assert is_loopback(netloc) is expected


@pytest.mark.parametrize("options, netloc, scheme", [
    (Options(), "127.0.0.1:5000", "http"),  # loopback: plain first, TLS when the registry speaks it
    (Options(), "localhost:5000", "http"),
    (Options(), "registry.example:5000", "https"),
    (Options(cert_dir="/"), "127.0.0.1:5000", "https"),  # a certificate directory means TLS
    (Options(insecure=True), "registry.example", "http"),
    (Options(tls_verify=False), "127.0.0.1:5000", "https"),  # TLS unverified, plain HTTP as a fallback
    (Options(insecure_hosts=frozenset({"registry.example"})), "registry.example:5000", "https"),
])
def test_the_scheme_a_host_gets(monkeypatch, options, netloc, scheme):
    monkeypatch.delenv("OCIKIT_CERT_DIR", raising=False)
    transport = Transport(options)
    assert transport.scheme_for(netloc) == scheme
    assert transport.url(netloc, "/v2/").startswith(f"{scheme}://")
    verifies = options.tls_verify and not options.insecure_hosts
    assert transport.verifies(netloc) is verifies


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_files_in_podman_s_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    user = write(tmp_path / ".config/containers/registries.conf", "")
    drop = write(tmp_path / ".config/containers/registries.conf.d/10-mine.conf", "")
    found = files()
    assert found[0] == user and found[-1] == drop  # the user's file replaces the system one
    explicit = write(tmp_path / "only.conf", "")
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", explicit)
    assert files() == [explicit]


def test_drop_ins_override_earlier_files(tmp_path):
    first = write(tmp_path / "a.conf", '[[registry]]\nprefix = "r.example/x"\nlocation = "old.example/x"\n'
                                       '[aliases]\n"one" = "r.example/one"\n')
    second = write(tmp_path / "b.conf", '[[registry]]\nprefix = "r.example/x"\nlocation = "new.example/y"\n'
                                        '[aliases]\n"two" = "r.example/two"\n')
    config = Config.load(True, [first, second])
    assert [str(e.reference) for e in endpoints("r.example/x/app:1", pull=True, config=config)] == \
        ["new.example/y/app:1"]
    assert config.aliases == {"one": "r.example/one", "two": "r.example/two"}


def test_the_longest_prefix_and_wildcards(tmp_path):
    path = write(tmp_path / "r.conf", """
[[registry]]
prefix = "r.example"
location = "all.example"
[[registry]]
prefix = "r.example/team"
location = "team.example/mirror"
[[registry]]
prefix = "*.corp.example"
insecure = true
[[registry.mirror]]
location = "cache.corp.example/proxy"
""")
    config = Config.load(False, [path])
    assert [str(e.reference) for e in endpoints("r.example/team/app", pull=True, config=config)] == \
        ["team.example/mirror/app:latest"]
    assert [str(e.reference) for e in endpoints("r.example/teamwork/app", pull=True, config=config)] == \
        ["all.example/teamwork/app:latest"]  # a prefix ends at a path separator
    found = endpoints("reg.corp.example/lib/app:2", pull=True, config=config)
    assert [(str(e.reference), e.insecure, e.mirror) for e in found] == [
        ("cache.corp.example/proxy:2", False, True), ("reg.corp.example/lib/app:2", True, False)]
    assert [str(e.reference) for e in endpoints("reg.corp.example/lib/app:2", pull=False, config=config)] == \
        ["reg.corp.example/lib/app:2"]  # pushes never go to a mirror


def test_short_names_without_a_configuration_are_docker_hub_s():
    assert [str(e.reference) for e in endpoints("busybox", pull=True, config=Config())] == \
        ["docker.io/library/busybox:latest"]
    assert [str(e.reference) for e in endpoints("docker://busybox:1", pull=True, config=Config())] == \
        ["docker.io/library/busybox:1"]


def test_blocked_and_malformed(tmp_path):
    blocked = write(tmp_path / "b.conf", '[[registry]]\nlocation = "bad.example"\nblocked = true\n')
    with pytest.raises(AuthError, match="blocked"):
        endpoints("bad.example/x", pull=True, config=Config.load(False, [blocked]))
    broken = write(tmp_path / "x.conf", "[[registry]\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        Config.load(False, [broken])
    old = write(tmp_path / "v1.conf", "[registries.search]\nregistries = ['docker.io']\n")
    with pytest.raises(InvalidInput, match="version 1"):
        Config.load(True, [old])


def test_comments_and_aliases_cost_a_qualified_reference_no_parsing(tmp_path, monkeypatch):
    aliases = write(tmp_path / "shortnames.conf", '[aliases]\n"x" = "r.example/x"\n# [[registry]] in a comment\n')
    import sys

    monkeypatch.delitem(sys.modules, "tomllib", raising=False)
    Config.load(False, [aliases])
    assert "tomllib" not in sys.modules
    assert Config.load(True, [aliases]).aliases == {"x": "r.example/x"}


def test_blob_locations_newest_first_capped_and_quiet_when_nothing_is_new(tmp_path):
    from oci.registry.locations import MAX_PER_BLOB, BlobLocations

    digest = "sha256:" + "ab" * 32
    places = BlobLocations("127.0.0.1:5000", str(tmp_path))
    assert places.where(digest) == []
    places.record("team/a", [digest])
    places.record("team/b", [digest, digest])
    assert BlobLocations("127.0.0.1:5000", str(tmp_path)).where(digest) == ["team/b", "team/a"]
    file = tmp_path / "127.0.0.1:5000" / "sha256" / ("ab" * 32)
    before = file.stat().st_mtime_ns, file.read_text()
    places.record("team/b", [digest])  # nothing new: nothing written
    assert (file.stat().st_mtime_ns, file.read_text()) == before
    places.record("team/a", [digest])  # seen again: the newest now
    assert places.where(digest)[0] == "team/a"
    for i in range(10):
        places.record(f"more/{i}", [digest])
    assert places.where(digest) == [f"more/{i}" for i in range(9, 9 - MAX_PER_BLOB, -1)]
    assert BlobLocations("other:5000", str(tmp_path)).where(digest) == []  # per registry host
    BlobLocations("../escape", str(tmp_path)).record("x/y", [digest])  # a host that is no file name: ignored
    assert not (tmp_path.parent / "escape").exists()
