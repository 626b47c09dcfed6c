"""Conventions every command shares: --help with examples, --version, exit codes, stderr."""

import subprocess
import sys

import pytest

from tests.conftest import BIN, run

COMMANDS = ["fetch", "push", "unpack", "bundle", "run", "net"]


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_examples_and_exit_codes(name):
    result = run(name, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "exit codes:" in result.stdout
    assert f"oci-{name}" in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_version(name):
    result = run(name, "--version")
    assert result.returncode == 0 and "(ocikit)" in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_dashed_executables_run_from_a_checkout(name):
    result = subprocess.run([sys.executable, str(BIN / f"oci-{name}"), "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (BIN / f"oci-{name}").resolve() == (BIN / f"oci_{name}.py")


def test_bad_flag_value_is_a_usage_error():
    result = run("fetch", "--log-format", "xml")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("oci-fetch: ")


def test_errors_as_json_lines():
    import json

    result = run("push", "--log-format", "json", "./layout:tag", "example.com/x")
    assert result.returncode == 8
    (line,) = result.stderr.splitlines()
    message = json.loads(line)
    assert message["level"] == "error" and message["prog"] == "oci-push" and message["code"] == 8
