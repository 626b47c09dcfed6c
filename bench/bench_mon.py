#!/usr/bin/env python3
"""oci-mon against conmon + runc: memory of 100 idle monitored containers, and start latency.

* Memory: BENCH_CONTAINERS (100) containers running busybox `sleep`, started through runc by
  `oci-mon run` (one monitor watches them all), then the same number each under its own conmon,
  started with the arguments podman 4.3 gives conmon (`podman --log-level debug run -d` shows
  them; the exit command is /bin/true, the runtime root a private one) and its start and sync
  pipes, followed by `runc start`, as podman does. The figure is the total PSS (Pss of
  /proc/PID/smaps_rollup) of the monitoring processes: the oci-mon monitor, or every conmon.
  The containers themselves are the same in both and are not counted.
* Latency: start-to-running of one detached container, BENCH_RUNS (15) times, median: from the
  call until the container runs (`oci-mon run` returns; conmon has reported the pid on its sync
  pipe and `runc start` returned). oci-mon's monitor is already running (warm), as it is in
  steady use; the cold figure (the first `run`, which starts the monitor) is printed too. Each
  start begins 0.2 s after the last removal (the kernel tears a container's namespaces down
  asynchronously), and the two sides take turns going first.

Bundles, rootfs and both state roots are on a tmpfs scratch (the root filesystem here is ext4
without a journal, where fsyncs cost what they would not elsewhere). Needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNT = int(os.environ.get("BENCH_CONTAINERS", "100"))  # 0: the latency only
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
SETTLE = float(os.environ.get("BENCH_SETTLE", "0.2"))  # seconds between a removal and the next start (see `latency`)
RUNC = shutil.which("runc") or "/usr/sbin/runc"
CONMON = shutil.which("conmon") or "/usr/bin/conmon"
PYTHON_S = "python -S -c pass (the CLI's floor)"


def oci_mon_argv() -> list[str]:
    installed = os.path.join(ROOT, ".venv", "bin", "oci-mon")
    if os.access(installed, os.X_OK):
        return [installed]
    return [sys.executable, os.path.join(ROOT, "bin", "oci_mon.py")]


def make_bundle(scratch: str) -> str:
    from oci.runtime.defaults import default_config

    bundle = os.path.join(scratch, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "sleep"))
    for folder in ("proc", "sys", "dev", "tmp"):
        os.mkdir(os.path.join(rootfs, folder))
    config = default_config()
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sleep", "1000000"]
    config["root"]["readonly"] = True
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class OciMon:
    """oci-mon with a state root and runc root of its own."""

    def __init__(self, scratch: str) -> None:
        self.root = os.path.join(scratch, "oci-mon")
        self.runtime_root = os.path.join(scratch, "runc-oci-mon")
        self.ids: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return [*oci_mon_argv(), "--root", self.root, *args]

    def run(self, bundle: str, cid: str) -> float:
        start = time.perf_counter()
        done = subprocess.run(self.argv("run", "--runtime", RUNC, "--runtime-root", self.runtime_root, "-b", bundle,
                                        cid), stdin=subprocess.DEVNULL, capture_output=True)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise SystemExit(f"oci-mon run failed: {done.stderr.decode(errors='replace')}")
        self.ids.append(cid)
        return elapsed

    def remove(self, cid: str) -> None:
        subprocess.run(self.argv("rm", "-f", cid), capture_output=True)
        self.ids.remove(cid)

    def monitor(self) -> int:
        with open(os.path.join(self.root, "monitor.pid")) as f:
            return int(json.load(f)["pid"])

    def stop_monitor(self) -> None:
        try:
            pid = self.monitor()
        except (OSError, ValueError):
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.05)

    def cleanup(self) -> None:
        for cid in list(self.ids):
            self.remove(cid)
        self.stop_monitor()


class Conmon:
    """conmon + runc the way podman 4.3 drives them."""

    def __init__(self, scratch: str) -> None:
        self.base = os.path.join(scratch, "conmon")
        self.runtime_root = os.path.join(scratch, "runc-conmon")
        self.ids: list[str] = []
        self.conmons: dict[str, int] = {}

    def run(self, bundle: str, cid: str) -> float:
        userdata = os.path.join(self.base, cid)
        exits = os.path.join(self.base, "exits")
        os.makedirs(userdata)
        os.makedirs(exits, exist_ok=True)
        argv = [CONMON, "--api-version", "1", "-c", cid, "-u", cid, "-r", RUNC, "-b", bundle,
                "-p", os.path.join(userdata, "pidfile"), "-n", cid, "--exit-dir", exits, "--full-attach",
                "-l", f"k8s-file:{os.path.join(userdata, 'ctr.log')}", "--log-level", "warning",
                "--runtime-arg", "--root", "--runtime-arg", self.runtime_root,
                "--conmon-pidfile", os.path.join(userdata, "conmon.pid"), "--exit-command", "/bin/true"]
        start = time.perf_counter()
        sync_r, sync_w = os.pipe()
        start_r, start_w = os.pipe()
        proc = subprocess.Popen(argv, env={**os.environ, "_OCI_SYNCPIPE": str(sync_w), "_OCI_STARTPIPE": str(start_r)},
                                pass_fds=(sync_w, start_r), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        os.close(sync_w)
        os.close(start_r)
        os.write(start_w, b"0")  # podman: conmon may go on (after moving it into its cgroup)
        os.close(start_w)
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait()
        with os.fdopen(sync_r, "rb") as f:
            report = json.loads(f.readline() or b"{}")
        if int(report.get("data", -1)) <= 0:
            raise SystemExit(f"conmon: runc create failed: {report} {err.decode(errors='replace')}")
        done = subprocess.run([RUNC, "--root", self.runtime_root, "start", cid], capture_output=True)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise SystemExit(f"runc start failed: {done.stderr.decode(errors='replace')}")
        self.ids.append(cid)
        with open(os.path.join(userdata, "conmon.pid")) as f:
            self.conmons[cid] = int(f.read().strip())
        return elapsed

    def remove(self, cid: str) -> None:
        subprocess.run([RUNC, "--root", self.runtime_root, "kill", cid, "KILL"], capture_output=True)
        conmon = self.conmons.pop(cid, 0)
        for _ in range(200):  # conmon reaps the container and leaves
            if not conmon or not os.path.exists(f"/proc/{conmon}"):
                break
            time.sleep(0.02)
        subprocess.run([RUNC, "--root", self.runtime_root, "delete", "--force", cid], capture_output=True)
        self.ids.remove(cid)

    def cleanup(self) -> None:
        for cid in list(self.ids):
            self.remove(cid)


def memory(mon: OciMon, con: Conmon, bundle: str) -> dict[str, float]:
    tag = os.getpid()
    for i in range(COUNT):
        mon.run(bundle, f"bm-mem-{tag}-{i}")
    time.sleep(2)
    monitor = mon.monitor()
    figures: dict[str, float] = {"oci-mon PSS": pss_kb(monitor), "oci-mon RSS": rss_kb(monitor)}
    mon.cleanup()
    for i in range(COUNT):
        con.run(bundle, f"bc-mem-{tag}-{i}")
    time.sleep(2)
    figures["conmon PSS"] = sum(pss_kb(pid) for pid in con.conmons.values())
    figures["conmon RSS"] = sum(rss_kb(pid) for pid in con.conmons.values())
    figures["conmon processes"] = len(con.conmons)
    con.cleanup()
    return figures


def latency(mon: OciMon, con: Conmon, bundle: str) -> dict[str, list[float]]:
    tag = os.getpid()
    samples: dict[str, list[float]] = {"oci-mon (cold: starts the monitor)": [], "oci-mon": [], "conmon + runc": [],
                                       PYTHON_S: []}
    interpreter = os.path.join(ROOT, ".venv", "bin", "python")
    python = interpreter if os.access(interpreter, os.X_OK) else sys.executable
    samples["oci-mon (cold: starts the monitor)"].append(mon.run(bundle, f"bm-cold-{tag}"))
    mon.remove(f"bm-cold-{tag}")
    keep = f"bm-keep-{tag}"
    mon.run(bundle, keep)  # keeps the monitor from leaving between samples
    for i in range(RUNS + 1):
        # Each start begins on a settled machine: a container just removed leaves the kernel work to
        # do for a while (its network namespace and cgroup go asynchronously), which would slow
        # whichever start comes next. The order alternates too, so neither side always goes first.
        measured = {}
        for side in (("oci-mon", "conmon") if i % 2 else ("conmon", "oci-mon")):
            starter = mon if side == "oci-mon" else con
            cid = f"b{side[0]}-lat-{tag}-{i}"
            measured[side] = starter.run(bundle, cid)
            starter.remove(cid)
            time.sleep(SETTLE)
        ms, ms_conmon = measured["oci-mon"], measured["conmon"]
        start = time.perf_counter()
        subprocess.run([python, "-S", "-c", "pass"], check=True)
        ms_python = (time.perf_counter() - start) * 1000
        if i:  # the first round warms the caches
            samples["oci-mon"].append(ms)
            samples["conmon + runc"].append(ms_conmon)
            samples[PYTHON_S].append(ms_python)
    mon.cleanup()
    return samples


def compile_modules() -> None:
    """Byte-compile oci/ and bin/ as `pip install` does for an installed package (the environment may set
    PYTHONDONTWRITEBYTECODE, which would otherwise make every call compile changed sources again)."""
    import compileall

    for folder in ("oci", "bin"):
        compileall.compile_dir(os.path.join(ROOT, folder), quiet=1)


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench_mon needs root (containers)")
    compile_modules()
    scratch = tempfile.mkdtemp(prefix="bench-mon-")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", scratch], check=True)
    mon, con = OciMon(scratch), Conmon(scratch)
    try:
        bundle = make_bundle(scratch)
        figures = memory(mon, con, bundle) if COUNT else {}
        samples = latency(mon, con, bundle)
    finally:
        mon.cleanup()
        con.cleanup()
        subprocess.run(["umount", "-l", scratch])
        os.rmdir(scratch)
    if figures:
        print_memory(figures)
    print_latency(samples)


def print_memory(figures: dict[str, float]) -> None:
    print(f"{COUNT} idle containers (busybox sleep through runc), total PSS of the monitoring processes")
    print(f"  oci-mon: 1 monitor       {figures['oci-mon PSS'] / 1024:7.1f} MiB   "
          f"(RSS {figures['oci-mon RSS'] / 1024:.1f})")
    print(f"  conmon:  {figures['conmon processes']} processes   {figures['conmon PSS'] / 1024:7.1f} MiB   "
          f"(RSS {figures['conmon RSS'] / 1024:.1f})")
    print(f"  oci-mon / conmon = {figures['oci-mon PSS'] / figures['conmon PSS']:.2f}x   (target <= 1.0x)")


def print_latency(samples: dict[str, list[float]]) -> None:
    med = {name: statistics.median(values) for name, values in samples.items()}
    print(f"start to running of one detached container, median of {RUNS} (runc for both)")
    for name, value in med.items():
        values = samples[name]
        print(f"  {name:38s} {value:7.1f} ms   (min {min(values):6.1f}, max {max(values):6.1f})")
    print(f"  oci-mon / (conmon + runc) = {med['oci-mon'] / med['conmon + runc']:.2f}x   (target <= 1.2x)")
    print("  (oci-mon runs `runc run --detach` once; podman's path runs `runc create` in conmon, then `runc start`:\n"
          "   oci-mon's command pays an interpreter start-up where that path pays a second runc start-up)")


if __name__ == "__main__":
    main()
