"""oci-run's command line: global flags before the verb, runc's verbs and flags, signals, spec, features."""

import json

import pytest
from oci_run import split_globals, verb_parser

from oci import schema
from oci.errors import InvalidInput, UsageError
from oci.runtime.lifecycle import parse_signal
from tests.conftest import run


def test_globals_before_the_verb():
    g, verb, rest = split_globals(["--root", "/r", "--log", "/l", "--log-format", "json", "--systemd-cgroup",
                                   "--rootless", "false", "--debug", "create", "--bundle", "b", "id"])
    assert (g.root, g.log, g.log_format, g.debug, verb) == ("/r", "/l", "json", True, "create")
    assert rest == ["--bundle", "b", "id"]
    g, verb, _ = split_globals(["--root=/x", "state", "id"])
    assert g.root == "/x" and verb == "state"
    with pytest.raises(UsageError):
        split_globals(["--bogus", "state"])


def test_verb_flags_as_runc_has_them():
    opts = verb_parser("create").parse_args(["-b", "/b", "--pid-file", "p", "--console-socket", "s", "--no-pivot",
                                             "--no-new-keyring", "--preserve-fds", "2", "c1"])
    assert (opts.bundle, opts.pid_file, opts.console_socket, opts.no_pivot, opts.preserve_fds, opts.id) == \
        ("/b", "p", "s", True, 2, "c1")
    opts = verb_parser("run").parse_args(["-d", "--keep", "c1"])
    assert opts.detach and opts.keep
    opts = verb_parser("kill").parse_args(["-a", "c1", "KILL"])
    assert opts.all and opts.signal == "KILL"
    assert verb_parser("kill").parse_args(["c1"]).signal == "SIGTERM"
    assert verb_parser("delete").parse_args(["-f", "c1"]).force
    assert verb_parser("list").parse_args(["-f", "json"]).format == "json"


@pytest.mark.parametrize("text, number", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("TERM", 15),
                                          ("RTMIN+2", 36), ("SIGUSR1", 10), ("HUP", 1)])
def test_signals_by_name_and_number(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "999", "NOPE", "SIGNOPE", ""])
def test_bad_signals_are_refused(text):
    with pytest.raises(InvalidInput):
        parse_signal(text)


def test_features_validate_against_the_schema():
    result = run("run", "features")
    assert result.returncode == 0, result.stderr
    doc = schema.load(result.stdout, "features", "features")
    assert "createRuntime" in doc["hooks"] and "rbind" in doc["mountOptions"]
    assert "SCMP_ACT_ERRNO" in doc["linux"]["seccomp"]["actions"]
    assert doc["linux"]["cgroup"]["v1"] and doc["linux"]["cgroup"]["v2"]


def test_spec_writes_a_valid_config_and_refuses_to_overwrite(tmp_path):
    assert run("run", "spec", "--bundle", str(tmp_path)).returncode == 0
    data = (tmp_path / "config.json").read_text()
    doc = schema.load(data, "runtime-config", "config.json")
    assert doc["process"]["args"] == ["sh"] and doc["root"]["path"] == "rootfs"
    again = run("run", "spec", "--bundle", str(tmp_path))
    assert again.returncode == 7 and "exists" in again.stderr
    assert run("run", "spec", "--rootless", "--bundle", str(tmp_path / "x")).returncode != 0


def test_state_of_a_missing_container(tmp_path):
    result = run("run", "--root", str(tmp_path), "state", "ghost")
    assert result.returncode == 3 and "does not exist" in result.stderr and result.stdout == ""
    result = run("run", "--root", str(tmp_path), "--log-format", "json", "kill", "ghost", "KILL")
    assert result.returncode == 3 and json.loads(result.stderr.splitlines()[0])["level"] == "error"


def test_list_of_an_empty_root(tmp_path):
    assert json.loads(run("run", "--root", str(tmp_path), "list", "-f", "json").stdout) == []
    assert run("run", "--root", str(tmp_path), "list", "-q").stdout == ""


def test_log_file_receives_errors_as_json(tmp_path):
    log = tmp_path / "log.json"
    run("run", "--root", str(tmp_path), "--log", str(log), "--log-format", "json", "delete", "ghost")
    record = json.loads(log.read_text().splitlines()[0])
    assert record["level"] == "error" and "does not exist" in record["msg"]


def test_forced_delete_of_a_missing_container_succeeds(tmp_path):
    assert run("run", "--root", str(tmp_path), "delete", "--force", "ghost").returncode == 0
    assert run("run", "--root", str(tmp_path), "delete", "ghost").returncode == 3
