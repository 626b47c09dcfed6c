"""oci.digest: parsing, hashing while copying, verifying readers."""

import hashlib
import io

import pytest

from oci.digest import Digest, VerifyingReader, copy_hashing, hash_bytes, verify_bytes
from oci.errors import IntegrityError, InvalidInput, Unsupported

DATA = b"hello, world\n" * 1000
SHA256 = "sha256:" + hashlib.sha256(DATA).hexdigest()
SHA512 = "sha512:" + hashlib.sha512(DATA).hexdigest()


def test_parse_round_trips():
    assert str(Digest.parse(SHA256)) == SHA256
    assert str(Digest.parse(SHA512)) == SHA512
    assert Digest.of(DATA) == Digest.parse(SHA256)
    assert Digest.of(DATA, "sha512") == Digest.parse(SHA512)


@pytest.mark.parametrize("text", ["", "sha256", "sha256:", "sha256:abc", "sha256:" + "A" * 64,
                                  "sha256:" + "g" * 64, ":" + "a" * 64, "sha512:" + "a" * 64, "SHA256:" + "a" * 64])
def test_parse_refuses_malformed(text):
    with pytest.raises(InvalidInput):
        Digest.parse(text)


def test_parse_refuses_unknown_algorithms():
    with pytest.raises(Unsupported, match="md5"):
        Digest.parse("md5:" + "a" * 32)


def test_verify_bytes():
    verify_bytes(DATA, SHA256, len(DATA))
    with pytest.raises(IntegrityError, match="size"):
        verify_bytes(DATA, SHA256, len(DATA) + 1)
    with pytest.raises(IntegrityError, match="digest"):
        verify_bytes(DATA + b"x", SHA256)


def test_copy_hashing_copies_and_hashes():
    out = io.BytesIO()
    digest, size = copy_hashing(io.BytesIO(DATA), out)
    assert (str(digest), size, out.getvalue()) == (SHA256, len(DATA), DATA)


def test_copy_hashing_caps_size():
    with pytest.raises(IntegrityError, match="cap"):
        copy_hashing(io.BytesIO(DATA), io.BytesIO(), limit=100)


def test_verifying_reader_accepts_matching_content():
    reader = VerifyingReader(io.BytesIO(DATA), Digest.parse(SHA256), len(DATA))
    chunks = []
    while chunk := reader.read(1000):
        chunks.append(chunk)
    assert b"".join(chunks) == DATA and reader.verified


@pytest.mark.parametrize("data,size,match", [(DATA[:-1], len(DATA), "size"), (DATA[:-1] + b"!", len(DATA), "digest"),
                                             (DATA + b"more", len(DATA), "more than")])
def test_verifying_reader_fails_on_mismatch(data, size, match):
    reader = VerifyingReader(io.BytesIO(data), Digest.parse(SHA256), size)
    with pytest.raises(IntegrityError, match=match):
        while reader.read(4096):
            pass


def test_verifying_reader_read_all():
    assert VerifyingReader(io.BytesIO(DATA), Digest.parse(SHA256), None).read() == DATA


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20) + 1])
def test_hash_bytes_matches_hashlib(algorithm, size):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert hash_bytes(data, algorithm) == hashlib.new(algorithm, data).hexdigest()
