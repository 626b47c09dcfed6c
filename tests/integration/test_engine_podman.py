"""podman 4.3 on oci-run: the engine matrix's podman column (issue 13), the full option matrix.

Every check is one podman command line (or a short sequence) run once with `--runtime runc` and once
with `--runtime oci-run` in the same private podman world (podman_env); oci-run must pass every check
runc passes (engine_matrix.both). A check raises AssertionError when the container does not behave as
the option says.
"""

from __future__ import annotations

import json
import os
import shlex
import time

import pytest

from tests.integration import engine_matrix, podman_env
from tests.integration.podman_env import IMAGE

pytestmark = [pytest.mark.root, pytest.mark.slow]

LOOP = "/dev/loop0"
CAP_NET_ADMIN = 12


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    with podman_env.session(tmp_path_factory) as env:
        yield env


class Podman:
    """podman with one runtime, for one check."""

    def __init__(self, env: podman_env.PodmanEnv, runtime: str) -> None:
        self.env, self.runtime = env, env.runtime(runtime)

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None):
        return self.env.run(*args, runtime=self.runtime, timeout=timeout, input=input)

    def run(self, *args: str, command: tuple[str, ...] = ("true",), **kwargs):
        """`podman run --rm ARGS IMAGE COMMAND`."""
        return self("run", "--rm", *args, IMAGE, *command, **kwargs)

    def sh(self, *args: str, script: str, **kwargs):
        return self.run(*args, command=("sh", "-c", script), **kwargs)

    def started(self, *args: str, script: str = "sleep 300"):
        return self.env.started(*args, runtime=self.runtime, command=("sh", "-c", script))

    def inspect(self, name: str, template: str) -> str:
        return ok(self("inspect", "--format", template, name)).strip()


def ok(done, stdout: str | None = None) -> str:
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr.strip()[-500:]}"
    if stdout is not None:
        assert done.stdout == stdout, f"{done.stdout!r} != {stdout!r}"
    return done.stdout


def fails(done, text: str = "") -> None:
    assert done.returncode != 0, f"exit 0: {done.stdout}"
    assert text in done.stderr + done.stdout, done.stderr


