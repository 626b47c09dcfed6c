"""oci-run on a pure cgroup v2 host, inside cg2vm's throwaway VM: limits applied, the cgroup removed after.

One VM boot and one `oci-run run` (the VM runs Python 20-30x slower), with the config's schema
validation remembered on the host so the guest skips jsonschema.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocirun_bundle import Bundle, make_rootfs, unique_id  # noqa: E402

from oci import schema  # noqa: E402

CG2VM = "/work/shared/tools/cg2vm"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.mark.skipif(not os.access(CG2VM, os.X_OK), reason="cg2vm is not installed on this machine")
def test_memory_and_pids_limits_on_cgroup_v2(tmp_path, monkeypatch):
    bundle = Bundle(tmp_path / "bundle", make_rootfs(tmp_path / "template"))
    cid = unique_id()
    path = f"/ocikit-cg2/{cid}"
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 48 << 20}, "pids": {"limit": 17}}
    bundle.args("sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max "
                            "/sys/fs/cgroup/pids.max; echo; exit 5").write()
    cache = tmp_path / "cache"
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(cache))
    schema.load_file(str(bundle.path / "config.json"), "runtime-config", remember=True)
    script = (f"PYTHONPATH={ROOT} /usr/bin/python3 {ROOT}/bin/oci_run.py --root /run/ocirun run -b {bundle.path} {cid};"
              f" echo rc=$?; test -d /sys/fs/cgroup{path} && echo LEFT-BEHIND; cat /sys/fs/cgroup/cgroup.controllers")
    result = subprocess.run([CG2VM, "--share", str(tmp_path), "--timeout", "120", "--", "sh", "-c", script],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split()
    assert lines[:4] == ["0::/", str(32 << 20), str(16 << 20), "17"], result.stdout + result.stderr[-1000:]
    assert "rc=5" in lines and "LEFT-BEHIND" not in lines
