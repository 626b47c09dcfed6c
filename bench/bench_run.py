#!/usr/bin/env python3
"""Start latency of `RUNTIME run` of /bin/true: oci-run against runc and crun on the same bundle.

Each runtime runs the same bundle (busybox root filesystem, the conformance suite's default
config.json) BENCH_RUNS times (default 20) after two warm-up runs; the median wall time of
`run` (create + start + wait + delete) is printed with the ratios oci-run/runc and oci-run/crun.
All three go through the same wrapper (a private mount namespace without the cgroup2 mount that
crun 1.8.1 refuses), so the wrapper's cost is the same for each. Needs root.
Targets (issue 7): oci-run at most 1.0x runc and 1.5x crun.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "conformance"))

from ocitest.bundle import default_config  # noqa: E402
from ocitest.runtime import oci_run_command  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
WRAPPER = ["unshare", "-m", "sh", "-c", "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"", "wrapper"]


def make_bundle(scratch: Path) -> Path:
    bundle = scratch / "bundle"
    rootfs = bundle / "rootfs"
    for name in ("bin", "proc", "sys", "dev", "tmp"):
        (rootfs / name).mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "true").symlink_to("busybox")
    config = default_config(["/bin/true"], "1.1.0")
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def median_ms(argv: list[str], state_root: Path, bundle: Path, env: dict[str, str]) -> float:
    samples = []
    for i in range(RUNS + 2):
        cid = f"ocikit-bench-{uuid.uuid4().hex[:8]}"
        command = WRAPPER + argv + ["--root", str(state_root), "run", "--bundle", str(bundle), cid]
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        elapsed = (time.perf_counter() - start) * 1000
        if proc.returncode != 0:
            raise SystemExit(f"{argv[-1]} run failed: {proc.stderr.decode(errors='replace').strip()}")
        if i >= 2:
            samples.append(elapsed)
    return statistics.median(samples)


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench_run: needs root (it runs containers)")
    oci_run, oci_env = oci_run_command()
    runtimes = {"runc": (["runc"], {}), "crun": (["crun"], {}), "oci-run": (oci_run, oci_env)}
    scratch = Path(tempfile.mkdtemp(prefix="ocikit-bench-run-", dir="/dev/shm"))
    try:
        bundle = make_bundle(scratch)
        results = {}
        for name, (argv, extra_env) in runtimes.items():
            results[name] = median_ms(argv, scratch / f"state-{name}", bundle, {**os.environ, **extra_env})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"run of /bin/true (create, start, wait, delete), median of {RUNS} runs")
    for name, ms in results.items():
        print(f"  {name:8} {ms:7.1f} ms")
    print(f"  oci-run / runc  {results['oci-run'] / results['runc']:5.2f}x  (target <= 1.00x)")
    print(f"  oci-run / crun  {results['oci-run'] / results['crun']:5.2f}x  (target <= 1.50x)")


if __name__ == "__main__":
    main()
