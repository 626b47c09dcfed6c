"""`exec`: another process in a running container, through oci-run's exec as a library.

The process is the container's own (its env, user, capabilities, cwd) with the overrides of
`docker exec`; names of users and groups are resolved in the container's rootfs.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Sequence

from oci.errors import Conflict, NotFound, OciError

from .engine import Engine


def process_for(engine: Engine, cid: str, command: Sequence[str], *, tty: bool, env: Sequence[str],
                env_files: Sequence[str], user: str | None, workdir: str | None, privileged: bool) -> dict[str, Any]:
    from oci.bundle import convert, defaults, options, users
    from oci.runtime import config as config_mod

    folder = engine.containers.folder(cid)
    config = config_mod.load(folder)
    process = copy.deepcopy(config["process"])
    process["args"] = list(command)
    process["terminal"] = tty
    process.pop("consoleSize", None)
    extra: list[str] = []
    for path in env_files:
        extra += options.read_env_file(path, dict(os.environ))
    for entry in env:
        parsed = options.parse_env_entry(entry, dict(os.environ), "--env")
        if parsed is not None:
            extra.append(parsed)
    environment = convert.merge_env(process.get("env", []), extra)
    if tty and not any(e.startswith("TERM=") for e in environment):
        environment.append("TERM=xterm")
    process["env"] = environment
    if workdir:
        process["cwd"] = workdir
    if user:
        resolved = users.resolve(os.path.join(folder, config["root"]["path"]), user)
        process["user"] = {"uid": resolved.uid, "gid": resolved.gid}
        if resolved.additional_gids:
            process["user"]["additionalGids"] = resolved.additional_gids
    if privileged:
        caps = defaults.host_caps()
        process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    return process


def run(engine: Engine, cid: str, command: Sequence[str], *, interactive: bool, tty: bool, detach: bool,
        env: Sequence[str], env_files: Sequence[str], user: str | None, workdir: str | None,
        privileged: bool) -> int:
    """Run the process; its exit status (126/127 when it cannot be started, as Docker's), 0 with `detach`."""
    import _socket

    from oci.runtime import execute, lifecycle

    from .foreground import exit_code_of

    record = engine.containers.load(cid)
    store = engine.runtime_store()
    try:
        state = store.load(cid).status()
    except NotFound:
        state = "stopped"
    if state not in ("running",):
        raise Conflict(f"Container {cid} is not running" if state != "paused" else f"Container {cid} is paused, "
                       "unpause the container before exec")
    process = process_for(engine, cid, command, tty=tty, env=env, env_files=env_files, user=user, workdir=workdir,
                          privileged=privileged)
    del record
    if not interactive or detach:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    pair = None
    if tty and not detach:
        pair = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    if tty and detach:
        process["terminal"] = False
    options = execute.ExecOptions(console_fd=pair[1].fileno() if pair else None, subreaper=not detach)
    try:
        pid = execute.run_exec(store, cid, process, options)
    except OciError as err:
        message = err.message.replace("exec: exec: ", "exec: ", 1)
        if "executable file not found" in message or "permission denied" in message.lower():
            from .foreground import RunFailed

            raise RunFailed(message, exit_code_of(err)) from None
        raise
    if detach:
        return 0
    from oci.linux.terminal import take_master

    master = take_master(pair)

    return lifecycle.wait_in_foreground(pid, master)
