"""Bundles written by oci-bundle run under the reference runtimes, runc and crun from Debian."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.unit.bundle_testimage import make_image

pytestmark = pytest.mark.root

SCRIPT = ("echo hello from $(cat /etc/hostname); id -u; id -G; echo $HOME; pwd; "
          "grep -c localhost /etc/hosts; exit 3")
LIMITS = ("echo kept > /data/file; cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; "
          "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; "
          "touch /etc/x 2>/dev/null && echo writable || echo read-only")


def runtime_command(runtime: str, state: Path, bundle: Path, name: str) -> list[str]:
    if runtime == "runc":
        return ["runc", "--root", str(state), "run", "--bundle", str(bundle), name]
    # crun 1.8 refuses this host's hybrid cgroup layout unless the empty cgroup2 mount is hidden.
    inner = f"umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root {state} run --bundle {bundle} {name}"
    return ["unshare", "-m", "sh", "-c", inner]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runtimes")
    return make_image(tmp, {"Cmd": ["sh", "-c", SCRIPT], "User": "alice", "WorkingDir": "/home/alice",
                            "Env": ["PATH=/bin"]}, busybox=True)


def run_bundle(oci, runtime: str, image, tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess, Path]:
    if not shutil.which(runtime):
        pytest.fail(f"{runtime} is not installed (.ci/install installs it)")
    layout, rootfs = image
    bundle = tmp_path / "bundle"
    version = "1.1.0" if runtime == "crun" else "1.3.0"
    made = oci("bundle", f"{layout}:latest", str(bundle), "--rootfs", str(rootfs), "--oci-version", version,
               "--hostname", "box", *options)
    assert made.returncode == 0, made.stderr
    state = tmp_path / "state"
    name = f"ocikit-bundle-{uuid.uuid4().hex[:12]}"
    try:
        result = subprocess.run(runtime_command(runtime, state, bundle, name), capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([runtime, "--root", str(state), "delete", "--force", name], capture_output=True)
    return result, bundle


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_default_bundle_runs(oci, image, tmp_path, runtime):
    result, _ = run_bundle(oci, runtime, image, tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == ["hello from box", "1000", "1000 10 29", "/home/alice", "/home/alice", "2"]


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_bundle_with_limits_and_a_volume_runs(oci, image, tmp_path, runtime):
    result, bundle = run_bundle(oci, runtime, image, tmp_path, "-u", "0", "-m", "64m", "--pids-limit", "32",
                                "-v", "store:/data", "--read-only", "--", "sh", "-c", LIMITS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["32", str(64 << 20), "read-only"]
    assert (bundle / "volumes" / "store" / "file").read_text() == "kept\n"
    assert os.stat(bundle / "config.json").st_size > 0


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_seccomp_refuses_what_capabilities_allow_and_hooks_run(oci, image, tmp_path, runtime):
    """Creating a user namespace needs no capability; the default profile still refuses it."""
    seen = tmp_path / "hook-state.json"
    probe = "unshare -U true && echo unshared || echo refused"
    result, bundle = run_bundle(oci, runtime, image, tmp_path, "--hook", f"createRuntime=/bin/sh -c 'cat > {seen}'",
                                "--", "sh", "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"
    assert f'"{bundle}"' in seen.read_text()  # the hook got the container state, naming the bundle
    result, _ = run_bundle(oci, runtime, image, tmp_path / "unconfined", "--security-opt", "seccomp=unconfined",
                           "--", "sh", "-c", probe)
    assert result.stdout.strip() == "unshared", result.stderr


def test_overlay_rootfs_from_oci_unpack_is_mounted_and_runs(oci, image, tmp_path):
    """oci-unpack may hand over an overlay it did not mount: oci-bundle mounts it, runc runs on it."""
    import json

    from oci.image import open_image, to_pipe

    layout, lower = image
    upper, work, rootfs = tmp_path / "upper", tmp_path / "work", tmp_path / "bundle" / "rootfs"
    for folder in (upper, work):
        folder.mkdir()
    mount = {"type": "overlay", "source": "overlay", "destination": str(rootfs),
             "options": [f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}"]}
    piped = {"rootfs": str(rootfs), "image": to_pipe(*open_image(f"{layout}:latest")), "diff_ids": [], "mount": mount}
    state, name = tmp_path / "state", f"ocikit-bundle-{uuid.uuid4().hex[:12]}"
    try:
        made = oci("bundle", "-", str(tmp_path / "bundle"), "-u", "0", "--", "sh", "-c", "echo new > /made; cat /made",
                   input=json.dumps(piped).encode())
        assert made.returncode == 0, made.stderr
        assert os.path.ismount(rootfs)
        config = json.loads((tmp_path / "bundle" / "config.json").read_text())
        assert config["root"]["path"] == "rootfs"
        assert json.loads(config["annotations"]["org.ocikit.rootfs.mount"]) == mount
        result = subprocess.run(runtime_command("runc", state, tmp_path / "bundle", name), capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 0 and result.stdout == "new\n", result.stderr
        assert (upper / "made").read_text() == "new\n" and not (Path(lower) / "made").exists()
    finally:
        subprocess.run(["runc", "--root", str(state), "delete", "--force", name], capture_output=True)
        subprocess.run(["umount", "-l", str(rootfs)], capture_output=True)


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_user_namespace_bundle_runs(oci, runtime):
    """--userns maps the container's root to an unprivileged host uid; volumes and etc files belong to it."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ocikit-bundle-userns-") as folder:  # mapped root must traverse it
        os.chmod(folder, 0o755)
        check_user_namespace(oci, Path(folder), runtime)


def check_user_namespace(oci, tmp_path: Path, runtime: str) -> None:
    image = make_image(tmp_path, {"Cmd": ["sh", "-c", "id -u; cat /proc/self/uid_map; echo ok > /data/f"]},
                       busybox=True)
    for path in [image[1], *image[1].rglob("*")]:
        os.lchown(path, 100000, 100000)  # what a userns-aware unpack produces
    result, bundle = run_bundle(oci, runtime, image, tmp_path, "--userns", "0:100000:65536", "-v", "/data")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0", "100000", "65536"]
    written = next((bundle / "volumes").iterdir()) / "f"
    assert written.read_text() == "ok\n" and written.stat().st_uid == 100000
