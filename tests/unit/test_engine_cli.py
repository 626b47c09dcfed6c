"""`ocikit`'s command line: Docker's verbs, help with examples, exit codes, the launcher."""

import subprocess
import sys

from tests.conftest import BIN


def ocikit(*args, root=None):
    argv = [sys.executable, str(BIN / "ocikit.py"), *(["--root", str(root)] if root else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_help_lists_the_verbs_with_examples_and_exit_codes():
    done = ocikit("--help")
    assert done.returncode == 0
    for word in ("run", "ps", "images", "volume", "network", "examples:", "exit codes:"):
        assert word in done.stdout
    run_help = ocikit("run", "--help")
    assert run_help.returncode == 0 and "--publish" in run_help.stdout and "--cap-add" in run_help.stdout
    assert "examples:" in run_help.stdout


def test_version():
    done = ocikit("--version")
    assert done.returncode == 0 and done.stdout.startswith("ocikit version ")


def test_usage_errors_exit_2_with_one_line():
    for args in (("frobnicate",), ("run",), ("image", "frobnicate"), ("--root",)):
        done = ocikit(*args)
        assert done.returncode == 2, args
        assert done.stderr.startswith("ocikit") and "Traceback" not in done.stderr


def test_what_does_not_exist_is_exit_3(tmp_path):
    for args in (("inspect", "nothing"), ("rm", "nothing"), ("rmi", "nothing"), ("volume", "inspect", "nothing")):
        done = ocikit(*args, root=tmp_path)
        assert done.returncode == 3, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_empty_lists_print_dockers_headers(tmp_path):
    assert ocikit("ps", "-a", root=tmp_path).stdout.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED",
                                                                "STATUS", "PORTS", "NAMES"]
    assert ocikit("images", root=tmp_path).stdout.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert ocikit("volume", "ls", root=tmp_path).stdout.split() == ["DRIVER", "VOLUME", "NAME"]
    assert ocikit("ps", "-a", "--format", "json", root=tmp_path).stdout == ""


def test_the_launcher_only_imports_the_command():
    launcher = (BIN / "ocikit").read_text()
    assert "from ocikit import main" in launcher and len(launcher.splitlines()) <= 5
