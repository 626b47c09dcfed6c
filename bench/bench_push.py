#!/usr/bin/env python3
"""Push benchmark: oci-push against `skopeo copy oci:... docker://...`, side by side.

The image (gzip layers made from host folders such as /usr/lib/python3.11, /usr/lib/gcc and
/usr/share/locale, over 50 MB compressed, no network needed) is built once and cached in
bench/.cache/push-image (an OCI layout). Each run uses the CNCF registry (`docker-registry`)
on 127.0.0.1 with its storage on tmpfs, serving plain HTTP and then TLS (a CA of the
benchmark's own, given to both tools), and times, alternating the two tools, median of
BENCH_RUNS (default 5) runs:

  cold  into an empty registry (a fresh registry per tool for each run: every blob travels)
  warm  into a repository that already holds every blob (only manifests travel); a warm
        push takes tens of milliseconds, so each run times BENCH_WARM (default 5) of them,
        the two tools taking turns, and the median is over all of them; the start-up floor
        (bench/floor.py) is timed in the same turns, to show where a warm push's time goes
  mount into a new repository of a registry that holds every blob in another one (the cold
        push's): each tool knows that from its blob-location cache, warm from the cold push
        (oci-push's in a folder of the benchmark, skopeo's blob-info cache where it keeps it),
        and mounts the blobs instead of uploading them; BENCH_WARM pushes a run, each to a
        repository of its own

Prints seconds and the ratio oci-push / skopeo (below 1.0: oci-push is faster).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import floor, hostimage
from tests.integration.registry_server import start_registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CACHE = os.path.join(ROOT, "bench", ".cache", "push-image")
TAG = "bench"
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
WARM = int(os.environ.get("BENCH_WARM", "5"))
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
LAYERS = [  # base first; folders missing on a host are skipped
    ["/usr/lib/python3.11"],
    ["/usr/lib/gcc"],
    ["/usr/share/locale"],
    ["/usr/share/perl", "/usr/share/perl5", "/usr/lib/git-core"],
    ["/etc", "/usr/share/zoneinfo"],
]
MIN_SIZE = 50 << 20
PUSH = [sys.executable, os.path.join(ROOT, "bin", "oci-push")]  # the launcher, as users run it
CASES = ("cold http", "warm http", "mount http", "cold https", "warm https", "mount https")


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_push: {' '.join(argv)} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def ocikit(registry: Any, repo: str) -> list[str]:
    trust = ["--cert-dir", registry.cert_dir] if registry.scheme == "https" else ["--insecure"]
    return PUSH + [*trust, "-q", f"{CACHE}:{TAG}", f"{registry.host}/{repo}:{TAG}"]


def skopeo(registry: Any, repo: str) -> list[str]:
    trust = ["--dest-cert-dir", registry.cert_dir] if registry.scheme == "https" else ["--dest-tls-verify=false"]
    return ["skopeo", "copy", "--quiet", *trust, "--preserve-digests", f"oci:{CACHE}:{TAG}",
            f"docker://{registry.host}/{repo}:{TAG}"]


def main() -> None:
    if not os.path.exists(os.path.join(CACHE, "index.json")):
        print("bench_push: building the benchmark image (once) ...", file=sys.stderr)
        hostimage.build(CACHE, TAG, LAYERS, MIN_SIZE)
    # Installed Python packages carry compiled bytecode; a checkout gets it here (even under
    # PYTHONDONTWRITEBYTECODE), so start-up is measured as users see it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "oci"), os.path.join(ROOT, "bin")],
                   check=True)
    size, count = hostimage.size(CACHE, TAG)
    tools = {"oci-push": ocikit, "skopeo": skopeo}
    times: dict[str, list[float]] = {f"{name} {case}": [] for name in tools for case in CASES}
    floors: dict[str, list[float]] = {name: [] for name in floor.COMMANDS}
    work = tempfile.mkdtemp(prefix="bench-push-", dir=SCRATCH)
    os.environ["OCIKIT_BLOB_LOCATIONS"] = os.path.join(work, "blob-locations")  # oci-push's cache, the bench's own
    try:
        for run in range(RUNS):
            for tls in (False, True):
                scheme = "https" if tls else "http"
                order = list(tools) if run % 2 == 0 else list(reversed(tools))
                registries = {name: start_registry(os.path.join(work, f"{name}-{scheme}-{run}"), tls=tls)
                              for name in order}
                try:
                    for name in order:
                        times[f"{name} cold {scheme}"].append(_timed(tools[name](registries[name], "bench/cold")))
                    for _ in range(WARM):
                        for name in order:
                            times[f"{name} warm {scheme}"].append(_timed(tools[name](registries[name], "bench/cold")))
                        if not tls:
                            for name, command in floor.COMMANDS.items():
                                floors[name].append(_timed(command))
                    for turn in range(WARM):
                        for name in order:
                            target = f"bench/new-{turn}"
                            times[f"{name} mount {scheme}"].append(_timed(tools[name](registries[name], target)))
                finally:
                    for name, registry in registries.items():
                        registry.stop()
                        shutil.rmtree(os.path.join(work, f"{name}-{scheme}-{run}"), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"bench_push: {count} layers, {size / 1e6:.1f} MB compressed, median of {RUNS} runs "
          f"({RUNS * WARM} warm), registry on tmpfs, plain HTTP and TLS")
    print(f"{'case':<11} {'oci-push':>10} {'skopeo':>10} {'ratio':>7}")
    for case in CASES:
        ours, theirs = statistics.median(times[f"oci-push {case}"]), statistics.median(times[f"skopeo {case}"])
        print(f"{case:<11} {ours:>9.3f}s {theirs:>9.3f}s {ours / theirs:>6.2f}x")
    print(floor.report(floors, statistics.median(times["oci-push warm http"])))


if __name__ == "__main__":
    main()
