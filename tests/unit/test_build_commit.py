"""oci-commit: the command, end to end in layouts (reproducibility, configs, bases, errors)."""

import json
import os
import tarfile

import pytest

from oci.descriptor import Descriptor
from oci.image import Image
from oci.layout import Layout

EPOCH = "1700000000"


def load(path, tag):
    layout = Layout.open(str(path))
    return Image.load(layout, layout.resolve(tag))


def make_src(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "tool", 0o755)
    os.symlink("tool", root / "bin" / "alias")
    return root


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_same_directory_twice_gives_the_same_manifest_digest(oci, tmp_path, compression):
    src = make_src(tmp_path / "src")
    env = {"SOURCE_DATE_EPOCH": EPOCH}
    args = ["--from-dir", str(src), "--cmd", "/bin/tool", "--compression", compression]
    first = oci("commit", *args, f"{tmp_path}/one:v1", env=env, check=True)
    os.utime(src / "bin" / "tool")  # now: newer than SOURCE_DATE_EPOCH
    (src / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    second = oci("commit", *args, f"{tmp_path}/two:v1", env=env, check=True)
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["digest"] == two["digest"]
    assert one["annotations"]["org.ocikit.layout"] == str(tmp_path / "one")
    image = load(tmp_path / "two", "v1")
    assert image.layers[0].media_type.endswith(compression)
    assert image.config["created"] == "2023-11-14T22:13:20Z"


def test_demo_command_line_and_every_config_flag(oci, tmp_path):
    src = make_src(tmp_path / "src")
    result = oci("commit", "--from-dir", str(src), "--cmd", "/bin/sh", "--cmd", "-c", "--cmd",
                 "echo hello from $(hostname)", "--entrypoint", "/bin/env", "--env", "A=1", "--env", "B=2=3",
                 "--workdir", "/srv", "--user", "nobody", "--label", "l=v", "--expose", "8080",
                 "--volume", "/data", "--stop-signal", "INT", "--platform", "linux/arm64/v8",
                 "--created-by", "test build", "--comment", "why", "--owner", "0:0",
                 f"{tmp_path}/images:busybox", check=True)
    descriptor = Descriptor.from_json(json.loads(result.stdout))
    image = load(tmp_path / "images", "busybox")
    assert image.descriptor.digest == descriptor.digest
    assert image.config["config"] == {
        "Entrypoint": ["/bin/env"], "Cmd": ["/bin/sh", "-c", "echo hello from $(hostname)"], "Env": ["A=1", "B=2=3"],
        "WorkingDir": "/srv", "User": "nobody", "Labels": {"l": "v"}, "ExposedPorts": {"8080/tcp": {}},
        "Volumes": {"/data": {}}, "StopSignal": "SIGINT"}
    assert (image.config["architecture"], image.config["variant"]) == ("arm64", "v8")
    assert image.config["history"][-1]["created_by"] == "test build"
    assert image.config["rootfs"]["diff_ids"] == [str(d) for d in image.diff_ids] and len(image.layers) == 1


def test_layer_on_a_base_in_another_layout_then_config_only(oci, tmp_path):
    base_src = make_src(tmp_path / "base")
    oci("commit", "--from-dir", str(base_src), "--cmd", "sh", "--env", "PATH=/bin", f"{tmp_path}/base-layout:b",
        check=True)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.txt").write_text("app")
    result = oci("commit", "--from", f"{tmp_path}/base-layout:b", "--from-dir", str(tmp_path / "app"),
                 "--env", "MODE=x", f"{tmp_path}/apps:app", check=True)
    base, app = load(tmp_path / "base-layout", "b"), load(tmp_path / "apps", "app")
    assert app.layers[0] == base.layers[0] and len(app.layers) == 2 and len(app.diff_ids) == 2
    assert app.layout.has_blob(base.layers[0].digest)  # copied over
    assert app.config["config"]["Cmd"] == ["sh"] and app.config["config"]["Env"] == ["PATH=/bin", "MODE=x"]
    assert app.manifest["annotations"]["org.opencontainers.image.base.digest"] == str(base.descriptor.digest)
    piped = oci("commit", "--from", "-", "--config-only", "--cmd", "", "--user", "1:1", f"{tmp_path}/apps:cfg",
                input=result.stdout.encode(), check=True)
    cfg = load(tmp_path / "apps", "cfg")
    assert json.loads(piped.stdout)["digest"] == str(cfg.descriptor.digest)
    assert cfg.layers == app.layers and "Cmd" not in cfg.config["config"] and cfg.config["config"]["User"] == "1:1"
    assert cfg.config["history"][-1]["empty_layer"] is True


@pytest.mark.root
def test_upper_dir_commit_on_a_base(oci, tmp_path):
    oci("commit", "--from-dir", str(make_src(tmp_path / "base")), f"{tmp_path}/l:base", check=True)
    upper = tmp_path / "upper"
    (upper / "bin").mkdir(parents=True)
    os.mknod(upper / "bin" / "alias", 0o020000, os.makedev(0, 0))
    oci("commit", "--from", f"{tmp_path}/l:base", "--from-upper", str(upper), f"{tmp_path}/l:snap", check=True)
    snap = load(tmp_path / "l", "snap")
    with tarfile.open(snap.layout.blob_path(snap.layers[-1].digest)) as archive:
        assert archive.getnames() == ["bin", "bin/.wh.alias"]


def test_tarball_input_from_a_file_and_stdin(oci, tmp_path):
    src = make_src(tmp_path / "src")
    with tarfile.open(tmp_path / "in.tar.gz", "w:gz") as archive:
        archive.add(src, arcname=".")
    env = {"SOURCE_DATE_EPOCH": EPOCH}
    from_file = oci("commit", "--from-tar", str(tmp_path / "in.tar.gz"), "--owner", "0:0", f"{tmp_path}/l:a",
                    env=env, check=True)
    from_dir = oci("commit", "--from-dir", str(src), "--owner", "0:0", f"{tmp_path}/l:b", env=env, check=True)
    from_stdin = oci("commit", "--from-tar", "-", "--owner", "0:0", f"{tmp_path}/l:c", env=env, check=True,
                     input=(tmp_path / "in.tar.gz").read_bytes())
    assert json.loads(from_file.stdout)["digest"] == json.loads(from_stdin.stdout)["digest"]
    layers = {str(load(tmp_path / "l", tag).layers[0].digest) for tag in "abc"}
    assert len(layers) == 1 and from_dir.returncode == 0  # a tarball of a directory: the directory's layer


def test_bad_input_exit_codes(oci, tmp_path):
    src = make_src(tmp_path / "src")
    (tmp_path / "file").write_text("x")
    (tmp_path / "notlayout").mkdir()
    (tmp_path / "notlayout" / "something").write_text("x")
    cases = [
        (3, ["--from-dir", str(tmp_path / "missing"), f"{tmp_path}/l:t"], "missing: no such directory"),
        (2, ["--from-dir", str(src), "--env", "NOVALUE", f"{tmp_path}/l:t"], "invalid --env 'NOVALUE'"),
        (2, ["--from-dir", str(src), f"{tmp_path}/file:t"], "not a directory"),
        (2, ["--from-dir", str(src), f"{tmp_path}/notlayout:t"], "not an OCI image layout"),
        (3, ["--from", f"{tmp_path}/nolayout:t", "--from-dir", str(src), f"{tmp_path}/l:t"], "not an OCI image layout"),
        (2, [f"{tmp_path}/l:t"], "--config-only"),
        (2, ["--from-dir", str(src), "--owner", "root", f"{tmp_path}/l:t"], "--owner"),
        (2, ["--from-dir", str(src), "--expose", "99999", f"{tmp_path}/l:t"], "invalid port"),
        (2, ["--from-dir", str(src), f"{tmp_path}/l@sha256:" + "a" * 64], "give a tag"),
    ]
    for code, args, message in cases:
        result = oci("commit", *args)
        assert (result.returncode, result.stdout) == (code, ""), (args, result.stderr)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert not (tmp_path / "l").exists()  # nothing was created by a refused command
    assert oci("commit", "--from-dir", str(src), f"{tmp_path}/l", env={"SOURCE_DATE_EPOCH": "soon"}).returncode == 2


def test_invalid_base_documents_are_reported_with_their_pointer(oci, tmp_path):
    src = make_src(tmp_path / "src")
    oci("commit", "--from-dir", str(src), f"{tmp_path}/base:b", check=True)
    index_path = tmp_path / "base" / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"][0]["size"] = "big"
    index_path.write_text(json.dumps(index))
    result = oci("commit", "--from", f"{tmp_path}/base:b", "--config-only", f"{tmp_path}/new:n")
    assert result.returncode == 2 and "index.json: /manifests/0/size:" in result.stderr


def test_unsafe_tarball_leaves_no_tag(oci, tmp_path):
    with tarfile.open(tmp_path / "bad.tar", "w") as archive:
        archive.addfile(tarfile.TarInfo("../../etc/evil"))
    result = oci("commit", "--from-tar", str(tmp_path / "bad.tar"), f"{tmp_path}/l:t")
    assert result.returncode == 4 and "tar entry '../../etc/evil'" in result.stderr
    assert Layout.open(str(tmp_path / "l")).descriptors() == []
    assert os.listdir(tmp_path / "l" / "blobs" / "sha256") == []


def test_help_has_examples(oci):
    result = oci("commit", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout and "--from-upper" in result.stdout


def test_diff_of_a_rootfs_against_its_image(oci, tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "a").mkdir(parents=True)
    (rootfs / "a" / "keep").write_text("keep")
    (rootfs / "a" / "mod").write_text("1234")
    (rootfs / "del").write_text("x")
    (rootfs / "deldir" / "sub").mkdir(parents=True)
    (rootfs / "deldir" / "sub" / "x").write_text("x")
    os.symlink("a/keep", rootfs / "link")
    oci("commit", "--from-dir", str(rootfs), "--compression", "zstd", f"{tmp_path}/l:base", check=True)
    before = os.stat(rootfs / "a" / "mod")
    (rootfs / "a" / "mod").write_text("5678")  # same size, same mtime: only the content tells
    os.utime(rootfs / "a" / "mod", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.unlink(rootfs / "del")
    import shutil

    shutil.rmtree(rootfs / "deldir")
    (rootfs / "new").write_text("new")
    os.unlink(rootfs / "link")
    os.symlink("a/mod", rootfs / "link")
    oci("commit", "--from", f"{tmp_path}/l:base", "--diff", str(rootfs), f"{tmp_path}/l:diff", check=True)
    image = load(tmp_path / "l", "diff")
    with tarfile.open(image.layout.blob_path(image.layers[-1].digest)) as archive:
        names = archive.getnames()
    assert {".wh.del", ".wh.deldir", "a/mod", "link", "new"} <= set(names)
    assert not {"a/keep", "deldir/sub/x", "deldir/.wh.sub"} & set(names)
    assert names.index(".wh.del") < names.index("a/mod")  # whiteouts first among their siblings
    unchanged = oci("commit", "--from", f"{tmp_path}/l:diff", "--diff", str(rootfs), f"{tmp_path}/l:again",
                    check=True)
    again = load(tmp_path / "l", "again")
    assert json.loads(unchanged.stdout)["digest"] == str(again.descriptor.digest)
    with tarfile.open(again.layout.blob_path(again.layers[-1].digest)) as archive:
        assert archive.getnames() == []
