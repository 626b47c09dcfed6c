"""Import budgets of the hot paths (README, PERFORMANCE): what each may load, checked.

Each hot path's entry runs as its installed launcher runs it (`python -S`, bin/ on sys.path, the
command module's `main`) in a fresh interpreter with `-X importtime`; every module it loads
beyond the interpreter's own start-up (`python -S -c pass`) must be in the path's allowlist. A
third-party package a path is allowed brings what it imports itself (measured the same way):
its internals are its own business, the modules ocikit's code imports are ours.

A module that is not in a list makes the test fail: either the import moves off the hot path
(into the function that needs it, or into a module the path does not load), or the list (and
the PERFORMANCE section of the README) says why the path needs it now.

oci-run's verbs and the CNI plugin's ADD and DEL need root (a container, a network namespace);
the others run anywhere (`oci-mon run` asks a stand-in monitor that answers on the root's socket
as the real one does: what the command imports ends with the answer). Steady state is measured:
the config or CNI configuration was seen once already (its validation remembered), as an
engine's second container finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import BIN

# What every command loads: the launcher's module, ocicli and ocisite, the stdlib they use.
COMMAND = {"ocicli", "ocisite", "oci", "oci.errors", "os", "stat", "_stat", "posixpath", "genericpath",
           "_collections_abc", "__future__"}

# oci-run's verbs engines run for every container (runtime.md's lifecycle); one process each.
RUN_STATE = COMMAND | {"oci_run", "oci.runtime", "oci.runtime.state", "oci.jsonout", "_json"}
RUN_LIFECYCLE = RUN_STATE | {"oci.runtime.lifecycle", "_socket", "errno", "fcntl",
                             "oci.linux", "oci.linux.cgroups", "oci.linux.cgroups.base",
                             "oci.linux.cgroups.v1", "oci.linux.cgroups.v2"}  # whichever the host has
RUN_CREATE = RUN_LIFECYCLE | {
    "oci.runtime.config", "oci.runtime.hooks", "oci.runtime.channel", "oci.runtime.process", "oci.schema",
    "oci.linux.capabilities", "oci.linux.cgroups.prime", "oci.linux.cgroups.devices_bpf",
    "oci.linux.cgroups.devices_v1", "oci.linux.inroot",
    "oci.linux.kernel", "oci.linux.libc", "oci.linux.mountopts", "oci.linux.mounts", "oci.linux.namespaces",
    "ctypes", "_ctypes", "ctypes._endian", "struct", "_struct", "types", "select", "zlib",  # libc through ctypes
}

# The CNI plugin: runtimes start it for every container's ADD and DEL. pyroute2 (netlink) brings
# what it imports; ocikit's own modules and the stdlib they import are listed.
CNI_VERSION = {"oci_net", "ocisite", "oci", "oci.errors", "oci.net", "oci.net.cni", "os", "stat", "_stat",
               "posixpath", "genericpath", "_collections_abc", "__future__", "json", "json.decoder",
               "json.encoder", "json.scanner", "_json", "re", "re._casefix", "re._compiler", "re._constants",
               "re._parser", "_sre", "typing", "_typing", "collections", "collections.abc", "_collections",
               "functools", "_functools", "enum", "types", "operator", "_operator", "keyword", "reprlib",
               "itertools", "copyreg", "contextlib", "warnings"}
CNI_ADD_DEL = CNI_VERSION | {
    "oci.gojson", "oci.fsutil", "oci.digest", "oci.net.endpoint", "oci.net.hosts", "oci.net.ipam",
    "oci.net.links", "oci.net.nat", "oci.net.networks", "oci.net.rtnl", "oci.net.validation",
    "oci.linux", "oci.linux.kernel", "oci.linux.libc", "oci.linux.namespaces", "ipaddress", "fcntl", "errno",
    "zlib", "_sha256", "ctypes", "_ctypes", "ctypes._endian", "struct", "_struct", "_socket", "socket",
    "selectors", "select", "subprocess", "_posixsubprocess", "signal", "threading", "shutil",
}
CNI_PACKAGES = ("pyroute2",)

# Warm fetch and push: the layout (or the registry) holds every blob, only manifests travel.
REGISTRY = COMMAND | {
    "oci.log", "oci.reference", "oci.descriptor", "oci.digest", "oci.image", "oci.layout", "oci.jsonout", "oci.fsutil",
    "oci.schema", "oci.registry", "oci.registry.urls", "oci.registry.wire", "oci.registry.proxy", "oci.registry.http",
    "oci.registry.session", "oci.registry.manifests", "oci.registry.client",
    "oci.registry.registries_conf", "oci.registry.locations", "_socket", "_sha256", "zlib", "fcntl", "gc", "_json",
    "collections", "_collections", "itertools", "keyword", "operator", "_operator", "reprlib",
}
WARM_FETCH = REGISTRY | {"oci_fetch", "oci.registry.sources", "oci.registry.pull"}
WARM_PUSH = REGISTRY | {"oci_push", "oci.registry.push", "json", "json.decoder", "json.encoder", "json.scanner",
                        "re", "re._casefix", "re._compiler", "re._constants", "re._parser", "_sre", "enum",
                        "functools", "_functools", "types", "copyreg"}

# `oci-mon run`, detached, its monitor running: every detached container's start (issue 16: within
# 1.2x of conmon + runc). Its flags through quick_parse, config.json through proto.decode (_json's
# scanner, not json), one request on the monitor's socket, the answer printed.
# The monitor reads the bundle and checks the flags (oci.monitor.runspec): the command only connects and asks.
OCI_MON_RUN = COMMAND | {"oci_mon", "oci.monitor", "oci.monitor.client", "oci.monitor.paths", "oci.monitor.proto",
                         "oci.jsonout", "_json", "_socket", "_struct"}


def loaded(code: str, argv: list[str] = (), env: dict[str, str] | None = None, stdin: bytes = b"",
           cwd: str = "/") -> tuple[subprocess.CompletedProcess, set[str]]:
    """The modules a fresh `python -S` running `code` (bin/ on sys.path, as the launchers) imports.
    Its output goes to files: a container's init holds them open after the runtime has left."""
    command = [sys.executable, "-S", "-X", "importtime", "-c", f"import sys; sys.path.append({str(BIN)!r}); {code}",
               *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(command, input=stdin, stdout=out, stderr=err, cwd=cwd,
                              env={**os.environ, **(env or {})}, timeout=120)
        out.seek(0)
        err.seek(0)
        done.stdout, done.stderr = out.read(), err.read().decode(errors="replace")
    names = {line.split("|")[2].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:") and line.count("|") == 2}
    return done, names - {"package"}


def startup() -> set[str]:
    return loaded("pass")[1]


def granted(modules: set[str], packages: tuple[str, ...]) -> set[str]:
    """What the third-party modules among `modules` import on their own (ocisite finds them under -S)."""
    theirs = sorted(m for m in modules if m.split(".")[0] in packages)
    if not theirs:
        return set()
    return loaded("import ocisite; " + "; ".join(f"import {m}" for m in theirs))[1]


def check(name: str, done: subprocess.CompletedProcess, modules: set[str], allowed: set[str],
          packages: tuple[str, ...] = ()) -> None:
    assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
    extra = modules - startup() - allowed - granted(modules, packages)
    assert not extra, (f"{name} loads modules outside its budget (tests/unit/test_import_budget.py, README's "
                       f"PERFORMANCE): {', '.join(sorted(extra))}")


# -- warm fetch and push ------------------------------------------------------------------------


def _serve(layout: Path) -> ThreadingHTTPServer:
    """A registry that serves the manifests of one layout under any repository (GET and HEAD)."""
    manifests: dict[str, tuple[str, bytes]] = {}
    for entry in json.loads((layout / "index.json").read_text())["manifests"]:
        data = (layout / "blobs" / entry["digest"].replace(":", "/")).read_bytes()
        for key in (entry["digest"], entry.get("annotations", {}).get("org.opencontainers.image.ref.name")):
            if key:
                manifests[key] = (entry["mediaType"], data)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            found = manifests.get(self.path.rsplit("/", 1)[-1]) if "/manifests/" in self.path else None
            media, body = found if found else ("application/json", b'{"errors": [{"code": "NOT_FOUND"}]}')
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Registry:
    host: str
    layout: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    base = tmp_path_factory.mktemp("budget-registry")
    (base / "src").mkdir()
    (base / "src" / "hello").write_text("hello\n")
    layout = base / "layout"
    subprocess.run([sys.executable, str(BIN / "oci_commit.py"), "-q", "--from-dir", str(base / "src"),
                    f"{layout}:v1"], check=True, capture_output=True)
    server = _serve(layout)
    env = {"OCIKIT_BLOB_LOCATIONS": str(base / "locations"), "REGISTRY_AUTH_FILE": str(base / "auth.json"),
           "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf"), "DOCKER_CONFIG": str(base / "docker")}
    yield Registry(f"127.0.0.1:{server.server_port}", layout, env)
    server.shutdown()


def test_warm_fetch(registry: Registry, tmp_path: Path) -> None:
    """A layout that holds the image already: one manifest GET, no blob."""
    target = tmp_path / "layout"
    shutil.copytree(registry.layout, target)
    for _ in range(2):  # the second in steady state: the served manifest's validation remembered
        done, modules = loaded("from oci_fetch import main; main()", [f"{registry.host}/app:v1", str(target)],
                               registry.env)
    check("warm oci-fetch", done, modules, WARM_FETCH)


def test_warm_push(registry: Registry) -> None:
    """A registry that holds the image already: one manifest HEAD."""
    for _ in range(2):
        done, modules = loaded("from oci_push import main; main()",
                               [f"{registry.layout}:v1", f"{registry.host}/app:v1"], registry.env)
    check("warm oci-push", done, modules, WARM_PUSH)


# -- oci-mon run --------------------------------------------------------------------------------


def _monitor(root: Path) -> socket.socket:
    """A stand-in for a running monitor of `root`: answers each `run` request as the monitor does once the
    container runs ({"ok": true, "id", "name", "pid", "status"})."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "monitor.sock"))
    server.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed
            with conn:
                data = b""
                while b"\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data)
                answer = {"ok": True, "id": request["id"], "name": request["name"], "pid": 4242, "status": "running"}
                conn.sendall(json.dumps(answer).encode() + b"\n")

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_oci_mon_run(tmp_path: Path) -> None:
    """A detached run with its monitor running: the flags, config.json, one request, the answer printed."""
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"args": ["/bin/sleep", "30"], "cwd": "/"},
              "annotations": {"org.opencontainers.image.stopSignal": "SIGQUIT"}}
    (bundle / "config.json").write_text(json.dumps(config))
    server = _monitor(root)
    try:
        done, modules = loaded("from oci_mon import main; main()",
                               ["--root", str(root), "run", "--runtime", shutil.which("true") or "/bin/true",
                                "--bundle", str(bundle), "--restart", "on-failure:3", "budget"])
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        server.close()
    check("oci-mon run", done, modules, OCI_MON_RUN)
    assert json.loads(done.stdout) == {"id": "budget", "name": "budget", "pid": 4242, "status": "running"}


# -- the CNI plugin -----------------------------------------------------------------------------

CNI = "from oci_net import main; main()"


def test_cni_version() -> None:
    done, modules = loaded(CNI, env={"CNI_COMMAND": "VERSION"}, stdin=b'{"cniVersion": "1.1.0"}')
    check("oci-net CNI VERSION", done, modules, CNI_VERSION)


@pytest.mark.root
def test_cni_add_and_del(tmp_path: Path) -> None:
    tag = f"{os.getpid() % 100000}"
    netns = f"ocikit-test-budget{tag}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    conf = json.dumps({"cniVersion": "1.0.0", "name": f"budget{tag}", "type": "ocikit", "bridge": f"ocb{tag}",
                       "nftTable": f"ocikit_budget{tag}", "stateDir": str(tmp_path),
                       "ipam": {"subnet": f"10.213.{int(tag) % 250}.0/24"}}).encode()
    env = {"CNI_CONTAINERID": f"budget{tag}", "CNI_NETNS": f"/run/netns/{netns}", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/usr/lib/cni"}
    try:
        for command in ("ADD", "DEL", "ADD", "DEL"):  # the second round in steady state
            done, modules = loaded(CNI, env={**env, "CNI_COMMAND": command}, stdin=conf)
            assert done.returncode == 0, done.stdout + done.stderr.encode()
        check("oci-net CNI ADD", *loaded(CNI, env={**env, "CNI_COMMAND": "ADD"}, stdin=conf), CNI_ADD_DEL,
              CNI_PACKAGES)
        check("oci-net CNI DEL", *loaded(CNI, env={**env, "CNI_COMMAND": "DEL"}, stdin=conf), CNI_ADD_DEL,
              CNI_PACKAGES)
    finally:
        loaded(CNI, env={**env, "CNI_COMMAND": "DEL"}, stdin=conf)
        subprocess.run(["ip", "netns", "del", netns])


# -- oci-run's verbs ----------------------------------------------------------------------------

RUN = "from oci_run import main; main()"


def test_oci_run_state_of_a_missing_container(tmp_path: Path) -> None:
    """The verbs' common start, wherever the tests run (the lifecycle below needs root)."""
    done, modules = loaded(RUN, ["--root", str(tmp_path), "state", "missing"])
    assert done.returncode == 3, done.stderr
    assert not modules - startup() - RUN_STATE, sorted(modules - startup() - RUN_STATE)


def _bundle(folder: Path, args: list[str]) -> Path:
    from oci.runtime.defaults import default_config

    rootfs = folder / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", rootfs / "bin" / "busybox")
    for name in ("true", "sleep"):
        (rootfs / "bin" / name).symlink_to("busybox")
    for name in ("proc", "sys", "dev", "tmp"):
        (rootfs / name).mkdir()
    config = default_config()
    config["process"].update(terminal=False, args=args)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.root
def test_oci_run_lifecycle(tmp_path: Path) -> None:
    """create, start, state, kill, delete, and run: as an engine runs them for a container."""
    bundle = _bundle(tmp_path / "bundle", ["/bin/sleep", "30"])
    state = str(tmp_path / "state")
    cid = f"ocikit-test-budget-{os.getpid()}"
    steps = [("create", RUN_CREATE, ["create", "--bundle", str(bundle), cid]), ("start", RUN_LIFECYCLE, ["start", cid]),
             ("state", RUN_STATE, ["state", cid]), ("kill", RUN_LIFECYCLE, ["kill", cid, "KILL"]),
             ("delete", RUN_LIFECYCLE, ["delete", "--force", cid])]
    try:
        for round_ in (1, 2):  # the second in steady state: the config's validation remembered
            for verb, allowed, argv in steps:
                done, modules = loaded(RUN, ["--root", state, *argv])
                if round_ == 2:
                    check(f"oci-run {verb}", done, modules, allowed)
                assert done.returncode == 0, done.stderr
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["args"] = ["/bin/true"]
        (bundle / "config.json").write_text(json.dumps(config))
        for round_ in (1, 2):
            done, modules = loaded(RUN, ["--root", state, "run", "--bundle", str(bundle), f"{cid}-run"])
            if round_ == 2:
                check("oci-run run", done, modules, RUN_CREATE)
    finally:
        for name in (cid, f"{cid}-run"):
            loaded(RUN, ["--root", state, "delete", "--force", name])
