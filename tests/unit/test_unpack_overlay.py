"""oci-unpack --overlay / --emit-mount: the layer cache, overlayfs mounts, and --gc (as root)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest
from unpack_util import diff_trees, dir_, link, put_image, reg, snapshot, sym, tar_bytes

from oci.unpack import overlay

pytestmark = pytest.mark.root

LAYERS = [
    [dir_("etc"), reg("etc/passwd", b"root\n"), reg("etc/gone", b"g"), dir_("var/lib", 0o755),
     reg("var/lib/old", b"o"), sym("bin", "usr/bin"), dir_("usr/bin"), reg("usr/bin/sh", b"sh", mode=0o755),
     reg("usr/bin/x", b"x", xattrs={"user.k": b"v"}), dir_("srv/www", 0o750, uid=5, gid=6)],
    [reg("etc/.wh.gone"), dir_("var/lib"), reg("var/lib/.wh..wh..opq"), reg("var/lib/new", b"n"),
     link("usr/bin/sh2", "usr/bin/sh"), reg("etc/hosts", b"h"),
     reg("srv/www/index.html", b"i")],  # its parents only implied: they keep the lower layer's owner and mode
]


@pytest.fixture
def image(tmp_path):
    put_image(str(tmp_path / "img"), [tar_bytes(layer) for layer in LAYERS])
    return f"{tmp_path}/img:latest"


@pytest.fixture
def mounts():
    made: list[str] = []
    yield made
    for path in reversed(made):
        subprocess.run(["umount", path], check=False, capture_output=True)


def cache_dirs(cache) -> dict[str, int]:
    found = {}
    for folder in ("sha256", "chain-sha256"):
        for name in os.listdir(cache / folder) if (cache / folder).is_dir() else []:
            found[f"{folder}/{name}"] = os.stat(cache / folder / name).st_ino
    return found


def test_overlay_mount_equals_plain_unpack(tmp_path, oci, image, mounts):
    cache = tmp_path / "cache"
    r = oci("unpack", "--overlay", "--cache", str(cache), image, str(tmp_path / "c1"), check=True)
    mounts.append(str(tmp_path / "c1"))
    assert json.loads(r.stdout)["mount"] is None and os.path.ismount(tmp_path / "c1")
    oci("unpack", image, str(tmp_path / "plain"), check=True)
    assert diff_trees(snapshot(str(tmp_path / "c1")), snapshot(str(tmp_path / "plain"))) == []
    # the cached layers hold overlayfs whiteouts
    layers = cache_dirs(cache)
    assert len(layers) == 2 and any(k.startswith("chain-") for k in layers)  # sh2 copied its lower target up
    top = next(cache / k for k in layers if k.startswith("chain-"))
    gone = os.lstat(top / "etc" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(top / "var" / "lib", "trusted.overlay.opaque") == b"y"
    # writes go to the container's upper dir, never to the cache
    (tmp_path / "c1" / "etc" / "passwd").write_text("changed\n")
    assert (tmp_path / ".c1.overlay" / "upper" / "etc" / "passwd").read_text() == "changed\n"
    base = next(cache / k for k in layers if not k.startswith("chain-"))
    assert (base / "etc" / "passwd").read_text() == "root\n"


def test_second_unpack_reuses_the_cache_and_gc(tmp_path, oci, image, mounts):
    cache = tmp_path / "cache"
    oci("unpack", "--overlay", "--cache", str(cache), image, str(tmp_path / "c1"), check=True)
    mounts.append(str(tmp_path / "c1"))
    first = cache_dirs(cache)
    oci("unpack", "--overlay", "--cache", str(cache), image, str(tmp_path / "c2"), check=True)
    mounts.append(str(tmp_path / "c2"))
    assert cache_dirs(cache) == first  # same directories: nothing unpacked again
    assert (tmp_path / "c2" / "var" / "lib" / "new").read_text() == "n"
    # gc keeps layers a live ROOTFS uses, and prunes them when the last one is gone
    oci("unpack", "--gc", "--cache", str(cache), check=True)
    assert cache_dirs(cache) == first
    for name in ("c1", "c2"):
        subprocess.run(["umount", str(tmp_path / name)], check=True)
        shutil.rmtree(tmp_path / name)
        shutil.rmtree(tmp_path / f".{name}.overlay")
        r = oci("unpack", "--gc", "--cache", str(cache), check=True)
        assert ("removed 2" in r.stderr) == (name == "c2")
    assert cache_dirs(cache) == {}


def test_emit_mount_only_describes_the_mount(tmp_path, oci, image, mounts):
    cache = tmp_path / "cache"
    r = oci("unpack", "--emit-mount", "--cache", str(cache), image, str(tmp_path / "rootfs"), check=True)
    doc = json.loads(r.stdout)
    mount = doc["mount"]
    assert mount["type"] == "overlay" and mount["source"] == "overlay"
    assert mount["destination"] == doc["rootfs"] == str(tmp_path / "rootfs")
    assert not os.path.ismount(tmp_path / "rootfs") and os.listdir(tmp_path / "rootfs") == []
    lower = mount["options"][0].removeprefix("lowerdir=").split(":")
    assert lower == list(reversed(list(cache_dirs_in_order(cache, doc["diff_ids"]))))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", ",".join(mount["options"]), doc["rootfs"]], check=True)
    mounts.append(doc["rootfs"])
    assert (tmp_path / "rootfs" / "etc" / "hosts").read_text() == "h"
    assert not (tmp_path / "rootfs" / "etc" / "gone").exists()


def cache_dirs_in_order(cache, diff_ids):
    chain = None
    for text in diff_ids:
        from oci.digest import Digest

        diff_id = Digest.parse(text)
        chain = overlay.chain_id(chain, diff_id)
        plain, chained = cache / "sha256" / diff_id.hex, cache / "chain-sha256" / chain.hex
        yield str(plain if plain.is_dir() else chained)


def test_failed_layer_leaves_no_cache_entry(tmp_path, oci, mounts):
    put_image(str(tmp_path / "img"), [tar_bytes([reg("ok", b"1")]), tar_bytes([reg("../escape", b"x")])])
    cache = tmp_path / "cache"
    r = oci("unpack", "--overlay", "--cache", str(cache), str(tmp_path / "img"), str(tmp_path / "rootfs"))
    assert r.returncode == 4 and "tar entry '../escape'" in r.stderr
    assert not (tmp_path / "rootfs").exists() and not (tmp_path / ".rootfs.overlay").exists()
    assert len(cache_dirs(cache)) == 1 and os.listdir(cache / "tmp") == []


def unfinished(cache, name: str = "0123456789abcdef-killed") -> str:
    """A layer a killed unpack left half-made in the cache's tmp/."""
    path = cache / "tmp" / name
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "half").write_bytes(b"x" * 10000)
    return str(path)


def test_gc_says_what_it_freed_unfinished_layers_included(tmp_path, oci, image):
    cache = tmp_path / "cache"
    oci("unpack", "--overlay", "--cache", str(cache), image, str(tmp_path / "c1"), check=True)
    subprocess.run(["umount", str(tmp_path / "c1")], check=True)
    shutil.rmtree(tmp_path / "c1")
    left = unfinished(cache)
    r = oci("unpack", "--gc", "--cache", str(cache), check=True)
    assert r.stderr.startswith("oci-unpack: removed 2 unused cached layers and 1 unfinished ones of "
                               "interrupted unpacks, ") and r.stderr.endswith(" MB freed\n")
    assert not os.path.exists(left) and cache_dirs(cache) == {}


def test_the_next_unpack_removes_what_a_killed_one_left_in_the_cache(tmp_path, oci, image, mounts):
    cache = tmp_path / "cache"
    (cache / "locks").mkdir(parents=True)
    left = unfinished(cache)
    oci("unpack", "--overlay", "--cache", str(cache), image, str(tmp_path / "c1"), check=True)
    mounts.append(str(tmp_path / "c1"))
    assert not os.path.exists(left) and os.listdir(cache / "tmp") == []
