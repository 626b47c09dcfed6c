"""config.md#process: what the container process is given (args, env, cwd, user, limits, privileges)."""

from __future__ import annotations

import json

import pytest
from ocitest import caps
from ocitest.console import ConsoleSocket


@pytest.mark.spec("config.md#process")
def test_args_are_the_argv_of_the_process(runtime, bundle):
    """`args` has execvp semantics: the first entry is the program, the rest its arguments, verbatim."""
    bundle.checker("print", "two words", "", "tab\there").write()
    result = runtime.run(bundle.path).check()
    assert result.stdout == "two words  tab\there\n"


@pytest.mark.spec("config.md#process")
def test_args_first_entry_is_looked_up_in_path(runtime, bundle):
    """`args[0]` without a slash is found through PATH of `env`, as execvp does."""
    bundle.args("echo", "found").write()
    assert runtime.run(bundle.path).check().stdout == "found\n"


@pytest.mark.spec("config.md#process")
def test_empty_args_is_an_error(runtime, bundle):
    """At least one entry of `args` is REQUIRED: an empty list must not create a container."""
    bundle.args().write()
    assert runtime.run(bundle.path).returncode != 0


@pytest.mark.spec("config.md#process")
def test_env_is_exactly_the_configured_environment(runtime, bundle):
    """`env` is the environ of the process (HOME included, as runtimes add it when it is missing)."""
    env = ["PATH=/bin", "HOME=/home/alice", "ONE=1", "SPACED=a b=c", "EMPTY="]
    bundle.process["env"] = env
    bundle.checker("report").write()
    assert sorted(runtime.run_json(bundle.path)["env"]) == sorted(env)


@pytest.mark.spec("config.md#process")
def test_cwd_is_the_working_directory(runtime, bundle):
    bundle.process["cwd"] = "/home/alice"
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["cwd"] == "/home/alice"


