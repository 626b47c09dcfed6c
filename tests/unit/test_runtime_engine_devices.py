"""What containerd's configs ask of /dev: stdio on a read-only /dev/null, and /dev/ptmx among linux.devices."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from oci.linux import mounts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_stdio_on_dev_null_is_reopened_read_write():
    """containerd's --null-io gives the runtime a read-only /dev/null as stdout: runc (and oci-run) reopen it."""
    script = textwrap.dedent("""
        import fcntl, os, sys
        from oci.linux import mounts
        modes = lambda: [fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE for fd in (0, 1, 2)]
        before = modes()
        mounts.reopen_dev_null()
        os.write(1, b"")  # writable now
        print(before, modes(), file=sys.stderr)
        """)
    with open(os.devnull) as null:  # O_RDONLY, as Go's os.Open gives it
        done = subprocess.run([sys.executable, "-c", script], stdin=null, stdout=null, stderr=subprocess.PIPE,
                              text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    before, after = f"[{os.O_RDONLY}, {os.O_RDONLY}, {os.O_WRONLY}]", f"[{os.O_RDWR}, {os.O_RDWR}, {os.O_WRONLY}]"
    assert done.stderr.strip() == f"{before} {after}"


def test_stdio_elsewhere_is_left_alone():
    script = "from oci.linux import mounts; import os; mounts.reopen_dev_null(); os.write(1, b'kept')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30,
                          cwd=ROOT)
    assert (done.returncode, done.stdout) == (0, b"kept"), done.stderr


@pytest.mark.root
def test_dev_ptmx_in_devices_stays_the_pts_link(tmp_path):
    """containerd's --privileged lists the host's /dev/ptmx: it must not replace (through the link) devpts's ptmx."""
    (tmp_path / "rootfs" / "dev" / "pts").mkdir(parents=True)
    config = {"root": {"path": "rootfs"},
              "linux": {"devices": [{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2, "fileMode": 0o666},
                                    {"path": "/dev/ocikit-null", "type": "c", "major": 1, "minor": 3}]}}
    builder = mounts.RootfsBuilder(config, str(tmp_path), list, in_userns=False)
    builder.make_default_devices()
    builder.make_devices()
    dev = tmp_path / "rootfs" / "dev"
    assert os.readlink(dev / "ptmx") == "pts/ptmx"
    assert not os.path.lexists(dev / "pts" / "ptmx")
    assert os.major(os.stat(dev / "ocikit-null").st_rdev) == 1
