"""oci.registry.urls: splitting, reference resolution (RFC 3986 5.2) and query encoding."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci.registry import urls

BASE = "http://127.0.0.1:5000/v2/lib/img/blobs/uploads/abc?state=x"


@pytest.mark.parametrize("url, expected", [
    ("http://h:5000/v2/", ("http", "h:5000", "/v2/")),
    ("HTTPS://h/v2/x?a=b#frag", ("https", "h", "/v2/x?a=b")),
    ("http://h", ("http", "h", "/")),
    ("http://h?x=1", ("http", "h", "/?x=1")),
    ("http://[::1]:5000/v2/", ("http", "[::1]:5000", "/v2/")),
])
def test_split(url, expected):
    assert urls.split(url) == expected


@pytest.mark.parametrize("url", ["ftp://h/x", "h/v2/", "http:///v2/", "http://user:pw@h/v2/"])
def test_split_refuses(url):
    with pytest.raises(ValueError):
        urls.split(url)


@pytest.mark.parametrize("reference", [
    "/v2/lib/img/blobs/uploads/def?_state=y", "def", "../x", "./x/../y", "?q=1", "", "//other:1/p",
    "https://storage.test/bucket/blob?sig=1", "/a/b/../../../c", "x/./y/", "..", ".",
])
def test_join_agrees_with_the_standard_library(reference):
    assert urls.join(BASE, reference) == urllib.parse.urljoin(BASE, reference)


def test_join_where_the_standard_library_strays_from_rfc_3986():
    assert urls.join(BASE, "#frag") == BASE  # fragments are never sent
    assert urls.join(BASE, "http://h/a/./b/../c") == "http://h/a/c"  # dot segments go from absolute URLs too
    assert urls.join(BASE, "a//b") == "http://127.0.0.1:5000/v2/lib/img/blobs/uploads/a//b"  # empty segments stay


segment = st.sampled_from(["a", "b", ".", "..", "c%20d"])  # (empty segments: see above)


@given(st.lists(segment, max_size=6), st.booleans(), st.booleans())
def test_join_of_paths_agrees_with_the_standard_library(parts, absolute, query):
    reference = ("/" if absolute else "") + "/".join(parts) + ("?x=1" if query else "")
    assert urls.join(BASE, reference) == urllib.parse.urljoin(BASE, reference)


def test_encode_query_escapes_all_but_unreserved():
    assert urls.encode_query({"digest": "sha256:ab", "from": "lib/x y"}) == "digest=sha256%3Aab&from=lib%2Fx%20y"
    assert urls.encode_query([("scope", "a"), ("scope", "b~._-")]) == "scope=a&scope=b~._-"
    assert urls.encode_query({"k": "é"}) == "k=%C3%A9"


@given(st.dictionaries(st.text(min_size=1), st.text(), max_size=4))
def test_encode_query_round_trips(fields):
    assert dict(urllib.parse.parse_qsl(urls.encode_query(fields), keep_blank_values=True)) == fields