@pytest.mark.spec("config.md#user")
def test_user_uid_gid_and_additional_gids(runtime, bundle):
    """uid, gid and additionalGids are the process's real and effective ids and supplementary groups."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [50, 1001]}
    bundle.checker("report").write()
    report = runtime.run_json(bundle.path)
    assert (report["uid"], report["euid"], report["gid"], report["egid"]) == (1000, 1000, 1000, 1000)
    assert {50, 1001} <= set(report["groups"])
    assert set(report["groups"]) <= {50, 1000, 1001}


@pytest.mark.spec("config.md#user")
def test_umask(runtime, bundle):
    bundle.process["user"]["umask"] = 0o027
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["umask"] == 0o027


@pytest.mark.spec("config.md#process")
def test_rlimits_soft_and_hard_match(runtime, bundle):
    """For each rlimit, getrlimit() gives rlim_cur == soft and rlim_max == hard."""
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
        {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
    ]
    bundle.checker("report").write()
    limits = runtime.run_json(bundle.path)["rlimits"]
    assert limits["RLIMIT_NOFILE"] == [123, 456]
    assert limits["RLIMIT_CORE"] == [0, 4096]
    assert limits["RLIMIT_NPROC"] == [500, 600]


@pytest.mark.spec("config.md#process")
def test_rlimits_unknown_type_is_an_error(runtime, bundle):
    """Values which cannot be mapped to a kernel interface MUST generate an error."""
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOSUCHTHING", "soft": 1, "hard": 1}]
    bundle.checker("exit", "0").write()
    assert runtime.run(bundle.path).returncode != 0


@pytest.mark.spec("config.md#process")
def test_rlimits_duplicated_type_is_an_error(runtime, bundle):
    """If rlimits contains duplicated entries with the same type, the runtime MUST generate an error."""
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
                                 {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}]
    bundle.checker("exit", "0").write()
    assert runtime.run(bundle.path).returncode != 0


@pytest.mark.spec("config.md#process")
def test_no_new_privileges(runtime, make_bundle):
    """noNewPrivileges true sets the no_new_privs bit; false leaves it clear."""
    seen = {}
    for flag in (True, False):
        bundle = make_bundle(f"nnp-{flag}")
        bundle.process["noNewPrivileges"] = flag
        bundle.checker("report").write()
        seen[flag] = runtime.run_json(bundle.path)["no_new_privs"]
    assert seen == {True: 1, False: 0}


@pytest.mark.spec("config.md#process")
def test_capabilities_of_root(runtime, bundle):
    """The bounding, effective, permitted and inheritable sets of a uid 0 process are those configured."""
    chosen = ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE"]
    bundle.process["capabilities"] = {
        "bounding": chosen, "effective": chosen, "permitted": chosen, "inheritable": ["CAP_KILL"]}
    bundle.checker("report").write()
    seen = {k: caps.parse(v) for k, v in runtime.run_json(bundle.path)["capabilities"].items()}
    assert seen["bounding"] == caps.mask(chosen)
    assert seen["effective"] == caps.mask(chosen)
    assert seen["permitted"] == caps.mask(chosen)
    assert seen["inheritable"] == caps.mask(["CAP_KILL"])
    assert seen["ambient"] == 0


@pytest.mark.spec("config.md#process")
def test_capabilities_of_a_user_with_ambient_set(runtime, bundle):
    """For a non-root user the ambient set is what survives execve: permitted = effective = ambient."""
    bounding = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"]
    ambient = ["CAP_KILL", "CAP_NET_RAW"]
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {
        "bounding": bounding, "effective": ambient + ["CAP_CHOWN"], "permitted": ambient + ["CAP_CHOWN"],
        "inheritable": ambient, "ambient": ambient}
    bundle.checker("report").write()
    seen = {k: caps.parse(v) for k, v in runtime.run_json(bundle.path)["capabilities"].items()}
    assert seen["bounding"] == caps.mask(bounding)
    assert seen["inheritable"] == caps.mask(ambient)
    assert seen["ambient"] == caps.mask(ambient)
    assert seen["permitted"] == caps.mask(ambient)
    assert seen["effective"] == caps.mask(ambient)


@pytest.mark.spec("config.md#linux-process")
def test_unknown_capabilities_are_ignored(runtime, bundle):
    """A capability that cannot be mapped to a kernel interface MUST be logged as a warning (the operation
    goes on, runtime.md#warnings): the process runs with the others."""
    chosen = ["CAP_CHOWN", "CAP_KILL"]
    bundle.process["capabilities"] = {kind: [*chosen, "CAP_NO_SUCH_THING"]
                                      for kind in ("bounding", "effective", "permitted", "inheritable")}
    bundle.checker("report").write()
    seen = {k: caps.parse(v) for k, v in runtime.run_json(bundle.path)["capabilities"].items()}
    assert (seen["bounding"], seen["effective"], seen["permitted"], seen["inheritable"]) == (caps.mask(chosen),) * 4


@pytest.mark.spec("config.md#linux-process")
def test_capabilities_the_runtime_cannot_grant_are_left_out(runtime, bundle):
    """Runtimes SHOULD NOT fail for capabilities that cannot be granted (a runtime in a restricted
    environment, here one whose bounding set lacks CAP_SYS_BOOT): the process runs without them."""
    runtime.require("capabilities-not-held-left-out")
    chosen = ["CAP_CHOWN", "CAP_KILL"]
    bundle.process["capabilities"] = {kind: [*chosen, "CAP_SYS_BOOT"]
                                      for kind in ("bounding", "effective", "permitted", "inheritable")}
    bundle.checker("report").write()
    runtime.prefix = ["setpriv", "--bounding-set", "-sys_boot", *runtime.prefix]
    try:
        seen = {k: caps.parse(v) for k, v in runtime.run_json(bundle.path)["capabilities"].items()}
    finally:
        del runtime.prefix[:3]
    assert (seen["bounding"], seen["effective"], seen["permitted"], seen["inheritable"]) == (caps.mask(chosen),) * 4


@pytest.mark.spec("config.md#process")
def test_capability_dropped_from_bounding_is_not_usable(runtime, bundle):
    """A capability missing from the sets cannot be used: sethostname without CAP_SYS_ADMIN fails."""
    bundle.checker("try", "sethostname").write()
    act = runtime.run_json(bundle.path)
    assert act["ok"] is False and act["errno"] == 1  # EPERM


@pytest.mark.spec("config.md#process")
def test_terminal_false_gives_the_runtime_stdio(runtime, bundle):
    """terminal false (the default): no terminal is attached, stdio are the runtime's own pipes."""
    bundle.process["terminal"] = False
    bundle.checker("report").write()
    report = runtime.run_json(bundle.path)
    assert report["isatty"] == [False, False, False]
    assert report["fds"]["1"].startswith("pipe:")


def run_on_terminal(runtime, bundle, tmp_path) -> dict:
    """create with --console-socket, start, and parse what the checker printed on the terminal."""
    bundle.write()
    console = ConsoleSocket(tmp_path / "console.sock")
    try:
        cid, result = runtime.create(bundle.path, None, "--console-socket", str(console.path))
        result.check()
        console.wait_master()
        runtime.start(cid).check()
        return json.loads(console.read_until_closed())
    finally:
        console.close()


@pytest.mark.spec("config.md#process")
def test_terminal_true_gives_a_pty_through_the_console_socket(runtime, bundle, tmp_path):
    """terminal true: stdio are a pseudoterminal whose master the runtime hands over (--console-socket)."""
    bundle.process["terminal"] = True
    bundle.checker("report").write()
    report = run_on_terminal(runtime, bundle, tmp_path)
    assert report["isatty"] == [True, True, True]
    assert report["fds"]["0"].startswith("/dev/pts/") and report["fds"]["0"] == report["fds"]["2"]


@pytest.mark.spec("config-linux.md#default-devices")
def test_dev_console_is_the_pty_when_terminal_is_true(runtime, bundle, tmp_path):
    """/dev/console is set up, when terminal is enabled, by bind mounting the pseudoterminal to it."""
    bundle.process["terminal"] = True
    bundle.checker("report", "-s", "/dev/console", "-s", "/proc/self/fd/0").write()
    report = run_on_terminal(runtime, bundle, tmp_path)
    dev_console = report["stat"]["/dev/console"]
    assert (dev_console["type"], dev_console["major"]) == ("char", 136)
    assert report["fds"]["0"] == f"/dev/pts/{dev_console['minor']}"


@pytest.mark.spec("config.md#process")
def test_console_size(runtime, bundle, tmp_path):
    """consoleSize sets the terminal's rows and columns."""
    runtime.require("consoleSize")
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 33, "width": 111}
    bundle.checker("report").write()
    report = run_on_terminal(runtime, bundle, tmp_path)
    assert report["winsize"] == [33, 111]


