"""config-linux.md#seccomp: default action, errno with errnoRet, kill_process, argument conditions, log."""

from __future__ import annotations

import pytest

EPERM, E2BIG, ENOSYS = 1, 7, 38
ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
PERSONALITY_QUERY = "0xffffffff"  # personality(0xffffffff) only reads the current persona

# What runtimes and the static checker need between the filter's load and the checker's exit,
# for the default-deny test (runc's Go init runs after the filter is loaded).
ALLOWED = """accept4 access arch_prctl bind brk capget capset chdir clock_gettime clock_nanosleep clone clone3
close close_range dup dup2 dup3 epoll_create1 epoll_ctl epoll_pwait epoll_wait execve execveat exit exit_group
faccessat faccessat2 fchdir fchown fcntl fstat fstatfs futex getcwd getdents64 getegid geteuid getgid getgroups
getpid getrandom getrlimit gettid getuid ioctl lseek madvise mmap mprotect munmap nanosleep newfstatat open openat
pipe2 poll ppoll prctl pread64 prlimit64 read readlink readlinkat rseq rt_sigaction rt_sigprocmask rt_sigreturn
sched_getaffinity sched_yield select set_robust_list set_tid_address setgid setgroups setresgid setresuid setsid
setuid sigaltstack stat statx tgkill uname wait4 waitid write writev""".split()


def seccomp(default: str = "SCMP_ACT_ALLOW", syscalls: list[dict] | None = None, **extra) -> dict:
    return {"defaultAction": default, "architectures": ARCHES, "syscalls": syscalls or [], **extra}


@pytest.mark.spec("config-linux.md#seccomp")
def test_no_seccomp_without_config(runtime, bundle):
    """Without linux.seccomp, the process runs with no filter (Seccomp: 0)."""
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["seccomp"] == 0


@pytest.mark.spec("config-linux.md#seccomp")
def test_filter_mode_and_errno_action_with_errno_ret(runtime, bundle):
    """SCMP_ACT_ERRNO with errnoRet: the call fails with that errno; the process runs in filter mode."""
    bundle.linux["seccomp"] = seccomp(syscalls=[
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": E2BIG}])
    bundle.checks("report", "try syscall getppid", "try syscall getpid").write()
    report, blocked, other = runtime.run_lines(bundle.path)
    assert report["seccomp"] == 2
    assert (blocked["ok"], blocked["errno"]) == (False, E2BIG)
    assert other["ok"] is True


@pytest.mark.spec("config-linux.md#seccomp")
def test_errno_action_defaults_to_eperm(runtime, bundle):
    bundle.linux["seccomp"] = seccomp(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])
    bundle.checker("try", "syscall", "getppid").write()
    blocked = runtime.run_json(bundle.path)
    assert (blocked["ok"], blocked["errno"]) == (False, EPERM)


@pytest.mark.spec("config-linux.md#seccomp")
def test_default_action_errno_with_default_errno_ret(runtime, bundle):
    """defaultAction applies to every syscall no rule names, with defaultErrnoRet as errno."""
    bundle.linux["seccomp"] = seccomp("SCMP_ACT_ERRNO", [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}],
                                      defaultErrnoRet=ENOSYS)
    bundle.checks("try syscall getppid", "try syscall getpid").write()
    blocked, allowed = runtime.run_lines(bundle.path)
    assert (blocked["ok"], blocked["errno"]) == (False, ENOSYS)
    assert allowed["ok"] is True


@pytest.mark.spec("config-linux.md#seccomp")
def test_kill_process_action(runtime, bundle):
    """SCMP_ACT_KILL_PROCESS: the process dies of SIGSYS at the call and never returns from it."""
    bundle.linux["seccomp"] = seccomp(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}])
    bundle.checker("try", "syscall", "getppid").write()
    result = runtime.run(bundle.path)
    assert result.returncode != 0
    assert '"ret"' not in result.stdout and '"act":"syscall"' in result.stdout


@pytest.mark.spec("config-linux.md#seccomp")
def test_argument_conditions(runtime, bundle):
    """A rule with `args` matches only calls whose arguments meet every condition."""
    bundle.linux["seccomp"] = seccomp(syscalls=[{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": E2BIG,
        "args": [{"index": 0, "value": 0x12345, "op": "SCMP_CMP_EQ"}]}])
    bundle.checks("try syscall personality 0x12345", f"try syscall personality {PERSONALITY_QUERY}").write()
    blocked, allowed = runtime.run_lines(bundle.path)
    assert (blocked["ok"], blocked["errno"]) == (False, E2BIG)
    assert allowed["ok"] is True


@pytest.mark.spec("config-linux.md#seccomp")
def test_argument_conditions_masked_eq(runtime, bundle):
    bundle.linux["seccomp"] = seccomp(syscalls=[{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": E2BIG,
        "args": [{"index": 0, "value": 0xF000, "valueTwo": 0x3000, "op": "SCMP_CMP_MASKED_EQ"}]}])
    bundle.checks("try syscall personality 0x3456", f"try syscall personality {PERSONALITY_QUERY}").write()
    blocked, allowed = runtime.run_lines(bundle.path)
    assert (blocked["ok"], blocked["errno"]) == (False, E2BIG)
    assert allowed["ok"] is True


@pytest.mark.spec("config-linux.md#seccomp")
def test_log_action_allows_the_call(runtime, bundle):
    """SCMP_ACT_LOG lets the call through (the kernel logs it)."""
    bundle.linux["seccomp"] = seccomp(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_LOG"}])
    bundle.checks("report", "try syscall getppid").write()
    report, logged = runtime.run_lines(bundle.path)
    assert report["seccomp"] == 2 and logged["ok"] is True


@pytest.mark.spec("config-linux.md#seccomp")
def test_errno_ret_on_an_action_without_errno_is_an_error(runtime, bundle):
    """When the action doesn't support an errno, the runtime MUST print an error and fail."""
    runtime.require("seccomp-errnoRet-check")
    bundle.linux["seccomp"] = seccomp(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_LOG", "errnoRet": 5}])
    bundle.checker("exit", "0").write()
    assert runtime.run(bundle.path).returncode != 0
