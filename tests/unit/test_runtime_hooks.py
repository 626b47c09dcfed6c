"""Hooks: state on stdin, args and env, exit status, timeouts, and the warn-and-continue phases."""

import json

import pytest

from oci.runtime.hooks import HookError, run_hook, run_hooks, run_hooks_warn

STATE = {"ociVersion": "1.2.1", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"}


def sh(script, **extra):
    return {"path": "/bin/sh", "args": ["sh", "-c", script], **extra}


def test_state_arrives_compact_on_stdin_with_args_and_env(tmp_path):
    out = tmp_path / "out"
    run_hook(sh(f'cat > {out}; echo >> {out}; echo "$0 $FOO" >> {out}', env=["FOO=bar"]), STATE, "createRuntime")
    state_line, extra = out.read_text().splitlines()
    assert json.loads(state_line) == STATE and '"pid":42' in state_line
    assert extra == "sh bar"


def test_failure_and_missing_path_raise():
    with pytest.raises(HookError, match="createRuntime hook /bin/sh: exited with status 3"):
        run_hook(sh("exit 3"), STATE, "createRuntime")
    with pytest.raises(HookError, match="no/such/hook"):
        run_hook({"path": "/no/such/hook"}, STATE, "prestart")


def test_timeout_kills_the_hook():
    with pytest.raises(HookError, match="timed out after 1s"):
        run_hook(sh("sleep 5", timeout=1), STATE, "createRuntime")


def test_first_failure_stops_a_fatal_phase(tmp_path):
    marker = tmp_path / "second"
    hooks = {"createRuntime": [sh("exit 1"), sh(f"touch {marker}")]}
    with pytest.raises(HookError):
        run_hooks(hooks, "createRuntime", STATE)
    assert not marker.exists()


def test_poststop_failures_warn_and_the_rest_still_run(tmp_path, library_warnings):
    marker = tmp_path / "second"
    hooks = {"poststop": [sh("exit 1"), sh(f"touch {marker}")]}
    run_hooks_warn(hooks, "poststop", STATE)
    assert len(library_warnings) == 1 and "exited with status 1" in library_warnings[0]
    assert marker.exists()
