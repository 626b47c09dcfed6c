"""Docker 20.10 and Swarm on oci-run: the engine matrix's Docker and Swarm columns (issue 13).

A private dockerd (dockerd_env) has oci-run as an added runtime named `ocikit` and as its default
runtime; every check runs once with `--runtime runc` and once with `--runtime ocikit`, and oci-run must
pass every check runc passes (engine_matrix.both). Swarm has no per-service runtime: its check runs a
2-replica service after the daemon's default runtime was switched (daemon.json and SIGHUP).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.integration import dockerd_env, engine_matrix

pytestmark = [pytest.mark.root, pytest.mark.slow]

DOCKER_RUNTIMES = {"runc": "runc", "oci-run": "ocikit"}  # matrix runtime -> the daemon's runtime name
LOOP = "/dev/loop0"


@pytest.fixture(scope="module")
def docker(tmp_path_factory, registry):
    with dockerd_env.session(tmp_path_factory, registry) as env:
        yield env


def run(docker, runtime, *args, timeout=60):
    """`docker run --rm --runtime NAME ARGS`, with the matrix runtime's daemon name."""
    return docker.docker("run", "--rm", "--runtime", DOCKER_RUNTIMES[runtime], *args, timeout=timeout)


def ok(done, stdout=None):
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr.strip()}"
    if stdout is not None:
        assert done.stdout == stdout, done.stdout
    return done.stdout


class Detached:
    """`docker run -d` with the runtime; removed at the end."""

    def __init__(self, docker, runtime, *args, command=("sleep", "300")):
        self.docker = docker
        done = docker.docker("run", "-d", "--runtime", DOCKER_RUNTIMES[runtime], *args, docker.image, *command)
        self.id = ok(done).strip()

    def __enter__(self):
        return self.id

    def __exit__(self, *exc):
        self.docker.docker("rm", "-f", self.id)


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# The checks: each takes (docker, runtime) and raises when the check fails.

def check_run(docker, runtime):
    ok(run(docker, runtime, docker.image, "echo", "hello"), "hello\n")


def check_exit_status(docker, runtime):
    done = run(docker, runtime, docker.image, "sh", "-c", "exit 3")
    assert done.returncode == 3, done.stderr


def check_detach_and_logs(docker, runtime):
    with Detached(docker, runtime, command=("sh", "-c", "echo out; echo err >&2; sleep 300")) as cid:
        wait_for(lambda: "out" in docker.docker("logs", cid).stdout, "the container's output in docker logs")
        assert docker.docker("logs", cid).stderr == "err\n"
        assert docker.inspect(cid, "{{.State.Status}}") == "running"


def check_exec(docker, runtime):
    with Detached(docker, runtime) as cid:
        ok(docker.docker("exec", cid, "sh", "-c", "echo $((40 + 2))"), "42\n")
        done = docker.docker("exec", cid, "sh", "-c", "exit 5")
        assert done.returncode == 5, done.stderr


def check_interactive_terminal(docker, runtime):
    code, out = docker.run_in_terminal("run", "--rm", "-it", "--runtime", DOCKER_RUNTIMES[runtime], docker.image,
                                       "sh", "-c", "tty; stty size")
    assert code == 0, out
    assert "/dev/pts/0" in out, out


