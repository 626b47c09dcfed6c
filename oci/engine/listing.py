"""The rows `ps`, `images`, `stats`, `volume ls` and `network ls` print, with Docker's field names
(the names `--format` templates use) and Docker's default tables."""

from __future__ import annotations

import fnmatch
import os
import time
from typing import Any

from oci.errors import InvalidInput, OciError
from oci.monitor.times import human_duration

from . import status
from .engine import Engine
from .formatting import ago, human_size, parse_time, table
from .images import split_name


def _command(record: dict[str, Any], no_trunc: bool) -> str:
    text = " ".join([record.get("Path", ""), *record.get("Args", [])]).strip()
    if not no_trunc and len(text) > 20:
        text = text[:19] + "…"
    return f'"{text}"'


def _status_text(state: dict[str, Any]) -> str:
    now = time.time()
    current = state.get("Status")
    if current in ("running", "paused"):
        started = parse_time(state.get("StartedAt", ""))
        text = f"Up {human_duration(now - started)}" if started else "Up"
        return text + (" (Paused)" if current == "paused" else "")
    if current == "restarting":
        return f"Restarting ({state.get('ExitCode', 0)})"
    if current == "exited":
        finished = parse_time(state.get("FinishedAt", ""))
        when = f" {human_duration(now - finished)} ago" if finished else ""
        return f"Exited ({state.get('ExitCode', 0)}){when}"
    return "Created" if current == "created" else str(current or "")


def ports_text(record: dict[str, Any]) -> str:
    parts = []
    for key, hosts in sorted((record.get("HostConfig") or {}).get("PortBindings", {}).items()):
        for binding in hosts:
            parts.append(f"{binding.get('HostIp') or '0.0.0.0'}:{binding['HostPort']}->{key}")
    return ", ".join(parts)


def _matches(record: dict[str, Any], filters: list[str], state: str) -> bool:
    for text in filters:
        key, sep, value = text.partition("=")
        if not sep:
            raise InvalidInput(f"bad format of filter (expected name=value): {text}")
        if key == "name" and value not in record["Name"]:
            return False
        if key == "id" and not record["Id"].startswith(value):
            return False
        if key == "status" and value != state:
            return False
        if key == "ancestor" and value not in (record["Config"]["Image"], record["Image"]):
            return False
        if key == "label":
            name, has, wanted = value.partition("=")
            labels = record["Config"].get("Labels") or {}
            if name not in labels or (has and labels[name] != wanted):
                return False
    return True


def containers(engine: Engine, monitor: Any, all_: bool, filters: list[str], no_trunc: bool = False
               ) -> list[dict[str, Any]]:
    """`ps` rows, newest first."""
    from .create import reap

    reap(engine, monitor=monitor)
    rows = []
    records = sorted(engine.containers.records(), key=lambda r: r.get("Created", ""), reverse=True)
    for record in records:
        state = status.refresh(engine, record, monitor)["State"]
        if not all_ and state["Status"] not in ("running", "paused", "restarting"):
            continue
        if filters and not _matches(record, filters, state["Status"]):
            continue
        cid = record["Id"]
        rows.append({
            "ID": cid if no_trunc else cid[:12], "Image": record["Config"]["Image"],
            "Command": _command(record, no_trunc), "CreatedAt": record["Created"],
            "RunningFor": ago(record["Created"]), "Ports": ports_text(record), "State": state["Status"],
            "Status": _status_text(state), "Size": "0B", "Names": record["Name"],
            "Labels": ",".join(f"{k}={v}" for k, v in sorted((record["Config"].get("Labels") or {}).items())),
            "Mounts": ",".join(m.get("Name") or m["Source"] for m in record.get("Mounts", [])),
            "Networks": record["HostConfig"].get("NetworkMode", ""),
        })
    return rows


def containers_table(rows: list[dict[str, Any]]) -> str:
    return table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                 [[r["ID"], r["Image"], r["Command"], r["RunningFor"], r["Status"], r["Ports"], r["Names"]]
                  for r in rows])


