"""config.md#posix-platform-hooks and runtime.md#lifecycle: hook order, state on stdin, failures."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from ocitest.wait import wait_for

CREATE_HOOKS = ["prestart", "createRuntime", "createContainer"]
# A failing hook that reads the state first (a runtime may die of SIGPIPE writing to one that does not).
FAILING = {"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null; exit 3"]}


def recorder(where: Path | str, name: str) -> dict:
    """A hook that saves its stdin (the state) as WHERE/NAME.json and appends NAME to WHERE/order."""
    return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {where}/{name}.json; echo {name} >> {where}/order"]}


def order(out: Path) -> list[str]:
    path = out / "order"
    return path.read_text().split() if path.exists() else []



def check_states(runtime, out: Path, names: list[str], cid: str, bundle_path: Path) -> None:
    """Each hook's stdin was the state: id, bundle, ociVersion, status, and pid once created."""
    for name in names:
        state = json.loads((out / f"{name}.json").read_text())
        assert state["id"] == cid, name
        if name != "startContainer" or not runtime.lacks("startContainer-state-bundle"):
            assert Path(state["bundle"]).resolve() == bundle_path.resolve(), name
        assert isinstance(state["ociVersion"], str) and state["status"], name
        if state["status"] in ("created", "running") and not runtime.lacks(f"{name}-state-pid"):
            assert state["pid"] > 0, name


@pytest.mark.spec("config.md#posix-platform-hooks")
def test_create_hooks_run_in_order_with_the_state_on_stdin(runtime, bundle, out_dir):
    """create runs prestart, createRuntime, createContainer in that order, each given the state on stdin."""
    hooks = {name: [recorder(out_dir, name)] for name in CREATE_HOOKS}
    hooks["startContainer"] = [recorder("/out", "startContainer")]  # resolves in the container
    bundle.config["hooks"] = hooks
    bundle.bind_out(out_dir).checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    assert order(out_dir) == CREATE_HOOKS
    check_states(runtime, out_dir, CREATE_HOOKS, cid, bundle.path)


@pytest.mark.spec("runtime.md#state")
def test_hooks_are_given_the_status_of_their_lifecycle_step(runtime, bundle, out_dir):
    """runtime.md#state: "created" after lifecycle step 2, so for prestart (3), createRuntime (4) and
    createContainer (5); "running" for poststart (9); "stopped" for poststop (13). (startContainer, step 7,
    is left out: crun 1.8.1 says "starting", a status of its own.)"""
    runtime.require("create-hooks-status-created")
    hooks = {name: [recorder(out_dir, name)] for name in CREATE_HOOKS + ["poststart", "poststop"]}
    bundle.config["hooks"] = hooks
    bundle.checker("sleep", "60").write()
    cid = runtime.started(bundle.path)
    runtime.kill(cid).check()
    runtime.wait_stopped(cid)
    runtime.delete(cid).check()
    statuses = {name: json.loads((out_dir / f"{name}.json").read_text())["status"] for name in hooks}
    assert statuses == {"prestart": "created", "createRuntime": "created", "createContainer": "created",
                        "poststart": "running", "poststop": "stopped"}


@pytest.mark.spec("config.md#poststart")
def test_start_hooks_run_at_start(runtime, bundle, out_dir):
    """startContainer and poststart run during start (none of them at create), before start returns."""
    runtime.require("poststart-at-start")
    bundle.config["hooks"] = {"startContainer": [recorder("/out", "startContainer")],
                              "poststart": [recorder(out_dir, "poststart")]}
    bundle.bind_out(out_dir).checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    assert order(out_dir) == []
    runtime.start(cid).check()
    assert "poststart" in order(out_dir)
    assert wait_for(lambda: sorted(order(out_dir)) == ["poststart", "startContainer"])
    check_states(runtime, out_dir, ["startContainer", "poststart"], cid, bundle.path)


@pytest.mark.spec("config.md#poststart")
def test_poststart_runs_after_the_user_process_is_executed(runtime, bundle, out_dir):
    """poststart MUST be called after the user-specified process is executed: its cmdline is the process's."""
    runtime.require("poststart-after-exec")
    cmdline = "read s; pid=${s#*\\\"pid\\\":}; pid=${pid%%,*}; tr '\\0' ' ' < /proc/$pid/cmdline"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"{cmdline} > {out_dir}/cmdline"]}
    bundle.config["hooks"] = {"poststart": [hook]}
    bundle.checker("sleep", "60").write()
    runtime.started(bundle.path)
    assert (out_dir / "cmdline").read_text().strip() == "/checker sleep 60"


