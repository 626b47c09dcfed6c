"""Fixtures of the unit tests: the kernel behind a fake."""

from __future__ import annotations

import pytest

from oci.linux import kernel
from oci.linux.fakekernel import RecordingKernel


@pytest.fixture
def fake_kernel():
    """A RecordingKernel in place of the real one for the test (oci.linux.kernel.kernel() returns it)."""
    fake = RecordingKernel()
    previous = kernel.use(fake)
    try:
        yield fake
    finally:
        kernel.use(previous)
