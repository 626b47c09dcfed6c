"""oci.registry.workers: transfer threads leave the stop signals to the main thread."""

import signal

from oci.registry.workers import transfer_pool


def test_transfer_threads_block_stop_signals_and_the_main_thread_does_not():
    pool = transfer_pool(2, "test")
    try:
        blocked = pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, set()).result(timeout=10)
    finally:
        pool.shutdown()
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= blocked
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
