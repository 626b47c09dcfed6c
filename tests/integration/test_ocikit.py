"""`ocikit`, the front command, against the tests' registries, real containers and skopeo.

Each test module works in a state root of its own (`--root`), so its networks (bridges `br-*`
named from the root, nftables table `ocikit_*`), runtime state (/run/ocikit/ROOTTAG) and layer
cache are its own; credentials go to a private REGISTRY_AUTH_FILE. The image is busybox-static
(podman_env's layout) pushed to the session's plain registry.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration import images, podman_env
from tests.integration.netutil import free_subnet

pytestmark = pytest.mark.root


class Kit:
    """`ocikit --root ROOT ...` with a private auth file."""

    def __init__(self, root: Path, auth: Path) -> None:
        self.root, self.auth = root, auth

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, "REGISTRY_AUTH_FILE": str(self.auth)}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "bin" / "ocikit.py"), "--root", str(self.root), *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True,
                 ) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(*args), env=self.environ, capture_output=True, text=True, input=input,
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"ocikit {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def background(self, *args: str) -> subprocess.Popen:
        """A foreground `ocikit run` left running in a process of its own."""
        return subprocess.Popen(self.argv(*args), env=self.environ, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_running(self, name: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self("inspect", "--type", "container", name, check=False)
            if done.returncode == 0 and json.loads(done.stdout)[0]["State"]["Status"] == "running":
                return json.loads(done.stdout)[0]
            time.sleep(0.1)
        raise AssertionError(f"{name} is not running: {done.stderr}")


@pytest.fixture(scope="module")
def image(registry, tmp_path_factory) -> str:
    """busybox-static in the plain registry, as REF."""
    base = tmp_path_factory.mktemp("ocikit-image")
    layout = podman_env.PodmanEnv(base)._busybox_layout()
    ref = registry.ref(f"ocikit-front/busybox-{os.getpid()}", "latest")
    images.skopeo_copy(f"oci:{layout}:busybox", f"docker://{ref}", None, registry)
    return ref


@pytest.fixture(scope="module")
def kit(tmp_path_factory, image) -> Kit:
    base = tmp_path_factory.mktemp("ocikit-root")
    found = Kit(base / "root", base / "auth.json")
    subnet = free_subnet([])
    found("network", "create", "--subnet", subnet, "bridge")  # the default network, on a free test subnet
    yield found
    found("rm", "-f", *found("ps", "-aq").stdout.split(), check=False)
    for net in found("network", "ls", "-q").stdout.split():
        if net not in ("host", "none"):
            found("network", "rm", net, check=False)
    stop_monitor(found.root)
    subprocess.run(["umount", "-R", str(found.root)], capture_output=True)
    remove_runtime_folder(found.root)
    shutil.rmtree(base, ignore_errors=True)


def remove_runtime_folder(root: Path) -> None:
    """The root's runtime folder (/run/ocikit/TAG), empty once its containers are gone."""
    from oci.engine.root import StateRoot

    with contextlib.suppress(OSError):
        os.rmdir(StateRoot(str(root)).runtime)


def stop_monitor(root: Path) -> None:
    """The state root's oci-mon, stopped by its pid (it would leave by itself once idle)."""
    from oci.monitor import client
    from oci.monitor.paths import Root

    pid = client.monitor_pid(Root(str(root / "monitor")))
    if pid:
        os.kill(pid, 15)


def test_run_shows_the_output_and_exits_with_the_containers_status(kit, image):
    done = kit("run", "--rm", image, "sh", "-c", "echo out; echo err >&2; hostname; exit 3", check=False)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines()[0] == "out" and "err" in done.stderr
    assert kit("ps", "-aq").stdout == ""  # --rm removed it


def test_run_fails_as_docker_run_does(kit, image, registry):
    missing = kit("run", "--rm", registry.ref("ocikit-front/nothing-here"), "true", check=False)
    assert missing.returncode == 125 and "nothing-here" in missing.stderr
    not_found = kit("run", "--rm", image, "no-such-command", check=False)
    assert not_found.returncode == 127 and "executable file not found" in not_found.stderr
    assert kit("ps", "-aq").stdout == ""


