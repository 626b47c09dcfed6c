"""oci.build: deterministic layers from directories, overlay upper dirs and tarballs."""

import gzip
import io
import os
import tarfile

import pytest

from oci.build.entry import Policy
from oci.build.layer import write_layer
from oci.build.source import from_directory, from_tarball
from oci.errors import IntegrityError, InvalidInput, NotFound
from oci.layout import Layout

EPOCH = 1_600_000_000


def read_layer(layout, layer):
    """The layer's members, decompressed whatever the compression."""
    data = open(layout.blob_path(layer.descriptor.digest), "rb").read()
    if layer.descriptor.media_type.endswith("+zstd"):
        import zstandard

        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    elif layer.descriptor.media_type.endswith("+gzip"):
        data = gzip.decompress(data)
    archive = tarfile.open(fileobj=io.BytesIO(data))
    return archive, archive.getmembers()


def make_tree(root, order=1):
    """A tree with every entry type; `order` changes the creation order, not the result."""
    root.mkdir()
    names = ["b.txt", "a.txt", "dir"][::order]
    for name in names:
        if name == "dir":
            (root / "dir" / "sub").mkdir(parents=True)
            (root / "dir" / "sub" / "deep").write_text("deep")
        else:
            (root / name).write_text(name * 100)
    os.chmod(root / "a.txt", 0o4755)
    os.symlink("a.txt", root / "link")
    os.link(root / "b.txt", root / "hard")
    os.mkfifo(root / "fifo")
    (root / ("long-" + "x" * 120)).write_text("long")
    (root / "naïve").write_text("utf8")
    os.setxattr(root / "a.txt", "user.note", b"\xffbinary")
    os.close(os.open(bytes(root / "raw") + b"\xff", os.O_CREAT | os.O_WRONLY, 0o600))  # not UTF-8
    return root


def test_every_entry_type_is_preserved_and_sorted(tmp_path):
    tree = make_tree(tmp_path / "src")
    layout = Layout.open(str(tmp_path / "l"), create=True)
    layer = write_layer(layout, from_directory(str(tree)), Policy(epoch=EPOCH, owner=(1, 2)), "none")
    assert layer.diff_id == layer.descriptor.digest
    archive, members = read_layer(layout, layer)
    by_name = {m.name.rstrip("/"): m for m in members}
    names = [m.name for m in members]
    assert names[:3] == ["a.txt", "b.txt", "dir"] and names.index("dir/sub") < names.index("dir/sub/deep")
    raw = open(layout.blob_path(layer.descriptor.digest), "rb").read()
    assert b"dir/sub/\0" in raw  # directories are written with a trailing slash, as GNU tar does
    assert by_name["a.txt"].mode == 0o4755 and archive.extractfile(by_name["a.txt"]).read() == b"a.txt" * 100
    assert by_name["a.txt"].pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == b"\xffbinary"
    assert by_name["link"].issym() and by_name["link"].linkname == "a.txt"
    assert by_name["hard"].islnk() and by_name["hard"].linkname == "b.txt"  # b.txt comes first in layer order
    assert by_name["fifo"].isfifo() and by_name["dir"].isdir()
    assert archive.extractfile(by_name["long-" + "x" * 120]).read() == b"long"
    assert "naïve" in by_name and "raw\udcff" in by_name
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (1, 2, "", "")
        assert member.mtime == EPOCH  # every file here is newer than the epoch


