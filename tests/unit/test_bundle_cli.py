"""oci-bundle, the command: arguments, stdin from oci-unpack, output, exit codes; and umoci as a reference."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_testimage import make_image

from oci import schema
from oci.image import open_image, to_pipe

BIN = Path(__file__).resolve().parent.parent.parent / "bin"
CONFIG = {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo $GREETING"], "Env": ["PATH=/usr/bin:/bin", "GREETING=hi"],
          "WorkingDir": "/home/alice", "User": "alice", "StopSignal": "SIGTERM",
          "ExposedPorts": {"8080/tcp": {}}, "Labels": {"com.example.team": "core"}}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    layout, rootfs = make_image(tmp, CONFIG, top={"author": "ann", "created": "2024-05-06T07:08:09Z"})
    return layout, str(rootfs)


def test_writes_a_valid_config_and_prints_the_bundle(oci, image, tmp_path):
    layout, rootfs = image
    bundle = tmp_path / "bundle"
    result = oci("bundle", f"{layout}:latest", str(bundle), "--rootfs", rootfs, "-e", "X=1", "-m", "64m",
                 "--pids-limit", "20", "-v", "/cache", "--", "echo", "override")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{bundle}\n"
    config = schema.load_file(str(bundle / "config.json"), "runtime-config")
    assert config["process"]["args"] == ["/bin/sh", "-c", "echo", "override"]
    assert "X=1" in config["process"]["env"] and config["linux"]["resources"]["pids"] == {"limit": 20}
    assert config["annotations"]["com.example.team"] == "core"
    assert sorted(os.listdir(bundle)) == ["config.json", "hostname", "hosts", "resolv.conf", "volumes"]


def test_print_and_stdin_from_oci_unpack(oci, image, tmp_path):
    layout, rootfs = image
    piped = {"rootfs": rootfs, "image": to_pipe(*open_image(f"{layout}:latest")), "diff_ids": [], "mount": None}
    result = oci("bundle", "-", str(tmp_path / "b"), "--print", "--oci-version", "1.1.0", "-t",
                 input=json.dumps(piped).encode())
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    schema.validate(config, "runtime-config", "stdout")
    assert config["ociVersion"] == "1.1.0" and config["root"]["path"] == rootfs and config["process"]["terminal"]
    assert not (tmp_path / "b" / "config.json").exists()
    assert (tmp_path / "b" / "hosts").exists()  # the files the printed config mounts are there


def test_named_network_runs_the_checkouts_oci_net_with_this_interpreter(oci, image, tmp_path):
    """From a checkout, bin/oci-net starts `env python3`: in a hook's empty environment that is the
    system's Python, without ocikit's dependencies. The hook runs oci_net.py with oci-bundle's Python."""
    layout, rootfs = image
    result = oci("bundle", layout, str(tmp_path / "b"), "--rootfs", rootfs, "--network", "web", "-p", "80:80",
                 "--name", "api", "--print")
    assert result.returncode == 0, result.stderr
    hooks = json.loads(result.stdout)["hooks"]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bin", "oci_net.py")
    prefix = [sys.executable, os.path.realpath(script)]
    assert hooks["createRuntime"][0] == {"path": sys.executable, "args": [
        *prefix, "hook", "connect", "web", "--publish", "80:80", "--name", "api"]}
    assert hooks["poststop"][-1] == {"path": sys.executable, "args": [*prefix, "hook", "disconnect", "web"]}


def test_installed_oci_net_beside_the_command_is_preferred(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("oci_bundle_cli", BIN / "oci_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    installed = tmp_path / "oci-net"
    installed.write_text("#!/venv/bin/python\n")
    installed.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "oci-bundle")])
    assert module.oci_net_command() == [str(installed)]
    monkeypatch.setattr(sys, "argv", [str(BIN / "oci-bundle")])  # the checkout's symlink
    assert module.oci_net_command() == [sys.executable, str(BIN / "oci_net.py")]


