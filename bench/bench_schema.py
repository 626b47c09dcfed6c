#!/usr/bin/env python3
"""Start-up cost of schema validation, as paid by a runtime on every `create`.

Runs, side by side, many times each:
  baseline   python3 -c pass
  cold       import oci.schema and validate a runtime config.json (jsonschema imported)
  remembered the same with remember=True after a first run (digest found on disk)
and prints medians and ratios against the baseline.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "tests", "unit", "data", "runtime-spec", "config", "good", "spec-example.json")
RUNS = int(os.environ.get("BENCH_RUNS", "20"))
VALIDATE = (
    "from oci import schema; "
    "schema.load(open({config!r}, 'rb').read(), 'runtime-config', 'config.json', remember={remember})"
)


def median_ms(argv: list[str], env: dict[str, str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, env=env)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "OCIKIT_CACHE_DIR": cache}
        base = median_ms([sys.executable, "-c", "pass"], env)
        cold = median_ms([sys.executable, "-c", VALIDATE.format(root=ROOT, config=CONFIG, remember=False)], env)
        warm_code = VALIDATE.format(root=ROOT, config=CONFIG, remember=True)
        subprocess.run([sys.executable, "-c", warm_code], check=True, env=env)
        warm = median_ms([sys.executable, "-c", warm_code], env)
    print(f"schema validation start-up, median of {RUNS} runs")
    print(f"  python -c pass                 {base:7.1f} ms  1.00x")
    print(f"  validate config.json (cold)    {cold:7.1f} ms  {cold / base:5.2f}x")
    print(f"  validate config.json (remembered) {warm:4.1f} ms  {warm / base:5.2f}x")


if __name__ == "__main__":
    main()
