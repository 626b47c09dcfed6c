"""The kubelet's calls for one pod, as named checks: the CRI row of the engine matrix.

`run(cri)` drives a `cri_env.Cri` through the sequence a kubelet runs for a pod with two
containers and a hostPort, and returns one `Check` per name of `CHECKS`, in that order, each
passed or failed with a one-line detail. A failed step does not stop the sequence: what
follows is still tried (a check that needs what failed fails with "skipped: ..."), so the
counts of two engine columns compare check by check.

The pod: RunPodSandbox with `port_mappings` (a hostPort on every host address, another on
127.0.0.1 only, and a containerPort without hostPort, which containerd leaves out of the
CNI call), `log_directory`, `linux.cgroup_parent` and the column's `runtime_handler`; then
PullImage, CreateContainer of `web` (busybox httpd on port 80, RuntimeDefault seccomp,
limits as a kubelet writes them) and `logger` (prints to stdout and stderr, exits 0 on
SIGTERM), StartContainer, ContainerStatus, ExecSync, the CRI log files,
UpdateContainerResources with the whole LinuxContainerResources, StopContainer,
StopPodSandbox and RemovePodSandbox.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, NamedTuple

from tests.integration.registry_server import free_port


class Check(NamedTuple):
    """One named check of an engine column: passed or not, and why in one line."""

    name: str
    ok: bool
    detail: str = ""


CHECKS = (
    "Version speaks runtime.v1",
    "Status: runtime and network ready",
    "RunPodSandbox with a hostPort, log_directory and cgroup_parent",
    "PodSandboxStatus: ready, pod IP in the CNI subnet",
    "sandbox cgroup under linux.cgroup_parent",
    "PullImage",
    "CreateContainer web (httpd, RuntimeDefault seccomp, limits)",
    "CreateContainer logger",
    "StartContainer web and logger",
    "ContainerStatus: both running",
    "the pod IP answers from the host",
    "the hostPort answers (all host addresses)",
    "the hostPort bound to 127.0.0.1 answers",
    "ExecSync: stdout, stderr and exit code",
    "container logs: CRI log format, stdout and stderr",
    "UpdateContainerResources (the whole LinuxContainerResources)",
    "the update reached the cgroup",
    "StopContainer: logger exits 0 on SIGTERM, web is killed",
    "ContainerStatus: both exited",
    "StopPodSandbox: not ready, network released",
    "the hostPorts no longer answer",
    "RemovePodSandbox: pod and containers gone",
)

MEMORY_LIMIT, UPDATED_MEMORY = 128 << 20, 96 << 20
CRI_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] (.*)$")


class Skipped(Exception):
    """A check that could not run because an earlier step failed."""


def http_get(host: str, port: int, timeout: float = 2) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as answer:
        return answer.read().decode()


def answers(host: str, port: int, want: str, within: float = 10) -> str:
    """Poll `http://host:port/` until its body is `want`; the last error if it never is."""
    deadline, last = time.monotonic() + within, ""
    while time.monotonic() < deadline:
        try:
            body = http_get(host, port)
            if body == want:
                return ""
            last = f"answered {body!r}"
        except OSError as err:
            last = str(err)
        time.sleep(0.2)
    return last or "no answer"


def closed(host: str, port: int) -> bool:
    """Whether nothing answers HTTP on host:port any more."""
    try:
        http_get(host, port, timeout=1)
    except OSError:  # refused, reset, timed out
        return True
    return False


def cgroup_of(pid: int, controller: str) -> Path:
    """The v1 cgroup folder of `pid` for `controller` (v2: the unified one)."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return Path(f"/sys/fs/cgroup/{controller}") / path.lstrip("/")
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return Path("/sys/fs/cgroup") / line.split(":", 2)[2].strip().lstrip("/")
    raise LookupError(f"no {controller} cgroup for pid {pid}")


def run(cri: Any, log: Callable[[str], None] = lambda text: None) -> list[Check]:
    """Every check of CHECKS for this containerd, in order."""
    seq = Sequence(cri, log)
    return seq.run()


