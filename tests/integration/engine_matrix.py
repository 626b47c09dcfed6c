"""The engine matrix: the same checks, run by a real engine once with runc and once with oci-run.

An engine test runs each of its checks with both runtimes through `both(engine, check, run)`, where
`run(runtime)` raises (AssertionError or any other error) when the check fails. Each outcome is
recorded: in this process (the session summary of tests/integration/conftest.py prints the table),
and, when $OCIKIT_ENGINE_MATRIX names a file, as one JSON line there (tests/engine_matrix.py runs the
engine tests and prints the table from that file). The test fails when oci-run fails a check runc
passes; a check both fail is recorded and passes (it says something about the host, not oci-run).

Other engine tests (containerd's CRI, ...) add their column by calling `both` (or `record`) with their
engine's name; `table()` prints every engine recorded.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

RUNTIMES = ("runc", "oci-run")
MATRIX_FILE = "OCIKIT_ENGINE_MATRIX"
RESULTS: list[dict] = []


def record(engine: str, check: str, runtime: str, passed: bool, detail: str = "") -> None:
    """Remember one outcome (and append it to $OCIKIT_ENGINE_MATRIX when set)."""
    entry = {"engine": engine, "check": check, "runtime": runtime, "passed": passed, "detail": detail[-400:]}
    RESULTS.append(entry)
    path = os.environ.get(MATRIX_FILE)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def both(engine: str, check: str, run: Callable[[str], object], runtimes: tuple[str, ...] = RUNTIMES) -> None:
    """Run `run(runtime)` for runc and oci-run, record both, and fail if oci-run fails where runc passes."""
    outcome: dict[str, tuple[bool, str]] = {}
    for runtime in runtimes:
        started = time.monotonic()
        try:
            run(runtime)
        except Exception as err:  # noqa: BLE001 - any failure of the check is its outcome
            outcome[runtime] = (False, f"{type(err).__name__}: {err}")
        else:
            outcome[runtime] = (True, f"{time.monotonic() - started:.1f} s")
        record(engine, check, runtime, *outcome[runtime])
    reference, ours = outcome[runtimes[0]], outcome[runtimes[-1]]
    assert ours[0] or not reference[0], f"{runtimes[-1]} fails what {runtimes[0]} passes: {ours[1]}"


def load(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def table(results: list[dict] | None = None, details: bool = False) -> str:
    """Counts per engine, side by side (`| engine | checks | runc | oci-run |`), and with `details` every check
    either runtime failed."""
    results = RESULTS if results is None else results
    engines: dict[str, dict[str, dict[str, bool]]] = {}
    for entry in results:  # the last outcome of a check wins (a rerun)
        engines.setdefault(entry["engine"], {}).setdefault(entry["check"], {})[entry["runtime"]] = entry["passed"]
    runtimes = list(dict.fromkeys(entry["runtime"] for entry in results)) or list(RUNTIMES)
    lines = [f"| engine | checks | {' | '.join(runtimes)} | oci-run fails where runc passes |",
             "|---|---|" + "---|" * len(runtimes) + "---|"]
    for engine, checks in engines.items():
        counts = [sum(1 for c in checks.values() if c.get(runtime)) for runtime in runtimes]
        worse = [name for name, c in checks.items() if c.get(runtimes[0]) and not c.get(runtimes[-1])]
        lines.append(f"| {engine} | {len(checks)} | {' | '.join(map(str, counts))} | {len(worse)} |")
    if details:
        for engine, checks in engines.items():
            for name, c in checks.items():
                if not all(c.get(runtime) for runtime in runtimes):
                    marks = ", ".join(f"{runtime} {'passes' if c.get(runtime) else 'fails'}" for runtime in runtimes)
                    lines.append(f"  {engine}: {name}: {marks}")
    return "\n".join(lines)
