"""oci-run on a pure cgroup v2 host, inside cg2vm's throwaway VM: limits applied, the cgroup removed after.

One VM boot and one `oci-run run` (the VM runs Python 20-30x slower), with the config's schema
validation remembered on the host so the guest skips jsonschema.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from oci.runtime import config
from tests.conftest import CG2VM
from tests.integration.ocirun_bundle import Bundle, make_rootfs, unique_id

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.mark.skipif(not os.access(CG2VM, os.X_OK), reason=f"no cg2vm at {CG2VM}")
def test_memory_and_pids_limits_on_cgroup_v2(tmp_path, monkeypatch):
    bundle = Bundle(tmp_path / "bundle", make_rootfs(tmp_path / "template"))
    cid = unique_id()
    path = f"/ocikit-cg2/{cid}"
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"].update({"memory": {"limit": 32 << 20, "swap": 48 << 20},
                                                "pids": {"limit": 17}})  # beside the default device rules
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_MKNOD")
    bundle.config["process"]["capabilities"]["effective"].append("CAP_MKNOD")
    bundle.config["process"]["capabilities"]["permitted"].append("CAP_MKNOD")
    bundle.args("sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max "
                            "/sys/fs/cgroup/pids.max; head -c1 /dev/zero | wc -c; mknod /tmp/m c 1 1; "
                            "head -c1 /tmp/m 2>/dev/null || echo mem-refused; exit 5").write()
    cache = tmp_path / "cache"
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(cache))
    config.load(str(bundle.path))  # remembered as oci-run remembers it: the guest skips jsonschema
    script = (f"PYTHONPATH={ROOT} /usr/bin/python3 {ROOT}/bin/oci_run.py --root /run/ocirun run -b {bundle.path} {cid};"
              f" echo rc=$?; test -d /sys/fs/cgroup{path} && echo LEFT-BEHIND; cat /sys/fs/cgroup/cgroup.controllers")
    result = subprocess.run([CG2VM, "--share", str(tmp_path), "--timeout", "120", "--", "sh", "-c", script],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split()
    assert lines[:6] == ["0::/", str(32 << 20), str(16 << 20), "17", "1", "mem-refused"], \
        result.stdout + result.stderr[-1000:]
    assert "rc=5" in lines and "LEFT-BEHIND" not in lines


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


@pytest.mark.skipif(_cgroup2_mount() is None, reason="no cgroup2 hierarchy mounted")
def test_device_rules_as_a_bpf_program(tmp_path):
    """The cgroup v2 device program (attached here to the host's cgroup2 hierarchy, hybrid or not)."""
    from oci.linux.cgroups import devices_bpf
    from oci.linux.cgroups.base import DEFAULT_ALLOWED

    folder = os.path.join(_cgroup2_mount(), unique_id("ocikit-bpf"))
    os.mkdir(folder)
    try:
        rules = [{"allow": False, "access": "rwm"}, *DEFAULT_ALLOWED,
                 {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}]
        devices_bpf.attach(folder, rules)
        script = (f"echo $$ > {folder}/cgroup.procs; head -c1 /dev/null && echo null-ok; "
                  f"head -c1 /dev/zero | wc -c; echo x > /dev/zero || echo zero-write-refused; "
                  f"mknod {tmp_path}/mem c 1 1 && head -c1 {tmp_path}/mem || echo mem-refused")
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert result.stdout.split() == ["null-ok", "1", "zero-write-refused", "mem-refused"], result.stderr
    finally:
        os.rmdir(folder)
