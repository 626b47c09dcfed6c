"""What the library has to tell the user while it works: warnings and debug messages.

One way for every module: `log.warning(...)` and `log.debug(...)`. A command routes them
(`ocicli.run` makes its Messages the sink, `oci.log_sink`): warnings go to stderr unless `-q`, debug
messages with `--debug`, both in the command's `--log-format`. Without a sink (the library
used from other Python code, the tests) they go to the `oci` logger of the logging package,
which is imported only when there is something to say, so a command that has nothing to
report does not pay for it at start-up.

What a document held that was ignored (unknown properties, settings that do not apply) is
not a warning of this kind: it is part of what reading the document found, returned to the
caller as notes (see oci.runtime.config), who writes them where its callers look (oci-run:
`--log`).
"""

from __future__ import annotations

import oci

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Sink(Protocol):
        """Where a command sends the library's messages (ocicli.Messages): `oci.log_sink`."""

        def warn(self, message: str) -> None: ...

        def debug(self, message: str) -> None: ...


LOGGER = "oci"


def warning(message: str, *args: object) -> None:
    """Warn: `message % args` to the sink, else to the logger."""
    sink: Sink | None = oci.log_sink
    if sink is not None:
        sink.warn(message % args if args else message)
        return
    import logging

    logging.getLogger(LOGGER).warning(message, *args)


def debug(message: str, *args: object) -> None:
    """A debug message: `message % args` to the sink (shown with --debug), else to the logger."""
    sink: Sink | None = oci.log_sink
    if sink is not None:
        sink.debug(message % args if args else message)
        return
    import logging

    logging.getLogger(LOGGER).debug(message, *args)
