"""What real engines hand a runtime, checked with runc, crun and oci-run alike (issue 13): unknown
properties, a 50 MB config.json, long --root paths, a seccomp profile without close_range, device rules
as the config gives them, lo in a new network namespace, no namespaces of its own, bind mounts with
tmpfs-style options, a mount label without SELinux, tmpcopyup."""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
from ocitest.runtime import Runtime

HOST_LOOP = "/dev/loop0"
EPERM = 1


@pytest.mark.spec("config.md#extensibility")
def test_unknown_properties_are_ignored(runtime, bundle, tmp_path):
    """Runtimes MUST NOT generate an error on an unknown property and MUST ignore it."""
    bundle.config["ociKitFutureProperty"] = {"nested": [1, 2, 3]}
    bundle.linux["ociKitFutureLinux"] = "x"
    bundle.process["ociKitFutureProcess"] = True
    bundle.args("/bin/true").write()
    result = runtime.run(bundle.path)
    assert result.returncode == 0, result.stderr


@pytest.mark.spec("config.md#annotations")
def test_a_50_mb_config(runtime, bundle):
    """runc runs a 50 MB config.json (large annotations); the state carries them."""
    bundle.config["annotations"] = {f"org.ocikit.large.{i}": "x" * (1 << 20) for i in range(50)}
    bundle.args("/bin/sleep", "30").write()
    cid = runtime.created(bundle.path)
    state = runtime.state(cid).json()
    assert (state["status"], len(state["annotations"])) == ("created", 50)
    runtime.delete(cid, force=True).check()


def _runtime_at(runtime: Runtime, root: Path) -> Runtime:
    """The same runtime with another --root."""
    root.mkdir(parents=True, exist_ok=True)
    return Runtime(runtime.name, root, runtime.workdir)


@pytest.mark.spec("runtime.md#lifecycle")
@pytest.mark.parametrize("shape", ["200 characters", "docker"])
def test_long_roots(runtime, bundle, tmp_path, shape):
    """Docker gives `/var/run/docker/runtime-runc/moby` and a 64-hex id: exec.sock's path is 108 bytes,
    one past sun_path; a --root of 200 characters must work too."""
    if shape == "docker":
        exec_root = Path("/run") / f"ock{uuid.uuid4().hex[:7]}"  # as long as /var/run/docker
        root, cid = exec_root / "runtime-runc" / "moby", uuid.uuid4().hex + uuid.uuid4().hex
    else:
        exec_root = tmp_path / "r"
        root = exec_root / ("x" * (200 - len(str(exec_root)) - 1))
        cid = runtime.new_id()
    assert len(str(root)) == (len("/var/run/docker/runtime-runc/moby") if shape == "docker" else 200)
    other = _runtime_at(runtime, root)
    try:
        bundle.args("/bin/sh", "-c", "echo started").write()
        other.ids.append(cid)
        other.create(bundle.path, cid)[1].check()
        assert other.state(cid).json()["status"] == "created"
        other.start(cid).check()
        assert other.wait_stopped(cid)["status"] == "stopped"
        assert other.output(cid) == "started\n"
        other.delete(cid).check()
        other.ids.remove(cid)
    finally:
        other.cleanup()
        subprocess.run(["rm", "-rf", str(exec_root)], check=False)


@pytest.mark.spec("config-linux.md#seccomp")
@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_ERRNO"])
def test_seccomp_profile_without_close_range(runtime, bundle, action):
    """A profile that does not allow close_range, loaded before the process changes its user
    (noNewPrivileges false): the runtime must not need close_range after the filter."""
    bundle.process["noNewPrivileges"] = False
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                               "syscalls": [{"names": ["close_range"], "action": action}]}
    bundle.args("/bin/sh", "-c", "echo ran").write()
    result = runtime.run(bundle.path)
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr


@pytest.mark.spec("config-linux.md#allowed-device-list")
def test_a_read_only_device_refuses_writes(runtime, bundle):
    """`docker run --device /dev/loop0:/dev/xvdc:r`: the node exists, reads work, writes are refused by the
    device cgroup (the config's rule is `r`, nothing more)."""
    host = HOST_LOOP if os.path.exists(HOST_LOOP) else "/dev/kmsg"  # a VM without the loop driver: a char device
    st = os.stat(host)
    kind, major, minor = "b" if host == HOST_LOOP else "c", os.major(st.st_rdev), os.minor(st.st_rdev)
    bundle.linux["devices"] = [{"path": "/dev/xvdc", "type": kind, "major": major, "minor": minor,
                                "fileMode": 0o660, "uid": 0, "gid": 0}]
    bundle.linux["resources"]["devices"] = [{"allow": False, "access": "rwm"},
                                            {"allow": True, "type": kind, "major": major, "minor": minor,
                                             "access": "r"}]
    bundle.process["capabilities"] = {key: ["CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN"]
                                      for key in ("bounding", "effective", "permitted")}
    bundle.checks("try read /dev/xvdc", "try open-write /dev/xvdc").write()
    read, write = runtime.run_lines(bundle.path)
    assert read["errno"] == 0, read  # opened (an unbound loop device has no bytes to read)
    assert (write["ok"], write["errno"]) == (False, EPERM), write


