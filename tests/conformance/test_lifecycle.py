"""runtime.md: the state of a container and the operations create, start, state, kill, delete."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ocitest.wait import wait_for


@pytest.mark.spec("runtime.md#state")
def test_state_of_a_created_container(runtime, bundle):
    """State has ociVersion, id, status, pid and the absolute bundle path, and the annotations of config.json."""
    bundle.config["annotations"] = {"org.ocikit.test": "conformance", "empty": ""}
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    state = runtime.state(cid).json()
    assert state["id"] == cid
    assert state["status"] == "created"
    assert isinstance(state["ociVersion"], str) and state["ociVersion"]
    assert isinstance(state["pid"], int) and state["pid"] > 0
    assert os.path.isabs(state["bundle"])
    assert Path(state["bundle"]).resolve() == bundle.path.resolve()
    assert state["annotations"] == {"org.ocikit.test": "conformance", "empty": ""}


@pytest.mark.spec("runtime.md#state")
def test_status_goes_created_running_stopped(runtime, bundle):
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    assert runtime.state(cid).json()["status"] == "created"
    runtime.start(cid).check()
    running = runtime.state(cid).json()
    assert running["status"] == "running"
    runtime.kill(cid, "KILL").check()
    assert runtime.wait_stopped(cid)["status"] == "stopped"


@pytest.mark.spec("runtime.md#state")
def test_state_pid_is_the_container_process_on_the_host(runtime, bundle):
    """pid is the ID of the container process as seen by the host."""
    bundle.checker("sleep", "60").write()
    cid = runtime.started(bundle.path)
    pid = runtime.state(cid).json()["pid"]
    assert wait_for(lambda: Path(f"/proc/{pid}/cmdline").read_bytes() == b"/checker\0sleep\x0060\0")
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")


@pytest.mark.spec("runtime.md#lifecycle")
def test_user_process_runs_only_after_start(runtime, bundle, out_dir):
    """create MUST NOT run process.args; start MUST run them."""
    bundle.bind_out(out_dir).checker("write-file", "/out/started", "yes").write()
    cid = runtime.created(bundle.path)
    time.sleep(0.2)
    assert not (out_dir / "started").exists()
    runtime.start(cid).check()
    assert wait_for(lambda: (out_dir / "started").exists())
    assert wait_for(lambda: (out_dir / "started").read_text() == "yes")


@pytest.mark.spec("runtime.md#create")
def test_config_changes_after_create_have_no_effect(runtime, bundle):
    """Any changes made to config.json after create will not have an effect on the container."""
    bundle.checker("print", "from-create").write()
    cid = runtime.created(bundle.path)
    bundle.checker("print", "from-later-edit").write()
    runtime.start(cid).check()
    runtime.wait_stopped(cid)
    assert runtime.output(cid) == "from-create\n"


@pytest.mark.spec("runtime.md#create")
def test_create_with_an_existing_id_fails(runtime, make_bundle):
    """An ID that is not unique MUST generate an error, and no new container is created."""
    first = make_bundle("first")
    first.checker("sleep", "60").write()
    cid = runtime.created(first.path)
    second = make_bundle("second")
    second.checker("sleep", "60").write()
    _, again = runtime.create(second.path, cid)
    assert again.returncode != 0
    state = runtime.state(cid).json()
    assert Path(state["bundle"]).resolve() == first.path.resolve()
    assert state["status"] == "created"


@pytest.mark.spec("runtime.md#create")
def test_create_of_an_impossible_config_fails_and_leaves_nothing(runtime, bundle):
    """If the runtime cannot apply a property it MUST generate an error and no container is created."""
    bundle.config["root"]["path"] = "no-such-rootfs"
    bundle.checker("exit", "0").write()
    cid, result = runtime.create(bundle.path)
    assert result.returncode != 0
    assert runtime.state(cid).returncode != 0


@pytest.mark.spec("runtime.md#start")
def test_start_of_a_running_container_fails(runtime, bundle):
    """start of a container that is not created MUST generate an error and have no effect."""
    bundle.checker("sleep", "60").write()
    cid = runtime.started(bundle.path)
    pid = runtime.state(cid).json()["pid"]
    assert runtime.start(cid).returncode != 0
    state = runtime.state(cid).json()
    assert (state["status"], state["pid"]) == ("running", pid)


@pytest.mark.spec("runtime.md#start")
def test_start_of_a_stopped_container_fails(runtime, bundle):
    bundle.checker("exit", "0").write()
    cid = runtime.started(bundle.path)
    assert runtime.wait_stopped(cid)["status"] == "stopped"
    assert runtime.start(cid).returncode != 0
    assert runtime.state(cid).json()["status"] == "stopped"


@pytest.mark.spec("runtime.md#start")
def test_start_without_a_process_fails(runtime, bundle):
    """config.md#process: process is OPTIONAL, REQUIRED when start is called; create MUST apply the rest
    and create the container, start MUST generate an error if process was not set."""
    runtime.require("create-without-process")
    del bundle.config["process"]
    bundle.write()
    cid = runtime.created(bundle.path)
    assert runtime.state(cid).json()["status"] == "created"
    assert runtime.start(cid).returncode != 0
    assert runtime.wait_stopped(cid)["status"] == "stopped"
    runtime.delete(cid).check()


@pytest.mark.spec("runtime.md#kill")
def test_kill_sends_the_signal_to_the_container_process(runtime, bundle, out_dir):
    """kill MUST send the given signal: a USR1 handler in the container runs."""
    script = "trap 'echo usr1 > /out/signal; exit 0' USR1; echo ready > /out/ready; while :; do sleep 0.05; done"
    bundle.bind_out(out_dir).args("/bin/sh", "-c", script).write()
    cid = runtime.started(bundle.path)
    assert wait_for(lambda: (out_dir / "ready").exists())
    runtime.kill(cid, "USR1").check()
    assert wait_for(lambda: (out_dir / "signal").exists())
    assert runtime.wait_stopped(cid)["status"] == "stopped"


@pytest.mark.spec("runtime.md#kill")
def test_kill_accepts_signal_numbers(runtime, bundle):
    bundle.checker("sleep", "60").write()
    cid = runtime.started(bundle.path)
    runtime.kill(cid, "9").check()
    assert runtime.wait_stopped(cid)["status"] == "stopped"


@pytest.mark.spec("runtime.md#kill")
def test_kill_of_a_created_container_is_allowed(runtime, bundle):
    """kill of a created container sends the signal: it stops without the user process ever running."""
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    runtime.kill(cid, "KILL").check()
    assert runtime.wait_stopped(cid)["status"] == "stopped"


@pytest.mark.spec("runtime.md#kill")
def test_kill_of_a_stopped_container_fails(runtime, bundle):
    """kill of a container neither created nor running MUST generate an error."""
    bundle.checker("exit", "0").write()
    cid = runtime.started(bundle.path)
    assert runtime.wait_stopped(cid)["status"] == "stopped"
    assert runtime.kill(cid, "KILL").returncode != 0
    assert runtime.state(cid).json()["status"] == "stopped"


@pytest.mark.spec("runtime.md#delete")
def test_delete_of_a_running_container_fails(runtime, bundle):
    """delete of a container that is not stopped MUST generate an error and have no effect."""
    bundle.checker("sleep", "60").write()
    cid = runtime.started(bundle.path)
    pid = runtime.state(cid).json()["pid"]
    assert runtime.delete(cid).returncode != 0
    state = runtime.state(cid).json()
    assert (state["status"], state["pid"]) == ("running", pid)
    assert Path(f"/proc/{pid}").exists()


@pytest.mark.spec("runtime.md#delete")
def test_delete_of_a_stopped_container_removes_it(runtime, bundle):
    """delete removes what create made; the ID may then be used again."""
    bundle.checker("exit", "0").write()
    cid = runtime.started(bundle.path)
    assert runtime.wait_stopped(cid)["status"] == "stopped"
    runtime.delete(cid).check()
    assert runtime.state(cid).returncode != 0
    again, result = runtime.create(bundle.path, cid)
    result.check()
    assert runtime.state(again).json()["status"] == "created"


@pytest.mark.spec("runtime.md#delete")
def test_delete_keeps_what_the_container_did_not_create(runtime, bundle, out_dir):
    """Resources associated with the container but not created by it (a bind source) MUST NOT be deleted."""
    (out_dir / "keep").write_text("mine")
    bundle.bind_out(out_dir).checker("exit", "0").write()
    runtime.run(bundle.path).check()
    assert (out_dir / "keep").read_text() == "mine"
    assert (bundle.rootfs / "checker").exists()


@pytest.mark.spec("runtime.md#operations")
@pytest.mark.parametrize("operation", ["state", "start", "kill", "delete"])
def test_operations_on_an_unknown_id_fail(runtime, operation):
    args = {"kill": ["ocikit-no-such-container", "KILL"]}.get(operation, ["ocikit-no-such-container"])
    assert runtime.call(operation, *args).returncode != 0


@pytest.mark.spec("runtime.md#lifecycle")
def test_run_does_the_whole_lifecycle(runtime, bundle):
    """`run` = create + start + wait: the process output comes back and the container is gone after."""
    bundle.checker("print", "hello").write()
    cid = runtime.new_id()
    result = runtime.run(bundle.path, cid)
    assert (result.returncode, result.stdout) == (0, "hello\n")
    assert runtime.state(cid).returncode != 0
