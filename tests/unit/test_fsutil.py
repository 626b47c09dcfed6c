"""oci.fsutil: atomic replacement and locks."""

import multiprocessing
import os
import time

import pytest

from oci.fsutil import atomic_file, locked, write_atomic


def test_write_atomic_replaces_whole_files(tmp_path):
    target = tmp_path / "f"
    write_atomic(str(target), b"one")
    write_atomic(str(target), b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert os.listdir(tmp_path) == ["f"]


def test_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(str(target)) as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def _hold(path: str, seconds: float) -> None:
    with locked(path):
        time.sleep(seconds)


def test_locked_excludes_other_processes(tmp_path):
    lock = str(tmp_path / "lock")
    holder = multiprocessing.Process(target=_hold, args=(lock, 0.5), daemon=True)
    holder.start()
    try:
        time.sleep(0.2)
        start = time.monotonic()
        with locked(lock):
            waited = time.monotonic() - start
        holder.join(30)
        assert holder.exitcode == 0
    finally:
        holder.kill()
    assert waited > 0.1


def test_shared_locks_coexist(tmp_path):
    lock = str(tmp_path / "lock")
    with locked(lock, shared=True):
        with locked(lock, shared=True):
            pass