class Sequence:
    """The pod's life, one method per check (named in CHECKS, in the same order)."""

    def __init__(self, cri: Any, log: Callable[[str], None]) -> None:
        self.cri, self.api, self.log = cri, cri.api, log
        self.rt, self.images = cri.runtime, cri.image
        self.host_port, self.local_port = free_port(), free_port()
        self.pod_id = self.pod_ip = ""
        self.pod_config: Any = None
        self.containers: dict[str, str] = {}
        self.log_dir = cri.base / "pods" / f"default_web-{cri.tag}_uid{cri.tag}"
        self.veths: set[str] = set()

    def run(self) -> list[Check]:
        steps = [self.version, self.status, self.run_pod, self.pod_status, self.pod_cgroup, self.pull,
                 lambda: self.create("web"), lambda: self.create("logger"), self.start, self.running,
                 self.pod_ip_answers, self.host_port_answers, self.local_port_answers, self.exec_sync, self.logs,
                 self.update, self.update_applied, self.stop_containers, self.exited, self.stop_pod,
                 self.ports_closed, self.remove_pod]
        assert len(steps) == len(CHECKS)
        results = []
        for name, step in zip(CHECKS, steps, strict=True):
            try:
                detail = step() or ""
                results.append(Check(name, True, detail))
            except Skipped as why:
                results.append(Check(name, False, f"skipped: {why}"))
            except Exception as err:  # a check's failure, whatever it is, is one line of the matrix
                text = getattr(err, "details", None)
                text = text() if callable(text) else str(err)
                results.append(Check(name, False, f"{type(err).__name__}: {text}".splitlines()[0][:300]))
            self.log(f"{'ok  ' if results[-1].ok else 'FAIL'} {name} {results[-1].detail}")
        return results

    # -- the checks ------------------------------------------------------------

    def version(self) -> str:
        answer = self.rt.Version(self.api.VersionRequest(version="v1"), timeout=10)
        assert answer.runtime_api_version == "v1", answer
        return f"{answer.runtime_name} {answer.runtime_version}"

    def status(self) -> str:
        conditions = self.rt.Status(self.api.StatusRequest(), timeout=10).status.conditions
        bad = [f"{c.type}: {c.reason} {c.message}" for c in conditions if not c.status]
        assert not bad and len(conditions) >= 2, bad or conditions
        return ""

    def run_pod(self) -> str:
        api, tag = self.api, self.cri.tag
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pod_config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=f"web-{tag}", uid=f"uid{tag}", namespace="default", attempt=0),
            hostname=f"web-{tag}",
            log_directory=str(self.log_dir),
            dns_config=api.DNSConfig(servers=["127.0.0.53"], searches=["default.svc.cluster.local"],
                                     options=["ndots:5"]),
            port_mappings=[
                api.PortMapping(protocol=api.TCP, container_port=80, host_port=self.host_port),
                api.PortMapping(protocol=api.TCP, container_port=80, host_port=self.local_port, host_ip="127.0.0.1"),
                api.PortMapping(protocol=api.TCP, container_port=8080),  # no hostPort: not handed to CNI
            ],
            labels={"app": "web", "io.kubernetes.pod.namespace": "default"},
            annotations={"kubernetes.io/config.source": "api"},
            linux=api.LinuxPodSandboxConfig(
                cgroup_parent=self.cri.cgroup_parent,
                security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=api.NamespaceOption(network=api.POD, pid=api.CONTAINER, ipc=api.POD),
                    seccomp=api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault))),
        )
        answer = self.rt.RunPodSandbox(api.RunPodSandboxRequest(config=self.pod_config,
                                                                runtime_handler=self.cri.column.handler), timeout=120)
        self.pod_id = answer.pod_sandbox_id
        return self.pod_id[:12]

    def need_pod(self) -> None:
        if not self.pod_id:
            raise Skipped("no pod")

    def pod_info(self) -> dict[str, Any]:
        answer = self.rt.PodSandboxStatus(self.api.PodSandboxStatusRequest(pod_sandbox_id=self.pod_id, verbose=True),
                                          timeout=30)
        return json.loads(answer.info.get("info", "{}"))

    def pod_status(self) -> str:
        import ipaddress

        self.need_pod()
        status = self.rt.PodSandboxStatus(self.api.PodSandboxStatusRequest(pod_sandbox_id=self.pod_id),
                                          timeout=30).status
        assert status.state == self.api.SANDBOX_READY, status.state
        self.pod_ip = status.network.ip
        assert ipaddress.ip_address(self.pod_ip) in ipaddress.ip_network(self.cri.subnet), (self.pod_ip,
                                                                                             self.cri.subnet)
        return self.pod_ip

    def pod_cgroup(self) -> str:
        self.need_pod()
        pid = self.pod_info()["pid"]
        folder = cgroup_of(pid, "memory")
        parent = self.cri.cgroup_parent.strip("/")
        assert parent in folder.parts, folder
        return str(folder)

    def pull(self) -> str:
        answer = self.images.PullImage(self.api.PullImageRequest(image=self.api.ImageSpec(
            image=self.cri.images.workload)), timeout=120)
        assert answer.image_ref, answer
        return answer.image_ref[:19]

    def create(self, name: str) -> str:
        self.need_pod()
        api = self.api
        if name == "web":
            command = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"]
            seccomp = api.SecurityProfile(profile_type=api.SecurityProfile.RuntimeDefault)
            resources = api.LinuxContainerResources(cpu_period=100000, cpu_quota=100000, cpu_shares=256,
                                                    memory_limit_in_bytes=MEMORY_LIMIT, oom_score_adj=900)
        else:
            command = ["/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; echo to-stdout; echo to-stderr >&2; "
                                        "while :; do sleep 0.2; done"]
            seccomp = api.SecurityProfile(profile_type=api.SecurityProfile.Unconfined)
            resources = api.LinuxContainerResources(cpu_shares=2, oom_score_adj=1000)
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name, attempt=0),
            image=api.ImageSpec(image=self.cri.images.workload),
            command=command,
            envs=[api.KeyValue(key="POD", value=f"web-{self.cri.tag}")],
            labels={"io.kubernetes.container.name": name},
            log_path=f"{name}/0.log",
            linux=api.LinuxContainerConfig(
                resources=resources,
                security_context=api.LinuxContainerSecurityContext(
                    namespace_options=api.NamespaceOption(network=api.POD, pid=api.CONTAINER, ipc=api.POD),
                    seccomp=seccomp,
                    masked_paths=["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                                  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                                  "/sys/firmware"],
                    readonly_paths=["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                    "/proc/sysrq-trigger"])),
        )
        answer = self.rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=self.pod_id, config=config,
                                                                    sandbox_config=self.pod_config), timeout=120)
        self.containers[name] = answer.container_id
        return answer.container_id[:12]

    def need(self, *names: str) -> None:
        missing = [n for n in names if n not in self.containers]
        if missing:
            raise Skipped(f"no container {', '.join(missing)}")

    def start(self) -> str:
        self.need("web", "logger")
        for cid in self.containers.values():
            self.rt.StartContainer(self.api.StartContainerRequest(container_id=cid), timeout=120)
        return ""

    def container_status(self, name: str) -> Any:
        return self.rt.ContainerStatus(self.api.ContainerStatusRequest(container_id=self.containers[name]),
                                       timeout=30).status

    def container_pid(self, name: str) -> int:
        answer = self.rt.ContainerStatus(self.api.ContainerStatusRequest(container_id=self.containers[name],
                                                                         verbose=True), timeout=30)
        return int(json.loads(answer.info["info"])["pid"])

    def running(self) -> str:
        self.need("web", "logger")
        states = {name: self.container_status(name).state for name in self.containers}
        assert all(s == self.api.CONTAINER_RUNNING for s in states.values()), states
        return ""

    def pod_ip_answers(self) -> str:
        if not self.pod_ip:
            raise Skipped("no pod IP")
        self.need("web")
        problem = answers(self.pod_ip, 80, "ocikit cri\n")
        assert not problem, problem
        return ""

    def host_port_answers(self) -> str:
        self.need("web")
        problem = answers("127.0.0.1", self.host_port, "ocikit cri\n")
        assert not problem, f"127.0.0.1:{self.host_port}: {problem}"
        return f"127.0.0.1:{self.host_port}"

    def local_port_answers(self) -> str:
        self.need("web")
        problem = answers("127.0.0.1", self.local_port, "ocikit cri\n")
        assert not problem, f"127.0.0.1:{self.local_port}: {problem}"
        return f"127.0.0.1:{self.local_port}"

    def exec_sync(self) -> str:
        self.need("web")
        answer = self.rt.ExecSync(self.api.ExecSyncRequest(
            container_id=self.containers["web"], cmd=["/bin/sh", "-c", "echo out $POD; echo err >&2; exit 3"],
            timeout=30), timeout=60)
        got = (answer.stdout.decode(), answer.stderr.decode(), answer.exit_code)
        assert got == (f"out web-{self.cri.tag}\n", "err\n", 3), got
        return ""

    def logs(self) -> str:
        self.need("logger")
        path = self.log_dir / "logger" / "0.log"
        deadline, streams, bad = time.monotonic() + 10, {}, []
        while time.monotonic() < deadline:
            lines = path.read_text().splitlines() if path.exists() else []
            bad = [line for line in lines if not CRI_LOG_LINE.match(line)]
            streams = {m[3]: m[4] for m in map(CRI_LOG_LINE.match, lines) if m}
            if streams.get("stdout") == "to-stdout" and streams.get("stderr") == "to-stderr":
                break
            time.sleep(0.2)
        assert not bad, bad[:2]
        assert streams == {"stdout": "to-stdout", "stderr": "to-stderr"}, (path, streams)
        return str(path.relative_to(self.cri.base))

    def update(self) -> str:
        self.need("web")
        api = self.api
        # What a kubelet's in-place resize and CPU manager send: every field of LinuxContainerResources
        resources = api.LinuxContainerResources(
            cpu_period=100000, cpu_quota=50000, cpu_shares=512, memory_limit_in_bytes=UPDATED_MEMORY,
            oom_score_adj=900, cpuset_cpus="0", cpuset_mems="0",
            hugepage_limits=[api.HugepageLimit(page_size="2MB", limit=0)],
            memory_swap_limit_in_bytes=2 * UPDATED_MEMORY)
        self.rt.UpdateContainerResources(api.UpdateContainerResourcesRequest(
            container_id=self.containers["web"], linux=resources), timeout=60)
        return ""

    def update_applied(self) -> str:
        self.need("web")
        pid = self.container_pid("web")
        want = {("memory", "memory.limit_in_bytes"): str(UPDATED_MEMORY),
                ("cpu", "cpu.cfs_quota_us"): "50000", ("cpu", "cpu.cfs_period_us"): "100000",
                ("cpu", "cpu.shares"): "512", ("cpuset", "cpuset.cpus"): "0"}
        got = {}
        for (controller, name) in want:
            with contextlib.suppress(OSError):
                got[(controller, name)] = (cgroup_of(pid, controller) / name).read_text().strip()
        assert got == want, {k[1]: v for k, v in got.items() if want.get(k) != v}
        return ""

    def stop_containers(self) -> str:
        self.need("web", "logger")
        for name in ("logger", "web"):
            self.rt.StopContainer(self.api.StopContainerRequest(container_id=self.containers[name], timeout=5),
                                  timeout=60)
        logger = self.container_status("logger")
        assert logger.exit_code == 0, f"logger exited {logger.exit_code}: {logger.reason} {logger.message}"
        return ""

    def exited(self) -> str:
        self.need("web", "logger")
        states = {name: self.container_status(name).state for name in self.containers}
        assert all(s == self.api.CONTAINER_EXITED for s in states.values()), states
        return ""

    def stop_pod(self) -> str:
        self.need_pod()
        self.rt.StopPodSandbox(self.api.StopPodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=120)
        status = self.rt.PodSandboxStatus(self.api.PodSandboxStatusRequest(pod_sandbox_id=self.pod_id),
                                          timeout=30).status
        assert status.state == self.api.SANDBOX_NOTREADY, status.state
        if self.pod_ip:
            problem = answers(self.pod_ip, 80, "ocikit cri\n", within=0.5)
            assert problem, f"{self.pod_ip} still answers"
        return ""

    def ports_closed(self) -> str:
        self.need_pod()
        still = [port for port in (self.host_port, self.local_port) if not closed("127.0.0.1", port)]
        assert not still, f"still answering: {still}"
        return ""

    def remove_pod(self) -> str:
        self.need_pod()
        self.rt.RemovePodSandbox(self.api.RemovePodSandboxRequest(pod_sandbox_id=self.pod_id), timeout=120)
        pods = [p.id for p in self.rt.ListPodSandbox(self.api.ListPodSandboxRequest(), timeout=30).items]
        containers = [c.id for c in self.rt.ListContainers(self.api.ListContainersRequest(), timeout=30).containers]
        assert self.pod_id not in pods and not set(self.containers.values()) & set(containers), (pods, containers)
        return ""


def table(columns: dict[str, list[Check]]) -> str:
    """The matrix as text: one row per check, one pass/FAIL column per engine, the counts last."""
    names = list(columns)
    title = "CRI (containerd 1.6, the kubelet's path)"
    width = max(len(n) for n in (*CHECKS, title)) + 2
    widths = [len(n) + 3 for n in names]
    lines = [f"{title:{width}}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))]
    for i, check in enumerate(CHECKS):
        lines.append(f"{check:{width}}" + "".join(f"{'pass' if columns[n][i].ok else 'FAIL':>{w}}"
                                                  for n, w in zip(names, widths, strict=True)))
    counts = [f"{sum(c.ok for c in columns[n])}/{len(CHECKS)}" for n in names]
    lines.append(f"{'passed':{width}}" + "".join(f"{c:>{w}}" for c, w in zip(counts, widths, strict=True)))
    return "\n".join(lines)
