"""Every command under bad input, read-only inputs and full disks: one line, the documented exit
code, and the layout, rootfs or registry exactly as before (or complete)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from oci.descriptor import DOCKER_MANIFEST, OCI_LAYER_GZIP, OCI_MANIFEST
from oci.layout import Layout
from tests.conftest import command, run

from . import images
from .faultproxy import Fault
from .push_support import environment


def tree(path) -> dict[str, tuple[int, bytes | str]]:
    """Everything under `path`, lock files and temporaries included: relative name -> (mode, content)."""
    found: dict[str, tuple[int, bytes | str]] = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(folder, name)
            st = os.lstat(full)
            if os.path.isdir(full) and not os.path.islink(full):
                content: bytes | str = "dir"
            elif os.path.islink(full):
                content = os.readlink(full)
            else:
                with open(full, "rb") as f:
                    content = f.read()
            found[os.path.relpath(full, path)] = (st.st_mode, content)
    return found


def one_error(result, prog: str, code: int, *parts: str) -> str:
    """Assert the command failed with `code` and one stderr line naming `parts`; return the line."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: ") and "Traceback" not in result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


# -- paths of the wrong kind ----------------------------------------------------


@pytest.mark.parametrize("name", ["fetch", "fetch-registry", "commit", "bundle", "net"])
def test_an_output_path_that_is_a_regular_file(tmp_path, small_image, registry, repo, name):
    target = tmp_path / "file"
    target.write_bytes(b"precious")
    if name == "fetch":
        result = run("fetch", f"oci:{small_image.arg}", str(target))
    elif name == "fetch-registry":
        images.push_layout(small_image.path, small_image.tag, registry, repo)
        result = run("fetch", "--insecure", registry.ref(repo, small_image.tag), str(target))
    elif name == "commit":
        result = run("commit", "--from-dir", small_image.path, f"{target}:v1")
    elif name == "bundle":
        result = run("bundle", small_image.arg, str(target), "--rootfs", str(tmp_path))
    else:
        result = run("net", "--state-dir", str(target), "ls")
    one_error(result, f"oci-{name.split('-')[0]}", 2, str(target), "exists and is not a directory")
    assert target.read_bytes() == b"precious" and os.listdir(tmp_path) == ["file", "layout"]


# -- read-only inputs ------------------------------------------------------------


