"""podman runs containers with a runtime given by path: Debian's runc (the reference) and oci-run.

Issue 7's "podman can use it": `podman --runtime PATH run --rm IMAGE true`, with --memory,
--pids-limit and -it; plus exit status propagation, --network none and signals through `podman kill`.
"""

import time

import pytest

from tests.integration import podman_env
from tests.integration.podman_env import IMAGE

pytestmark = pytest.mark.root

RUNTIMES = [
    pytest.param("runc", id="runc"),
    pytest.param("oci-run", id="oci-run"),
]


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    with podman_env.session(tmp_path_factory) as env:
        yield env


@pytest.fixture(params=RUNTIMES)
def runtime(request, podman):
    return podman.runtime(request.param)


def test_run_true(podman, runtime):
    done = podman.run("run", "--rm", IMAGE, "true", runtime=runtime)
    assert done.returncode == 0, done.stderr


def test_exit_status_is_the_containers(podman, runtime):
    done = podman.run("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3", runtime=runtime)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_network_none_has_only_loopback(podman, runtime):
    done = podman.run("run", "--rm", "--network", "none", IMAGE, "ls", "/sys/class/net", runtime=runtime)
    assert (done.returncode, done.stdout.split()) == (0, ["lo"]), done.stderr


@pytest.mark.parametrize("flag, value, controller, name, expected", [
    ("--memory", "64m", "memory", "memory.limit_in_bytes", str(64 << 20)),
    ("--pids-limit", "50", "pids", "pids.max", "50"),
])
def test_cgroup_limit(podman, runtime, flag, value, controller, name, expected):
    """The container's own cgroup carries the limit, seen from inside (when mounted) and from the host."""
    inside = f"/sys/fs/cgroup/{controller}/{name}"
    done = podman.run("run", "--rm", flag, value, IMAGE, "sh", "-c", f"cat {inside} 2>/dev/null || echo unmounted",
                      runtime=runtime)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in (expected, "unmounted")
    with podman.started(flag, value, runtime=runtime) as (_, pid):
        assert podman_env.host_cgroup_file(pid, controller, name).read_text().strip() == expected


def test_pids_limit_stops_forks(podman, runtime):
    """Past --pids-limit, fork fails in the container."""
    script = "for i in $(seq 20); do sleep 5 & done; echo all-started"
    done = podman.run("run", "--rm", "--pids-limit", "10", IMAGE, "sh", "-c", script, runtime=runtime)
    assert "can't fork" in done.stderr and "all-started" not in done.stdout, (done.stdout, done.stderr)


def test_interactive_terminal(podman, runtime):
    """`-it`: keys typed on the terminal reach the shell, its output comes back, the exit status too."""
    code, out = podman.run_in_terminal("run", "--rm", "-it", IMAGE, "sh", keys=b"echo h''i; tty; exit 5\r",
                                       runtime=runtime)
    assert code == 5, out
    assert b"\r\nhi\r\n" in out and b"/dev/pts/" in out, out


def test_podman_kill_delivers_the_signal(podman, runtime):
    """`podman kill -s TERM` goes through the runtime's kill; the trap's exit status comes back by `podman wait`."""
    script = ("trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",)
    with podman.started(runtime=runtime, command=("sh", "-c", *script)) as (name, _):
        for _ in range(100):
            if "ready" in podman.run("logs", name).stdout:
                break
            time.sleep(0.05)
        podman.run("kill", "-s", "TERM", name, runtime=runtime, check=True)
        assert podman.run("wait", name, runtime=runtime, timeout=30).stdout.strip() == "7"
