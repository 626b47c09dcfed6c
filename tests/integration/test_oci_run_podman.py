"""podman with oci-run as its OCI runtime: `podman --runtime $(command -v oci-run) run --rm IMAGE true`.

podman comes from Debian (installed here if missing). The image is a busybox-static OCI
layout copied into a private containers-storage with skopeo; no network is used. podman as
root raises hard rlimits by default, which fails without CAP_SYS_RESOURCE: the test's
containers.conf lowers them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/ocikit-busybox:test"
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

pytestmark = [pytest.mark.root, pytest.mark.slow]


def oci_run_command() -> str:
    """`command -v oci-run`, preferring this checkout's installed console script."""
    found = shutil.which("oci-run", path=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, "oci-run is not installed (make install)"
    return found


def ensure_podman() -> str:
    if shutil.which("podman") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "podman"], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("podman") or "podman"


def write_layout(out: Path) -> None:
    """An OCI image layout with one layer: busybox-static and a few applets."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(shutil.which("busybox") or "/bin/busybox", "bin/busybox")
        for applet in ("sh", "true", "cat", "id", "test", "echo", "sleep"):
            info = tarfile.TarInfo("bin/" + applet)
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    layer = buf.getvalue()
    layer_digest = blob(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": len(layer)}]}).encode()
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest), "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "test"}}]}))
    (out / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """argv prefix of a podman with private storage, our containers.conf and oci-run as runtime."""
    binary = ensure_podman()
    base = tmp_path_factory.mktemp("podman")
    (base / "containers.conf").write_text(CONTAINERS_CONF)
    write_layout(base / "layout")
    storage = ["--root", str(base / "root"), "--runroot", str(base / "runroot"), "--storage-driver", "vfs"]
    env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf")}
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{base / 'layout'}:test",
                    f"containers-storage:[vfs@{base / 'root'}+{base / 'runroot'}]{IMAGE}"], check=True, env=env)
    argv = [binary, *storage, "--runtime", oci_run_command()]
    yield argv, env
    subprocess.run([*argv, "rm", "-af"], capture_output=True, env=env)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(str(base))]
    for point in reversed(points):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def test_podman_run_rm_true(podman):
    argv, env = podman
    result = subprocess.run([*argv, "run", "--rm", IMAGE, "true"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_podman_memory_and_pids_limits_and_exit_status(podman):
    argv, env = podman
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null "
              "|| cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; exit 3")
    result = subprocess.run([*argv, "run", "--rm", "--memory", "64m", "--pids-limit", "50", IMAGE, "sh", "-c", script],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == [str(64 << 20), "50"]


def test_podman_interactive_tty(podman):
    argv, env = podman
    # The short sleep keeps the container alive until podman has attached to its terminal: under
    # load, podman 4.3 was seen missing the output of a `-it` container that exits at once.
    command = " ".join([*argv, "run", "--rm", "-it", IMAGE, "sh", "-c",
                        "'test -t 0 && echo tty-ok; sleep 1; exit 4'"])
    result = subprocess.run(["script", "-qec", command, "/dev/null"], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, env=env, timeout=120)
    assert "tty-ok" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 4


def test_podman_exec(podman):
    argv, env = podman
    started = subprocess.run([*argv, "run", "-d", IMAGE, "sleep", "60"], capture_output=True, text=True, env=env,
                             timeout=120)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        result = subprocess.run([*argv, "exec", cid, "sh", "-c", "echo exec-ok; exit 5"], capture_output=True,
                                text=True, env=env, timeout=120)
        assert result.stdout.strip() == "exec-ok" and result.returncode == 5, result.stderr
    finally:
        subprocess.run([*argv, "rm", "-f", "-t", "0", cid], capture_output=True, env=env, timeout=120)
