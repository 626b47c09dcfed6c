"""How oci-run fails under an engine (issues 13 and 14): one line on stderr and one logrus-shaped line in
--log (containerd's shim and Docker read the error from there), for unexpected errors too, never a
traceback; invalid processes refused before any work with runc's checks and documented exit codes;
ignored properties logged; `update -r` with the whole LinuxResources containerd's CRI sends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.ocirun_bundle import Bundle, OciRun, make_rootfs, unique_id
from tests.integration.podman_env import host_cgroup_file

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory):
    return make_rootfs(tmp_path_factory.mktemp("ocirun-rootfs") / "rootfs")


@pytest.fixture
def oci(tmp_path):
    runtime = OciRun(tmp_path / "state")
    yield runtime
    runtime.cleanup()


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    return Bundle(tmp_path / "bundle", rootfs_template)


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_one_failure(result, log: Path, code: int, text: str) -> None:
    """The shim's view: exit code, one stderr line, one error line in --log with runc's keys."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert text in result.stderr
    errors = [entry for entry in log_lines(log) if entry["level"] == "error"]
    assert len(errors) == 1, errors
    assert set(errors[0]) == {"level", "msg", "time"} and text in errors[0]["msg"]


@pytest.mark.parametrize("change, code, text", [
    (lambda c: c["process"].update(args=[]), 2, "/process/args: must not be empty"),
    (lambda c: c["process"].update(cwd="relative/dir"), 2, "/process/cwd: 'relative/dir' is not an absolute path"),
    (lambda c: c["root"].update(path="no-such-rootfs"), 3, "/root/path:"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_FROB", "soft": 1, "hard": 1}]), 2,
     "/process/rlimits/0/type: unknown rlimit RLIMIT_FROB"),
    (lambda c: c["linux"].update(devices=[{"path": f"/dev/d{i}", "type": "c", "major": 1, "minor": i,
                                           "fileMode": -1} for i in range(300)]), 2,
     "/linux/devices/0/fileMode"),
])
def test_refused_at_create_before_any_work(oci, bundle, tmp_path, change, code, text):
    change(bundle.config)
    log = tmp_path / "log.json"
    cid = unique_id()
    result = oci("--log", str(log), "--log-format", "json", "create", "--bundle", bundle.write(), cid)
    assert_one_failure(result, log, code, text)
    assert not (tmp_path / "state" / cid).exists()
    assert not any(Path(f"/sys/fs/cgroup/{c}/oci-run/{cid}").exists() for c in ("memory", "pids", "unified"))


def test_an_unexpected_error_is_one_line_too(oci, bundle, tmp_path):
    """--root naming a regular file: an OSError no code path expects; runc's callers parse the message."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    log = tmp_path / "log.json"
    result = OciRun(not_a_dir)("--log", str(log), "--log-format", "json", "create", "--bundle", bundle.write(),
                               unique_id())
    assert_one_failure(result, log, 1, str(not_a_dir))


def test_text_log_is_logrus_text(oci, bundle, tmp_path):
    log = tmp_path / "log.txt"
    result = oci("--log", str(log), "state", "no-such-container")
    assert result.returncode == 3
    line = log.read_text()
    assert line.startswith('time="') and ' level=error msg="container no-such-container does not exist"' in line


def test_ignored_properties_are_logged_not_refused(oci, bundle, tmp_path):
    bundle.config["ociKitFuture"] = {"x": 1}
    bundle.config["linux"]["resources"]["memory"] = {"disableOOMKiller": False, "kernel": 1 << 20}
    bundle.config["linux"]["resources"]["blockIO"] = {"weight": 0}
    bundle.args("true")
    log = tmp_path / "log.json"
    cid = unique_id()
    result = oci("--log", str(log), "--log-format", "json", "run", "--bundle", bundle.write(), cid)
    assert (result.returncode, result.stderr) == (0, "")
    warnings = [entry["msg"] for entry in log_lines(log) if entry["level"] == "warning"]
    assert any(w.endswith("/ociKitFuture: unknown property ignored") for w in warnings), warnings
    assert any("/linux/resources/memory/kernel: ignored" in w for w in warnings), warnings
    assert not any("disableOOMKiller" in w or "blockIO" in w for w in warnings), warnings  # no-ops
    debug = oci("--debug", "run", "--bundle", bundle.write(), unique_id())
    assert debug.returncode == 0 and "/ociKitFuture: unknown property ignored" in debug.stderr


def test_a_missing_program_is_one_line(oci, bundle, tmp_path):
    bundle.args("/no/such/program")
    log = tmp_path / "log.json"
    result = oci("--log", str(log), "--log-format", "json", "create", "--bundle", bundle.write(), unique_id())
    assert_one_failure(result, log, 1, "/no/such/program")


CRI_RESOURCES = {  # what containerd 1.6's UpdateContainerResources hands `runc update -r` (the whole spec part)
    "devices": [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "access": "rwm"}],
    "memory": {"limit": 96 << 20, "swap": 96 << 20, "swappiness": 0, "disableOOMKiller": False},
    "cpu": {"shares": 256, "quota": 20000, "period": 100000, "cpus": "", "mems": ""},
    "pids": {"limit": 0}, "hugepageLimits": [], "blockIO": {}, "unified": {},
    "futureKnob": {"x": 1},
}


def test_update_takes_a_whole_cri_linux_resources(oci, bundle, tmp_path):
    bundle.args("sleep", "60")
    cid = unique_id()
    assert oci("run", "-d", "--bundle", bundle.write(), cid).returncode == 0
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps(CRI_RESOURCES))
    log = tmp_path / "log.json"
    result = oci("--log", str(log), "--log-format", "json", "update", "-r", str(resources), cid)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    pid = oci.state(cid)["pid"]
    assert int(host_cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == 96 << 20
    assert int(host_cgroup_file(pid, "cpu", "cpu.shares").read_text()) == 256
    warnings = [entry["msg"] for entry in log_lines(log) if entry["level"] == "warning"]
    assert any(w.endswith("/futureKnob: unknown property ignored") for w in warnings), warnings
    assert any(w.endswith("/devices: ignored: update leaves it as it is (as runc does)") for w in warnings)
    assert os.path.exists(f"/proc/{pid}")
