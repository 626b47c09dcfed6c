"""The threads that move blobs for oci-fetch and oci-push."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


def transfer_pool(jobs: int, name: str) -> ThreadPoolExecutor:
    """A pool of `jobs` threads that never take SIGINT, SIGTERM or SIGHUP: the kernel then hands
    those to the main thread, which stops the transfers. (A signal taken by a worker blocked in a
    read would only restart that read, and the main thread would go on waiting for it.)"""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix=name, initializer=_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
