"""oci-unpack: every tar entry type, whiteouts, digests, media types, caps, id maps, the command line."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from unpack_util import MTIME, blk, chr_, dir_, fifo, link, put_image, reg, snapshot, sym, tar_bytes

from oci.descriptor import DOCKER_LAYER_GZIP
from oci.digest import Digest
from oci.errors import IntegrityError, Unsupported
from oci.image import Image, open_image
from oci.unpack import decompress
from oci.unpack.idmap import IdMap
from oci.unpack.options import Budget, Options
from oci.unpack.rootfs import unpack

ROOT = os.geteuid() == 0


def unpack_layers(tmp_path, layers, compression="gzip", **options):
    """Unpack raw tar layers with the library; return the rootfs path."""
    put_image(str(tmp_path / "img"), layers, compression=compression)
    layout, desc = open_image(str(tmp_path / "img") + ":latest")
    image = Image.load(layout, desc)
    rootfs = str(tmp_path / "rootfs")
    max_size = options.pop("max_size", 1 << 30)
    unpack(image, rootfs, Options(**options), Budget(max_size, 100000))
    return rootfs


def test_regular_files_dirs_symlinks_and_modes(tmp_path):
    layer = tar_bytes([
        dir_("etc", 0o755), reg("etc/hosts", b"127.0.0.1 localhost\n", mode=0o644),
        dir_("secret", 0o500), reg("secret/key", b"k", mode=0o400),
        reg("bin/suid", b"#!/bin/sh\n", mode=0o4755), reg("bin/sgid", b"x", mode=0o2711),
        dir_("tmp", 0o1777), sym("bin/sh", "busybox"), sym("abs", "/etc/hosts"),
        reg("empty"), reg("./dot/slash", b"d"),
    ])
    root = unpack_layers(tmp_path, [layer])
    tree = snapshot(root)
    assert tree["etc/hosts"][1] == 0o644 and Path(f"{root}/etc/hosts").read_text() == "127.0.0.1 localhost\n"
    assert tree["secret"][1] == 0o500 and tree["secret/key"][1] == 0o400
    assert tree["bin/suid"][1] == 0o4755 and tree["bin/sgid"][1] == 0o2711 and tree["tmp"][1] == 0o1777
    assert tree["bin"][1] == 0o755  # made implicitly
    assert os.readlink(f"{root}/bin/sh") == "busybox" and os.readlink(f"{root}/abs") == "/etc/hosts"
    assert tree["empty"][4] == 0 and tree["dot/slash"][4] == 1
    assert os.stat(f"{root}/etc/hosts").st_mtime == MTIME
    assert os.stat(f"{root}/secret").st_mtime == MTIME  # set after its contents were written
    assert os.lstat(f"{root}/bin/sh").st_mtime == MTIME


def test_hardlinks_within_and_across_layers(tmp_path):
    base = tar_bytes([reg("a", b"shared", mode=0o600), sym("s", "a")])
    top = tar_bytes([link("b", "a"), link("c", "./a"), link("t", "s"), reg("new", b"n"), link("n2", "new")])
    root = unpack_layers(tmp_path, [base, top])
    st = os.stat(f"{root}/a")
    assert st.st_nlink == 3 and os.stat(f"{root}/b").st_ino == st.st_ino == os.stat(f"{root}/c").st_ino
    assert os.lstat(f"{root}/t").st_ino == os.lstat(f"{root}/s").st_ino  # a link to the symlink itself
    assert os.stat(f"{root}/n2").st_ino == os.stat(f"{root}/new").st_ino


def test_missing_hardlink_target_is_refused(tmp_path):
    with pytest.raises(IntegrityError, match="tar entry 'b': hardlink target 'nothere' does not exist"):
        unpack_layers(tmp_path, [tar_bytes([link("b", "nothere")])])
    assert not (tmp_path / "rootfs").exists()


def test_replacing_entries_of_lower_layers(tmp_path):
    base = tar_bytes([dir_("d"), reg("d/f", b"1"), reg("f", b"file"), sym("l", "x"), dir_("e"), reg("e/x", b"")])
    top = tar_bytes([reg("d", b"now a file"), dir_("f"), reg("l", b"now a file"), sym("e", "d")])
    root = unpack_layers(tmp_path, [base, top])
    assert Path(f"{root}/d").read_text() == "now a file" and os.path.isdir(f"{root}/f")
    assert Path(f"{root}/l").read_text() == "now a file" and os.readlink(f"{root}/e") == "d"


def test_whiteouts(tmp_path):
    base = tar_bytes([reg("keep", b"k"), reg("gone", b"g"), dir_("tree"), reg("tree/a", b"a"), dir_("tree/sub"),
                      reg("tree/sub/b", b"b"), dir_("opq"), reg("opq/lower", b"l"), dir_("opq/d"),
                      reg("opq/d/lower", b"l"), dir_("opq2"), reg("opq2/lower", b"l"), reg("same", b"s")])
    top = tar_bytes([
        reg(".wh.gone"), reg(".wh.tree"), reg(".wh.never-existed"),
        dir_("opq"), reg("opq/.wh..wh..opq"), reg("opq/upper", b"u"), dir_("opq/d"), reg("opq/d/upper", b"u"),
        reg("opq2/new", b"n"), reg("opq2/.wh..wh..opq"),  # the opaque marker after a sibling of this layer
        reg("same", b"new"), reg(".wh.same"),  # a whiteout only hides lower layers
        reg(".wh..wh.plnk"),  # AUFS metadata: ignored
    ])
    root = unpack_layers(tmp_path, [base, top])
    assert sorted(snapshot(root)) == ["keep", "opq", "opq/d", "opq/d/upper", "opq/upper", "opq2", "opq2/new", "same"]
    assert Path(f"{root}/same").read_text() == "new"


def test_long_names_pax_and_gnu(tmp_path):
    deep = "/".join(["d" * 100] * 3) + "/" + "f" * 200
    target = "t" * 150
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        layer = tar_bytes([reg(deep, b"deep"), reg(target, b"t"), sym("s" * 120, target), link("h" * 130, target)],
                          format=fmt)
        root = unpack_layers(tmp_path / str(fmt), [layer])
        assert Path(f"{root}/{deep}").read_text() == "deep"
        assert os.readlink(f"{root}/{'s' * 120}") == target
        assert os.stat(f"{root}/{'h' * 130}").st_ino == os.stat(f"{root}/{target}").st_ino


def test_sparse_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(8 << 20)
        f.write(b"middle")
        f.truncate(32 << 20)
    raws = []
    for fmt in ("gnu", "posix"):
        raws.append(subprocess.run(["tar", "-C", str(src), f"--format={fmt}", "--sparse", "-cf", "-", "sparse"],
                                   check=True, capture_output=True).stdout)
    for i, raw in enumerate(raws):
        assert len(raw) < 1 << 20
        root = unpack_layers(tmp_path / str(i), [raw])
        st = os.stat(f"{root}/sparse")
        assert st.st_size == 32 << 20 and st.st_blocks * 512 < 1 << 20  # holes stayed holes
        with open(f"{root}/sparse", "rb") as f:
            f.seek((8 << 20) - 2)
            assert f.read(10) == b"\0\0middle\0\0"


@pytest.mark.root
def test_devices_fifos_owners_and_xattrs(tmp_path):
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service, effective
    layer = tar_bytes([
        chr_("dev/null", 1, 3), blk("dev/loop0", 7, 0), fifo("run/fifo", 0o620),
        reg("owned", b"o", mode=0o4750, uid=1000, gid=1001), dir_("home", 0o700, uid=1000, gid=1000),
        sym("link", "owned", uid=12, gid=13),
        reg("ping", b"x", mode=0o755, xattrs={"security.capability": cap, "user.note": b"hi"}),
        dir_("xdir", xattrs={"trusted.mark": b"\x00\xff", "user.d": b"d"}),
        reg("binval", b"", xattrs={"user.bin": b"\xff\xfe\x00binary"}),
    ])
    root = unpack_layers(tmp_path, [layer])
    tree = snapshot(root)
    assert tree["dev/null"][0] == stat.S_IFCHR and tree["dev/null"][6] == (1, 3) and tree["dev/null"][1] == 0o666
    assert tree["dev/loop0"][0] == stat.S_IFBLK and tree["dev/loop0"][6] == (7, 0)
    assert tree["run/fifo"][0] == stat.S_IFIFO and tree["run/fifo"][1] == 0o620
    assert tree["owned"][1:4] == (0o4750, 1000, 1001) and tree["home"][2:4] == (1000, 1000)
    assert tree["link"][2:4] == (12, 13)
    assert os.getxattr(f"{root}/ping", "security.capability") == cap
    assert os.getxattr(f"{root}/ping", "user.note") == b"hi"
    assert os.getxattr(f"{root}/xdir", "trusted.mark") == b"\x00\xff"
    assert os.getxattr(f"{root}/binval", "user.bin") == b"\xff\xfe\x00binary"


@pytest.mark.root
def test_uid_and_gid_maps(tmp_path):
    layer = tar_bytes([reg("a", b"", uid=0, gid=0), reg("b", b"", uid=1000, gid=5), dir_("d", uid=2, gid=2)])
    root = unpack_layers(tmp_path / "1", [layer], uid_map=IdMap.parse(["0:100000:65536"]),
                         gid_map=IdMap.parse(["0:200000:10", "10:300000:65526"]))
    tree = snapshot(root)
    assert (os.stat(root).st_uid, os.stat(root).st_gid) == (100000, 200000)  # the root dir is mapped too
    assert tree["a"][2:4] == (100000, 200000) and tree["b"][2:4] == (101000, 200005) and tree["d"][2:4] == (100002,
                                                                                                            200002)
    with pytest.raises(IntegrityError, match="outside --uid-map"):
        unpack_layers(tmp_path / "2", [layer], uid_map=IdMap.parse(["0:100000:1000"]))


def test_idmap_parsing():
    assert IdMap.parse(["0:1000:1"]).host_id(0) == 1000 and IdMap.parse(["0:1000:1"]).host_id(1) is None
    assert IdMap().host_id(7) == 7
    for bad in ("0:1", "a:b:c", "0:0:0", "-1:0:1"):
        with pytest.raises(Exception, match="invalid id mapping"):
            IdMap.parse([bad])


@pytest.mark.parametrize("compression", ["", "gzip", "zstd"])
def test_compressions(tmp_path, compression):
    layers = [tar_bytes([reg("a", os.urandom(3 << 20))]), tar_bytes([reg("b", b"b" * 100000)])]
    root = unpack_layers(tmp_path, layers, compression=compression)
    assert os.path.getsize(f"{root}/a") == 3 << 20 and os.path.getsize(f"{root}/b") == 100000


@pytest.mark.parametrize("use_pigz", [None, True, False])
def test_gzip_paths_and_multi_member(tmp_path, use_pigz, monkeypatch):
    """libdeflate whole-layer, pigz and zlib streams, and a gzip of several members (libdeflate falls back)."""
    raw = tar_bytes([reg("a", b"a" * 300000), reg("b", os.urandom(100000))])
    blob = gzip.compress(raw[:70000]) + gzip.compress(raw[70000:])
    path = tmp_path / "blob"
    path.write_bytes(blob)
    from oci.descriptor import OCI_LAYER_GZIP, Descriptor

    desc = Descriptor(OCI_LAYER_GZIP, Digest.of(blob), len(blob))
    for data, d in ((blob, desc), (gzip.compress(raw), None)):
        if d is None:
            path.write_bytes(data)
            d = Descriptor(OCI_LAYER_GZIP, Digest.of(data), len(data))
        with decompress.LayerStream(str(path), d, Digest.of(raw), 1 << 30, use_pigz=use_pigz) as stream:
            assert stream.read(512)[:1] == b"a"
            stream.skip(len(raw) - 512 - 1024)
            stream.finish()


def test_corrupt_gzip_and_truncation(tmp_path):
    raw = tar_bytes([reg("a", os.urandom(50000))])
    blob = bytearray(gzip.compress(raw))
    blob[len(blob) // 2] ^= 0xFF
    from oci.descriptor import OCI_LAYER_GZIP, Descriptor

    path = tmp_path / "blob"
    path.write_bytes(blob)
    for use_pigz in (None, True, False):
        desc = Descriptor(OCI_LAYER_GZIP, Digest.of(bytes(blob)), len(blob))
        with pytest.raises(IntegrityError), \
                decompress.LayerStream(str(path), desc, Digest.of(raw), 1 << 30, use_pigz=use_pigz) as stream:
            stream.finish()


def test_diff_id_mismatch_fails_and_leaves_nothing(tmp_path, oci):
    layer = tar_bytes([reg("a", b"a")])
    put_image(str(tmp_path / "img"), [layer], diff_ids=[str(Digest.of(b"something else"))])
    r = oci("unpack", str(tmp_path / "img"), str(tmp_path / "rootfs"))
    assert r.returncode == 4 and "does not match diff_id" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "rootfs").exists() and r.stdout == ""


def test_blob_digest_mismatch(tmp_path, oci):
    layout = put_image(str(tmp_path / "img"), [tar_bytes([reg("a", b"a")])])
    layer = json.loads(layout.read_blob(layout.resolve("latest")))["layers"][0]
    path = layout.blob_path(layer["digest"])
    os.chmod(path, 0o644)
    data = bytearray(Path(path).read_bytes())
    data[-9] ^= 1  # the gzip crc: the tar inside is intact
    Path(path).write_bytes(data)
    r = oci("unpack", str(tmp_path / "img"), str(tmp_path / "rootfs"))
    assert r.returncode == 4 and "sha256" in r.stderr and not (tmp_path / "rootfs").exists()


def test_unknown_media_type_is_refused(tmp_path, oci):
    put_image(str(tmp_path / "img"), [tar_bytes([reg("a")])], media_type="application/vnd.example.layer.v1.tar+lz4")
    r = oci("unpack", str(tmp_path / "img"), str(tmp_path / "rootfs"))
    assert r.returncode == 8 and "unsupported media type" in r.stderr and not (tmp_path / "rootfs").exists()
    with pytest.raises(Unsupported):
        decompress.compression_of(__import__("oci.descriptor").descriptor.Descriptor(
            "application/octet-stream", Digest.of(b""), 0))


def test_docker_media_types_and_stdin(tmp_path, oci):
    put_image(str(tmp_path / "img"), [tar_bytes([reg("hello", b"world")])], media_type=DOCKER_LAYER_GZIP)
    first = oci("unpack", f"{tmp_path}/img:latest", str(tmp_path / "r1"), check=True)
    doc = json.loads(first.stdout)
    assert doc["rootfs"] == str(tmp_path / "r1") and doc["mount"] is None and len(doc["diff_ids"]) == 1
    assert doc["image"]["annotations"]["org.ocikit.layout"] == str(tmp_path / "img")
    second = oci("unpack", "-", str(tmp_path / "r2"), input=json.dumps(doc["image"]).encode(), check=True)
    assert json.loads(second.stdout)["rootfs"] == str(tmp_path / "r2")
    assert (tmp_path / "r2" / "hello").read_text() == "world"


def test_rootfs_must_be_empty(tmp_path, oci):
    put_image(str(tmp_path / "img"), [tar_bytes([reg("a")])])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    r = oci("unpack", str(tmp_path / "img"), str(tmp_path / "full"))
    assert r.returncode == 7 and "not empty" in r.stderr and (tmp_path / "full" / "x").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    oci("unpack", "-q", str(tmp_path / "img"), str(tmp_path / "empty"), check=True)
    assert (tmp_path / "empty" / "a").exists()


def test_caps(tmp_path, oci):
    put_image(str(tmp_path / "img"), [tar_bytes([reg(f"f{i}", b"x" * 1000) for i in range(20)])])
    r = oci("unpack", "--max-entries", "10", str(tmp_path / "img"), str(tmp_path / "r1"))
    assert r.returncode == 4 and "more than 10 tar entries" in r.stderr and not (tmp_path / "r1").exists()
    r = oci("unpack", "--max-size", "10K", str(tmp_path / "img"), str(tmp_path / "r2"))
    assert r.returncode == 4 and "cap" in r.stderr and not (tmp_path / "r2").exists()
    r = oci("unpack", "--max-size", "lots", str(tmp_path / "img"), str(tmp_path / "r3"))
    assert r.returncode == 2


def test_empty_layer_and_help(tmp_path, oci):
    put_image(str(tmp_path / "img"), [b"\0" * 1024, tar_bytes([reg("a")])])
    oci("unpack", str(tmp_path / "img"), str(tmp_path / "r"), check=True)
    assert os.listdir(tmp_path / "r") == ["a"]
    r = oci("unpack", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "--overlay" in r.stdout
    assert oci("unpack", str(tmp_path / "img")).returncode == 2


def test_failure_in_a_layer_while_the_next_is_decoding(tmp_path):
    big = tar_bytes([reg("big", os.urandom(1 << 20))])
    with pytest.raises(IntegrityError, match="tar entry '../x'"):
        unpack_layers(tmp_path, [tar_bytes([reg("../x", b"x")]), big, big])
    assert not (tmp_path / "rootfs").exists()
