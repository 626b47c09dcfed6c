#!/usr/bin/env python3
"""Unpacking a realistic image: oci-unpack against `umoci raw unpack` and the `pigz -dc | tar -x` floor.

The image (built once from host files under /usr, no network, cached in bench/.cache) has four
gzip layers, at least 100 MB and 5000 files: programs, shared libraries, /usr/share, and a
small top layer with a few whiteouts (as real images have) and changed files. All trees are written to a tmpfs mounted
for the run. Prints medians of BENCH_RUNS runs (default 3) and ratios:

  pigz -dc | tar -x   the floor: each layer decompressed and extracted by GNU tar (no whiteouts,
                      no digests verified)
  umoci raw unpack    the peer (Debian umoci): the same work as oci-unpack, layers to a rootfs
  umoci unpack        for information: also hashes the whole tree for its mtree manifest and
                      writes a runtime config
  oci-unpack          plain mode
  overlay cold        --overlay with an empty layer cache (unpack every layer into the cache, mount)
  overlay warm        --overlay again on a new ROOTFS: layers cached, only a mount
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "bench", ".cache")
LAYOUT = os.path.join(CACHE, "unpack-layout")
TAG = "bench-v2"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SOURCES = [("usr/bin", 60 << 20), ("usr/lib/x86_64-linux-gnu", 50 << 20), ("usr/share", 40 << 20)]
UNPACK = [sys.executable, os.path.join(ROOT, "bin", "oci_unpack.py"), "-q"]


def pick(top: str, budget: int) -> list[str]:
    """Paths under /top (sorted walk) until `budget` bytes of regular files, small files favoured."""
    chosen, used = [], 0
    for folder, dirs, files in os.walk("/" + top):
        dirs.sort()
        chosen.append(os.path.relpath(folder, "/"))
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            regular = os.path.isfile(path) and not os.path.islink(path)
            if regular and (st.st_size > 4 << 20 or not os.access(path, os.R_OK)):
                continue
            chosen.append(os.path.relpath(path, "/"))
            used += st.st_size if not os.path.islink(path) else 0
        if used >= budget:
            break
    return chosen


def build_image() -> list[str]:
    """Make (once) the benchmark image; return its layer blob paths, base first."""
    from oci.descriptor import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor
    from oci.digest import Digest
    from oci.layout import Layout

    layout = Layout.open(LAYOUT, create=True)
    with contextlib.suppress(Exception):
        image = layout.resolve(TAG)
        manifest = json.loads(layout.read_blob(image))
        return [layout.blob_path(d["digest"]) for d in manifest["layers"]]
    print("building the benchmark image from host files (once)...", file=sys.stderr)
    raws = []
    for top, budget in SOURCES:
        with tempfile.NamedTemporaryFile("w") as listing:
            listing.write("\n".join(pick(top, budget)) + "\n")
            listing.flush()
            raws.append(subprocess.run(["tar", "-C", "/", "--no-recursion", "--numeric-owner", "-T", listing.name,
                                        "-cf", "-"], check=True, capture_output=True).stdout)
    top = io.BytesIO()
    with tarfile.open(fileobj=top, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("usr/bin/.wh.ls", "usr/bin/.wh.cat", "usr/share/.wh.nonexistent", "etc/app/.wh..wh..opq"):
            tar.addfile(tarfile.TarInfo(name))
        data = b"changed\n" * 1000
        info = tarfile.TarInfo("usr/bin/changed")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    raws.append(top.getvalue())
    descs = []
    for raw in raws:
        blob = subprocess.run(["pigz", "-6", "-n"], input=raw, check=True, capture_output=True).stdout \
            if shutil.which("pigz") else gzip.compress(raw, 6)
        descs.append({"mediaType": OCI_LAYER_GZIP, "digest": str(layout.put_bytes(blob)), "size": len(blob)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [str(Digest.of(r)) for r in raws]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": descs, "config": {
        "mediaType": OCI_CONFIG, "digest": str(layout.put_bytes(config)), "size": len(config)}}).encode()
    layout.tag(TAG, Descriptor(OCI_MANIFEST, layout.put_bytes(manifest), len(manifest)))
    return [layout.blob_path(d["digest"]) for d in descs]


@contextlib.contextmanager
def tmpfs() -> str:
    """A tmpfs mounted on a fresh directory for the length of the block."""
    path = tempfile.mkdtemp(prefix="ocikit-bench-unpack-")
    from oci.linux.kernel import kernel

    try:
        kernel().mount("tmpfs", path, "tmpfs", 0, "size=6g,mode=0755")
    except OSError as err:
        raise OSError(err.errno, "mount tmpfs (the benchmark needs root)") from None
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


# As installed: bytecode cached (this sandbox sets PYTHONDONTWRITEBYTECODE, which would make every
# run compile ocikit from source), and schema memos kept in the scratch space.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) of each run, by caller


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str] | str, cleanup: list[str], shell: bool = False) -> float:
    """Seconds one run takes; `cleanup` paths are removed (or unmounted) afterwards."""
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run(argv, check=True, shell=shell, stdout=subprocess.DEVNULL, env=ENV)
    elapsed = time.perf_counter() - start
    CPU.setdefault(sys._getframe(1).f_code.co_name, []).append(_children_cpu() - cpu)
    for path in cleanup:
        if os.path.ismount(path):
            subprocess.run(["umount", path], check=True)
        shutil.rmtree(path, ignore_errors=True)
    return elapsed


def median(fn) -> float:
    return statistics.median(fn(i) for i in range(RUNS))


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_unpack needs root (umoci, owners, tmpfs, overlayfs)")
    blobs = build_image()
    image = f"{LAYOUT}:{TAG}"
    with tmpfs() as scratch:
        ENV["OCIKIT_CACHE_DIR"] = os.path.join(scratch, "ocikit-cache")
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "oci"), os.path.join(ROOT, "bin")],
                       check=True, env=ENV)
        # the blobs live on the root filesystem: read them once so every tool finds them cached
        for blob in blobs:
            with open(blob, "rb") as f:
                while f.read(1 << 20):
                    pass
        files = subprocess.run(f"for b in {' '.join(blobs)}; do pigz -dc $b | tar -t; done | wc -l", shell=True,
                               capture_output=True, text=True, check=True).stdout.strip()
        size = sum(int(subprocess.run(f"pigz -dc {b} | wc -c", shell=True, capture_output=True, text=True,
                                      check=True).stdout) for b in blobs)

        def floor(i: int) -> float:
            out = os.path.join(scratch, f"floor{i}")
            os.mkdir(out)
            script = " && ".join(f"pigz -dc {b} | tar --numeric-owner -xpf - -C {out}" for b in blobs)
            return timed(script, [out], shell=True)

        def umoci(i: int) -> float:
            out = os.path.join(scratch, f"umoci{i}")
            return timed(["umoci", "raw", "unpack", "--image", image, out], [out])

        def umoci_bundle(i: int) -> float:
            out = os.path.join(scratch, f"umoci-bundle{i}")
            return timed(["umoci", "unpack", "--image", image, out], [out])

        def ours(i: int) -> float:
            out = os.path.join(scratch, f"ours{i}")
            return timed(UNPACK + [image, out], [out])

        def cold(i: int) -> float:
            cache, out = os.path.join(scratch, f"cache-cold{i}"), os.path.join(scratch, f"cold{i}")
            extra = os.path.join(scratch, f".cold{i}.overlay")
            return timed(UNPACK + ["--overlay", "--cache", cache, image, out], [out, cache, extra])

        cache = os.path.join(scratch, "cache-warm")
        subprocess.run(UNPACK + ["--emit-mount", "--cache", cache, image, os.path.join(scratch, "prime")],
                       check=True, stdout=subprocess.DEVNULL, env=ENV)

        def warm(i: int) -> float:
            out = os.path.join(scratch, f"warm{i}")
            return timed(UNPACK + ["--overlay", "--cache", cache, image, out],
                         [out, os.path.join(scratch, f".warm{i}.overlay")])

        def python(i: int) -> float:
            return timed([sys.executable, "-c", "pass"], [])

        t_floor, t_umoci, t_ours = median(floor), median(umoci), median(ours)
        t_umoci_bundle = median(umoci_bundle)
        t_cold, t_warm, t_py = median(cold), statistics.median(warm(i) for i in range(max(RUNS, 5))), median(python)
    cpu = {name: statistics.median(values) for name, values in CPU.items()}
    print(f"unpack of a {len(blobs)}-layer gzip image, {size / 1e6:.0f} MB uncompressed, {files} tar entries; "
          f"median of {RUNS} runs on tmpfs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("                               wall       CPU (user+sys)")
    rows = [("pigz -dc | tar -x (floor)", t_floor, "floor"), ("umoci raw unpack", t_umoci, "umoci"),
            ("umoci unpack (+ mtree, config)", t_umoci_bundle, "umoci_bundle"),
            ("oci-unpack", t_ours, "ours"), ("oci-unpack --overlay cold", t_cold, "cold"),
            ("oci-unpack --overlay warm", t_warm, "warm")]
    for label, wall, name in rows:
        print(f"  {label:27} {wall * 1000:7.0f} ms {cpu[name] * 1000:7.0f} ms")
    print(f"  oci-unpack / umoci raw unpack:  {t_ours / t_umoci:.2f}x wall, {cpu['ours'] / cpu['umoci']:.2f}x CPU "
          f"(target <= 0.33)")
    print(f"  oci-unpack / floor:  {t_ours / t_floor:.2f}x wall, {cpu['ours'] / cpu['floor']:.2f}x CPU "
          f"(target <= 1.2)")
    print(f"  overlay cold / umoci: {t_cold / t_umoci:.2f}x wall; overlay warm {t_warm * 1000:.0f} ms "
          f"(target < 50 ms; python -c pass: {t_py * 1000:.0f} ms)")

if __name__ == "__main__":
    main()
