"""The Docker-like networking story end to end, with the real commands as a user types them.

oci-commit makes a busybox image, oci-unpack gives each container a root filesystem (a copy,
and an overlay), `oci-net create` makes a network, `oci-bundle --network NAME -p ...` writes
bundles whose createRuntime/poststop hooks run `oci-net hook connect|disconnect`, and oci-run
runs them knowing nothing about networks. Shown: a container reaches another by name through
the managed /etc/hosts, the host reaches a published port on 127.0.0.1, and deleting the
containers (poststop) leaves no lease, veth or nftables rule behind, the image untouched.
The same with the state directory from the environment, with the installed console scripts,
and with runc as the runtime.

Global names carry a random tag (network, bridge `ocip*`, nftables table `ocikit_p*`,
container ids); the subnet is a free /24 of 10.213.0.0/16 (netutil.free_subnet) and traffic
only goes between the host and the containers made here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, command, run
from tests.integration.netutil import free_port, free_subnet, links, nft_table
from tests.integration.ocirun_bundle import OciRun

pytestmark = pytest.mark.root

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ping", "httpd", "nc", "cat", "sleep", "hostname", "ip", "ifconfig", "ls")
IMAGE_HOSTS = "127.0.0.1\tlocalhost\n192.0.2.250\timage-only-entry\n"
PAGE = "hello from the web container\n"


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A layout with a busybox image (tag bb) made by oci-commit from a directory."""
    if not os.path.exists(BUSYBOX):
        pytest.fail("busybox-static is not installed (.ci/install installs it)")
    tmp = tmp_path_factory.mktemp("pipeline")
    src = tmp / "src"
    for folder in ("bin", "etc", "www", "tmp"):
        (src / folder).mkdir(parents=True)
    shutil.copy(BUSYBOX, src / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", src / "bin" / applet)
    (src / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (src / "etc" / "group").write_text("root:x:0:\n")
    (src / "etc" / "hosts").write_text(IMAGE_HOSTS)
    (src / "www" / "index.html").write_text(PAGE)
    ok(run("commit", "-q", "--from-dir", str(src), "--owner", "0:0", "--cmd", "/bin/sh",
           "--env", "PATH=/bin", str(tmp / "layout") + ":bb"))
    return tmp / "layout"


INSTALLED = ROOT / ".venv" / "bin"  # the console scripts `make install` made


class InstalledOciRun(OciRun):
    def argv(self, *args: str) -> list[str]:
        return [str(INSTALLED / "oci-run"), "--root", str(self.root), *args]


class Stack:
    """One test's network, containers and mounts; `close` removes all of them."""

    def __init__(self, tmp: Path, image: Path, installed: bool = False) -> None:
        self.tag = secrets.token_hex(3)
        self.tmp, self.image, self.installed = tmp, image, installed
        self.state = str(tmp / "net-state")
        self.network, self.bridge, self.table = f"p{self.tag}", f"ocip{self.tag}", f"ocikit_p{self.tag}"
        self.runtime = InstalledOciRun(tmp / "run-root") if installed else OciRun(tmp / "run-root")
        self.mounts: list[str] = []
        self.env: dict[str, str] = {"OCIKIT_NET_STATE_DIR": ""}  # oci-net's default unless a test says otherwise

    def cid(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def command(self, name: str, *args: str, input: bytes | None = None) -> str:
        """oci-NAME from the checkout (python bin/oci_NAME.py), or the console script in .venv/bin."""
        argv = [str(INSTALLED / f"oci-{name}")] if self.installed else command(name)
        proc = subprocess.run(argv + list(args), input=input, capture_output=True, env={**os.environ, **self.env},
                              timeout=60)
        return ok(subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                              proc.stderr.decode(errors="replace")))

    def net(self, *args: str) -> dict | list:
        return json.loads(self.command("net", *args))

    def create_network(self, *state_flag: str) -> dict:
        return self.net(*state_flag, "create", self.network, "--subnet", free_subnet([]), "--bridge", self.bridge,
                        "--nft-table", self.table)

    def rootfs(self, name: str, overlay: bool = False) -> dict:
        """oci-unpack's output for a new root filesystem (an overlay on a cache of the test's own)."""
        extra = ["--overlay", "--cache", str(self.tmp / "layer-cache")] if overlay else []
        piped = json.loads(self.command("unpack", "-q", *extra, f"{self.image}:bb", str(self.tmp / name / "rootfs")))
        if overlay:
            self.mounts.append(piped["rootfs"])
        return piped

    def bundle(self, name: str, piped: dict, *options: str, network: str | None = None) -> Path:
        """`oci-unpack ... | oci-bundle - BUNDLE --network NAME ...`."""
        out = self.command("bundle", "-", str(self.tmp / name), "--network", network or self.network, "--name", name,
                           "--hostname", name, *options, input=json.dumps(piped).encode())
        return Path(out.strip())

    def oci_run(self, *args: str) -> str:
        return ok(self.oci_run_result(*args))

    def oci_run_result(self, *args: str) -> subprocess.CompletedProcess:
        """oci-run without $OCIKIT_NET_STATE_DIR: what the hooks need is in the bundle."""
        return self.runtime(*args, env={k: v for k, v in os.environ.items() if k != "OCIKIT_NET_STATE_DIR"})

    def leases(self) -> dict:
        path = Path(self.state) / "leases" / f"{self.network}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def close(self) -> None:
        self.runtime.cleanup()
        for mount in self.mounts:
            subprocess.run(["umount", "-l", mount], capture_output=True)
        run("net", "--state-dir", self.state, "rm", self.network)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)


@pytest.fixture
def make_stack(tmp_path, image):
    made: list[Stack] = []

    def make(installed: bool = False) -> Stack:
        made.append(Stack(tmp_path / f"stack{len(made)}", image, installed))
        return made[-1]

    try:
        yield make
    finally:
        for stack in made:
            stack.close()


@pytest.fixture
def stack(make_stack):
    return make_stack()


def http_get(port: int, host: str = "127.0.0.1") -> str:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode(errors="replace")


def wait_http(port: int) -> str:
    """The page once httpd (started by `oci-run start`) listens."""
    for _ in range(100):
        with contextlib.suppress(OSError):
            reply = http_get(port)
            if reply:
                return reply
        time.sleep(0.05)
    return http_get(port)


def hooks_of(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text())["hooks"]


def test_two_containers_by_name_published_port_and_nothing_stale(stack):
    stack.env["OCIKIT_NET_STATE_DIR"] = "/nonexistent/must-not-be-used"  # the flag wins everywhere
    net = stack.create_network("--state-dir", stack.state)
    port = free_port()
    web = stack.bundle("web", stack.rootfs("web"), "--state-dir", stack.state, "-p", f"127.0.0.1:{port}:80",
                       "--", "httpd", "-f", "-p", "80", "-h", "/www")
    client_rootfs = stack.rootfs("client", overlay=True)
    client = stack.bundle("client", client_rootfs, "--state-dir", stack.state, "--alias", "probe",
                          "--", "sleep", "600")
    for bundle in (web, client):
        for stage in ("createRuntime", "poststop"):
            args = hooks_of(bundle)[stage][0]["args"]
            assert args[args.index("--state-dir") + 1] == stack.state

    stack.oci_run("run", "-d", "--bundle", str(web), stack.cid("web"))
    stack.oci_run("create", "--bundle", str(client), stack.cid("client"))
    stack.oci_run("start", stack.cid("client"))

    leases = stack.leases()
    assert set(leases) == {f"{stack.cid('web')}/eth0", f"{stack.cid('client')}/eth0"}
    address = {lease["name"]: lease["addresses"][0].split("/")[0] for lease in leases.values()}
    veths = [lease["hostIfname"] for lease in leases.values()]
    assert all(f"{veth}@" in links() for veth in veths)
    assert address["web"] != address["client"] and address["web"].startswith(net["subnet"].rsplit(".", 1)[0])

    # the client finds the web container by name, through the managed /etc/hosts in its bundle
    hosts = stack.oci_run("exec", stack.cid("client"), "cat", "/etc/hosts")
    assert f"{address['web']}\tweb\n" in hosts and f"{address['client']}\tclient probe\n" in hosts
    assert "image-only-entry" not in hosts and hosts == (client / "hosts").read_text()
    assert "1 packets received" in stack.oci_run("exec", stack.cid("client"), "ping", "-c1", "-W2", "web")
    page = stack.oci_run("exec", stack.cid("client"), "sh", "-c",
                         "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80")
    assert page.startswith("HTTP/1.") and page.endswith(PAGE)
    # the web container sees the client too (its hosts file was rewritten in place when the client joined)
    assert "1 packets received" in stack.oci_run("exec", stack.cid("web"), "ping", "-c1", "-W2", "probe")

    # the host reaches httpd through the published port on its loopback
    reply = wait_http(port)
    assert reply.startswith("HTTP/1.") and reply.endswith(PAGE)
    assert f"dport {port} " in nft_table(stack.table)

    # `docker run --rm` style: a foreground container fetches the page by name, exits, is deleted
    once = stack.bundle("once", stack.rootfs("once"), "--state-dir", stack.state, "--", "sh", "-c",
                        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80")
    assert stack.oci_run("run", "--bundle", str(once), stack.cid("once")).endswith(PAGE)
    assert f"{stack.cid('once')}/eth0" not in stack.leases()
    assert "\tonce\n" not in (client / "hosts").read_text()

    # kill + delete: the poststop hook releases the address, the veth and the port rules
    stack.oci_run("kill", stack.cid("web"), "KILL")
    for _ in range(100):
        if stack.runtime.state(stack.cid("web"))["status"] == "stopped":
            break
        time.sleep(0.05)
    stack.oci_run("delete", stack.cid("web"))
    assert set(stack.leases()) == {f"{stack.cid('client')}/eth0"}
    web_veth = leases[f"{stack.cid('web')}/eth0"]["hostIfname"]
    assert f"{web_veth}@" not in links() and f"dport {port} " not in nft_table(stack.table)
    assert "\tweb\n" not in (client / "hosts").read_text()  # the client no longer resolves it
    with pytest.raises(OSError):
        http_get(port)

    stack.oci_run("delete", "--force", stack.cid("client"))
    assert stack.leases() == {}
    assert not any(f"{veth}@" in links() for veth in veths)
    rules = [line for line in nft_table(stack.table).splitlines() if "comment" in line]
    assert rules and all(f'"ocikit net {stack.network}"' in line for line in rules)  # the network's own only

    # the image was never modified: its /etc/hosts is intact; the overlay's upper dir holds at most the
    # empty mount points the runtime made for the bundle's hostname and resolv.conf, never a hosts file
    assert (stack.tmp / "web" / "rootfs" / "etc" / "hosts").read_text() == IMAGE_HOSTS
    assert Path(client_rootfs["rootfs"], "etc", "hosts").read_text() == IMAGE_HOSTS
    upper_etc = stack.tmp / "client" / ".rootfs.overlay" / "upper" / "etc"
    changed = {p.name: p.stat().st_size for p in upper_etc.iterdir()} if upper_etc.exists() else {}
    assert "hosts" not in changed and set(changed.values()) <= {0}
    assert "image-only-entry" not in (web / "hosts").read_text()

    ok(run("net", "--state-dir", stack.state, "rm", stack.network))
    assert f"{stack.bridge}:" not in links() and nft_table(stack.table) == ""


@pytest.mark.parametrize("installed", [False, True], ids=["checkout", "installed"])
def test_state_dir_from_the_environment_reaches_the_hooks(make_stack, installed):
    """OCIKIT_NET_STATE_DIR as oci-net and oci-bundle see it; oci-run runs without it (hooks get no
    environment). From the checkout (python bin/oci_X.py) and with the installed console scripts."""
    stack = make_stack(installed)
    stack.env["OCIKIT_NET_STATE_DIR"] = stack.state
    stack.create_network()
    port = free_port()
    web = stack.bundle("web", stack.rootfs("web"), "-p", f"127.0.0.1:{port}:80",
                       "--", "httpd", "-f", "-p", "80", "-h", "/www")
    for stage in ("createRuntime", "poststop"):
        hook = hooks_of(web)[stage][0]
        assert hook["args"][hook["args"].index("--state-dir") + 1] == stack.state
        assert hook["path"] == (str(INSTALLED / "oci-net") if installed else sys.executable)

    stack.oci_run("run", "-d", "--bundle", str(web), stack.cid("web"))
    assert list(stack.leases()) == [f"{stack.cid('web')}/eth0"]
    assert list(stack.net("inspect", stack.network)["attachments"]) == [f"{stack.cid('web')}/eth0"]
    assert wait_http(port).endswith(PAGE)
    veth = stack.leases()[f"{stack.cid('web')}/eth0"]["hostIfname"]

    stack.oci_run("delete", "--force", stack.cid("web"))
    assert stack.leases() == {} and f"{veth}@" not in links() and f"dport {port} " not in nft_table(stack.table)
    assert stack.net("inspect", stack.network)["attachments"] == {}

    # created, never started, deleted: connected by createRuntime, disconnected by poststop
    stack.oci_run("create", "--bundle", str(web), stack.cid("again"))
    assert list(stack.leases()) == [f"{stack.cid('again')}/eth0"]
    stack.oci_run("delete", stack.cid("again"))
    assert stack.leases() == {} and f"dport {port} " not in nft_table(stack.table)


def test_a_missing_network_fails_the_create_and_leaves_nothing(stack):
    stack.create_network("--state-dir", stack.state)
    bundle = stack.bundle("lost", stack.rootfs("lost"), "--state-dir", stack.state, "--", "sleep", "60",
                          network=f"x{stack.tag}")
    result = stack.oci_run_result("run", "-d", "--bundle", str(bundle), stack.cid("lost"))
    assert result.returncode != 0
    assert f"network x{stack.tag}" in result.stderr and "createRuntime hook" in result.stderr
    assert stack.oci_run("list", "-q").split() == [] and stack.leases() == {}


def test_a_failed_rule_setup_leaves_no_bridge_so_the_next_connect_sets_up_both(stack, monkeypatch):
    """The seam the pipeline first tripped on: a hook could not run nft (empty environment), the
    bridge stayed, and every later connect skipped the network's rules (no loopback masquerade:
    published ports were dead)."""
    from oci.errors import OciError
    from oci.net import endpoint, nat, networks

    net = stack.create_network("--state-dir", stack.state)
    netns = f"ocikit-test-{stack.tag}-nft"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        request = endpoint.Request(stack.cid("c"), f"/run/netns/{netns}")

        def no_nft() -> str:
            raise OciError("nft is not installed (Debian package nftables)")

        monkeypatch.setattr(nat, "nft_path", no_nft)
        with pytest.raises(OciError, match="nft"):
            endpoint.connect(stack.state, networks.load(stack.state, net["name"]), request)
        assert f"{stack.bridge}:" not in links() and stack.leases() == {}
        monkeypatch.undo()
        endpoint.connect(stack.state, networks.load(stack.state, net["name"]), request)
        assert f'"ocikit net {stack.network}"' in nft_table(stack.table)
        endpoint.disconnect(stack.state, net, stack.cid("c"))
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def test_the_same_bundle_under_runc(stack, tmp_path):
    """The hooks are plain runtime-spec hooks: runc from Debian wires the network just as oci-run does."""
    stack.create_network("--state-dir", stack.state)
    port = free_port()
    web = stack.bundle("web", stack.rootfs("web"), "--state-dir", stack.state, "-p", f"127.0.0.1:{port}:80",
                       "--", "httpd", "-f", "-p", "80", "-h", "/www")
    runc = ["runc", "--root", str(tmp_path / "runc-root")]
    cid = stack.cid("runc")
    try:
        with open(tmp_path / "runc.log", "w+") as log:
            started = subprocess.run([*runc, "run", "-d", "--bundle", str(web), cid], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, timeout=60)
            log.seek(0)
            assert started.returncode == 0, log.read()
        assert list(stack.leases()) == [f"{cid}/eth0"]
        assert wait_http(port).endswith(PAGE)
    finally:
        subprocess.run([*runc, "delete", "--force", cid], capture_output=True, timeout=60)
    assert stack.leases() == {} and f"dport {port} " not in nft_table(stack.table)
