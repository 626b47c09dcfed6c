"""Hooks: run each with the container state on stdin, within its timeout.

`run_hooks` raises HookError on the first failure; the caller applies the spec's failure
semantics (prestart, createRuntime, createContainer, startContainer: stop the container;
poststart, poststop: warn and continue).
"""

from __future__ import annotations

import _signal  # not signal, which builds enums: see lifecycle
import os
import select

from oci.errors import OciError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
FATAL_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer")


class HookError(OciError):
    """A hook that failed, timed out or could not be started."""


def run_hook(hook: dict[str, Any], state: dict[str, Any], phase: str) -> None:
    """Run one hook; HookError unless it exits 0 within its timeout."""
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(item.split("=", 1) for item in hook.get("env", []) if "=" in item)
    timeout = hook.get("timeout")
    from oci import jsonout  # the init's hooks find it imported already: see process.preload

    data = jsonout.dumps(state, separators=(",", ":")).encode()
    read_end, write_end = os.pipe()
    try:
        pid = os.posix_spawn(path, args, env, file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)],
                             setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))
    except OSError as err:
        os.close(read_end)
        os.close(write_end)
        raise HookError(f"{phase} hook {path}: {err.strerror}") from None
    os.close(read_end)
    try:
        os.write(write_end, data)
    except BrokenPipeError:
        pass
    finally:
        os.close(write_end)
    status = _wait(pid, timeout)
    if status is None:
        os.kill(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
        raise HookError(f"{phase} hook {path}: timed out after {timeout}s")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise HookError(f"{phase} hook {path}: exited with status {code}")


def _wait(pid: int, timeout: float | None) -> int | None:
    if timeout is None:
        return os.waitpid(pid, 0)[1]
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        return None
    return os.waitpid(pid, 0)[1]


def run_hooks(hooks: dict[str, Any] | None, phase: str, state: dict[str, Any]) -> None:
    """Run the hooks of `phase` in order; the first failure raises HookError."""
    for hook in (hooks or {}).get(phase, []):
        run_hook(hook, state, phase)


def run_hooks_warn(hooks: dict[str, Any] | None, phase: str, state: dict[str, Any]) -> None:
    """Run every hook of `phase`; a failure is a warning (oci.log) and the next hook runs (poststop)."""
    for hook in (hooks or {}).get(phase, []):
        try:
            run_hook(hook, state, phase)
        except HookError as err:
            from oci import log  # only for a hook that failed

            log.warning(err.message)
