"""Print the CRI row of the engine matrix: the kubelet's calls for one pod on each engine column.

    sudo .venv/bin/python -m tests.integration.cri_matrix [--verbose] [--json]

Starts the tests' docker-registry in a temporary folder, pushes the pause and workload images
(cri_env.push_images), then for each column (runc + bridge/host-local/portmap, then oci-run +
oci-net) a private containerd with its CRI plugin runs cri_checks.CHECKS; prints one row per
check, pass or FAIL per column, and the counts. `--json` prints
`{COLUMN: [{"name", "ok", "detail"}, ...]}` instead, the shape the other engine rows
(Docker, podman) count the same way. Exits 1 when oci-run + oci-net fails a check the
reference passes. Needs root, like `make test`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from tests.integration import cri_checks, cri_env
from tests.integration.registry_server import start_registry


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("cri_matrix: needs root (containerd, network namespaces, cgroups)", file=sys.stderr)
        return 2
    missing = cri_env.missing_tools()
    if missing:
        print(f"cri_matrix: missing {', '.join(missing)} (make install)", file=sys.stderr)
        return 2
    verbose = "--verbose" in argv
    results: dict[str, list[cri_checks.Check]] = {}
    with tempfile.TemporaryDirectory(prefix="ocikit-cri-matrix-") as tmp:
        work = Path(tmp)
        registry = start_registry(str(work / "registry"))
        try:
            images = cri_env.push_images(work / "images", registry.host)
            for column in cri_env.COLUMNS:
                log = (lambda line, name=column.name: print(f"[{name}] {line}", file=sys.stderr)) if verbose \
                    else (lambda line: None)
                with cri_env.session(work / f"cri-{column.handler}", column, images, work / "stubs") as cri:
                    results[column.name] = cri_checks.run(cri, log)
        finally:
            registry.stop()
    if "--json" in argv:
        print(json.dumps({name: [c._asdict() for c in checks] for name, checks in results.items()}, indent=1))
    else:
        print(cri_checks.table(results))
        for name, checks in results.items():
            for check in checks:
                if not check.ok:
                    print(f"  {name}: {check.name}: {check.detail}")
    reference, ours = results[cri_env.RUNC.name], results[cri_env.OCIKIT.name]
    return 1 if any(r.ok and not o.ok for r, o in zip(reference, ours, strict=True)) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
