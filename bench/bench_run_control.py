#!/usr/bin/env python3
"""Latency of the verbs engines call on a running container: oci-run against runc and crun.

Each runtime runs one detached `sleep` container from the same busybox-static bundle (bench_run's,
on a tmpfs scratch); then `pause`, `resume`, `update --pids-limit`, `ps --format json` and
`events --stats` are timed BENCH_RUNS times each, interleaved across runtimes, and the medians
printed with ratios; `state` is timed alongside as the reference of what any verb costs. A verb
a runtime does not have shows as n/a. Like bench_run, everything runs in a private mount
namespace without /sys/fs/cgroup/unified (crun 1.8 needs that).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile

import bench_run  # bench/ is the script's folder

HERE = os.path.dirname(os.path.abspath(__file__))

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
INSIDE = "OCIKIT_BENCH_CONTROL_INSIDE"
VERBS = {
    "state (reference)": ["state"],
    "pause": ["pause"],
    "resume": ["resume"],
    "update": ["update", "--pids-limit", "100"],
    "ps --format json": ["ps", "--format", "json"],
    "events --stats": ["events", "--stats"],
}


def run_quiet(argv: list[str]) -> bool:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def timed_or_none(argv: list[str]) -> float | None:
    try:
        return bench_run.timed(argv)
    except SystemExit:
        return None


def measure(bundle: str, scratch: str) -> dict[str, dict[str, list[float]]]:
    runtimes = {"oci-run": bench_run.oci_run_argv(), "runc": [shutil.which("runc") or "runc"],
                "crun": [shutil.which("crun") or "crun"]}
    started: dict[str, tuple[list[str], str]] = {}
    for name, argv in runtimes.items():
        base = [*argv, "--root", os.path.join(scratch, f"state-{name}")]
        cid = f"bench-ctl-{name}-{os.getpid()}"
        if run_quiet([*base, "run", "-d", "--bundle", bundle, cid]):
            started[name] = (base, cid)
        else:
            print(f"  ({name}: the container did not start; left out)")
    samples: dict[str, dict[str, list[float]]] = {verb: {name: [] for name in started} for verb in VERBS}
    missing: set[tuple[str, str]] = set()
    try:
        for i in range(RUNS + 1):
            for verb, args in VERBS.items():
                for name, (base, cid) in started.items():
                    if (verb, name) in missing:
                        continue
                    ms = timed_or_none([*base, *args, cid])
                    if ms is None:
                        missing.add((verb, name))
                    elif i >= 1:
                        samples[verb][name].append(ms)
    finally:
        for base, cid in started.values():
            run_quiet([*base, "delete", "--force", cid])
    return samples


def report(samples: dict[str, dict[str, list[float]]]) -> None:
    print(f"verbs on a running container, median of {RUNS} runs in ms (interleaved); ratios oci-run / peer")
    names = sorted({name for per_verb in samples.values() for name in per_verb}, key=["oci-run", "runc", "crun"].index)
    print(f"  {'verb':18s}" + "".join(f"{name:>10s}" for name in names) + "   ratios")
    for verb, per_runtime in samples.items():
        med = {name: statistics.median(values) for name, values in per_runtime.items() if values}
        cells = "".join(f"{med[name]:10.1f}" if name in med else f"{'n/a':>10s}" for name in names)
        ratios = ", ".join(f"/{peer} {med['oci-run'] / med[peer]:.2f}x" for peer in names
                           if peer != "oci-run" and peer in med and "oci-run" in med)
        print(f"  {verb:18s}{cells}   {ratios}")


def inside() -> None:
    bench_run.compile_modules()
    subprocess.run(["umount", "/sys/fs/cgroup/unified"], stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-control-") as scratch:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", scratch], check=True)
        try:
            bundle = bench_run.make_bundle(scratch)
            os.symlink("busybox", os.path.join(bundle, "rootfs", "bin", "sleep"))
            path = os.path.join(bundle, "config.json")
            with open(path) as f:
                config = json.load(f)
            config["process"]["args"] = ["/bin/sleep", "1000"]
            with open(path, "w") as f:
                json.dump(config, f)
            samples = measure(bundle, scratch)
        finally:
            subprocess.run(["umount", "-l", scratch])
    report(samples)


def main() -> None:
    bench_run.in_private_mount_namespace("bench_run_control", __file__, INSIDE, inside)


if __name__ == "__main__":
    main()
