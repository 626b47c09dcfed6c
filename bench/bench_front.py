#!/usr/bin/env python3
"""`ocikit run --rm IMAGE true` with the image present, against `podman run --rm` (runc) and
`docker run --rm` (a private dockerd, runc).

The same busybox-static image for all three: pushed to a local registry and pulled by ocikit
and the private dockerd, imported by a private podman (tests/integration/podman_env). Every
engine runs without a network (`--network none`: podman's test configuration has no network
backend, the private dockerd no bridge), and ocikit once more on its default network (a
bridge, an address and the hooks of oci-net), interleaved, BENCH_RUNS times each; medians and
the ratios ocikit/podman and ocikit/docker are printed. Needs root.

ocikit is run as users run it: the installed launcher (.venv/bin/ocikit), byte-compiled.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_RUNS", "15"))


def ocikit_argv() -> list[str]:
    installed = os.path.join(ROOT, ".venv", "bin", "ocikit")
    if os.access(installed, os.X_OK):
        return [installed]
    return [sys.executable, os.path.join(ROOT, "bin", "ocikit.py")]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> int:
    if os.geteuid() != 0:
        print("bench_front: needs root (skipped)")
        return 0
    from tests.integration import dockerd_env, images, podman_env
    from tests.integration.registry_server import start_registry

    work = tempfile.mkdtemp(prefix="ocikit-bench-front-")
    registry = podman = docker = None
    root = os.path.join(work, "ocikit")
    try:
        registry = start_registry(os.path.join(work, "registry"))
        print("bench_front: preparing podman, dockerd and ocikit with the same busybox image ...", file=sys.stderr)
        podman = podman_env.PodmanEnv(podman_env.Path(work) / "podman")
        podman.setup()
        docker = dockerd_env.DockerEnv(dockerd_env.Path(work) / "docker", registry, runtimes={},
                                       default_runtime="runc")
        docker.setup()  # pushes the image to the registry and pulls it
        kit = [*ocikit_argv(), "--root", root]
        subprocess.run([*kit, "pull", "-q", docker.image], check=True, capture_output=True)
        images.skopeo_inspect  # noqa: B018 -- the same image in every engine: busybox-static, from podman_env

        cases: dict[str, Callable[[], float]] = {
            "ocikit": lambda: timed([*kit, "run", "--rm", "--network", "none", docker.image, "true"]),
            "ocikit, default network": lambda: timed([*kit, "run", "--rm", docker.image, "true"]),
            "podman (runc)": lambda: timed(podman.argv("run", "--rm", "--network", "none", podman_env.IMAGE, "true"),
                                           podman.environ),
            "docker (runc)": lambda: timed(docker.argv("run", "--rm", "--network", "none", docker.image, "true"),
                                           docker.environ),
        }
        for run in cases.values():  # warm every cache once
            run()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(RUNS):
            for name, run in cases.items():
                samples[name].append(run())
        medians = {name: statistics.median(values) for name, values in samples.items()}
        print(f"run --rm IMAGE true, image present, median of {RUNS} (ms):")
        for name, value in medians.items():
            print(f"  {name:26s} {value * 1000:8.1f}")
        ours = medians["ocikit"]
        print(f"  ocikit / podman: {ours / medians['podman (runc)']:.2f}x (target 1.0x)")
        print(f"  ocikit / docker: {ours / medians['docker (runc)']:.2f}x")
        print(f"  ocikit with its default network / podman: "
              f"{medians['ocikit, default network'] / medians['podman (runc)']:.2f}x")
    finally:
        if docker is not None:
            docker.teardown()
        if podman is not None:
            podman.teardown()
        if os.path.isdir(root):
            subprocess.run([*ocikit_argv(), "--root", root, "network", "rm", "bridge"], capture_output=True)
            from oci.engine.root import StateRoot

            try:
                os.rmdir(StateRoot(root).runtime)
            except OSError:
                pass
        if registry is not None:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
