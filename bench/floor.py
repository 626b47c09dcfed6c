"""The start-up floor under a warm oci-fetch or oci-push: what any Python registry client pays.

Two commands timed beside the warm runs (taking turns with them), so a benchmark can say
where a warm run's time goes:

  interpreter  `python -c 'import os; os._exit(0)'`: the interpreter and `site`
  http stack   the same, importing what the warm path cannot do without: http.client (which
               imports email.*, socket, urllib.parse, re) and json
"""

from __future__ import annotations

import statistics
import sys

COMMANDS = {
    "interpreter": [sys.executable, "-c", "import os; os._exit(0)"],
    "http stack": [sys.executable, "-c", "import gc; gc.disable(); import sys; sys.modules['ssl'] = None; "
                   "import http.client, json, os; os._exit(0)"],
}


def report(times: dict[str, list[float]], ours: float) -> str:
    """One line: the medians of the floor commands and what the command adds above them."""
    interpreter, stack = (statistics.median(times[name]) for name in COMMANDS)
    return (f"  floor: interpreter {interpreter * 1000:.1f} ms, + http.client/json imports "
            f"{(stack - interpreter) * 1000:.1f} ms, + ocikit (its imports, work, round trips) "
            f"{(ours - stack) * 1000:.1f} ms")
