#!/usr/bin/env python3
"""Push benchmark: oci-push against `skopeo copy oci:... docker://...`, side by side.

The image (gzip layers made from host folders such as /usr/lib/python3.11, /usr/lib/gcc and
/usr/share/locale, over 50 MB compressed, no network needed) is built once and cached in
bench/.cache/push-image (an OCI layout). Each run uses the CNCF registry (`docker-registry`)
on 127.0.0.1 with its storage on tmpfs, and times, alternating the two tools, median of
BENCH_RUNS (default 5) runs:

  cold  into an empty registry (a fresh registry for each run: every blob travels)
  warm  into a repository that already holds every blob (only manifests travel)

Prints seconds and the ratio oci-push / skopeo (below 1.0: oci-push is faster).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from oci.descriptor import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor  # noqa: E402
from oci.layout import Layout  # noqa: E402
from tests.integration.registry_server import start_registry  # noqa: E402

CACHE = os.path.join(ROOT, "bench", ".cache", "push-image")
TAG = "bench"
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
LAYERS = [  # base first; folders missing on a host are skipped
    ["/usr/lib/python3.11"],
    ["/usr/lib/gcc"],
    ["/usr/share/locale"],
    ["/usr/share/perl", "/usr/share/perl5", "/usr/lib/git-core"],
    ["/etc", "/usr/share/zoneinfo"],
]
MIN_SIZE = 50 << 20
EPOCH = 1_700_000_000
PUSH = [sys.executable, os.path.join(ROOT, "bin", "oci_push.py")]


def _tar_folders(folders: list[str], target: str) -> None:
    """A deterministic tar of host folders: sorted, owners 0, mtimes clamped, regular files,
    folders and symbolic links only."""
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if not (info.isfile() or info.isdir() or info.issym()):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = min(int(info.mtime), EPOCH)
        return info

    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in folders:
            if not os.path.isdir(folder):
                continue
            for parent, dirs, files in os.walk(folder):
                dirs.sort()
                for name in [""] + sorted(files):
                    path = os.path.join(parent, name) if name else parent
                    if not os.access(path, os.R_OK) or (os.path.isfile(path) and not os.path.islink(path)
                                                        and not os.access(path, os.R_OK)):
                        continue
                    try:
                        tar.add(path, arcname=path.lstrip("/"), recursive=False, filter=clean)
                    except OSError:
                        continue


def build_image() -> None:
    """Build the benchmark image into CACHE (once)."""
    work = tempfile.mkdtemp(prefix="bench-push-build-", dir=SCRATCH)
    try:
        target = os.path.join(work, "layout")
        layout = Layout.open(target, create=True)
        layers, diff_ids = [], []
        for i, folders in enumerate(LAYERS):
            raw = os.path.join(work, f"layer{i}.tar")
            _tar_folders(folders, raw)
            packed = raw + ".gz"
            with open(raw, "rb") as src, open(packed, "wb") as out:
                with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
            with open(raw, "rb") as src:
                import hashlib

                hasher = hashlib.sha256()
                for block in iter(lambda: src.read(1 << 20), b""):
                    hasher.update(block)
            diff_ids.append(f"sha256:{hasher.hexdigest()}")
            with open(packed, "rb") as src:
                digest, size = layout.put_blob(src)
            layers.append(Descriptor(OCI_LAYER_GZIP, digest, size).to_json())
            os.unlink(raw)
            os.unlink(packed)
        config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        config_data = json.dumps(config, separators=(",", ":")).encode()
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": Descriptor(OCI_CONFIG, layout.put_bytes(config_data), len(config_data)).to_json(),
                    "layers": layers}
        data = json.dumps(manifest, separators=(",", ":")).encode()
        layout.tag(TAG, Descriptor(OCI_MANIFEST, layout.put_bytes(data), len(data)))
        total = sum(layer["size"] for layer in layers)
        if total < MIN_SIZE:
            raise SystemExit(f"bench_push: the image is only {total / 1e6:.1f} MB; the host lacks the folders")
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        shutil.rmtree(CACHE, ignore_errors=True)
        shutil.copytree(target, CACHE, ignore=shutil.ignore_patterns(".ocikit"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _image_size() -> tuple[int, int]:
    layout = Layout.open(CACHE)
    manifest = json.loads(layout.read_blob(layout.resolve(TAG)))
    return len(manifest["layers"]), sum(layer["size"] for layer in manifest["layers"])


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench_push: {' '.join(argv)} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def ocikit(host: str, repo: str) -> list[str]:
    return PUSH + ["--insecure", "-q", f"{CACHE}:{TAG}", f"{host}/{repo}:{TAG}"]


def skopeo(host: str, repo: str) -> list[str]:
    return ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
            f"oci:{CACHE}:{TAG}", f"docker://{host}/{repo}:{TAG}"]


def main() -> None:
    if not os.path.exists(os.path.join(CACHE, "index.json")):
        print("bench_push: building the benchmark image (once) ...", file=sys.stderr)
        build_image()
    count, size = _image_size()
    tools = {"oci-push": ocikit, "skopeo": skopeo}
    cold: dict[str, list[float]] = {name: [] for name in tools}
    warm: dict[str, list[float]] = {name: [] for name in tools}
    work = tempfile.mkdtemp(prefix="bench-push-", dir=SCRATCH)
    try:
        for run in range(RUNS):
            order = list(tools) if run % 2 == 0 else list(reversed(tools))
            for name in order:
                registry = start_registry(os.path.join(work, f"{name}-{run}"))
                try:
                    cold[name].append(_timed(tools[name](registry.host, "bench/cold")))
                    warm[name].append(_timed(tools[name](registry.host, "bench/cold")))
                finally:
                    registry.stop()
                    shutil.rmtree(os.path.join(work, f"{name}-{run}"), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"bench_push: {count} layers, {size / 1e6:.1f} MB compressed, median of {RUNS} runs, registry on tmpfs")
    print(f"{'case':<6} {'oci-push':>10} {'skopeo':>10} {'ratio':>7}")
    for case, times in (("cold", cold), ("warm", warm)):
        ours, theirs = statistics.median(times["oci-push"]), statistics.median(times["skopeo"])
        print(f"{case:<6} {ours:>9.3f}s {theirs:>9.3f}s {ours / theirs:>6.2f}x")


if __name__ == "__main__":
    main()