def test_one_name_for_container_host_and_network_peers(kit, image):
    server = kit.background("run", "--rm", "--name", "peer-one", image, "sleep", "30")
    try:
        kit.wait_running("peer-one")
        done = kit("run", "--rm", "--name", "peer-two", image, "sh", "-c",
                   "hostname; ping -c1 -W2 peer-one >/dev/null && echo reached")
        assert done.stdout.split() == ["peer-two", "reached"]
    finally:
        kit("rm", "-f", "peer-one")
        server.wait(timeout=30)


def test_a_named_volume_is_shared_by_two_containers(kit, image):
    kit("run", "--rm", "-v", "shared:/data", image, "sh", "-c", "echo from-one > /data/file")
    done = kit("run", "--rm", "-v", "shared:/mnt:ro", image, "sh", "-c", "cat /mnt/file; touch /mnt/x", check=False)
    assert done.stdout == "from-one\n" and done.returncode != 0 and "Read-only" in done.stderr
    assert kit("volume", "ls", "-q").stdout.split() == ["shared"]
    assert kit("volume", "inspect", "-f", "{{.Mountpoint}}", "shared").stdout.strip().endswith("/shared/_data")
    kit("volume", "rm", "shared")
    assert kit("volume", "ls", "-q").stdout == ""


def host_state(kit: Kit) -> dict[str, object]:
    """What a container can leave on the host, as seen now."""
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f if str(kit.root) in line.split()[4])
    leases = {}
    for path in (kit.root / "net" / "leases").glob("*.json"):
        leases[path.name] = json.loads(path.read_text() or "{}")
    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/ocikit/*") if p.is_dir())
    runtime = sorted(os.listdir(f"/run/ocikit/{_root_tag(kit)}")) if os.path.isdir(
        f"/run/ocikit/{_root_tag(kit)}") else []
    from oci.engine.root import StateRoot

    root = StateRoot(str(kit.root))
    nft = subprocess.run(["nft", "list", "table", "inet", root.nft_table], capture_output=True, text=True).stdout
    return {"mounts": mounts, "leases": leases, "cgroups": cgroups, "runtime": runtime,
            "containers": sorted(os.listdir(kit.root / "containers")), "names": sorted(os.listdir(kit.root / "names")),
            "cache users": sorted(os.listdir(kit.root / "layers" / "users")),
            "port rules": nft.count("ocikit port "), "veths": _veths(root.bridge_name("bridge"))}


def _root_tag(kit: Kit) -> str:
    from oci.engine.root import StateRoot

    return StateRoot(str(kit.root)).tag


def _veths(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("detached", [True, False], ids=["run -d", "run in another terminal"])
def test_rm_f_leaves_no_mount_cgroup_rule_lease_or_folder(kit, image, detached):
    kit("run", "--rm", image, "true")  # the image's layers are cached: only the container's traces are looked at
    before = host_state(kit)
    port = free_port()
    argv = ["run", "--name", "web", "-p", f"127.0.0.1:{port}:80", "-v", "site:/www", image,
            "sh", "-c", "echo hello > /www/index.html; echo serving; exec httpd -f -p 80 -h /www"]
    running = None
    if detached:
        cid = kit("run", "-d", *argv[1:]).stdout.strip()
        assert len(cid) == 64
    else:
        running = kit.background(*argv)
    try:
        record = kit.wait_running("web")
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.read() == b"hello\n"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        if detached:
            assert kit("logs", "web").stdout == "serving\n"
            assert kit("port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
        during = host_state(kit)
        assert during["port rules"] > before["port rules"] and record["Id"] in during["containers"]
        assert len(during["veths"]) == len(before["veths"]) + 1 and during["mounts"]
        assert any(path.endswith("/" + record["Id"]) for path in during["cgroups"])
        assert any(record["Id"] in lease for leases in during["leases"].values() for lease in leases)
        assert kit("rm", "-f", "web").stdout == "web\n"
    finally:
        if running is not None:
            running.wait(timeout=30)
    after = host_state(kit)
    # cgroups live under one /ocikit parent for every state root: other roots' containers (tests
    # running beside this one) come and go there; this container's must be gone
    assert not [path for path in after.pop("cgroups") if path.endswith("/" + record["Id"])]
    before.pop("cgroups")
    assert after == before
    assert not (kit.root / "monitor" / "containers" / record["Id"]).exists()
    kit("volume", "rm", "site")


def test_a_detached_container_restarts_by_its_policy_and_stops_for_good(kit, image):
    cid = kit("run", "-d", "--name", "flaky", "--restart", "on-failure:2", image, "sh", "-c",
              "echo try; exit 5").stdout.strip()
    assert kit("wait", "flaky").stdout == "5\n"
    deadline = time.monotonic() + 30
    while json.loads(kit("inspect", "flaky").stdout)[0]["RestartCount"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    kit("wait", "flaky")
    state = json.loads(kit("inspect", "flaky").stdout)[0]
    assert state["RestartCount"] == 2 and state["State"]["Status"] == "exited" and state["State"]["ExitCode"] == 5
    assert kit("logs", "flaky").stdout == "try\ntry\ntry\n"
    assert kit("ps", "-a", "-q", "--no-trunc").stdout.split() == [cid]
    kit("rm", "flaky")


def test_exec_top_cp_and_commit_on_a_running_container(kit, image, tmp_path):
    running = kit.background("run", "--name", "work", image, "sleep", "60")
    try:
        kit.wait_running("work")
        assert kit("exec", "work", "sh", "-c", "echo made > /made; hostname").stdout == "work\n"
        assert kit("exec", "work", "no-such", check=False).returncode == 127
        assert "sleep 60" in kit("top", "work").stdout
        (tmp_path / "in.txt").write_text("from the host\n")
        kit("cp", str(tmp_path / "in.txt"), "work:/tmp/")
        kit("cp", "work:/made", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "made\n"
        kit("cp", "work:/etc/hostname", str(tmp_path / "hostname"))  # the bundle's file, not the placeholder
        assert (tmp_path / "hostname").read_text() == "work\n"
        streamed = subprocess.run(kit.argv("cp", "work:/etc", "-"), env=kit.environ, capture_output=True,
                                  timeout=60, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(streamed)) as tar:
            assert tar.getmember("etc").isdir() and tar.extractfile("etc/passwd").read().startswith(b"root:")
        image_id = kit("commit", "-c", 'CMD ["cat", "/tmp/in.txt", "/made"]', "work", "committed:1").stdout.strip()
        assert image_id.startswith("sha256:")
        assert kit("run", "--rm", "committed:1").stdout == "from the host\nmade\n"
        assert kit("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "committed").stdout == \
            f"committed:1 {image_id[7:19]}\n"
        refused = kit("rmi", "committed:1", check=False)  # a container (stopped) uses it? no: `work` uses `image`
        assert refused.returncode == 0 and "Deleted: " + image_id in refused.stdout
    finally:
        kit("rm", "-f", "work")
        running.wait(timeout=30)


def test_stop_waits_for_the_grace_period_then_kills(kit, image):
    running = kit.background("run", "--name", "stubborn", image, "sh", "-c", "trap '' TERM; sleep 60")
    try:
        kit.wait_running("stubborn")
        start = time.monotonic()
        assert kit("stop", "-t", "1", "stubborn").stdout == "stubborn\n"
        assert 0.9 < time.monotonic() - start < 15
        assert running.wait(timeout=30) == 137
        assert "Exited (137)" in kit("ps", "-a", "--filter", "name=stubborn").stdout
        assert kit("wait", "stubborn").stdout == "137\n"
    finally:
        kit("rm", "-f", "stubborn")


def test_tag_push_rmi_and_pull_again(kit, image, registry):
    target = registry.ref(f"ocikit-front/pushed-{os.getpid()}", "1")
    kit("pull", image)
    kit("tag", image, target)
    pushed = kit("push", target)
    digest = pushed.stdout.split("digest: ")[1].split()[0]
    assert images.skopeo_manifest_digest(target, registry) == digest
    assert kit("rmi", target).stdout == f"Untagged: {target}\n"
    assert kit("pull", "-q", f"docker://{target}").stdout == f"{target}\n"
    assert kit("images", "--digests", "--format", "{{.Digest}}", target.rsplit(":", 1)[0]).stdout == f"{digest}\n"
    tags = kit("image", "tags", target.rsplit(":", 1)[0]).stdout.split()
    assert tags == ["1"]
    remote = json.loads(kit("inspect", f"docker://{target}").stdout)[0]
    assert remote["Digest"] == digest and remote["RepoTags"] == ["1"]


def test_save_then_load_gives_the_same_digests_and_skopeo_reads_the_archives(kit, image, tmp_path):
    kit("pull", image)
    before = kit("images", "--digests", "--no-trunc", "--format", "{{.Digest}} {{.ID}}", image).stdout
    for fmt in ("docker-oci", "oci-archive", "docker-archive"):
        archive = tmp_path / f"{fmt}.tar"
        kit("save", "--format", fmt, "-o", str(archive), image)
        other = Kit(tmp_path / f"root-{fmt}", kit.auth)
        assert other("load", "-i", str(archive)).stdout == f"Loaded image: {image}\n"
        after = other("images", "--digests", "--no-trunc", "--format", "{{.Digest}} {{.ID}}", image).stdout
        if fmt == "docker-archive":  # no manifest inside: the image ID (config digest) is what survives
            assert after.split()[1] == before.split()[1]
        else:
            assert after == before
        transport = "oci-archive" if fmt == "oci-archive" else "docker-archive"
        inspected = json.loads(images.skopeo("inspect", f"{transport}:{archive}").stdout)
        assert inspected["Digest"].startswith("sha256:") and inspected["Os"] == "linux"
    piped = subprocess.run(kit.argv("save", image), capture_output=True, env=kit.environ).stdout
    loaded = subprocess.run(Kit(tmp_path / "piped", kit.auth).argv("load"), input=piped, capture_output=True)
    assert loaded.returncode == 0 and loaded.stdout.decode() == f"Loaded image: {image}\n"


def test_login_writes_what_skopeo_then_reads(kit, tls_registry, tmp_path):
    user, password = tls_registry.username, tls_registry.password
    wrong = kit("login", "--cert-dir", tls_registry.cert_dir, "-u", user, "--password-stdin", tls_registry.host,
                input="wrong\n", check=False)
    assert wrong.returncode == 6 and "unauthorized" in wrong.stderr
    assert not kit.auth.exists()
    done = kit("login", "--cert-dir", tls_registry.cert_dir, "-u", user, "--password-stdin", tls_registry.host,
               input=password + "\n")
    assert done.stdout == "Login Succeeded\n"
    layout = podman_env.PodmanEnv(tmp_path)._busybox_layout()
    ref = tls_registry.ref(f"ocikit-front/login-{os.getpid()}", "1")
    skopeo = subprocess.run(["skopeo", "copy", "--quiet", f"--dest-cert-dir={tls_registry.cert_dir}",
                             f"oci:{layout}:busybox", f"docker://{ref}"], env=kit.environ, capture_output=True,
                            text=True)
    assert skopeo.returncode == 0, skopeo.stderr  # with only the file login wrote to authenticate
    kit("pull", "--cert-dir", tls_registry.cert_dir, ref)  # and ocikit reads it as well
    assert kit("logout", tls_registry.host).stdout == f"Removing login credentials for {tls_registry.host}\n"
    refused = subprocess.run(["skopeo", "inspect", f"--cert-dir={tls_registry.cert_dir}", f"docker://{ref}"],
                             env=kit.environ, capture_output=True, text=True)
    assert refused.returncode != 0


def in_terminal(argv: list[str], env: dict[str, str], keys: bytes, prompt: bytes = b"# ",
                timeout: float = 30) -> tuple[int, bytes]:
    """Run argv on a new pty, type `keys` once `prompt` shows; its exit code and what it printed."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out, typed, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            if not typed and prompt in out:
                os.write(fd, keys)
                typed = True
        else:
            os.kill(pid, 9)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out
    finally:
        os.close(fd)


def test_run_it_and_exec_it_give_a_terminal(kit, image):
    code, out = in_terminal(kit.argv("run", "-it", "--rm", "--name", "term", image, "sh"), kit.environ,
                            b"tty; echo $TERM; exit 7\r")
    assert code == 7, out
    assert b"/dev/pts/0" in out and b"xterm" in out
    kit("run", "-d", "--name", "longer", image, "sleep", "60")
    try:
        code, out = in_terminal(kit.argv("exec", "-it", "longer", "sh"), kit.environ, b"tty && exit 4\r")
        assert code == 4 and b"/dev/pts/" in out, out
    finally:
        kit("rm", "-f", "longer")


def test_publish_all_and_a_detached_rm_container(kit, image):
    kit("run", "-d", "--name", "exposer", image, "sleep", "60")
    try:
        kit("commit", "-c", "EXPOSE 80", "exposer", "exposing:1")
    finally:
        kit("rm", "-f", "exposer")
    kit("run", "-d", "--rm", "-P", "--name", "auto", "exposing:1", "sh", "-c", "sleep 1")
    port = kit("port", "auto", "80").stdout.strip()
    assert port.startswith("0.0.0.0:") and int(port.split(":")[1]) > 0
    kit("wait", "auto")
    assert kit("ps", "-aq").stdout == ""  # removed once it exited
    kit("rmi", "exposing:1")


def test_pause_unpause_and_a_second_network(kit, image):
    kit("network", "create", "--subnet", free_subnet([]), "second")
    kit("run", "-d", "--name", "both", image, "sleep", "60")
    try:
        kit("pause", "both")
        assert kit("ps", "--format", "{{.Names}} {{.State}}").stdout == "both paused\n"
        assert kit("exec", "both", "true", check=False).returncode != 0
        kit("unpause", "both")
        kit("network", "connect", "--alias", "extra", "second", "both")
        networks = json.loads(kit("inspect", "both").stdout)[0]["NetworkSettings"]["Networks"]
        assert sorted(networks) == ["bridge", "second"]
        assert "eth1" in kit("exec", "both", "ip", "-o", "link").stdout
        assert kit("run", "--rm", "--network", "second", image, "ping", "-c1", "-W2", "extra").returncode == 0
        kit("network", "disconnect", "second", "both")
        assert "eth1" not in kit("exec", "both", "ip", "-o", "link").stdout
        kit("network", "connect", "second", "both")
        refused = kit("network", "rm", "second", check=False)
        assert refused.returncode == 7 and "active endpoints" in refused.stderr
    finally:
        kit("rm", "-f", "both")
    kit("network", "rm", "second")  # rm -f released its lease on the second network too
    assert "second" not in kit("network", "ls", "-q").stdout.split()


def test_build_from_a_dockerfile_into_the_store(kit, tmp_path):
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(podman_env.BUSYBOX, context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "RUN echo built > /built\n"
        'CMD ["cat", "/built"]\n')
    done = kit("build", "-t", "built:1", "-t", "built:latest", str(context))
    image_id = kit("images", "-q", "built:1").stdout.strip()
    assert done.stdout.splitlines() == [f"Successfully built {image_id}", "Successfully tagged built:1",
                                        "Successfully tagged built:latest"]
    assert kit("run", "--rm", "built").stdout == "built\n"
    assert kit("build", "-q", "-t", "built:1", str(context)).stdout.strip().startswith("sha256:" + image_id)
    kit("rmi", "built:1", "built:latest")


def test_manifest_create_and_push(kit, image, registry):
    kit("pull", image)
    target = registry.ref(f"ocikit-front/multi-{os.getpid()}", "1")
    digest = kit("manifest", "create", target, image).stdout.strip()
    assert digest.startswith("sha256:")
    pushed = kit("manifest", "push", target).stdout.strip()
    assert pushed == digest == images.skopeo_manifest_digest(target, registry)
    index = json.loads(kit("manifest", "inspect", f"docker://{target}").stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert index["manifests"][0]["platform"]["os"] == "linux"
    kit("manifest", "rm", target)


def test_a_loopback_registry_needs_no_flag(kit, image, registry):
    """127.0.0.0/8 and localhost speak plain HTTP by default, as Docker, podman and go-containerregistry
    treat them; a TLS registry on loopback is reached with its CA (--cert-dir)."""
    port = registry.host.rsplit(":", 1)[1]
    by_name = image.replace(registry.host, f"localhost:{port}")
    assert kit("pull", "-q", by_name).stdout == f"{by_name}\n"
    assert kit("pull", "-q", f"docker://{image}").stdout == f"{image}\n"
    assert kit("run", "--rm", by_name, "echo", "from-localhost").stdout == "from-localhost\n"
    kit("rmi", by_name)


def test_process_flags_as_docker_run_takes_them(kit, image):
    done = kit("run", "--rm", "-u", "65534:65534", "-w", "/made/here", "-e", "A=1", "--entrypoint", "/bin/sh",
               image, "-c", "id -u; pwd; echo $A")
    assert done.stdout == "65534\n/made/here\n1\n"  # the working directory is made when the image lacks it
    done = kit("run", "--rm", "--read-only", "--cap-drop", "ALL", "--pids-limit", "20", image, "sh", "-c",
               "touch /x; cat /proc/self/status | grep CapEff", check=False)
    assert done.returncode == 0 and "Read-only file system" in done.stderr and "0000000000000000" in done.stdout


def test_tls_verify_false_reaches_the_self_signed_registry(kit, image, tls_registry):
    """TLS without verification (skopeo's and podman's --tls-verify=false), distinct from plain HTTP."""
    target = tls_registry.ref(f"ocikit-front/unverified-{os.getpid()}", "1")
    kit("pull", image)
    kit("tag", image, target)
    refused = kit("push", target, check=False)  # neither its CA nor the flag: the certificate is not trusted
    assert refused.returncode != 0 and "certificate" in refused.stderr
    kit("login", "--tls-verify=false", "-u", tls_registry.username, "--password-stdin", tls_registry.host,
        input=tls_registry.password + "\n")
    assert kit("push", "--tls-verify=false", target).returncode == 0
    kit("rmi", target)
    assert kit("pull", "-q", "--tls-verify=false", target).stdout == f"{target}\n"
    kit("rmi", target)
    kit("logout", tls_registry.host)


def test_registries_conf_mirrors_insecure_registries_and_short_names(kit, image, registry, tls_registry, tmp_path):
    """registries.conf read as podman reads it: a mirror is tried first (the image keeps its name), an
    insecure registry needs no flag, a short name goes by its alias."""
    mirrored = f"mirrored-{os.getpid()}.example/team/busybox:1"  # a registry that does not exist: only its mirror
    images.skopeo_copy(f"docker://{image}", f"docker://{registry.host}/mirror/team/busybox:1", registry, registry)
    conf = tmp_path / "registries.conf"
    conf.write_text(f"""
unqualified-search-registries = []
[aliases]
"shorty" = "{image.rsplit(':', 1)[0]}"
[[registry]]
location = "{mirrored.split('/')[0]}"
[[registry.mirror]]
location = "{registry.host}/mirror"
[[registry]]
location = "{tls_registry.host}"
insecure = true
""")
    env = {**kit.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(kit.argv(*args), env=env, capture_output=True, text=True, input=input, timeout=120)

    pulled = run("pull", "-q", mirrored)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout == f"{mirrored}\n"  # named as asked, though the mirror served it
    assert run("run", "--rm", mirrored, "echo", "mirrored").stdout == "mirrored\n"
    assert run("pull", "-q", "shorty").stdout == f"{image}\n"  # the alias's image, by its full name
    assert run("login", "-u", tls_registry.username, "--password-stdin", tls_registry.host,
               input=tls_registry.password + "\n").returncode == 0
    target = tls_registry.ref(f"ocikit-front/insecure-{os.getpid()}", "1")
    assert run("tag", mirrored, target).returncode == 0
    pushed = run("push", target)
    assert pushed.returncode == 0, pushed.stderr  # registries.conf's insecure = true: no flag, no CA
    for name in (mirrored, target, image):
        run("rmi", name)
    run("logout", tls_registry.host)
