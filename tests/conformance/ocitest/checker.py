"""The static checker that runs inside containers: compiled once per source version."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "checker" / "checker.c"


def build_checker(cache_dir: Path | None = None) -> Path:
    """Compile checker.c with `gcc -static -O2`, reusing an earlier build of the same source."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache = cache_dir or Path(tempfile.gettempdir()) / "ocikit-conformance"
    binary = cache / f"checker-{digest}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".checker-{digest}.{os.getpid()}"
    proc = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(partial), str(SOURCE)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot build the checker: {proc.stderr}")
    partial.rename(binary)
    return binary
