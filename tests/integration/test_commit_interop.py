"""oci-commit interop: images it makes are read by umoci and skopeo (Debian's) as made."""

import hashlib
import json
import os
import subprocess
import tarfile

import pytest

pytestmark = pytest.mark.root


def tool(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


def test_umoci_unpacks_and_skopeo_inspects_what_oci_commit_made(oci, tmp_path):
    src = tmp_path / "src"
    (src / "etc" / "conf.d").mkdir(parents=True)
    (src / "etc" / "motd").write_text("hello\n")
    (src / "etc" / "conf.d" / "gone").write_text("old")
    (src / "bin").mkdir()
    (src / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(src / "bin" / "tool", 0o4750)
    os.symlink("tool", src / "bin" / "alias")
    os.link(src / "etc" / "motd", src / "etc" / "motd.hard")
    os.mkfifo(src / "fifo")
    os.mknod(src / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.setxattr(src / "etc" / "motd", "user.origin", b"oci-commit")
    layout = tmp_path / "images"
    made = oci("commit", "--from-dir", str(src), "--owner", "123:456", "--cmd", "/bin/tool",
               "--env", "MODE=test", f"{layout}:base", env={"SOURCE_DATE_EPOCH": "1700000000"}, check=True)
    digest = json.loads(made.stdout)["digest"]

    inspected = json.loads(tool("skopeo", "inspect", f"oci:{layout}:base"))
    assert inspected["Digest"] == digest and inspected["Env"] == ["MODE=test"]
    assert inspected["Created"].startswith("2023-11-14T22:13:20")
    config = json.loads(tool("skopeo", "inspect", "--config", f"oci:{layout}:base"))
    assert config["config"]["Cmd"] == ["/bin/tool"]

    tool("umoci", "unpack", "--image", f"{layout}:base", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc" / "motd").read_text() == "hello\n"
    assert os.getxattr(rootfs / "etc" / "motd", "user.origin") == b"oci-commit"
    motd, hard = os.stat(rootfs / "etc" / "motd"), os.stat(rootfs / "etc" / "motd.hard")
    assert motd.st_ino == hard.st_ino and (motd.st_uid, motd.st_gid) == (123, 456)
    assert int(motd.st_mtime) == 1700000000
    assert os.stat(rootfs / "bin" / "tool").st_mode & 0o7777 == 0o4750
    assert os.readlink(rootfs / "bin" / "alias") == "tool"
    assert os.path.exists(rootfs / "fifo") and os.stat(rootfs / "null").st_rdev == os.makedev(1, 3)

    # A container's changes, as an overlayfs upper directory: a deletion, an opaque directory, a new file.
    upper = tmp_path / "upper"
    (upper / "etc" / "conf.d").mkdir(parents=True)
    os.setxattr(upper / "etc" / "conf.d", "trusted.overlay.opaque", b"y")
    (upper / "etc" / "conf.d" / "new").write_text("new")
    os.mknod(upper / "etc" / "motd.hard", 0o020000, os.makedev(0, 0))
    oci("commit", "--from", f"{layout}:base", "--from-upper", str(upper), f"{layout}:snap", check=True)
    tool("umoci", "unpack", "--image", f"{layout}:snap", str(tmp_path / "snap"))
    snap = tmp_path / "snap" / "rootfs"
    assert not (snap / "etc" / "motd.hard").exists() and (snap / "etc" / "motd").read_text() == "hello\n"
    assert sorted(os.listdir(snap / "etc" / "conf.d")) == ["new"]


def test_skopeo_copies_a_zstd_image(oci, tmp_path):
    """umoci 0.4.7 knows no zstd; skopeo copy reads every blob of a zstd image and checks its digest."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "file").write_text("zstd" * 1000)
    made = oci("commit", "--from-dir", str(tmp_path / "src"), "--compression", "zstd", f"{tmp_path}/images:z",
               check=True)
    tool("skopeo", "copy", "-q", f"oci:{tmp_path}/images:z", f"dir:{tmp_path}/copy")
    manifest = json.loads((tmp_path / "copy" / "manifest.json").read_text())
    assert manifest["layers"][0]["mediaType"].endswith("+zstd")
    assert "sha256:" + hashlib.sha256((tmp_path / "copy" / "manifest.json").read_bytes()).hexdigest() == \
        json.loads(made.stdout)["digest"]


def test_diff_of_a_rootfs_umoci_unpacked(oci, tmp_path):
    """umoci unpack an image, change its rootfs, commit the difference: only the changes travel."""
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (src / "etc" / name).write_text(name * 1000)
    layout = tmp_path / "images"
    oci("commit", "--from-dir", str(src), "--owner", "0:0", f"{layout}:base", env={"SOURCE_DATE_EPOCH": "1700000000"},
        check=True)
    tool("umoci", "unpack", "--image", f"{layout}:base", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    os.unlink(rootfs / "etc" / "b")
    (rootfs / "etc" / "c").write_text("changed")
    oci("commit", "--from", f"{layout}:base", "--diff", str(rootfs), f"{layout}:diff", check=True)
    manifest = json.loads(tool("skopeo", "inspect", "--raw", f"oci:{layout}:diff"))
    with tarfile.open(layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]) as archive:
        assert archive.getnames() == ["etc", "etc/.wh.b", "etc/c"]
    tool("umoci", "unpack", "--image", f"{layout}:diff", str(tmp_path / "again"))
    etc = tmp_path / "again" / "rootfs" / "etc"
    assert sorted(os.listdir(etc)) == ["a", "c"] and (etc / "c").read_text() == "changed"


def test_commit_of_a_real_overlay_upper_dir(oci, tmp_path):
    """Change files through a real overlayfs mount (in a throwaway mount namespace), commit its upper dir."""
    src = tmp_path / "src"
    (src / "etc" / "conf.d").mkdir(parents=True)
    for name in ("keep", "remove"):
        (src / "etc" / name).write_text(name)
    (src / "etc" / "conf.d" / "old").write_text("old")
    layout = tmp_path / "images"
    oci("commit", "--from-dir", str(src), f"{layout}:base", check=True)
    tool("umoci", "unpack", "--image", f"{layout}:base", str(tmp_path / "bundle"))
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for folder in (upper, work, merged):
        folder.mkdir()
    script = (f"mount -t overlay overlay -o lowerdir={tmp_path}/bundle/rootfs,upperdir={upper},workdir={work} {merged}"
              f" && cd {merged}/etc && rm remove && rm -r conf.d && mkdir conf.d && echo new > conf.d/new"
              f" && echo more >> keep")
    tool("unshare", "-m", "sh", "-c", script)
    oci("commit", "--from", f"{layout}:base", "--from-upper", str(upper), f"{layout}:changed", check=True)
    tool("umoci", "unpack", "--image", f"{layout}:changed", str(tmp_path / "after"))
    etc = tmp_path / "after" / "rootfs" / "etc"
    assert sorted(os.listdir(etc)) == ["conf.d", "keep"] and os.listdir(etc / "conf.d") == ["new"]
    assert (etc / "keep").read_text() == "keepmore\n"