@pytest.mark.root
@pytest.mark.parametrize("made_by", ["ocikit", "skopeo"])
def test_push_from_a_read_only_layout_writes_nothing_into_it(tmp_path, registry, repo, small_image, made_by):
    """oci-push only reads the layout: from a read-only mount (in a throwaway mount namespace),
    of a layout ocikit made (with its .ocikit folder) or skopeo made (without), it pushes and
    leaves every byte, lock files included, as it was."""
    layout = small_image.path
    if made_by == "skopeo":
        layout = str(tmp_path / "by-skopeo")
        images.skopeo_copy(f"oci:{small_image.arg}", f"oci:{layout}:{small_image.tag}")
        assert not os.path.exists(os.path.join(layout, ".ocikit"))
    before = tree(layout)
    push = shlex.join(command("push") + ["--insecure", f"{layout}:{small_image.tag}", registry.ref(repo, "v1")])
    script = f"mount --bind {layout} {layout} && mount -o remount,bind,ro {layout} && exec {push}"
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **environment(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == str(small_image.descriptor.digest)
    assert images.skopeo_manifest_digest(registry.ref(repo, "v1"), registry) == str(small_image.descriptor.digest)
    assert tree(layout) == before


# -- full disks --------------------------------------------------------------------


def on_small_disk(tmp_path, size: str, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run commands in a mount namespace where tmp_path/disk is a tmpfs of `size`; the tmpfs's
    files are copied back to tmp_path/after (the namespace, and its tmpfs, end with the commands)."""
    disk, after = tmp_path / "disk", tmp_path / "after"
    disk.mkdir(exist_ok=True)
    results = []
    for i, argv in enumerate(commands):
        script = f"mount -t tmpfs -o size={size} tmpfs {disk} && "
        script += f"{{ [ -d {after} ] && cp -a {after}/. {disk}/ ; true ; }} && "
        script += f"{shlex.join(argv)} > {tmp_path}/out{i} 2> {tmp_path}/err{i}; code=$?; "
        script += f"rm -rf {after} && cp -a {disk} {after} && exit $code"
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
        results.append(subprocess.CompletedProcess(argv, proc.returncode, (tmp_path / f"out{i}").read_text(),
                                                   (tmp_path / f"err{i}").read_text() + proc.stderr))
    return results


@pytest.mark.root
def test_fetch_onto_a_full_disk(tmp_path, registry, repo):
    """A layout on a 4 MiB file system that holds one image: fetching an 8 MiB one fails in one
    line, exit 1, and the layout is as it was (no blob, no temporary)."""
    src = str(tmp_path / "src")
    images.build_image(src, "old", layers=[{"old": b"old"}])
    images.build_image(src, "big", layers=[images.random_layer(8 << 20, repo)])
    images.push_layout(src, "big", registry, repo)
    layout = str(tmp_path / "disk" / "images")
    first, second = on_small_disk(
        tmp_path, "4m",
        command("fetch") + [f"oci:{src}:old", layout],
        command("fetch") + ["--insecure", registry.ref(repo, "big"), layout])
    assert first.returncode == 0, first.stderr
    one_error(second, "oci-fetch", 1, "no space left on device")
    before = tree(tmp_path / "after" / "images")  # what the first fetch made, copied back after the second
    assert not os.listdir(tmp_path / "after" / "images" / ".ocikit" / "tmp")
    assert json.loads(before["index.json"][1])["manifests"][0]["annotations"][
        "org.opencontainers.image.ref.name"] == "old"
    assert len(os.listdir(tmp_path / "after" / "images" / "blobs" / "sha256")) == 3  # the old image alone


@pytest.mark.root
def test_commit_onto_a_full_disk(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(8 << 20))
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "a").write_text("a")
    layout = str(tmp_path / "disk" / "images")
    first, second = on_small_disk(
        tmp_path, "4m",
        command("commit") + ["--from-dir", str(tmp_path / "small"), f"{layout}:small"],
        command("commit") + ["--from", f"{layout}:small", "--from-dir", str(src), f"{layout}:big"])
    assert first.returncode == 0, first.stderr
    one_error(second, "oci-commit", 1, "no space left on device")
    after = Layout.open(str(tmp_path / "after" / "images"))
    assert [d.ref_name for d in after.descriptors()] == ["small"]
    assert not os.listdir(tmp_path / "after" / "images" / ".ocikit" / "tmp")
    assert len(os.listdir(tmp_path / "after" / "images" / "blobs" / "sha256")) == 3


# -- invalid values, refused before work starts -----------------------------------------


def test_invalid_tags_are_refused_everywhere(tmp_path, registry, repo, small_image):
    out = tmp_path / "out"
    before = tree(small_image.path)
    cases = [
        (run("fetch", "--tag", "bad tag/..", f"oci:{small_image.arg}", str(out)), "oci-fetch", "'bad tag/..'"),
        (run("fetch", f"oci:{small_image.path}:bad/tag", str(out)), "oci-fetch", "'bad/tag'"),
        (run("push", "--insecure", "--tag", "bad tag", small_image.arg, registry.ref(repo, "v1")), "oci-push",
         "'bad tag'"),
        (run("commit", "--from-dir", small_image.path, f"{out}:bad/tag"), "oci-commit", "'bad/tag'"),
        (run("unpack", f"{small_image.path}:bad/tag", str(out)), "oci-unpack", "'bad/tag'"),
        (run("bundle", f"{small_image.path}:-x", str(out)), "oci-bundle", "'-x'"),
    ]
    for result, prog, tag in cases:
        one_error(result, prog, 2, f"invalid tag {tag}")
    assert not out.exists() and not os.path.exists(f"{out}:bad") and tree(small_image.path) == before
    assert run("fetch", "--insecure", registry.ref(repo, "v1"), str(tmp_path / "check")).returncode == 3  # no push


@pytest.mark.parametrize("signal, accepted", [("SIGFROB", None), ("0", None), ("SIGRTMIN+99", None),
                                              ("term", "SIGTERM"), ("9", "9"), ("SIGRTMIN+3", "SIGRTMIN+3")])
def test_stop_signals_by_name_or_number(tmp_path, signal, accepted):
    (tmp_path / "src").mkdir()
    result = run("commit", "--from-dir", str(tmp_path / "src"), "--stop-signal", signal, f"{tmp_path}/l:v1")
    if accepted is None:
        one_error(result, "oci-commit", 2, f"invalid stop signal {signal!r}")
        assert not (tmp_path / "l").exists()
        return
    assert result.returncode == 0, result.stderr
    layout = Layout.open(str(tmp_path / "l"))
    from oci.image import Image

    assert Image.load(layout, layout.resolve("v1")).config["config"]["StopSignal"] == accepted


def retyped(small_image, tmp_path, media_type: str) -> str:
    """A copy of the image's layout whose index.json entry gives `media_type` for the image."""
    import shutil

    copy = str(tmp_path / "retyped")
    shutil.copytree(small_image.path, copy)
    index_path = os.path.join(copy, "index.json")
    with open(index_path) as f:
        index = json.load(f)
    index["manifests"][0]["mediaType"] = media_type
    with open(index_path, "w") as f:
        json.dump(index, f)
    return copy


@pytest.mark.parametrize("name", ["push", "unpack", "bundle", "fetch"])
def test_an_index_entry_typed_as_a_layer_is_invalid_input(tmp_path, registry, fault_proxy, repo, small_image, name):
    layout = retyped(small_image, tmp_path, OCI_LAYER_GZIP)
    before = tree(layout)
    image = f"{layout}:{small_image.tag}"
    result = {"push": lambda: run("push", "--insecure", image, f"{fault_proxy.host}/{repo}:v1"),
              "unpack": lambda: run("unpack", image, str(tmp_path / "rootfs")),
              "bundle": lambda: run("bundle", image, str(tmp_path / "bundle"), "--rootfs", str(tmp_path)),
              "fetch": lambda: run("fetch", f"oci:{image}", str(tmp_path / "out"))}[name]()
    one_error(result, f"oci-{name}", 2, str(small_image.descriptor.digest), "not a", OCI_LAYER_GZIP)
    assert tree(layout) == before and fault_proxy.count(None, "/blobs/") == 0
    assert not (tmp_path / "rootfs").exists() and not (tmp_path / "bundle").exists()


def test_a_manifest_whose_media_type_differs_from_its_descriptor_is_refused_before_any_blob(
        tmp_path, fault_proxy, repo, small_image):
    layout = retyped(small_image, tmp_path, DOCKER_MANIFEST)  # the document says OCI
    before = tree(layout)
    result = run("push", "--insecure", f"{layout}:{small_image.tag}", f"{fault_proxy.host}/{repo}:v1")
    one_error(result, "oci-push", 2, f"the document says mediaType {OCI_MANIFEST}",
              f"its descriptor says {DOCKER_MANIFEST}")
    assert fault_proxy.count(None, "/blobs/") == 0 and fault_proxy.count("PUT", "/manifests/") == 0
    assert tree(layout) == before


def test_served_as_names_the_content_type_the_registry_sent(tmp_path, registry, fault_proxy, repo, small_image):
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    data = Layout.open(small_image.path).read_blob(small_image.descriptor)
    fault_proxy.add(Fault("GET", "/manifests/v1", status=200, body=data,
                          headers={"Content-Type": DOCKER_MANIFEST}))
    result = run("fetch", "--insecure", f"{fault_proxy.host}/{repo}:v1", str(tmp_path / "out"))
    one_error(result, "oci-fetch", 4, f"the document says mediaType {OCI_MANIFEST}",
              f"the registry served it as {DOCKER_MANIFEST}")
    assert not (tmp_path / "out").exists()

