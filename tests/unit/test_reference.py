"""oci.reference: Docker's reference grammar and normalisation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oci.errors import InvalidInput
from oci.reference import Reference

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize("text,registry,repository,tag,digest", [
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
    ("127.0.0.1:5000/library/debian:bookworm", "127.0.0.1:5000", "library/debian", "bookworm", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", None),
    ("quay.io/org/app@sha256:" + HEX, "quay.io", "org/app", None, "sha256:" + HEX),
    ("quay.io/org/app:v2@sha256:" + HEX, "quay.io", "org/app", "v2", "sha256:" + HEX),
    ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None),
    ("registry.example.com/a_b/c.d/e--f:T_1.x-y", "registry.example.com", "a_b/c.d/e--f", "T_1.x-y", None),
])
def test_parse_and_normalise(text, registry, repository, tag, digest):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest


@pytest.mark.parametrize("text,reason", [
    ("", "empty"), ("Busybox", "lowercase"), ("a b", "white space"), ("app:", "tag"),
    ("app@sha256:xyz", "digest"), ("-app", "does not match"), ("app:" + "t" * 129, "tag"),
    ("host:5000/App", "lowercase"), ("a//b", "does not match"), ("a/b/", "does not match"),
    ("x/" + "a" * 260, "longer than"), ("app:-tag", "tag"),
])
def test_invalid_references_say_why(text, reason):
    with pytest.raises(InvalidInput, match=reason):
        Reference.parse(text)


def test_properties():
    ref = Reference.parse("busybox")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.familiar() == "busybox:latest"
    assert ref.identifier == "latest"
    pinned = Reference.parse("127.0.0.1:5000/x@sha256:" + HEX)
    assert pinned.identifier == "sha256:" + HEX and pinned.api_host == "127.0.0.1:5000"


component = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
path = st.lists(component, min_size=1, max_size=4).map("/".join)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
host = st.sampled_from(["registry.example.com", "localhost:5000", "127.0.0.1:5000", "a.b", "[::1]:443"])


hexdigest = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(host, path, st.one_of(st.none(), tag), st.one_of(st.none(), hexdigest))
def test_round_trip_of_valid_references(h, p, t, d):
    text = f"{h}/{p}" + (f":{t}" if t else "") + (f"@sha256:{d}" if d else "")
    ref = Reference.parse(text)
    assert ref.registry == h and ref.repository == p
    assert Reference.parse(str(ref)) == ref
    assert str(ref).startswith(f"{h}/{p}")


hub_path = path.filter(lambda p: "." not in p.split("/")[0] and p.split("/")[0] != "localhost")


@given(hub_path)
def test_hub_normalisation_is_idempotent(p):
    ref = Reference.parse(p)
    assert ref.registry == "docker.io"
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar()) == ref


@given(st.text(max_size=40))
def test_parse_never_crashes_unexpectedly(text):
    try:
        Reference.parse(text)
    except InvalidInput:
        pass


def _grammar(text):
    from oci.reference import _by_grammar, _split_domain

    domain, rest = _split_domain(text)
    try:
        return _by_grammar(text, domain, rest)
    except InvalidInput:
        return None


plainish = st.text(alphabet="abAB09.-_:/@", max_size=24) | st.builds(
    lambda h, p, t, d: f"{h}/{p}" + (f":{t}" if t else "") + (f"@sha256:{d}" if d else ""),
    host, path, st.one_of(st.none(), tag), st.one_of(st.none(), hexdigest))


@settings(deadline=None)  # the first example compiles the grammar
@given(plainish)
def test_the_plain_spellings_read_as_the_grammar_reads_them(text):
    from oci.reference import _plain, _split_domain

    quick = _plain(*_split_domain(text))
    if quick is not None:
        assert quick == _grammar(text)
