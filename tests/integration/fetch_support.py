"""Helpers of the oci-fetch tests: what a layout holds, to compare layouts byte for byte."""

from __future__ import annotations

import os


def blob_files(layout: str) -> dict[str, bytes]:
    """Every blob of a layout: `sha256/<hex>` -> content."""
    found = {}
    root = os.path.join(layout, "blobs")
    for alg in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for name in sorted(os.listdir(os.path.join(root, alg))):
            with open(os.path.join(root, alg, name), "rb") as f:
                found[f"{alg}/{name}"] = f.read()
    return found


def snapshot(path: str) -> dict[str, bytes]:
    """Every file under `path` (relative name -> content), lock files aside."""
    found = {}
    for folder, _dirs, files in os.walk(path):
        for name in files:
            if name.endswith(".lock"):
                continue
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found
