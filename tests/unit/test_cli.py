"""Conventions every command shares: --help with examples, --version, exit codes, stderr."""

import subprocess
import sys

import pytest

from tests.conftest import BIN, run

COMMANDS = ["fetch", "push", "unpack", "bundle", "run", "net", "commit"]


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
    """bin/oci-NAME is a launcher that imports bin/oci_NAME.py (so the command runs from byte-code)."""
    result = subprocess.run([str(BIN / f"oci-{name}"), "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    launcher = (BIN / f"oci-{name}").read_text()
    assert f"from oci_{name} import main" in launcher and len(launcher.splitlines()) <= 5


def test_bad_flag_value_is_a_usage_error():
    result = run("fetch", "--log-format", "xml")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("oci-fetch: ")



def _run_main(main, *args):
    import ocicli

    with pytest.raises(SystemExit) as info:
        ocicli.run("oci-test", main, list(args))
    return info.value.code


def test_errors_as_json_lines(capsys):
    import json

    from oci.errors import NotFound

    def main(args, messages):
        raise NotFound("no image tagged 'x'", source="./images")

    assert _run_main(main, "--log-format", "json") == 3
    (line,) = capsys.readouterr().err.splitlines()
    message = json.loads(line)
    assert message == {"level": "error", "msg": "./images: no image tagged 'x'", "prog": "oci-test", "code": 3}


def test_errors_as_text_lines_and_exit_codes(capsys):
    from oci.errors import InvalidDocument

    def main(args, messages):
        raise InvalidDocument("config.json", [("/process/args", "is not an array"), ("/root", "bad")])

    assert _run_main(main) == 2
    assert capsys.readouterr().err.splitlines() == [
        "oci-test: config.json: /process/args: is not an array", "oci-test: config.json: /root: bad"]


def test_commands_not_built_yet_say_so(capsys, monkeypatch):
    import ocicli

    main = ocicli.not_implemented("oci-x", "does x", "  oci-x y", "issue 99")
    monkeypatch.setattr(sys, "argv", ["oci-x", "--any-flag", "arg"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 8
    captured = capsys.readouterr()
    assert captured.out == "" and "not implemented yet (tracked in issue 99)" in captured.err
