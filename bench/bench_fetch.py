#!/usr/bin/env python3
"""Pull benchmark: oci-fetch against `skopeo copy docker://... oci:...`, side by side.

The image (five gzip layers made from host folders such as /usr/lib/python3.11 and
/usr/lib/gcc, well over 50 MB compressed, no network needed) is built once and cached in
bench/.cache/fetch-image (an OCI layout). The CNCF registry (`docker-registry`) is started
on 127.0.0.1 with storage on tmpfs, twice: serving plain HTTP, then TLS (with a CA of the
benchmark's own, which both tools are given). Each time the image is pushed with skopeo, then
timed, alternating the two tools, the median of BENCH_RUNS (default 5) runs:

  cold  into an empty layout (every blob travels)
  warm  into a layout that already holds every blob (only manifests travel); a warm run
        takes tens of milliseconds, so each run times BENCH_WARM (default 5) of them, the
        two tools taking turns, and the median is over all of them; the start-up floor
        (bench/floor.py) is timed in the same turns, to show where a warm run's time goes

Layouts are written on tmpfs (/dev/shm). oci-fetch runs as users run it: its launcher
(bin/oci-fetch), which imports the command's byte-code. Prints seconds and the ratio
oci-fetch / skopeo.
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

CACHE = os.path.join(ROOT, "bench", ".cache", "fetch-image")
TAG = "bench"
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
WARM = int(os.environ.get("BENCH_WARM", "5"))
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
LAYERS = [  # base first; folders that are missing on a host are skipped
    ["/usr/lib/python3.11"],
    ["/usr/lib/gcc"],
    ["/usr/share/perl", "/usr/share/perl5", "/usr/lib/git-core"],
    ["/usr/share/locale"],
    ["/usr/share/doc"],
]
MIN_SIZE = 50 << 20


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    if not os.path.isdir(CACHE):
        print("building the benchmark image (cached in bench/.cache) ...", file=sys.stderr)
        hostimage.build(CACHE, TAG, LAYERS, MIN_SIZE)
    # Installed Python packages carry compiled bytecode; a checkout gets it here (even under
    # PYTHONDONTWRITEBYTECODE), so start-up is measured as users see it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "oci"), os.path.join(ROOT, "bin")],
                   check=True)
    size, count = hostimage.size(CACHE, TAG)
    assert size >= MIN_SIZE, f"benchmark image is only {size} bytes"
    scratch = tempfile.mkdtemp(prefix="bench-fetch-", dir=SCRATCH)
    results: dict[str, list[float]] = {}
    floors: dict[str, list[float]] = {name: [] for name in floor.COMMANDS}
    try:
        for tls in (False, True):
            registry = start_registry(os.path.join(scratch, f"registry-{'tls' if tls else 'http'}"), tls=tls)
            try:
                measure(registry, scratch, "https" if tls else "http", results, floors)
            finally:
                registry.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"pull of a {count}-layer image, {size / 1e6:.1f} MB compressed, median of {RUNS} runs "
          f"({RUNS * WARM} warm; local docker-registry over plain HTTP and over TLS, layouts on tmpfs)")
    for scheme in ("http", "https"):
        for mode in ("cold", "warm"):
            o, s = med[f"ours {scheme} {mode}"], med[f"skopeo {scheme} {mode}"]
            print(f"  {mode} {scheme:5}  oci-fetch {o:6.3f} s   skopeo copy {s:6.3f} s   ratio {o / s:4.2f}x")
    print(floor.report(floors, med["ours http warm"]))


def measure(registry: Any, scratch: str, scheme: str, results: dict[str, list[float]],
            floors: dict[str, list[float]]) -> None:
    """Cold and warm pulls from `registry`, the two tools taking turns; the floor beside plain HTTP's."""
    ref = f"{registry.host}/bench/image:{TAG}"
    trust = ["--dest-cert-dir", registry.cert_dir] if scheme == "https" else ["--dest-tls-verify=false"]
    subprocess.run(["skopeo", "copy", "--quiet", *trust, f"oci:{CACHE}:{TAG}", f"docker://{ref}"], check=True)
    ours = [sys.executable, os.path.join(ROOT, "bin", "oci-fetch"), "-q",  # the launcher
            *(["--cert-dir", registry.cert_dir] if scheme == "https" else ["--insecure"]), ref]
    theirs = ["skopeo", "copy", "--quiet",
              *(["--src-cert-dir", registry.cert_dir] if scheme == "https" else ["--src-tls-verify=false"]),
              f"docker://{ref}"]
    for key in ("ours cold", "skopeo cold", "ours warm", "skopeo warm"):
        results[key.replace(" ", f" {scheme} ")] = []
    for run in range(RUNS):
        commands = {}
        for name, argv in (("ours", ours), ("skopeo", theirs))[:: 1 if run % 2 == 0 else -1]:
            target = os.path.join(scratch, f"{name}-{scheme}-{run}")
            commands[name] = (target, argv + ([target] if name == "ours" else [f"oci:{target}:{TAG}"]))
            results[f"{name} {scheme} cold"].append(timed(commands[name][1]))
        for _ in range(WARM):
            for name, (_, command) in commands.items():
                results[f"{name} {scheme} warm"].append(timed(command))
            if scheme == "http":
                for name, command in floor.COMMANDS.items():
                    floors[name].append(timed(command))
        stored = [sorted(os.listdir(os.path.join(commands[name][0], "blobs", "sha256"))) for name in commands]
        for target, _ in commands.values():
            shutil.rmtree(target)
        assert stored[0] == stored[1], "oci-fetch and skopeo stored different blobs"

if __name__ == "__main__":
    main()
