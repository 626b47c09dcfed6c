"""The threads that move blobs for oci-fetch and oci-push, and what they tell a progress display."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # for type checkers only (typing costs a command's start ~3 ms)
    from concurrent.futures import ThreadPoolExecutor
    from typing import Protocol

    from oci.descriptor import Descriptor

    class Progress(Protocol):
        """Told which blobs will travel (once the registry is known to lack them, for a push), then
        how far each one got (from worker threads)."""

        def begin(self, blobs: list[Descriptor]) -> None: ...

        def advance(self, blob: Descriptor, done: int) -> None: ...


def transfer_pool(jobs: int, name: str) -> ThreadPoolExecutor:
    """A pool of `jobs` threads that never take SIGINT, SIGTERM or SIGHUP: the kernel then hands
    those to the main thread, which stops the transfers. (A signal taken by a worker blocked in a
    read would only restart that read, and the main thread would go on waiting for it.)"""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix=name, initializer=_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
