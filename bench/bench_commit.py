#!/usr/bin/env python3
"""Making a ~50 MB layer from a directory: oci-commit against umoci repack and tar | pigz.

The tree is a copy of /usr/lib/python3.11 (real files: many small, some large) on a tmpfs
scratch. Each tool makes a gzip layer of the whole tree into an OCI layout, several times:
  oci-commit   oci-commit --from-dir TREE LAYOUT:TAG (gzip, deterministic)
  umoci        umoci repack of a bundle whose rootfs holds the tree
  tar | pigz   tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c | pigz -n -6 (the floor:
               parallel gzip on every CPU, as oci-commit compresses)
               (the usual reproducible-tarball recipe; no layout, no digests)
and prints median wall times and the ratio of oci-commit to each peer (below 1.0x: faster),
plus oci-commit's zstd figure for information (umoci 0.4.7 cannot write zstd).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.environ.get("BENCH_TREE", "/usr/lib/python3.11")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


def median_s(make: list[str] | str, prepare=None) -> float:  # noqa: ANN001
    samples = []
    for _ in range(RUNS):
        if prepare:
            prepare()
        start = time.perf_counter()
        subprocess.run(make, check=True, shell=isinstance(make, str), stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def tree_size(path: str) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(path) for f in files)


def main() -> None:
    for tool in ("umoci", "tar", "pigz"):
        if not shutil.which(tool):
            sys.exit(f"bench_commit: {tool} is not installed")
    with tempfile.TemporaryDirectory(dir=SCRATCH) as work:
        tree = os.path.join(work, "tree")
        shutil.copytree(SOURCE, tree, symlinks=True)
        size = tree_size(tree)
        layout = os.path.join(work, "ours")
        command = [sys.executable, os.path.join(ROOT, "bin", "oci_commit.py"), "-q", "--from-dir", tree,
                   f"{layout}:bench"]
        ours = median_s(command, lambda: shutil.rmtree(layout, ignore_errors=True))
        ours_zstd = median_s(command + ["--compression", "zstd"], lambda: shutil.rmtree(layout, ignore_errors=True))

        umoci_layout, bundle = os.path.join(work, "umoci"), os.path.join(work, "bundle")
        subprocess.run(["umoci", "init", "--layout", umoci_layout], check=True)
        subprocess.run(["umoci", "new", "--image", f"{umoci_layout}:empty"], check=True)
        subprocess.run(["umoci", "unpack", "--image", f"{umoci_layout}:empty", bundle], check=True,
                       stdout=subprocess.DEVNULL)
        os.rmdir(os.path.join(bundle, "rootfs"))
        shutil.copytree(tree, os.path.join(bundle, "rootfs"), symlinks=True)
        umoci = median_s(["umoci", "repack", "--image", f"{umoci_layout}:bench", bundle])

        out = os.path.join(work, "layer.tar.gz")
        tar = median_s(f"tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C {tree} -cf - . "
                       f"| pigz -n -6 > {out}")
    print(f"making a gzip layer of {size / 1e6:.0f} MB ({SOURCE}) on tmpfs, median of {RUNS} runs")
    print(f"  oci-commit --from-dir  {ours:6.2f} s")
    print(f"  umoci repack           {umoci:6.2f} s   oci-commit/umoci  {ours / umoci:5.2f}x")
    print(f"  tar | pigz -n          {tar:6.2f} s   oci-commit/floor  {ours / tar:5.2f}x")
    print(f"  (oci-commit --compression zstd: {ours_zstd:.2f} s, {ours_zstd / umoci:.2f}x umoci's gzip)")


if __name__ == "__main__":
    main()