def images(engine: Engine, show_all: bool = True, digests: bool = False, no_trunc: bool = False,
           reference: str | None = None, filters: list[str] | None = None) -> list[dict[str, Any]]:
    """`images` rows: one per name (and one for each image without a name)."""
    rows = []
    for stored in engine.images.images():
        if stored.image is None:
            continue  # manifest lists are shown by `manifest inspect`
        names: list[str | None] = list(stored.names) or [None]
        for name in names:
            repo, tag = split_name(name) if name else ("<none>", "<none>")
            if reference and not _reference_matches(reference, repo, tag):
                continue
            if filters and not _image_filter(filters, stored, name):
                continue
            image_id = stored.id if no_trunc else stored.short_id
            rows.append({"ID": image_id, "Repository": repo, "Tag": tag,
                         "Digest": str(stored.descriptor.digest), "CreatedSince": ago(stored.created),
                         "CreatedAt": stored.created, "Size": human_size(stored.size),
                         "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A", "VirtualSize":
                         human_size(stored.size)})
    return rows


def _reference_matches(pattern: str, repo: str, tag: str) -> bool:
    name, sep, wanted_tag = pattern.rpartition(":")
    if not sep or "/" in wanted_tag:  # the colon of a registry's port, not a tag
        name, wanted_tag = pattern, ""
    return fnmatch.fnmatch(repo, name) and (not wanted_tag or fnmatch.fnmatch(tag, wanted_tag))


def _image_filter(filters: list[str], stored: Any, name: str | None) -> bool:
    for text in filters:
        key, _, value = text.partition("=")
        if key == "dangling" and (value.lower() == "true") != (not stored.names):
            return False
        if key == "reference" and name:
            repo, tag = split_name(name)
            if not _reference_matches(value, repo, tag):
                return False
        if key == "label":
            labels = (stored.config.get("config") or {}).get("Labels") or {}
            k, has, v = value.partition("=")
            if k not in labels or (has and labels[k] != v):
                return False
    return True


def images_table(rows: list[dict[str, Any]], digests: bool = False) -> str:
    if digests:
        return table(["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"],
                     [[r["Repository"], r["Tag"], r["Digest"], r["ID"], r["CreatedSince"], r["Size"]] for r in rows])
    return table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                 [[r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"]] for r in rows])


def stats(engine: Engine, monitor: Any, names: list[str], all_: bool) -> list[dict[str, Any]]:
    """One `stats` sample per container, from the runtime's cgroup statistics."""
    from oci.runtime import stats as runtime_stats

    if names:
        records = [engine.containers.load(engine.containers.resolve(n)) for n in names]
    else:
        records = list(engine.containers.records())
    rows = []
    store = engine.runtime_store()
    for record in records:
        state = status.refresh(engine, record, monitor)["State"]
        if not names and not all_ and state["Status"] not in ("running", "paused"):
            continue
        data: dict[str, Any] = {}
        try:
            data = runtime_stats.stats_event(store, record["Id"])["data"]
        except OciError:
            pass
        memory = (data.get("memory") or {}).get("usage") or {}
        usage, limit = int(memory.get("usage") or 0), int(memory.get("limit") or 0)
        if not limit or limit >= 1 << 62:
            limit = _host_memory()
        pids = (data.get("pids") or {}).get("current", 0)
        cpu = (data.get("cpu") or {}).get("usage") or {}
        rows.append({"ID": record["Id"][:12], "Container": record["Id"][:12], "Name": record["Name"],
                     "CPUPerc": f"{_cpu_percent(record['Id'], int(cpu.get('total') or 0)):.2f}%",
                     "MemUsage": f"{_binary(usage)} / {_binary(limit)}",
                     "MemPerc": f"{100.0 * usage / limit if limit else 0:.2f}%", "NetIO": "--", "BlockIO": "--",
                     "PIDs": str(pids)})
    return rows


_CPU_SEEN: dict[str, tuple[float, int]] = {}


def _cpu_percent(cid: str, total_ns: int) -> float:
    """CPU use since the last sample of this process (the first sample: since the container started)."""
    now = time.monotonic()
    before = _CPU_SEEN.get(cid)
    _CPU_SEEN[cid] = (now, total_ns)
    if before is None or now <= before[0]:
        return 0.0
    return 100.0 * (total_ns - before[1]) / ((now - before[0]) * 1e9)


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _binary(size: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024.0
        i += 1
    return f"{size:.4g}{units[i]}"


def stats_table(rows: list[dict[str, Any]]) -> str:
    return table(["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"],
                 [[r["ID"], r["Name"], r["CPUPerc"], r["MemUsage"], r["MemPerc"], r["NetIO"], r["BlockIO"],
                   r["PIDs"]] for r in rows])
