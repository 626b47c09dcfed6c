"""The start-up floor under a warm oci-fetch or oci-push: what any Python command pays.

Timed beside the warm runs (taking turns with them), so a benchmark can say where a warm
run's time goes:

  interpreter  `python -S -c 'import os; os._exit(0)'`: the interpreter as the installed
               launchers start it (-S: without site)

Everything above it is ocikit's: its imports (no http.client, urllib or json on the warm
path: oci/registry/wire.py frames HTTP itself), its work and the round trips to the registry.
"""

from __future__ import annotations

import statistics
import sys

COMMANDS = {
    "interpreter": [sys.executable, "-S", "-c", "import os; os._exit(0)"],
}


def report(times: dict[str, list[float]], ours: float) -> str:
    """One line: the interpreter's median and what the command adds above it."""
    interpreter = statistics.median(times["interpreter"])
    return (f"  floor: interpreter (-S) {interpreter * 1000:.1f} ms, + ocikit (its imports, work, round trips) "
            f"{(ours - interpreter) * 1000:.1f} ms")
