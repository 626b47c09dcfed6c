"""oci.bundle.convert: conversion.md rules, and oci.bundle.users: Config.User against passwd and group."""

import os

import pytest
from bundle_testimage import make_rootfs
from hypothesis import given
from hypothesis import strategies as st

from oci.bundle import convert, users
from oci.errors import NotFound, UsageError

IMAGE = {"architecture": "amd64", "os": "linux", "variant": "v8", "os.version": "10.0", "os.features": ["a", "b"],
         "author": "ann", "created": "2024-01-02T03:04:05Z",
         "config": {"Entrypoint": ["/bin/ep", "-x"], "Cmd": ["run", "fast"], "Env": ["PATH=/bin", "A=1"],
                    "WorkingDir": "srv/app", "StopSignal": "SIGQUIT", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                    "Volumes": {"/data": {}, "/var/log/": {}},
                    "Labels": {"org.opencontainers.image.author": "label-wins", "com.example": "x"}}}


@pytest.mark.parametrize("entrypoint,args,expected", [
    (None, None, ["/bin/ep", "-x", "run", "fast"]),  # Entrypoint + Cmd
    (None, ["other"], ["/bin/ep", "-x", "other"]),  # trailing args replace Cmd
    ("/bin/sh", None, ["/bin/sh"]),  # --entrypoint drops the image's Cmd, as docker run does
    ("/bin/sh", ["-c", "id"], ["/bin/sh", "-c", "id"]),
    ("", ["echo", "hi"], ["echo", "hi"]),  # --entrypoint "" clears it
])
def test_process_args(entrypoint, args, expected):
    assert convert.process_args(IMAGE, entrypoint, args) == expected


def test_process_args_cmd_only_and_nothing():
    assert convert.process_args({"config": {"Cmd": ["sh"]}}) == ["sh"]
    with pytest.raises(UsageError, match="no command"):
        convert.process_args({"config": {}})
    with pytest.raises(UsageError):
        convert.process_args(IMAGE, "", [])


def test_env_merge_replaces_in_place_and_defaults_never_override():
    merged = convert.merge_env(["PATH=/bin", "A=1", "B=2"], ["A=9", "C=3", "A=10"])
    assert merged == ["PATH=/bin", "A=10", "B=2", "C=3"]
    assert convert.add_missing(["PATH=/x"], ["PATH=/default", "HOME=/root"]) == ["PATH=/x", "HOME=/root"]


@given(st.lists(st.from_regex(r"[A-Z]{1,3}=[a-z]{0,3}", fullmatch=True), max_size=8),
       st.lists(st.from_regex(r"[A-Z]{1,3}=[a-z]{0,3}", fullmatch=True), max_size=8))
def test_env_merge_properties(base, overrides):
    merged = convert.merge_env(base, overrides)
    final = dict(e.split("=", 1) for e in base + overrides)  # the last word on each name wins
    assert dict(e.split("=", 1) for e in merged) == final
    if len(set(map(convert.env_name, base))) == len(base):  # no duplicates in, none out
        assert len(set(map(convert.env_name, merged))) == len(merged)


def test_working_dir():
    assert convert.working_dir(IMAGE) == "/srv/app"
    assert convert.working_dir(IMAGE, "/tmp/../opt") == "/opt"
    assert convert.working_dir({"config": {}}) == "/"


def test_annotations_follow_conversion_md_and_labels_win():
    notes = convert.implicit_annotations(IMAGE)
    assert notes == {
        "org.opencontainers.image.os": "linux", "org.opencontainers.image.architecture": "amd64",
        "org.opencontainers.image.variant": "v8", "org.opencontainers.image.os.version": "10.0",
        "org.opencontainers.image.os.features": "a,b", "org.opencontainers.image.author": "label-wins",
        "org.opencontainers.image.created": "2024-01-02T03:04:05Z",
        "org.opencontainers.image.stopSignal": "SIGQUIT", "org.opencontainers.image.exposedPorts": "53/udp,80/tcp",
        "com.example": "x"}
    assert convert.implicit_annotations({"config": {}}) == {}


def test_volumes_are_normalised():
    assert convert.volumes(IMAGE) == ["/data", "/var/log"]


# -- users -----------------------------------------------------------------


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return str(make_rootfs(tmp_path_factory.mktemp("users")))


@pytest.mark.parametrize("spec,uid,gid,extra,home", [
    ("", 0, 0, [10], "/root"),  # unset: root and its groups, as Docker and umoci
    (None, 0, 0, [10], "/root"),
    ("0", 0, 0, [], "/root"),
    ("root", 0, 0, [10], "/root"),
    ("alice", 1000, 1000, [10, 29], "/home/alice"),  # supplementary groups from /etc/group
    ("1000", 1000, 1000, [], "/home/alice"),  # numeric: gid and home from passwd, no lookup of groups
    ("1000:50", 1000, 50, [], "/home/alice"),
    ("alice:staff", 1000, 50, [], "/home/alice"),  # a group given: no supplementary groups
    ("bob:0", 1001, 0, [], "/home/bob"),
    ("4242", 4242, 0, [], "/"),  # a uid not in passwd is taken verbatim
    ("4242:4343", 4242, 4343, [], "/"),
    ("nohome", 1002, 1002, [], "/"),
])
def test_user_lookup(rootfs, spec, uid, gid, extra, home):
    user = users.resolve(rootfs, spec)
    assert (user.uid, user.gid, user.additional_gids, user.home) == (uid, gid, extra, home)


@pytest.mark.parametrize("spec,message", [("mallory", "user 'mallory' not found"),
                                          ("alice:nogroup", "group 'nogroup' not found")])
def test_unknown_user_or_group_is_an_error(rootfs, spec, message):
    with pytest.raises(NotFound, match=message):
        users.resolve(rootfs, spec)


def test_passwd_symlink_cannot_leave_the_rootfs(tmp_path):
    root = make_rootfs(tmp_path / "r")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:7:7::/evil:/bin/sh\n")
    os.unlink(root / "etc/passwd")
    os.symlink(str(outside / "passwd"), root / "etc/passwd")  # absolute: resolved inside the rootfs
    with pytest.raises(NotFound):
        users.resolve(str(root), "evil")
    os.unlink(root / "etc/passwd")
    os.symlink("../../../../../../outside/passwd", root / "etc/passwd")
    with pytest.raises(NotFound):
        users.resolve(str(root), "evil")
    (root / "outside").mkdir()
    (root / "outside/passwd").write_text("inside:x:8:8::/in:/bin/sh\n")
    assert users.resolve(str(root), "inside").uid == 8  # the same link, resolved within the root


def test_no_passwd_file(tmp_path):
    (tmp_path / "etc").mkdir()
    assert users.resolve(str(tmp_path), "").uid == 0
    assert users.resolve(str(tmp_path), "12:34").gid == 34
    with pytest.raises(NotFound):
        users.resolve(str(tmp_path), "alice")