@pytest.mark.spec("config-linux.md#namespaces")
def test_loopback_is_up_in_a_new_network_namespace(runtime, bundle):
    """runc brings lo up in the network namespace it creates (IFF_UP in /sys/class/net/lo/flags)."""
    bundle.args("/bin/cat", "/sys/class/net/lo/flags").write()
    result = runtime.run(bundle.path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout, 16) & 0x1, result.stdout


@pytest.mark.spec("config-linux.md#namespaces")
def test_no_namespaces_of_its_own(runtime, bundle, tmp_path):
    """An empty namespaces list shares every namespace with the runtime's caller (here a private mount
    namespace, so that the mounts runc makes in its caller's do not reach the host)."""
    runtime.require("empty-namespaces")
    bundle.linux["namespaces"] = []
    del bundle.linux["maskedPaths"], bundle.linux["readonlyPaths"]
    del bundle.config["hostname"]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] == "/proc"]
    show = "for ns in pid net mnt; do readlink /proc/self/ns/$ns; done"
    bundle.args("/bin/sh", "-c", show).write()
    script = f"{show}; " \
             f"exec {shlex.join(runtime.argv('run', '--bundle', str(bundle.path), runtime.new_id()))}"
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **runtime.env})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6 and lines[:2] == lines[3:5], done.stdout
    if runtime.name != "crun":  # crun's wrapper gives it a mount namespace of its own (ocitest.runtime)
        assert lines[2] == lines[5], done.stdout


@pytest.mark.spec("config.md#mounts")
def test_bind_mount_with_tmpfs_style_options(runtime, bundle, out_dir):
    """podman and engines' volumes: `mode=755` on a bind mount means nothing to the kernel; runc runs it."""
    (out_dir / "hello").write_text("hi\n")
    bundle.add_mount("/mnt", "bind", str(out_dir), ["rbind", "mode=755", "size=10m"])
    bundle.args("/bin/cat", "/mnt/hello").write()
    result = runtime.run(bundle.path)
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr


@pytest.mark.spec("config-linux.md#mount-label")
def test_mount_label_without_selinux(runtime, bundle):
    """A host without SELinux: the mount label means nothing, and crun runs the container."""
    runtime.require("mount-label-without-selinux")
    assert not os.path.exists("/sys/fs/selinux/enforce"), "this check needs a host without SELinux"
    bundle.linux["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"
    bundle.args("/bin/true").write()
    result = runtime.run(bundle.path)
    assert result.returncode == 0, result.stderr


@pytest.mark.spec("config.md#mounts")
def test_tmpcopyup(runtime, bundle):
    """podman's --read-only and --tmpfs: a tmpfs over a directory starts with what the directory held."""
    runtime.require("tmpcopyup")
    (bundle.rootfs / "home" / "alice" / "sub").mkdir()
    (bundle.rootfs / "home" / "alice" / "sub" / "file").write_text("kept\n")
    os.symlink("sub/file", bundle.rootfs / "home" / "alice" / "link")
    os.chown(bundle.rootfs / "home" / "alice" / "sub", 1000, 1000)
    bundle.add_mount("/home/alice", "tmpfs", "tmpfs", ["rw", "nosuid", "nodev", "tmpcopyup"])
    bundle.args("/bin/sh", "-c", "cat /home/alice/link; ls -ln /home/alice | grep ' sub$';"
                                 " grep ' /home/alice ' /proc/self/mounts | cut -d' ' -f3").write()
    result = runtime.run(bundle.path)
    assert result.returncode == 0, result.stderr
    kept, listing, fstype = result.stdout.splitlines()
    assert (kept, fstype) == ("kept", "tmpfs")
    assert listing.split()[2:4] == ["1000", "1000"], listing
    assert (bundle.rootfs / "home" / "alice" / "sub" / "file").read_text() == "kept\n"
