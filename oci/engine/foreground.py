"""A container run in the foreground by the front itself, in one process: oci-run's create,
start, wait and delete called as a library (no runtime process to start), the front the
container's subreaper, signals forwarded, a terminal proxied with -t, stdin given with -i.

Exit statuses as `docker run`'s: the container's own, 125 when the container could not be
made, 126 when its command cannot be invoked, 127 when it is not found.
"""

from __future__ import annotations

import os
from typing import Any

from oci.errors import NotFound, OciError

from .containers import now
from .engine import Engine

CANNOT_RUN = 125
CANNOT_INVOKE = 126
NOT_FOUND = 127


class RunFailed(OciError):
    """The container could not be started; `exit_code` as docker run's."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_of(err: OciError) -> int:
    text = err.message
    if "executable file not found" in text or "no such file" in text.lower():
        return NOT_FOUND
    if "permission denied" in text.lower():
        return CANNOT_INVOKE
    return CANNOT_RUN


def run(engine: Engine, record: dict[str, Any], *, interactive: bool, tty: bool, log: bool = True) -> int:
    """Create, start and wait for the container; record its exit; its status as docker run gives it.

    With `log` (and no terminal), what it prints goes through pipes to ours and to its log, as
    Docker keeps the log of every container; `run --rm` does without."""
    tee = None
    if log and not tty:
        from .logs import Tee

        tee = Tee(engine.containers.log_path(record["Id"]))
        tee.__enter__()
    try:
        return _run(engine, record, interactive=interactive, tty=tty, tee=tee)
    finally:
        if tee is not None:
            tee.__exit__(None, None, None)


def _run(engine: Engine, record: dict[str, Any], *, interactive: bool, tty: bool, tee: Any) -> int:
    import _socket

    from oci.runtime import lifecycle

    cid = record["Id"]
    folder = engine.containers.folder(cid)
    store = engine.runtime_store()
    if not interactive:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # as docker run without -i: the container reads nothing
        os.close(null)
    pair = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM) if tty else None
    options = lifecycle.CreateOptions(subreaper=True, console_fd=pair[1].fileno() if pair else None)
    try:
        container = lifecycle.create(store, cid, folder, options)
    except OciError as err:
        raise RunFailed(err.message, exit_code_of(err)) from None
    finally:
        if tee is not None:
            tee.release()  # the container holds the pipes now; our own stdout and stderr are back
    from oci.linux.terminal import take_master

    master = take_master(pair)
    try:
        lifecycle.start(store, cid)
    except BaseException as err:
        lifecycle.delete(store, cid, force=True)
        if isinstance(err, OciError):
            raise RunFailed(err.message, exit_code_of(err)) from None
        raise
    mark_running(engine, record, container.pid)

    status = lifecycle.wait_in_foreground(container.pid, master)
    try:
        with engine.containers.lock(cid):  # `rm -f` from elsewhere holds it while it removes the container
            try:
                lifecycle.delete(store, cid, force=True)
            except NotFound:
                return status  # removed meanwhile
            mark_exited(engine, cid, status)
    except FileNotFoundError:
        pass  # its folder is gone: removed meanwhile
    return status


def mark_running(engine: Engine, record: dict[str, Any], pid: int) -> None:
    record["State"].update(Status="running", Running=True, Pid=pid, StartedAt=now(), ExitCode=0, Error="")
    engine.containers.save(record)


def mark_exited(engine: Engine, cid: str, status: int) -> None:
    """Record the exit (the caller holds the container's lock), unless the container was removed meanwhile."""
    try:
        record = engine.containers.load(cid)
    except NotFound:
        return
    record["State"].update(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=status, FinishedAt=now())
    engine.containers.save(record)
