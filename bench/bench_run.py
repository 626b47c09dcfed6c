#!/usr/bin/env python3
"""Start latency of `oci-run run` against `runc run` and `crun run` on the same bundle.

Each runtime runs /bin/true from a busybox-static rootfs (on a tmpfs scratch) BENCH_RUNS
times, interleaved, and the medians are printed with ratios. The whole benchmark runs in
a private mount namespace with the hybrid host's /sys/fs/cgroup/unified unmounted, which
crun 1.8 needs; the config says ociVersion 1.1.0 for the same reason. All three runtimes
see the same environment. oci-run is run the way an engine runs it: the installed
console script (.venv/bin/oci-run) when there is one, with its modules byte-compiled as an
installed package has them (the environment may set PYTHONDONTWRITEBYTECODE, which would
otherwise make every call compile the sources again).
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
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_RUNS", "30"))
INSIDE = "OCIKIT_BENCH_RUN_INSIDE"
PYTHON = "python -c pass"  # the interpreter's own start-up
PYTHON_S = "python -S -c pass"  # the same without site: the floor of a launcher started with -S


def oci_run_argv() -> list[str]:
    installed = os.path.join(ROOT, ".venv", "bin", "oci-run")
    if os.access(installed, os.X_OK):
        return [installed]
    return [sys.executable, os.path.join(ROOT, "bin", "oci_run.py")]


def make_bundle(scratch: str) -> str:
    from oci.runtime.defaults import default_config

    bundle = os.path.join(scratch, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "true"))
    for folder in ("proc", "sys", "dev", "tmp"):
        os.mkdir(os.path.join(rootfs, folder))
    config = default_config()
    config["ociVersion"] = "1.1.0"
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.decode(errors='replace').strip()}")
    return elapsed


def compile_modules() -> None:
    """Byte-compile oci/ and bin/ as `pip install` does for an installed package."""
    import compileall

    for folder in ("oci", "bin"):
        compileall.compile_dir(os.path.join(ROOT, folder), quiet=1)


def inside() -> None:
    compile_modules()
    subprocess.run(["umount", "/sys/fs/cgroup/unified"], stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", scratch], check=True)
        try:
            samples = measure(make_bundle(scratch), scratch)
        finally:
            subprocess.run(["umount", "-l", scratch])
    report(samples)


def measure(bundle: str, scratch: str) -> dict[str, list[float]]:
    """Interleaved runs of every runtime; two warm-up rounds (oci-run remembers the validated config)."""
    runtimes = {
        "oci-run": oci_run_argv(),
        "runc": [shutil.which("runc") or "runc"],
        "crun": [shutil.which("crun") or "crun"],
    }
    interpreter = os.path.join(ROOT, ".venv", "bin", "python")
    python = interpreter if os.access(interpreter, os.X_OK) else sys.executable
    baselines = {PYTHON: [python, "-c", "pass"], PYTHON_S: [python, "-S", "-c", "pass"]}
    samples: dict[str, list[float]] = {name: [] for name in [*runtimes, *baselines]}
    for i in range(RUNS + 2):
        for name, argv in runtimes.items():
            cid = f"bench-{name}-{os.getpid()}-{i}"
            ms = timed([*argv, "--root", os.path.join(scratch, f"state-{name}"), "run", "--bundle", bundle, cid])
            if i >= 2:
                samples[name].append(ms)
        if i >= 2:
            for name, argv in baselines.items():
                samples[name].append(timed(argv))
    return samples


def launcher_flags() -> tuple[str, bool]:
    """How the oci-run the benchmark runs starts Python: (description, whether with -S)."""
    argv = oci_run_argv()
    if len(argv) > 1:
        return f"{argv[0]} {argv[1]} (site on, not the installed launcher)", False
    with open(argv[0], "rb") as f:
        shebang = f.readline().decode(errors="replace").strip()
    with_s = " -S" in shebang
    return shebang + ("   (-S: site's .pth code skipped)" if with_s else
                      "   (without -S: pip drops a launcher's shebang flags unless the install adds them)"), with_s


def report(samples: dict[str, list[float]]) -> None:
    med = {name: statistics.median(values) for name, values in samples.items()}
    print(f"`RUNTIME run` of /bin/true, busybox-static rootfs, median of {RUNS} runs (interleaved)")
    launcher, with_s = launcher_flags()
    print(f"  oci-run launcher: {launcher}")
    print("  (the same venv interpreter's `-c pass`, with and without -S, is measured alongside: oci-run pays one)")
    for name, value in med.items():
        print(f"  {name:17s} {value:7.1f} ms   (min {min(samples[name]):6.1f}, max {max(samples[name]):6.1f})")
    floor = PYTHON_S if with_s else PYTHON
    print(f"  oci-run beyond interpreter start-up ({floor}): {med['oci-run'] - med[floor]:.1f} ms")
    print(f"  oci-run / runc = {med['oci-run'] / med['runc']:.2f}x   (target <= 1.0x)")
    print(f"  oci-run / crun = {med['oci-run'] / med['crun']:.2f}x   (target <= 1.5x)")


def in_private_mount_namespace(name: str, script: str, marker: str, inside: Callable[[], None]) -> None:
    """Run `inside` in a private mount namespace (the script again, under `unshare -m`): crun
    refuses the hybrid cgroup layout while /sys/fs/cgroup/unified is mounted."""
    if os.geteuid() != 0:
        raise SystemExit(f"{name} needs root (containers)")
    if os.environ.get(marker):
        inside()
        return
    result = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, os.path.abspath(script)],
                            env={**os.environ, marker: "1"})
    sys.exit(result.returncode)


def main() -> None:
    in_private_mount_namespace("bench_run", __file__, INSIDE, inside)


if __name__ == "__main__":
    main()