def wait_for(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def cgroup_file(p: Podman, args: tuple[str, ...], path: str) -> str:
    """A file of the container's own cgroup, read inside (podman mounts it at /sys/fs/cgroup)."""
    return ok(p.sh(*args, script=f"cat /sys/fs/cgroup/{path}")).strip()


CHECKS: dict = {}


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def simple(name: str, args: tuple[str, ...], script: str, expect: str | None = None, code: int = 0,
           contains: str | None = None) -> None:
    """A check that is one `podman run --rm ARGS IMAGE sh -c SCRIPT`: exit code and stdout (or part of it)."""
    def run(p: Podman) -> None:
        done = p.sh(*args, script=script)
        assert done.returncode == code, f"exit {done.returncode} != {code}: {done.stderr.strip()[-500:]}"
        if expect is not None:
            assert done.stdout == expect, f"{done.stdout!r} != {expect!r}"
        if contains is not None:
            assert contains in done.stdout + done.stderr, done.stdout + done.stderr
    CHECKS[name] = run


# -- running, output, exit status -----------------------------------------------------------------
simple("run true", (), "true")
simple("stdout", (), "echo hello", "hello\n")
simple("exit status", (), "exit 3", code=3)
simple("--env", ("--env", "FOO=bar"), "echo $FOO", "bar\n")
simple("--workdir", ("--workdir", "/tmp"), "pwd", "/tmp\n")
simple("--user uid:gid", ("--user", "1000:1000"), "id -u; id -g", "1000\n1000\n")
simple("--user name", ("--user", "nobody"), "id -u", "65534\n")
simple("--group-add", ("--group-add", "1234"), "id -G", contains="1234")
simple("--hostname", ("--hostname", "ocikit-host"), "hostname", "ocikit-host\n")
simple("--add-host", ("--add-host", "db.test:10.1.2.3"), "grep db.test /etc/hosts", contains="10.1.2.3")
simple("--annotation", ("--annotation", "org.ocikit.check=1"), "true")
simple("--oom-score-adj", ("--oom-score-adj", "100"), "cat /proc/self/oom_score_adj", "100\n")
simple("--init", ("--init",), "cat /proc/1/comm", "podman-init\n")  # catatonit, bound at /run/podman-init
# podman adds its default for the other limit, above the hard limit this host lets anyone raise to
simple("--ulimit nofile", ("--ulimit", "nofile=100:100", "--ulimit", "nproc=1000:1000"), "ulimit -n", "100\n")
simple("--ulimit nproc", ("--ulimit", "nproc=50:50", "--ulimit", "nofile=1000:1000"), "ulimit -u", "50\n")


@check("stderr")
def _stderr(p):
    done = p.sh(script="echo out; echo err >&2")
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n"), done


@check("--entrypoint")
def _entrypoint(p):
    ok(p.run("--entrypoint", "echo", command=("x",)), "x\n")


@check("missing program: exit 127")
def _missing(p):
    done = p.run(command=("/no/such/program",))
    assert done.returncode == 127, (done.returncode, done.stderr)


@check("--rm removes the container")
def _rm(p):
    name = podman_env.unique("ock")
    ok(p("run", "--rm", "--name", name, IMAGE, "true"))
    assert p("container", "exists", name).returncode == 1


@check("-i: stdin")
def _stdin(p):
    ok(p("run", "--rm", "-i", IMAGE, "cat", input="through stdin\n"), "through stdin\n")


@check("-it: terminal")
def _tty(p):
    code, out = p.env.run_in_terminal("run", "--rm", "-it", IMAGE, "sh", runtime=p.runtime,
                                      keys=b"tty; exit 4\n")
    assert code == 4 and b"/dev/pts/0" in out, (code, out)


@check("--env-file")
def _env_file(p):
    path = p.env.base / "tmp" / f"env-{os.getpid()}"
    path.write_text("FROM_FILE=yes\n")
    ok(p.sh("--env-file", str(path), script="echo $FROM_FILE"), "yes\n")


# -- namespaces ------------------------------------------------------------------------------------
simple("--network none", ("--network", "none"), "ls /sys/class/net", "lo\n")
simple("lo up (--network none)", ("--network", "none"), "cat /sys/class/net/lo/operstate", "unknown\n")
simple("--ipc private", ("--ipc", "private"), "test -e /dev/shm && echo ok", "ok\n")


@check("--network host")
def _net_host(p):
    ok(p.sh("--network", "host", script="readlink /proc/self/ns/net"), host_ns("net") + "\n")


@check("--ipc host")
def _ipc_host(p):
    ok(p.sh("--ipc", "host", script="readlink /proc/self/ns/ipc"), host_ns("ipc") + "\n")


@check("--pid host")
def _pid_host(p):
    ok(p.sh("--pid", "host", script="readlink /proc/self/ns/pid"), host_ns("pid") + "\n")


@check("--pid private")
def _pid_private(p):
    namespace, pid = ok(p.sh(script="readlink /proc/self/ns/pid; echo $$")).split()
    assert (namespace != host_ns("pid"), pid) == (True, "1"), (namespace, pid)


@check("--uts host")
def _uts_host(p):
    ok(p.sh("--uts", "host", script="hostname"), os.uname().nodename + "\n")


@check("--cgroupns private")
def _cgroupns_private(p):
    out = ok(p.sh("--cgroupns", "private", script="readlink /proc/self/ns/cgroup")).strip()
    assert out != host_ns("cgroup"), out


@check("--cgroupns host")
def _cgroupns_host(p):
    ok(p.sh("--cgroupns", "host", script="readlink /proc/self/ns/cgroup"), host_ns("cgroup") + "\n")


@check("--sysctl net.*")
def _sysctl_net(p):
    ok(p.sh("--network", "none", "--sysctl", "net.ipv4.ip_forward=1", script="cat /proc/sys/net/ipv4/ip_forward"),
       "1\n")


@check("--sysctl kernel.shmmax")
def _sysctl_ipc(p):
    ok(p.sh("--sysctl", "kernel.shmmax=1000000", script="cat /proc/sys/kernel/shmmax"), "1000000\n")


# -- file systems and mounts -----------------------------------------------------------------------
simple("--read-only", ("--read-only",), "touch /file", code=1, contains="Read-only file system")
simple("--read-only: /tmp writable", ("--read-only",), "touch /tmp/file && echo ok", "ok\n")
simple("--read-only-tmpfs=false", ("--read-only", "--read-only-tmpfs=false"), "touch /tmp/file", code=1)
simple("--tmpfs", ("--tmpfs", "/scratch"), "touch /scratch/f && grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
       "tmpfs\n")
simple("--tmpfs keeps the image's files (tmpcopyup)", ("--tmpfs", "/etc"), "grep -c root /etc/passwd", "1\n")
simple("--tmpfs size and mode", ("--tmpfs", "/scratch:size=1m,mode=700"),
       "stat -c %a /scratch; df -k /scratch | tail -1 | tr -s ' ' | cut -d' ' -f2", "700\n1024\n")
simple("--mount type=tmpfs", ("--mount", "type=tmpfs,destination=/m"),
       "grep ' /m ' /proc/mounts | cut -d' ' -f3", "tmpfs\n")
simple("--mount type=tmpfs,tmpfs-size", ("--mount", "type=tmpfs,destination=/m,tmpfs-size=2m"),
       "df -k /m | tail -1 | tr -s ' ' | cut -d' ' -f2", "2048\n")
simple("--systemd always", ("--systemd", "always"), "grep -E ' /(run|tmp) ' /proc/mounts | cut -d' ' -f3 | sort -u",
       "tmpfs\n")
simple("--shm-size", ("--shm-size", "10m"), "df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2", "10240\n")


def host_dir(p: Podman, name: str):
    path = p.env.base / "tmp" / f"{name}-{podman_env.unique('v')}"
    path.mkdir(mode=0o777)
    return path


@check("-v host dir")
def _volume_rw(p):
    path = host_dir(p, "rw")
    ok(p.sh("-v", f"{path}:/data", script="echo written > /data/f"))
    assert (path / "f").read_text() == "written\n"


@check("-v host dir:ro")
def _volume_ro(p):
    path = host_dir(p, "ro")
    (path / "f").write_text("kept\n")
    fails(p.sh("-v", f"{path}:/data:ro", script="echo x > /data/f"), "Read-only")
    ok(p.sh("-v", f"{path}:/data:ro", script="cat /data/f"), "kept\n")


@check("--mount type=bind")
def _mount_bind(p):
    path = host_dir(p, "bind")
    (path / "f").write_text("bound\n")
    ok(p.sh("--mount", f"type=bind,source={path},destination=/b", script="cat /b/f"), "bound\n")


@check("named volume")
def _named_volume(p):
    volume = podman_env.unique("vol")
    ok(p("volume", "create", volume))
    try:
        ok(p.sh("-v", f"{volume}:/data", script="echo persisted > /data/f"))
        ok(p.sh("-v", f"{volume}:/data", script="cat /data/f"), "persisted\n")
    finally:
        p("volume", "rm", "-f", volume)


# -- devices ---------------------------------------------------------------------------------------
@check("--device (read-only)")
def _device_ro(p):
    done = p.sh("--device", f"{LOOP}:/dev/xvdc:r", script="test -b /dev/xvdc && head -c 0 /dev/xvdc && echo r; "
                                                            "echo x > /dev/xvdc")
    assert done.stdout == "r\n", done.stderr
    fails(done, "Operation not permitted")


@check("--device")
def _device(p):
    ok(p.sh("--device", f"{LOOP}:/dev/xvdc", script="stat -c '%F %t:%T' /dev/xvdc"), "block special file 7:0\n")


@check("--device-cgroup-rule")
def _device_rule(p):
    ok(p.sh("--device-cgroup-rule", "b 7:0 r", "--cap-add", "MKNOD",
            script="mknod /tmp/loop b 7 0 && head -c 0 /tmp/loop && echo r"), "r\n")


@check("--privileged")
def _privileged(p):
    ok(p.sh("--privileged", script=f"test -b {LOOP} && grep CapEff /proc/self/status | cut -f2"))


# -- resources -------------------------------------------------------------------------------------
def limit(name: str, args: tuple[str, ...], path: str, expect: str) -> None:
    def run(p: Podman) -> None:
        value = cgroup_file(p, args, path)
        assert value == expect, f"{path}: {value!r} != {expect!r}"
    CHECKS[name] = run


limit("--memory", ("--memory", "64m"), "memory/memory.limit_in_bytes", str(64 << 20))
limit("--memory-swap", ("--memory", "64m", "--memory-swap", "128m"), "memory/memory.memsw.limit_in_bytes",
      str(128 << 20))
limit("--memory-reservation", ("--memory-reservation", "32m"), "memory/memory.soft_limit_in_bytes", str(32 << 20))
limit("--memory-swappiness", ("--memory", "64m", "--memory-swappiness", "10"), "memory/memory.swappiness", "10")
limit("--cpus", ("--cpus", "0.5"), "cpu/cpu.cfs_quota_us", "50000")
limit("--cpu-shares", ("--cpu-shares", "512"), "cpu/cpu.shares", "512")
limit("--cpu-quota/--cpu-period", ("--cpu-quota", "20000", "--cpu-period", "50000"), "cpu/cpu.cfs_period_us",
      "50000")
limit("--cpuset-cpus", ("--cpuset-cpus", "0"), "cpuset/cpuset.cpus", "0")
limit("--pids-limit", ("--pids-limit", "50"), "pids/pids.max", "50")


@check("--oom-kill-disable")
def _oom(p):
    out = cgroup_file(p, ("--memory", "64m", "--oom-kill-disable"), "memory/memory.oom_control")
    assert "oom_kill_disable 1" in out, out


@check("--pids-limit enforced")
def _pids_enforced(p):
    done = p.sh("--pids-limit", "10", script="for i in $(seq 20); do sleep 5 & done; wait")
    assert "fork" in done.stderr or "Resource temporarily unavailable" in done.stderr, done.stderr


@check("--memory enforced (OOM)")
def _memory_enforced(p):
    done = p.sh("--memory", "16m", "--memory-swap", "16m",
                script="head -c 64m /dev/zero | tail > /dev/null && echo survived")
    assert done.returncode != 0 and "survived" not in done.stdout, (done.returncode, done.stdout)


# -- security --------------------------------------------------------------------------------------
def cap_eff(p: Podman, *args: str) -> int:
    return int(ok(p.sh(*args, script="grep CapEff /proc/self/status | cut -f2")), 16)


@check("--cap-add")
def _cap_add(p):
    assert cap_eff(p, "--cap-add", "NET_ADMIN") & (1 << CAP_NET_ADMIN)


@check("--cap-drop ALL")
def _cap_drop_all(p):
    assert cap_eff(p, "--cap-drop", "ALL") == 0


simple("--cap-drop CHOWN", ("--cap-drop", "CHOWN"), "chown 1:1 /tmp", code=1)
simple("default seccomp", (), "grep Seccomp: /proc/self/status | cut -f2", "2\n")
simple("--security-opt seccomp=unconfined", ("--security-opt", "seccomp=unconfined"),
       "grep Seccomp: /proc/self/status | cut -f2", "0\n")
simple("--security-opt no-new-privileges", ("--security-opt", "no-new-privileges"),
       "grep NoNewPrivs /proc/self/status | cut -f2", "1\n")
simple("--security-opt mask", ("--security-opt", "mask=/etc/passwd"), "cat /etc/passwd | wc -c", "0\n")
simple("--security-opt unmask=ALL", ("--security-opt", "unmask=ALL"), "grep -c . /proc/timer_list >/dev/null && "
       "echo visible", "visible\n")
simple("masked paths by default", (), "cat /proc/timer_list | wc -c", "0\n")
simple("read-only paths by default", (), "echo 1 > /proc/sys/kernel/domainname", code=1)


@check("--security-opt seccomp=profile.json")
def _seccomp_profile(p):
    path = p.env.base / "tmp" / f"seccomp-{os.getpid()}.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    fails(p.sh("--security-opt", f"seccomp={path}", script="mkdir /tmp/d"), "Operation not permitted")


# -- lifecycle -------------------------------------------------------------------------------------
@check("-d + logs")
def _logs(p):
    with p.started(script="echo out; echo err >&2; sleep 300") as (name, _):
        wait_for(lambda: "out" in p("logs", name).stdout, "the output in podman logs")
        assert "err" in p("logs", name).stderr


@check("logs after exit")
def _logs_after(p):
    name = podman_env.unique("ock")
    ok(p("run", "--name", name, IMAGE, "echo", "done"))
    try:
        ok(p("logs", name), "done\n")
    finally:
        p("rm", "-f", name)


@check("exec")
def _exec(p):
    with p.started() as (name, _):
        ok(p("exec", name, "sh", "-c", "echo $((6 * 7))"), "42\n")


@check("exec exit status")
def _exec_status(p):
    with p.started() as (name, _):
        assert p("exec", name, "sh", "-c", "exit 5").returncode == 5


@check("exec --user --workdir --env")
def _exec_options(p):
    with p.started() as (name, _):
        ok(p("exec", "--user", "1000", "--workdir", "/tmp", "--env", "X=y", name, "sh", "-c", "id -u; pwd; echo $X"),
           "1000\n/tmp\ny\n")


@check("exec -d")
def _exec_detached(p):
    with p.started() as (name, _):
        ok(p("exec", "-d", name, "sh", "-c", "echo bg > /tmp/bg"))
        wait_for(lambda: p("exec", name, "cat", "/tmp/bg").stdout == "bg\n", "the detached exec")


@check("exec -it")
def _exec_tty(p):
    with p.started() as (name, _):
        code, out = p.env.run_in_terminal("exec", "-it", name, "sh", runtime=p.runtime, keys=b"tty; exit 6\n")
        assert code == 6 and b"/dev/pts/" in out, (code, out)


@check("kill")
def _kill(p):
    with p.started() as (name, _):
        ok(p("kill", name))
        wait_for(lambda: p.inspect(name, "{{.State.Status}}") == "exited", "the container to exit")
        assert p.inspect(name, "{{.State.ExitCode}}") == "137"


@check("kill -s USR1 (signals)")
def _signal(p):
    with p.started(script="trap 'echo got USR1' USR1; while true; do sleep 0.1; done") as (name, _):
        time.sleep(0.5)
        ok(p("kill", "-s", "USR1", name))
        wait_for(lambda: "got USR1" in p("logs", name).stdout, "the trap to run")


@check("stop (TERM)")
def _stop(p):
    with p.started(script="trap 'exit 7' TERM; while true; do sleep 0.1; done") as (name, _):
        time.sleep(0.5)
        ok(p("stop", "-t", "10", name))
        assert p.inspect(name, "{{.State.ExitCode}}") == "7"


@check("stop (timeout, KILL)")
def _stop_kill(p):
    with p.started(script="trap '' TERM; while true; do sleep 0.1; done") as (name, _):
        ok(p("stop", "-t", "1", name))
        assert p.inspect(name, "{{.State.ExitCode}}") == "137"


@check("pause/unpause")
def _pause(p):
    with p.started() as (name, _):
        ok(p("pause", name))
        assert p.inspect(name, "{{.State.Status}}") == "paused"
        ok(p("unpause", name))
        assert p.inspect(name, "{{.State.Status}}") == "running"
        ok(p("exec", name, "true"))


@check("restart")
def _restart(p):
    with p.started() as (name, pid):
        ok(p("restart", "-t", "0", name))
        assert p.inspect(name, "{{.State.Status}}") == "running"
        assert int(p.inspect(name, "{{.State.Pid}}")) != pid


@check("wait")
def _wait(p):
    with p.started(script="sleep 1; exit 9") as (name, _):
        ok(p("wait", name), "9\n")


@check("healthcheck")
def _healthcheck(p):
    with p.started("--health-cmd", "test -e /tmp", "--health-interval", "0") as (name, _):
        ok(p("healthcheck", "run", name))


@check("top")
def _top(p):
    with p.started() as (name, _):
        assert "sleep 300" in ok(p("top", name))


@check("stats")
def _stats(p):
    with p.started("--memory", "64m") as (name, _):
        out = ok(p("stats", "--no-stream", "--format", "{{.MemUsage}}", name))
        assert "64MB" in out or "67.11MB" in out, out


@check("inspect pid")
def _inspect(p):
    with p.started() as (name, pid):
        assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")


@check("--restart on-failure")
def _restart_policy(p):
    with p.started("--restart", "on-failure:2", script="sleep 0.3; exit 3") as (name, _):
        wait_for(lambda: p.inspect(name, "{{.RestartCount}} {{.State.Status}}") == "2 exited",
                 "two restarts", timeout=60)


@check("create + start")
def _create_start(p):
    name = podman_env.unique("ock")
    ok(p("create", "--name", name, IMAGE, "sh", "-c", "exit 4"))
    try:
        assert p("start", "-a", name).returncode == 4
    finally:
        p("rm", "-f", name)


@pytest.mark.parametrize("name", list(CHECKS))
def test_podman(podman, name):
    engine_matrix.both("podman 4.3", name, lambda runtime: CHECKS[name](Podman(podman, runtime)))


def test_the_matrix_is_full():
    assert len(CHECKS) >= 78, len(CHECKS)


if __name__ == "__main__":  # the list of checks, for the README
    print("\n".join(f"{i + 1:3d} {shlex.quote(name)}" for i, name in enumerate(CHECKS)))