def test_net_state_dir_reaches_the_hooks_from_the_flag_or_the_environment(oci, image, tmp_path):
    layout, rootfs = image

    def hooks(*extra: str, env: dict[str, str] | None = None) -> list[list[str]]:
        result = oci("bundle", layout, str(tmp_path / "b"), "--rootfs", rootfs, "--network", "web", "--print",
                     *extra, env=env)
        assert result.returncode == 0, result.stderr
        config = json.loads(result.stdout)
        return [config["hooks"]["createRuntime"][0]["args"], config["hooks"]["poststop"][-1]["args"]]

    for args in hooks(env={"OCIKIT_NET_STATE_DIR": ""}):
        assert "--state-dir" not in args  # oci-net's own default
    for args in hooks(env={"OCIKIT_NET_STATE_DIR": "rel/state"}):
        assert args[args.index("--state-dir") + 1] == os.path.abspath("rel/state")  # hooks get no environment
    for args in hooks("--state-dir", "/srv/net", env={"OCIKIT_NET_STATE_DIR": "/elsewhere"}):
        assert args[args.index("--state-dir") + 1] == "/srv/net"


@pytest.mark.parametrize("extra,code,message", [
    (["-u", "mallory"], 3, "user 'mallory' not found"),
    (["-m", "lots"], 2, "invalid --memory"),
    (["--device", "/dev/null:/dev/x:q"], 2, "permissions"),
    (["--security-opt", "label=disable"], 8, "not supported"),
    (["--bogus"], 2, "unrecognized arguments"),
    (["--network", "web", "-p", "80", "--hook", "poststop=no-such-hook-command"], 3, "not found on PATH"),
    (["--annotation", "novalue"], 2, "invalid annotation"),
])
def test_errors_and_exit_codes(oci, image, tmp_path, extra, code, message):
    layout, rootfs = image
    result = oci("bundle", layout, str(tmp_path / "b"), "--rootfs", rootfs, *extra)
    assert result.returncode == code and message in result.stderr and result.stdout == ""
    assert not (tmp_path / "b").exists()  # checked before anything is written


def test_missing_image_and_help(oci, tmp_path):
    result = oci("bundle", str(tmp_path / "nope"), str(tmp_path / "b"))
    assert result.returncode == 3 and "not an OCI image layout" in result.stderr
    result = oci("bundle", "--help")
    assert result.returncode == 0 and "hook, connect, NAME" in result.stdout and "in place" in result.stdout


# -- umoci, field by field where conversion.md leaves no choice -----------


@pytest.mark.skipif(not shutil.which("umoci"), reason="umoci is installed by .ci/install")
@pytest.mark.parametrize("user", ["alice", "1000:50", "bob:audio", "", "4242", "4242:7", "root"])
def test_matches_umoci_unpack(oci, tmp_path, user):
    layout, rootfs = make_image(tmp_path, {**CONFIG, "User": user},
                                top={"author": "ann", "created": "2024-05-06T07:08:09Z"})
    umoci = ["umoci", "unpack"] + ([] if os.geteuid() == 0 else ["--rootless"])
    subprocess.run(umoci + ["--image", f"{layout}:latest", str(tmp_path / "umoci")], check=True, capture_output=True)
    theirs = json.loads((tmp_path / "umoci" / "config.json").read_text())
    result = oci("bundle", f"{layout}:latest", str(tmp_path / "ours"), "--rootfs", str(rootfs), "--print")
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    for key in ("args", "cwd"):
        assert ours["process"][key] == theirs["process"][key], key
    # umoci --rootless (off root) drops additionalGids: an unprivileged runtime cannot setgroups
    for key in ("uid", "gid", "additionalGids") if os.geteuid() == 0 else ("uid", "gid"):
        assert ours["process"]["user"].get(key) == theirs["process"]["user"].get(key), key
    assert [e for e in theirs["process"]["env"] if e in CONFIG["Env"]] == CONFIG["Env"]
    assert ours["process"]["env"][:len(CONFIG["Env"])] == CONFIG["Env"]
    home = [e for e in theirs["process"]["env"] if e.startswith("HOME=")]
    assert not home or home[0] in ours["process"]["env"]
    for key, value in theirs["annotations"].items():
        if key.startswith("org.opencontainers.image.") and value:
            assert ours["annotations"][key] == value, key