@pytest.mark.spec("config.md#process")
def test_oom_score_adj(runtime, bundle):
    """If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value."""
    bundle.process["oomScoreAdj"] = 123
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["oom_score_adj"] == 123


@pytest.mark.spec("config.md#process")
def test_oom_score_adj_unset_is_inherited(runtime, bundle):
    """If oomScoreAdj is not set, the runtime MUST NOT change oom_score_adj."""
    with open("/proc/self/oom_score_adj") as f:
        ours = int(f.read())
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["oom_score_adj"] == ours


@pytest.mark.spec("config.md#process")
def test_io_priority(runtime, bundle):
    """ioPriority sets the I/O scheduling class and level of the process."""
    runtime.require("ioPriority")
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 5}
    bundle.checker("report").write()
    ioprio = runtime.run_json(bundle.path)["ioprio"]
    assert (ioprio >> 13, ioprio & 0x1FFF) == (3, 5)  # IOPRIO_CLASS_IDLE = 3


@pytest.mark.spec("config-linux.md#personality")
def test_personality(runtime, bundle):
    """linux.personality domain LINUX32 sets the execution domain (PER_LINUX32 = 8)."""
    runtime.require("personality")
    bundle.linux["personality"] = {"domain": "LINUX32"}
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["personality"] & 0xFF == 8


@pytest.mark.spec("runtime.md#lifecycle")
@pytest.mark.parametrize("code", [0, 3, 77])
def test_run_exit_status_is_the_containers(runtime, bundle, code):
    bundle.checker("exit", str(code)).write()
    assert runtime.run(bundle.path).returncode == code