@pytest.mark.spec("runtime.md#lifecycle")
def test_a_failing_poststart_hook_is_an_error_that_stops_the_container(runtime, bundle, out_dir):
    """Lifecycle step 9 (spec 1.3): if any poststart hook fails, the runtime MUST generate an error and stop
    the container; delete then destroys it and runs the poststop hooks (steps 12 and 13)."""
    runtime.require("poststart-at-start")
    runtime.require("poststart-failure-error")
    bundle.config["hooks"] = {"poststart": [FAILING], "poststop": [recorder(out_dir, "poststop")]}
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    assert runtime.start(cid).returncode != 0
    assert runtime.wait_stopped(cid)["status"] == "stopped"
    runtime.delete(cid).check()
    assert order(out_dir) == ["poststop"]


@pytest.mark.spec("config.md#poststop")
def test_poststop_runs_at_delete(runtime, bundle, out_dir):
    bundle.config["hooks"] = {"poststop": [recorder(out_dir, "poststop")]}
    bundle.checker("sleep", "60").write()
    cid = runtime.started(bundle.path)
    runtime.kill(cid, "KILL").check()
    runtime.wait_stopped(cid)
    assert order(out_dir) == []
    runtime.delete(cid).check()
    assert order(out_dir) == ["poststop"]
    check_states(runtime, out_dir, ["poststop"], cid, bundle.path)


@pytest.mark.spec("config.md#posix-platform-hooks")
def test_hooks_of_one_kind_run_in_listed_order_with_args_and_env(runtime, bundle, out_dir):
    first = {"path": "/bin/sh", "args": ["sh", "-c", f"echo first-$ONE >> {out_dir}/order"], "env": ["ONE=1"]}
    second = {"path": "/bin/sh", "args": ["sh", "-c", f"echo second-$0 >> {out_dir}/order", "arg"]}
    bundle.config["hooks"] = {"prestart": [first, second]}
    bundle.checker("exit", "0").write()
    runtime.run(bundle.path).check()
    assert order(out_dir) == ["first-1", "second-arg"]


@pytest.mark.spec("config.md#posix-platform-hooks")
def test_prestart_runs_in_the_runtime_namespace_and_sees_the_container_pid(runtime, bundle, out_dir):
    """prestart runs in the runtime's namespaces, after the container's namespaces exist."""
    script = f"read state; echo $state > {out_dir}/state; readlink /proc/self/ns/mnt > {out_dir}/mnt"
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    pid = json.loads((out_dir / "state").read_text())["pid"]
    assert pid == runtime.state(cid).json()["pid"]
    assert (out_dir / "mnt").read_text().strip() != Path(f"/proc/{pid}/ns/mnt").readlink().name


@pytest.mark.spec("config.md#createContainer-hooks")
def test_create_container_hook_runs_in_the_container_namespaces(runtime, bundle, out_dir):
    """createContainer hooks resolve in the runtime namespace but execute in the container namespace."""
    script = f"cat > /dev/null; for ns in mnt net uts; do readlink /proc/self/ns/$ns; done > {out_dir}/ns"
    bundle.config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    pid = runtime.state(cid).json()["pid"]
    expected = [os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("mnt", "net", "uts")]
    assert (out_dir / "ns").read_text().split() == expected


@pytest.mark.spec("runtime.md#lifecycle")
def test_failing_prestart_hook_fails_create(runtime, bundle, out_dir):
    """If a prestart hook fails, the runtime MUST generate an error and stop the container."""
    bundle.config["hooks"] = {"prestart": [FAILING]}
    bundle.bind_out(out_dir).checker("write-file", "/out/ran", "yes").write()
    cid, result = runtime.create(bundle.path)
    assert result.returncode != 0
    state = runtime.state(cid)
    assert state.returncode != 0 or state.json()["status"] == "stopped"
    assert runtime.start(cid).returncode != 0
    assert not (out_dir / "ran").exists()


@pytest.mark.spec("runtime.md#lifecycle")
def test_failing_create_runtime_hook_fails_create(runtime, bundle):
    bundle.config["hooks"] = {"createRuntime": [FAILING]}
    bundle.checker("exit", "0").write()
    assert runtime.run(bundle.path).returncode != 0


@pytest.mark.spec("runtime.md#lifecycle")
def test_failing_poststop_hook_is_only_a_warning(runtime, bundle, out_dir):
    """A failing poststop hook is logged; the remaining hooks and the lifecycle continue."""
    runtime.require("poststop-failure-continues")
    bundle.config["hooks"] = {"poststop": [FAILING, recorder(out_dir, "after")]}
    bundle.checker("exit", "0").write()
    cid = runtime.started(bundle.path)
    runtime.wait_stopped(cid)
    assert runtime.delete(cid).returncode == 0
    assert order(out_dir) == ["after"]
    assert runtime.state(cid).returncode != 0


@pytest.mark.spec("config.md#posix-platform-hooks")
def test_hook_timeout(runtime, bundle):
    """A hook that outlives its `timeout` (seconds) fails, and so does create."""
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}]}
    bundle.checker("exit", "0").write()
    started = time.monotonic()
    _, result = runtime.create(bundle.path)
    assert result.returncode != 0
    assert time.monotonic() - started < 15
