#!/usr/bin/env python3
"""Build benchmark: oci-build against `buildah bud --layers`, same context, same base image.

The base image (a busybox-static layer and a ~50 MB layer of /usr/lib/python3.11, cached in
bench/.cache/build-base) is served by the CNCF registry (`docker-registry`) on 127.0.0.1;
the context is a small application (300 source files, two 1 MB assets). The Dockerfile
pulls the base, runs two RUN steps, copies the assets and the sources, and sets config.
Both tools keep everything on tmpfs (/dev/shm): buildah's storage (overlay driver, runc),
oci-build's layout, layer cache and scratch. Timed, the tools taking turns, medians of
BENCH_RUNS (default 3):

  cold       an empty store: the base is pulled and unpacked, every step runs
  unchanged  the same build again: every step comes from the cache
  one file   one source file changed: the COPY of the sources and the RUN after it run again

Prints seconds and the ratio oci-build / buildah (targets: cold 1.0x, unchanged 0.5x, one
file 1.0x). Needs root.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench import hostimage
from tests.integration.build_env import Buildah, busybox_rootfs
from tests.integration.registry_server import start_registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CACHE = os.path.join(ROOT, "bench", ".cache", "build-base")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
DATA_LAYER = ["/usr/lib/python3.11"]
TARGETS = {"cold": 1.0, "unchanged": 0.5, "one file": 1.0}
DOCKERFILE = """\
ARG BASE
FROM $BASE
ENV APP=/app LANG=C.UTF-8
RUN mkdir -p /opt/tools && for i in $(seq 1 200); do echo "tool $i" > /opt/tools/t$i; done
RUN echo "runner:x:1001:1001::/home/runner:/bin/sh" >> /etc/passwd && mkdir -p /home/runner
WORKDIR /app
COPY assets/ assets/
COPY src/ src/
RUN find src -type f | wc -l > manifest.txt && cat src/*.txt | md5sum >> manifest.txt
LABEL org.opencontainers.image.title=bench
USER runner
CMD ["sh"]
"""


def build_base() -> None:
    """busybox + /usr/lib/python3.11, as an OCI layout in bench/.cache/build-base."""
    work = tempfile.mkdtemp(prefix="bench-build-base-", dir=SCRATCH)
    try:
        rootfs = busybox_rootfs(__import__("pathlib").Path(work) / "rootfs")
        layout = os.path.join(work, "layout")
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(hostimage.EPOCH)}
        commit = [sys.executable, os.path.join(ROOT, "bin", "oci_commit.py"), "-q"]
        subprocess.run([*commit, "--from-dir", str(rootfs), "--cmd", "/bin/sh", "--env",
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"{layout}:busybox"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        data = os.path.join(work, "data.tar")
        hostimage.tar_folders(DATA_LAYER, data)
        subprocess.run([*commit, "--from", f"{layout}:busybox", "--from-tar", data, f"{layout}:bench"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(CACHE, ignore_errors=True)
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        shutil.copytree(layout, CACHE, ignore=shutil.ignore_patterns(".ocikit"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def make_context(path: str) -> None:
    os.makedirs(os.path.join(path, "src"))
    os.makedirs(os.path.join(path, "assets"))
    for i in range(300):
        with open(os.path.join(path, "src", f"module-{i:03d}.txt"), "w") as f:
            f.write(f"module {i}\n" + "line of code\n" * 300)
    for i in range(2):
        with open(os.path.join(path, "assets", f"blob-{i}.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
    with open(os.path.join(path, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench_build: {' '.join(argv[:3])} ... failed:\n{done.stderr}")
    return elapsed


class Ours:
    name = "oci-build"

    def __init__(self, scratch: str, base: str, context: str) -> None:
        self.scratch, self.base, self.context = scratch, base, context
        self.command = os.path.join(os.path.dirname(sys.executable), "oci-build")
        if not os.path.exists(self.command):
            self.command = os.path.join(ROOT, "bin", "oci-build")

    def reset(self) -> None:
        for name in ("layout", "layers"):
            shutil.rmtree(os.path.join(self.scratch, name), ignore_errors=True)

    def build(self) -> float:
        return timed([self.command, "-q", "--insecure", "--build-arg", f"BASE={self.base}",
                      "--cache", os.path.join(self.scratch, "layers"), "-t",
                      os.path.join(self.scratch, "layout") + ":bench", self.context])


class Theirs:
    name = "buildah"

    def __init__(self, scratch: str, base: str, context: str) -> None:
        self.scratch, self.base, self.context = scratch, base, context
        self.buildah: Buildah | None = None
        self.count = 0

    def reset(self) -> None:
        if self.buildah is not None:
            self.buildah.close()
        self.count += 1
        from pathlib import Path

        self.buildah = Buildah(Path(self.scratch) / f"buildah-{self.count}", driver="overlay")

    def build(self) -> float:
        assert self.buildah is not None
        return timed(["buildah", "bud", "--layers", "--format", "oci", "--tls-verify=false", "-q",
                      "--build-arg", f"BASE={self.base}", "-t", "localhost/bench:latest", self.context],
                     env=self.buildah.environ)

    def close(self) -> None:
        if self.buildah is not None:
            self.buildah.close()


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_build: needs root (both tools mount overlays and start containers)")
    if not shutil.which("buildah"):
        sys.exit("bench_build: buildah is not installed (make install)")
    if not os.path.isdir(CACHE):
        print("building the benchmark base image (cached in bench/.cache) ...", file=sys.stderr)
        build_base()
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "oci"), os.path.join(ROOT, "bin")],
                   check=True)
    scratch = tempfile.mkdtemp(prefix="bench-build-", dir=SCRATCH)
    results: dict[str, dict[str, list[float]]] = {}
    registry = start_registry(os.path.join(scratch, "registry"))
    tools: list = []
    try:
        base = f"{registry.host}/bench/base:1"
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{CACHE}:bench", f"docker://{base}"],
                       check=True)
        context = os.path.join(scratch, "context")
        make_context(context)
        tools = [Ours(os.path.join(scratch, "ours"), base, context),
                 Theirs(os.path.join(scratch, "theirs"), base, context)]
        for tool in tools:
            os.makedirs(tool.scratch, exist_ok=True)
        change = 0
        for _ in range(RUNS):
            for tool in tools:
                tool.reset()
                figures = results.setdefault(tool.name, {})
                figures.setdefault("cold", []).append(tool.build())
                figures.setdefault("unchanged", []).append(tool.build())
                change += 1
                with open(os.path.join(context, "src", "module-000.txt"), "a") as f:
                    f.write(f"change {change}\n")
                figures.setdefault("one file", []).append(tool.build())
    finally:
        for tool in tools:
            if isinstance(tool, Theirs):
                tool.close()
        registry.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"oci-build against buildah bud --layers (tmpfs, medians of {RUNS}; base 'busybox + python3.11 lib', "
          "7 steps, 300 sources)")
    print(f"{'build':<12}{'oci-build':>12}{'buildah':>12}{'ratio':>9}{'target':>9}")
    for kind, target in TARGETS.items():
        ours = statistics.median(results["oci-build"][kind])
        theirs = statistics.median(results["buildah"][kind])
        ratio = ours / theirs
        print(f"{kind:<12}{ours:>11.2f}s{theirs:>11.2f}s{ratio:>8.2f}x{target:>8.1f}x"
              f"  {'met' if ratio <= target else 'not met'}")


if __name__ == "__main__":
    main()