@pytest.mark.root
def test_device_nodes_keep_their_numbers(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    os.mknod(tree / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(tree / "loop", 0o660 | 0o060000, os.makedev(7, 0))
    layout = Layout.open(str(tmp_path / "l"), create=True)
    _, members = read_layer(layout, write_layer(layout, from_directory(str(tree)), Policy(), "gzip"))
    assert [(m.name, m.type, m.devmajor, m.devminor) for m in members] == [
        ("loop", tarfile.BLKTYPE, 7, 0), ("null", tarfile.CHRTYPE, 1, 3)]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_same_content_same_digest_whatever_the_order_and_mtimes(tmp_path, compression):
    one, two = make_tree(tmp_path / "one", 1), make_tree(tmp_path / "two", -1)
    os.utime(two / "dir" / "sub" / "deep", (EPOCH + 999, EPOCH + 999))
    policy = Policy(epoch=EPOCH, owner=(0, 0))
    first = write_layer(Layout.open(str(tmp_path / "l1"), create=True), from_directory(str(one)), policy, compression)
    second = write_layer(Layout.open(str(tmp_path / "l2"), create=True), from_directory(str(two)), policy, compression)
    assert first == second


def test_gzip_header_has_no_name_and_no_time(tmp_path):
    tree = make_tree(tmp_path / "src")
    layout = Layout.open(str(tmp_path / "l"), create=True)
    layer = write_layer(layout, from_directory(str(tree)), Policy(), "gzip")
    head = open(layout.blob_path(layer.descriptor.digest), "rb").read(10)
    assert head[:3] == b"\x1f\x8b\x08" and head[3] & 0x08 == 0 and head[4:8] == b"\0\0\0\0"


def test_mtimes_older_than_the_epoch_are_kept(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "old").write_text("x")
    os.utime(tree / "old", (1000, 1000))
    layout = Layout.open(str(tmp_path / "l"), create=True)
    _, members = read_layer(layout, write_layer(layout, from_directory(str(tree)), Policy(epoch=EPOCH), "none"))
    assert members[0].mtime == 1000


def write_tar(path, members, compression=""):
    with tarfile.open(path, "w:" + compression) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)


def info(name, type=tarfile.REGTYPE, data=b"", linkname="", mtime=EPOCH + 5):
    item = tarfile.TarInfo(name)
    item.type, item.size, item.linkname, item.mtime = type, len(data), linkname, mtime
    item.uname = "someone"
    return item, data if type == tarfile.REGTYPE else None


def test_tarball_is_resorted_and_hard_links_regrouped(tmp_path):
    members = [info("./z/", tarfile.DIRTYPE), info("z/target", data=b"content"),
               info("a-link", tarfile.LNKTYPE, linkname="z/target"), info("m", data=b"first"), info("m", data=b"last")]
    write_tar(tmp_path / "in.tar", members)
    layout = Layout.open(str(tmp_path / "l"), create=True)
    archive, out = read_layer(layout, write_layer(layout, from_tarball(str(tmp_path / "in.tar")), Policy(EPOCH)))
    assert [m.name for m in out] == ["a-link", "m", "z", "z/target"]
    assert out[0].isreg() and archive.extractfile(out[0]).read() == b"content"
    assert out[3].islnk() and out[3].linkname == "a-link"
    assert archive.extractfile(out[1]).read() == b"last"
    assert all(m.mtime == EPOCH and m.uname == "" for m in out)


@pytest.mark.parametrize("compression", ["gz", "xz"])
def test_compressed_tarballs_give_the_same_layer(tmp_path, compression):
    members = [info("etc/", tarfile.DIRTYPE), info("etc/motd", data=b"hi"), info("bin/sh", tarfile.SYMTYPE,
                                                                                    linkname="busybox")]
    write_tar(tmp_path / "in.tar", members)
    write_tar(tmp_path / "in.tar.c", members, compression)
    layout = Layout.open(str(tmp_path / "l"), create=True)
    plain = write_layer(layout, from_tarball(str(tmp_path / "in.tar")), Policy())
    packed = write_layer(layout, from_tarball(str(tmp_path / "in.tar.c"), str(tmp_path)), Policy())
    assert plain == packed


def test_zstd_tarball_and_stream_input(tmp_path):
    import zstandard

    write_tar(tmp_path / "in.tar", [info("f", data=b"x" * 1000)])
    raw = (tmp_path / "in.tar").read_bytes()
    (tmp_path / "in.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    layout = Layout.open(str(tmp_path / "l"), create=True)
    plain = write_layer(layout, from_tarball(str(tmp_path / "in.tar")), Policy())
    assert write_layer(layout, from_tarball(str(tmp_path / "in.tar.zst")), Policy()) == plain
    stream = io.BufferedReader(io.BytesIO(raw))
    assert write_layer(layout, from_tarball(stream, str(tmp_path)), Policy()) == plain


@pytest.mark.parametrize("bad", [info("../escape", data=b"x"), info("a/../../b", data=b"x"),
                                 info("l", tarfile.LNKTYPE, linkname="../etc/passwd")])
def test_tarball_entries_that_leave_the_root_are_refused(tmp_path, bad):
    write_tar(tmp_path / "in.tar", [info("ok", data=b"x"), bad])
    layout = Layout.open(str(tmp_path / "l"), create=True)
    with pytest.raises(IntegrityError, match="tar entry"):
        write_layer(layout, from_tarball(str(tmp_path / "in.tar")), Policy())
    assert os.listdir(tmp_path / "l" / "blobs" / "sha256") == []


def test_missing_sources(tmp_path):
    with pytest.raises(NotFound):
        from_directory(str(tmp_path / "nope"))
    with pytest.raises(NotFound):
        from_tarball(str(tmp_path / "nope.tar"))


@pytest.mark.root
def test_overlay_upper_dir_whiteouts_become_oci_whiteouts(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc" / "opaque").mkdir(parents=True)
    (upper / "etc" / "opaque" / "new").write_text("new")
    os.setxattr(upper / "etc" / "opaque", "trusted.overlay.opaque", b"y")
    os.mknod(upper / "etc" / "gone", 0o000 | 0o020000, os.makedev(0, 0))
    os.mknod(upper / "tty", 0o620 | 0o020000, os.makedev(5, 0))  # a real device stays a device
    layout = Layout.open(str(tmp_path / "l"), create=True)
    _, members = read_layer(layout, write_layer(layout, from_directory(str(upper), upper=True), Policy(), "none"))
    assert [m.name for m in members] == ["etc", "etc/.wh.gone", "etc/opaque", "etc/opaque/.wh..wh..opq",
                                         "etc/opaque/new", "tty"]
    assert members[1].isreg() and members[1].size == 0 and members[3].isreg()
    assert members[5].ischr() and members[5].devmajor == 5
    assert not any(k.startswith("SCHILY.xattr.trusted") for m in members for k in m.pax_headers)


def test_parallel_gzip_is_the_same_whatever_the_threads_and_chunks():
    import random

    from oci.build.compress import ParallelGzip

    rng = random.Random(7)
    data = b"".join(rng.choice([b"abc" * 500, rng.randbytes(700)]) for _ in range(3000))
    outputs = set()
    for workers, piece in ((1, 1 << 20), (2, 999), (3, 70000)):
        gz = ParallelGzip(workers=workers, block=64 << 10)
        out = b"".join(gz.compress(data[i:i + piece]) for i in range(0, len(data), piece)) + gz.flush()
        assert gzip.decompress(out) == data
        outputs.add(out)
    assert len(outputs) == 1


def test_truncated_tarball_is_refused(tmp_path):
    write_tar(tmp_path / "in.tar", [info("big", data=b"x" * 100_000)])
    data = (tmp_path / "in.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[:50_000])
    layout = Layout.open(str(tmp_path / "l"), create=True)
    with pytest.raises(InvalidInput, match="cut.tar: not a valid tar archive: unexpected end of data"):
        write_layer(layout, from_tarball(str(tmp_path / "cut.tar")), Policy())


def test_hard_link_to_a_directory_is_refused(tmp_path):
    write_tar(tmp_path / "in.tar", [info("d", tarfile.DIRTYPE), info("l", tarfile.LNKTYPE, linkname="d")])
    with pytest.raises(IntegrityError, match="hard link to a directory"):
        list(from_tarball(str(tmp_path / "in.tar")))


@pytest.mark.root
def test_upper_dir_with_metacopy_files_is_refused(tmp_path):
    from oci.errors import Unsupported

    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "f").write_text("")
    os.setxattr(upper / "f", "trusted.overlay.metacopy", b"")
    with pytest.raises(Unsupported, match="metacopy"):
        list(from_directory(str(upper), upper=True))
    assert [e.name for e in from_directory(str(upper))] == ["f"]  # a plain directory: just a file


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_a_layer_fed_back_as_a_tarball_gives_itself(tmp_path, compression):
    """Directory and tarball sources agree: re-committing a layer's own blob reproduces it exactly."""
    tree = make_tree(tmp_path / "src")
    layout = Layout.open(str(tmp_path / "l"), create=True)
    policy = Policy(epoch=EPOCH, owner=(0, 0))
    layer = write_layer(layout, from_directory(str(tree)), policy, compression)
    again = write_layer(layout, from_tarball(layout.blob_path(layer.descriptor.digest), str(tmp_path)), policy,
                        compression)
    assert again == layer
