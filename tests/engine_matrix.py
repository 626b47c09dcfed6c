#!/usr/bin/env python3
"""Print the engine matrix: real engines' checks passed with runc and with oci-run, side by side.

Runs the engine tests (tests/integration/test_engine_*.py: Docker 20.10, Swarm, podman 4.3; test_cri.py:
containerd's CRI; any other engine that records into tests/integration/engine_matrix.py) as root with
pytest, then prints one row per engine, the table the README carries. `make test` runs the same tests and prints the
same table at the end of its session.

    sudo .venv/bin/python tests/engine_matrix.py             # run the engine tests, print the table
    .venv/bin/python tests/engine_matrix.py --details        # also every check a runtime failed
    .venv/bin/python tests/engine_matrix.py --from FILE      # print a recorded run ($OCIKIT_ENGINE_MATRIX)
    .venv/bin/python tests/engine_matrix.py -- -k Docker     # pass arguments on to pytest
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile

from tests.integration import engine_matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", help="print the outcomes recorded in this file, run nothing")
    parser.add_argument("--details", action="store_true", help="list every check a runtime failed")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = parser.parse_args()
    if args.source:
        print(engine_matrix.table(engine_matrix.load(args.source), details=args.details))
        return 0
    tests = sorted(glob.glob(os.path.join(ROOT, "tests", "integration", "test_engine_*.py")))
    tests.append(os.path.join(ROOT, "tests", "integration", "test_cri.py"))
    with tempfile.TemporaryDirectory(prefix="ocikit-matrix-") as scratch:
        results = os.path.join(scratch, "matrix.jsonl")
        env = {**os.environ, engine_matrix.MATRIX_FILE: results}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests,
                               *args.pytest_args], cwd=ROOT, env=env)
        if not os.path.exists(results):
            print("no engine check ran", file=sys.stderr)
            return done.returncode or 1
        print(engine_matrix.table(engine_matrix.load(results), details=args.details))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
