"""The kernel seam (oci.linux.kernel): the real kernel's calls and errors, the fake that stands in for it,
and the import discipline that keeps it off the start path of verbs that make no call."""

from __future__ import annotations

import errno
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oci.linux import kernel
from oci.linux.fakekernel import RecordingKernel
from oci.linux.mountopts import MS_BIND

ROOT = Path(__file__).resolve().parents[2]


def public_methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if callable(value) and not name.startswith("_")}


def test_the_fake_answers_every_call_of_the_kernel():
    """A call added to Kernel and not to the fake would reach the real kernel from a unit test."""
    missing = public_methods(kernel.Kernel) - public_methods(RecordingKernel)
    assert not missing
    for name in public_methods(kernel.Kernel):
        real, fake = inspect.signature(getattr(kernel.Kernel, name)), inspect.signature(getattr(RecordingKernel, name))
        assert list(real.parameters) == list(fake.parameters), name


def test_the_fake_never_reaches_libc():
    with pytest.raises(AttributeError, match="RecordingKernel has no c"):
        RecordingKernel().c  # noqa: B018


def test_use_swaps_the_kernel_every_caller_gets():
    fake = RecordingKernel()
    previous = kernel.use(fake)
    try:
        assert kernel.kernel() is fake
    finally:
        assert kernel.use(previous) is fake
    assert kernel.kernel() is previous


def test_a_failing_call_raises_oserror_with_its_errno_and_name():
    real = kernel.Kernel()
    with pytest.raises(OSError) as caught:
        real.mount("/nonexistent-src", "/nonexistent-dst", None, MS_BIND)
    assert caught.value.errno in (errno.ENOENT, errno.EPERM)
    assert "mount /nonexistent-src on /nonexistent-dst (bind/remount)" in caught.value.strerror
    with pytest.raises(OSError) as caught:
        real.setns(-1, 0)
    assert caught.value.errno == errno.EBADF and caught.value.strerror.startswith("setns: ")
    with pytest.raises(OSError) as caught:
        real.close_range(5, 4)  # last below first
    assert caught.value.errno == errno.EINVAL


def test_the_real_kernel_answers_what_any_process_may_ask(tmp_path):
    real = kernel.Kernel()
    soft, hard = real.getrlimit(kernel.RLIMITS["RLIMIT_NOFILE"])
    assert 0 < soft <= hard
    effective, permitted, _ = real.capget()
    assert effective & ~permitted == 0
    assert real.prctl(kernel.PR_CAPBSET_READ, 0) in (0, 1)
    (tmp_path / "file").write_text("x")
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = real.openat2(root, "/file", os.O_RDONLY | os.O_CLOEXEC, kernel.RESOLVE_IN_ROOT)
        assert os.read(fd, 1) == b"x"
        os.close(fd)
        real.syncfs(root)
        with pytest.raises(FileNotFoundError):
            real.openat2(root, "missing", os.O_RDONLY, kernel.RESOLVE_IN_ROOT)
    finally:
        os.close(root)


def test_importing_the_seam_loads_no_ctypes():
    """Verbs such as `kill` or CNI DEL import oci.linux.kernel without calling it: ctypes stays unloaded
    until a call needs libc (the performance rule of oci.linux.kernel)."""
    script = ("import sys; import oci.linux.kernel, oci.linux.namespaces, oci.linux.inroot; "
              "assert 'ctypes' not in sys.modules, 'ctypes imported'; "
              "oci.linux.kernel.kernel().load(); assert 'ctypes' in sys.modules")
    subprocess.run([sys.executable, "-S", "-c", script], check=True, cwd=ROOT)


def test_scripted_failures_match_arguments_and_run_out():
    fake = RecordingKernel()
    fake.fail("mount", errno.EPERM, when=lambda source, target, *rest: target == "/b", times=1)
    fake.mount(None, "/a", None)
    with pytest.raises(PermissionError):
        fake.mount(None, "/b", None)
    fake.mount(None, "/b", None)
    assert fake.called("mount") == [(None, "/a", None, 0, None), (None, "/b", None, 0, None),
                                    (None, "/b", None, 0, None)]


def test_the_fake_follows_capset_and_setuid_rules():
    fake = RecordingKernel(capabilities=0b111)
    with pytest.raises(PermissionError):
        fake.capset(0b1000, 0b1000, 0)  # more than permitted
    fake.capset(0b001, 0b011, 0)
    assert (fake.effective, fake.permitted) == (0b001, 0b011)
    fake.setresuid(1000)  # without keep-caps: nothing left
    assert (fake.effective, fake.permitted) == (0, 0)
    fake = RecordingKernel(capabilities=0b111)
    fake.prctl(kernel.PR_SET_KEEPCAPS, 1)
    fake.setresuid(1000)
    assert (fake.effective, fake.permitted) == (0, 0b111)


def test_the_fake_names_files_held_open_by_path(tmp_path):
    fake = RecordingKernel()
    fd = os.open(tmp_path, os.O_PATH)
    try:
        fake.mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs")
        fake.setns(fd, 0)
    finally:
        os.close(fd)
    assert fake.called("mount") == [("tmpfs", str(tmp_path), "tmpfs", 0, None)]
    assert fake.called("setns") == [(str(tmp_path), 0)]
