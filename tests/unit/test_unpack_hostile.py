"""oci-unpack: a corpus of hostile tar layers. Each is refused (exit 4, one line naming the entry)
and nothing outside ROOTFS is created, changed or removed; with openat2 and with the fallback walk."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
from unpack_util import chr_, dir_, info, link, put_image, reg, snapshot, sym, tar_bytes

from oci.errors import IntegrityError
from oci.image import Image, open_image
from oci.unpack import safepath
from oci.unpack.options import Budget, Options
from oci.unpack.rootfs import unpack


def pax_path(name: str, real: str) -> tuple[tarfile.TarInfo, bytes]:
    """A ustar header saying `name` whose PAX header says `real`."""
    t, data = reg(name, b"x")
    t.pax_headers = {"path": real}
    return t, data


def corpus(outside: str) -> dict[str, tuple[list[list], str]]:
    """name -> (layers of entries, the entry the error must name)."""
    secret = f"{outside}/secret"
    return {
        "absolute path": ([[reg(f"{outside}/pwned", b"x")]], f"{outside}/pwned"),
        "dot-dot": ([[reg("../outside/pwned", b"x")]], "../outside/pwned"),
        "dot-dot inside a path": ([[dir_("a"), reg("a/../../outside/pwned", b"x")]], "a/../../outside/pwned"),
        "write through an absolute symlink": ([[sym("l", outside), reg("l/pwned", b"x")]], "l/pwned"),
        "write through a relative symlink": ([[sym("l", "../outside"), reg("l/pwned", b"x")]], "l/pwned"),
        "symlinked dir planted by a lower layer": ([[sym("etc", outside)], [reg("etc/pwned", b"x")]], "etc/pwned"),
        "dir entry under a planted symlink": ([[sym("etc", outside)], [dir_("etc/sub")]], "etc/sub"),
        "symlink chain": ([[sym("a", "b"), sym("b", "c"), sym("c", outside), reg("a/pwned", b"x")]], "a/pwned"),
        "hardlink to a relative outside file": ([[link("h", "../outside/secret")]], "h"),
        "hardlink to an absolute path": ([[link("h", secret)]], "h"),
        "hardlink through a symlinked dir": ([[sym("l", outside), link("h", "l/secret")]], "h"),
        "whiteout of dot-dot": ([[dir_("d"), reg("d/.wh..")]], "d/.wh.."),
        "whiteout through a planted symlink": ([[sym("l", outside)], [reg("l/.wh.secret")]], "l/.wh.secret"),
        "opaque dir through a planted symlink": ([[sym("l", outside)], [reg("l/.wh..wh..opq")]], "l/.wh..wh..opq"),
        "whiteout with a dot-dot path": ([[reg("../outside/.wh.secret")]], "../outside/.wh.secret"),
        "device node outside": ([[chr_("../outside/null", 1, 3)]], "../outside/null"),
        "long name hiding dot-dot": ([[reg("a" * 200 + "/../../outside/pwned", b"x")]], "a" * 200),
        "component longer than NAME_MAX": ([[reg("b" * 300, b"x")]], "b" * 300),
        "PAX path overriding a safe name": ([[pax_path("safe", "../outside/pwned")]], "../outside/pwned"),
        "dir replaced by a symlink, then written through": (
            [[dir_("d"), sym("d", outside), reg("d/pwned", b"x")]], "d/pwned"),
        "root entry as a symlink": ([[sym(".", outside)]], "."),
        "fifo through a symlink": ([[sym("l", outside), (info("l/fifo", tarfile.FIFOTYPE), None)]], "l/fifo"),
    }


CASES = sorted(corpus("/x"))


def sentinel(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    (outside / "b").mkdir(mode=0o755)
    return str(outside)


def state(tmp_path):
    """Everything in tmp_path except the image layout."""
    return {k: v for k, v in snapshot(str(tmp_path)).items() if not k.startswith("img")}


@pytest.mark.parametrize("case", CASES)
def test_refused_by_the_command(tmp_path, oci, case):
    outside = sentinel(tmp_path)
    layers, entry = corpus(outside)[case]
    put_image(str(tmp_path / "img"), [tar_bytes(entries) for entries in layers])
    before = state(tmp_path)
    r = oci("unpack", str(tmp_path / "img"), str(tmp_path / "rootfs"))
    assert r.returncode == 4, r.stderr
    assert len(r.stderr.splitlines()) == 1 and f"tar entry '{entry}" in r.stderr, r.stderr
    assert state(tmp_path) == before  # nothing outside changed, and ROOTFS removed again
    assert r.stdout == ""


@pytest.mark.parametrize("case", CASES)
def test_refused_by_the_fallback_walk(tmp_path, monkeypatch, case):
    monkeypatch.setattr(safepath, "has_openat2", lambda: False)
    outside = sentinel(tmp_path)
    layers, _ = corpus(outside)[case]
    put_image(str(tmp_path / "img"), [tar_bytes(entries) for entries in layers])
    before = state(tmp_path)
    image = Image.load(*open_image(str(tmp_path / "img")))
    with pytest.raises(IntegrityError, match="tar entry"):
        unpack(image, str(tmp_path / "rootfs"), Options(), Budget(1 << 30, 1000))
    assert state(tmp_path) == before


def test_at_least_fifteen_distinct_attempts():
    assert len(CASES) >= 15


def test_safe_replacements_never_write_through(tmp_path):
    """Not refused, but contained: a symlink at a file's own path is replaced, not followed; a
    directory whose parent later became a symlink gets its deferred mode nowhere else."""
    outside = sentinel(tmp_path)
    layers = [
        [dir_("etc"), sym("etc/passwd", f"{outside}/secret"), sym("etc/dir", f"{outside}/b")],
        [reg("etc/passwd", b"root"), dir_("etc/dir", 0o700), dir_("a/b", 0o777), sym("a", outside)],
    ]
    put_image(str(tmp_path / "img"), [tar_bytes(entries) for entries in layers])
    before = state(tmp_path)
    image = Image.load(*open_image(str(tmp_path / "img")))
    root = unpack(image, str(tmp_path / "rootfs"), Options(), Budget(1 << 30, 1000))
    assert Path(f"{root}/etc/passwd").read_text() == "root" and not os.path.islink(f"{root}/etc/passwd")
    assert os.path.isdir(f"{root}/etc/dir") and not os.path.islink(f"{root}/etc/dir")
    assert os.readlink(f"{root}/a") == outside
    after = {k: v for k, v in state(tmp_path).items() if not k.startswith("rootfs")}
    assert after == before


def test_clean():
    assert safepath.clean("./a//b/./c/") == "a/b/c" and safepath.clean("./") == ""
    for bad in ("/etc", "a/../b", "..", "a\0b", "x" * 256, "/".join(["y" * 200] * 21)):
        with pytest.raises(safepath.UnsafePath):
            safepath.clean(bad)
