"""The Docker-like networking story end to end, with the real commands as a user types them.

oci-commit makes a busybox image, oci-unpack gives each container a root filesystem (a copy,
and an overlay), `oci-net create` makes a network, `oci-bundle --network NAME -p ...` writes
bundles whose createRuntime/poststop hooks run `oci-net hook connect|disconnect`, and oci-run
runs them knowing nothing about networks. Shown: a container reaches another by name through
the managed /etc/hosts, the host reaches a published port on 127.0.0.1, and deleting the
containers (poststop) leaves no lease, veth or nftables rule behind, the image untouched.

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
from pathlib import Path

import pytest

from tests.conftest import run
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


class Stack:
    """One test's network, containers and mounts; `close` removes all of them."""

    def __init__(self, tmp: Path, image: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.tmp, self.image = tmp, image
        self.state = str(tmp / "net-state")
        self.network, self.bridge, self.table = f"p{self.tag}", f"ocip{self.tag}", f"ocikit_p{self.tag}"
        self.runtime = OciRun(tmp / "run-root")
        self.mounts: list[str] = []
        self.env: dict[str, str] = {"OCIKIT_NET_STATE_DIR": ""}  # oci-net's default unless a test says otherwise

    def cid(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def net(self, *args: str) -> dict | list:
        return json.loads(ok(run("net", *args, env=self.env)))

    def create_network(self, *state_flag: str) -> dict:
        return self.net(*state_flag, "create", self.network, "--subnet", free_subnet([]), "--bridge", self.bridge,
                        "--nft-table", self.table)

    def rootfs(self, name: str, overlay: bool = False) -> dict:
        """oci-unpack's output for a new root filesystem (an overlay on a cache of the test's own)."""
        extra = ["--overlay", "--cache", str(self.tmp / "layer-cache")] if overlay else []
        piped = json.loads(ok(run("unpack", "-q", *extra, f"{self.image}:bb", str(self.tmp / name / "rootfs"))))
        if overlay:
            self.mounts.append(piped["rootfs"])
        return piped

    def bundle(self, name: str, piped: dict, *options: str) -> Path:
        """`oci-unpack ... | oci-bundle - BUNDLE --network NAME ...`."""
        out = ok(run("bundle", "-", str(self.tmp / name), "--network", self.network, "--name", name,
                     "--hostname", name, *options, input=json.dumps(piped).encode(), env=self.env))
        return Path(out.strip())

    def oci_run(self, *args: str) -> str:
        return ok(self.runtime(*args, env={k: v for k, v in os.environ.items() if k != "OCIKIT_NET_STATE_DIR"}))

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
def stack(tmp_path, image):
    stack = Stack(tmp_path, image)
    try:
        yield stack
    finally:
        stack.close()


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
        subprocess.run(["sleep", "0.05"])
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

    # kill + delete: the poststop hook releases the address, the veth and the port rules
    stack.oci_run("kill", stack.cid("web"), "KILL")
    for _ in range(100):
        if stack.runtime.state(stack.cid("web"))["status"] == "stopped":
            break
        subprocess.run(["sleep", "0.05"])
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


def test_state_dir_from_the_environment_reaches_the_hooks(stack):
    """OCIKIT_NET_STATE_DIR as oci-net and oci-bundle see it; oci-run runs without it (hooks get no env)."""
    stack.env["OCIKIT_NET_STATE_DIR"] = stack.state
    stack.create_network()
    port = free_port()
    web = stack.bundle("web", stack.rootfs("web"), "-p", f"127.0.0.1:{port}:80",
                       "--", "httpd", "-f", "-p", "80", "-h", "/www")
    for stage in ("createRuntime", "poststop"):
        args = hooks_of(web)[stage][0]["args"]
        assert args[args.index("--state-dir") + 1] == stack.state

    stack.oci_run("run", "-d", "--bundle", str(web), stack.cid("web"))
    assert list(stack.leases()) == [f"{stack.cid('web')}/eth0"]
    inspect = stack.net("inspect", stack.network)
    assert list(inspect["attachments"]) == [f"{stack.cid('web')}/eth0"]
    reply = wait_http(port)
    assert reply.endswith(PAGE)
    veth = stack.leases()[f"{stack.cid('web')}/eth0"]["hostIfname"]

    stack.oci_run("delete", "--force", stack.cid("web"))
    assert stack.leases() == {} and f"{veth}@" not in links() and f"dport {port} " not in nft_table(stack.table)
    assert stack.net("inspect", stack.network)["attachments"] == {}
