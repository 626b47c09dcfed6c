#!/usr/bin/env python3
"""oci-bundle against its peers, per container: the config.json of a small busybox image.

Runs, side by side, many times each (bundles on a tmpfs scratch when /dev/shm exists):
  python     python3 -c pass (the interpreter's own start-up, the floor for any Python command)
  runc spec  `runc spec` (a fixed template: no image, no validation)
  umoci      `umoci unpack` (unpacks the one small layer and converts the config)
  oci-bundle `oci-bundle LAYOUT BUNDLE --rootfs ROOTFS` (conversion, defaults, seccomp, validation, etc files)
and prints medians of wall time and of CPU time (the latter steadier on a shared machine) and ratios.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def median_ms(make_argv, cwd: Path) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, children) in milliseconds."""
    import resource

    walls, cpus = [], []
    for i in range(RUNS):
        argv = make_argv(i)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    from tests.unit.bundle_testimage import make_image

    scratch = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=scratch) as tmp_name:
        tmp = Path(tmp_name)
        layout, rootfs = make_image(tmp, {"Cmd": ["sh"], "User": "alice", "Env": ["PATH=/bin"]}, busybox=True)
        command = [sys.executable, str(ROOT / "bin" / "oci_bundle.py")]
        results = {"python": median_ms(lambda i: [sys.executable, "-c", "pass"], tmp)}
        if shutil.which("runc"):
            for i in range(RUNS):
                (tmp / f"spec{i}").mkdir()
            results["runc spec"] = median_ms(lambda i: ["runc", "spec", "--bundle", str(tmp / f"spec{i}")], tmp)
        if shutil.which("umoci"):
            rootless = [] if os.geteuid() == 0 else ["--rootless"]
            results["umoci unpack"] = median_ms(
                lambda i: ["umoci", "unpack", *rootless, "--image", f"{layout}:latest", str(tmp / f"umoci{i}")], tmp)
        results["oci-bundle"] = median_ms(
            lambda i: command + [f"{layout}:latest", str(tmp / f"ours{i}"), "--rootfs", str(rootfs)], tmp)
    ours_wall, ours_cpu = results["oci-bundle"]
    print(f"{'':14s} {'wall':>9s} {'cpu':>9s}   oci-bundle / peer (wall, cpu)")
    for name, (wall, cpu) in results.items():
        print(f"{name:14s} {wall:6.1f} ms {cpu:6.1f} ms   {ours_wall / wall:5.2f}x {ours_cpu / max(cpu, 0.1):5.2f}x")


if __name__ == "__main__":
    main()
