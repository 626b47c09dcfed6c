"""Warnings of the registry code (retries, resumes, credential helpers).

They go to `sink` when a command set one, else to the `oci.registry` logger. The logging
package is imported only when there is something to say, so a command that has nothing to
warn about does not pay for it at start-up.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

LOGGER = "oci.registry"

sink: Callable[[str], None] | None = None  # takes each formatted warning instead of the logger


def warning(message: str, *args: object) -> None:
    """Warn: `message % args` to the sink, else to the logger."""
    if sink is not None:
        sink(message % args if args else message)
        return
    import logging

    logging.getLogger(LOGGER).warning(message, *args)


def debug(message: str, *args: object) -> None:
    """A debug message, for the logger only (a sink takes warnings)."""
    if sink is None:
        import logging

        logging.getLogger(LOGGER).debug(message, *args)