def check_stop(docker, runtime):
    with Detached(docker, runtime, command=("sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done")) as cid:
        ok(docker.docker("stop", "-t", "10", cid))
        assert docker.inspect(cid, "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"


def check_kill(docker, runtime):
    with Detached(docker, runtime) as cid:
        ok(docker.docker("kill", cid))
        wait_for(lambda: docker.inspect(cid, "{{.State.Status}}") == "exited", "the container to exit")
        assert docker.inspect(cid, "{{.State.ExitCode}}") == "137"


def check_pause(docker, runtime):
    with Detached(docker, runtime) as cid:
        ok(docker.docker("pause", cid))
        assert docker.inspect(cid, "{{.State.Status}}") == "paused"
        ok(docker.docker("unpause", cid))
        assert docker.inspect(cid, "{{.State.Status}}") == "running"
        ok(docker.docker("exec", cid, "true"))


def check_read_only(docker, runtime):
    done = run(docker, runtime, "--read-only", docker.image, "touch", "/file")
    assert done.returncode != 0 and "Read-only file system" in done.stderr, done.stderr


def check_tmpfs(docker, runtime):
    out = ok(run(docker, runtime, "--read-only", "--tmpfs", "/run:size=1m", docker.image, "sh", "-c",
                 "touch /run/file && grep ' /run ' /proc/mounts"))
    assert out.split()[2] == "tmpfs" and "size=1024k" in out, out


def check_device_read_only(docker, runtime):
    """`--device /dev/loop0:/dev/xvdc:r`: the node is there, and the device cgroup refuses writes."""
    done = run(docker, runtime, "--device", f"{LOOP}:/dev/xvdc:r", docker.image, "sh", "-c",
               "test -b /dev/xvdc && head -c 0 /dev/xvdc && echo readable; echo x > /dev/xvdc")
    assert done.stdout == "readable\n", done.stderr
    assert done.returncode != 0 and "Operation not permitted" in done.stderr, done.stderr


def check_privileged(docker, runtime):
    ok(run(docker, runtime, "--privileged", docker.image, "sh", "-c", f"test -b {LOOP}"))


def cgroup_values(docker, runtime, *args):
    """The container's own memory, cpu and pids files, read inside (Docker mounts its cgroup there)."""
    files = ("memory/memory.limit_in_bytes", "cpu/cpu.cfs_quota_us", "pids/pids.max", "memory/memory.swappiness",
             "memory/memory.oom_control")
    out = ok(run(docker, runtime, *args, docker.image, "sh", "-c",
                 "; ".join(f"echo {f}=$(cat /sys/fs/cgroup/{f} | head -1)" for f in files)))
    return dict(line.split("=", 1) for line in out.splitlines())


def check_limits(docker, runtime):
    values = cgroup_values(docker, runtime, "-m", "64m", "--cpus", "0.5", "--pids-limit", "50")
    assert (values["memory/memory.limit_in_bytes"], values["cpu/cpu.cfs_quota_us"], values["pids/pids.max"]) == (
        str(64 << 20), "50000", "50"), values


def check_memory_swappiness(docker, runtime):
    values = cgroup_values(docker, runtime, "-m", "64m", "--memory-swappiness", "10")
    assert values["memory/memory.swappiness"] == "10", values


def check_oom_kill_disable(docker, runtime):
    values = cgroup_values(docker, runtime, "-m", "64m", "--oom-kill-disable")
    assert values["memory/memory.oom_control"] == "oom_kill_disable 1", values


def check_restart_on_failure(docker, runtime):
    with Detached(docker, runtime, "--restart", "on-failure:2", command=("sh", "-c", "sleep 0.2; exit 3")) as cid:
        wait_for(lambda: docker.inspect(cid, "{{.RestartCount}} {{.State.Status}}") == "2 exited",
                 "two restarts", timeout=60)
        assert docker.inspect(cid, "{{.State.ExitCode}}") == "3"


def check_init(docker, runtime):
    ok(run(docker, runtime, "--init", docker.image, "sh", "-c", "cat /proc/1/comm"), "docker-init\n")


CHECKS = {
    "run": check_run, "exit status": check_exit_status, "-d + logs": check_detach_and_logs, "exec": check_exec,
    "-it": check_interactive_terminal, "stop": check_stop, "kill": check_kill, "pause": check_pause,
    "--read-only": check_read_only, "--tmpfs": check_tmpfs, "--device (read-only)": check_device_read_only,
    "--privileged": check_privileged, "-m/--cpus/--pids-limit": check_limits,
    "--memory-swappiness": check_memory_swappiness, "--oom-kill-disable": check_oom_kill_disable,
    "--restart on-failure": check_restart_on_failure, "--init": check_init,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_docker(docker, name):
    engine_matrix.both("Docker 20.10", name, lambda runtime: CHECKS[name](docker, runtime))


def test_swarm_two_replicas(docker):
    """`docker swarm init` and a 2-replica service, with the daemon's default runtime runc, then oci-run:
    both tasks run, none fails."""
    docker.swarm_init()

    def service(runtime):
        docker.reload(default_runtime=DOCKER_RUNTIMES[runtime])
        name = f"ocikit-{runtime}-{os.getpid()}"
        ok(docker.docker("service", "create", "--detach", "--name", name, "--replicas", "2",
                         "--restart-max-attempts", "0", docker.image, "sleep", "300", timeout=120))
        try:
            def tasks():
                out = docker.docker("service", "ps", "--format", "{{.CurrentState}}|{{.Error}}", name).stdout
                return out.splitlines()

            wait_for(lambda: sum(t.startswith("Running") for t in tasks()) == 2, "2 running replicas", timeout=90)
            assert not [t for t in tasks() if not t.startswith("Running")], tasks()
            running = docker.docker("ps", "--filter", f"label=com.docker.swarm.service.name={name}",
                                    "--format", "{{.ID}}").stdout.split()
            assert len(running) == 2, running
            assert {docker.inspect(c, "{{.HostConfig.Runtime}}") for c in running} == {DOCKER_RUNTIMES[runtime]}
        finally:
            docker.docker("service", "rm", name)
            wait_for(lambda: not docker.docker("ps", "-q", "--filter",
                                               f"label=com.docker.swarm.service.name={name}").stdout.split(),
                     "the service's containers to go")

    try:
        engine_matrix.both("Swarm", "2 replicas running", service)
    finally:
        docker.reload(default_runtime="ocikit")
