"""A RUN step: the command in a real container started by oci-run, on the stage's overlay.

The runtime config is oci-bundle's (`oci.bundle.build`) for the stage's image config: its
Env (with the build arguments in scope added), User, WorkingDir, and the command as
process args; Docker's default capabilities and seccomp profile, setuid allowed (no
no_new_privs: `su` and `sudo` work in a build, as under Docker). The network is the
host's by default, as `docker build` gives RUN a network; `none`, or a network of oci-net.

The config is validated here and remembered (oci.schema's validation memo), so oci-run
finds it valid without loading jsonschema again for every step.

The runtime creates mount points that the image lacks (/proc, /dev, /sys, /etc/hosts, ...);
those it made, empty, are taken out of the upper directory again so that they never end up
in the step's layer.
"""

from __future__ import annotations

import json
import os
import posixpath
import secrets
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from oci import schema
from oci.bundle import build as bundles
from oci.dockerfile import lifetime
from oci.dockerfile.mounts import Overlay, Workspace
from oci.dockerfile.tree import Owner, Tree, clean
from oci.errors import NotFound
from oci.fsutil import write_atomic
from oci.unpack.safepath import Root, UnsafePath

_HERE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT_BIN = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "bin")


@dataclass
class RunSpec:
    """What a RUN step runs, and how."""

    args: list[str]
    config: dict[str, Any]  # the stage's image config (its `config` object is used)
    env: list[str] = field(default_factory=list)  # build arguments, NAME=value
    network: str = "host"
    net_state_dir: str | None = None


def command(name: str) -> list[str]:
    """How to start one of ocikit's commands (`oci-run`, `oci-net`): the launcher beside this
    interpreter (a virtualenv's), else the checkout's module run by this interpreter, else PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    module = os.path.join(_CHECKOUT_BIN, name.replace("-", "_") + ".py")
    if os.path.isfile(module):
        return [sys.executable, module]
    found = shutil.which(name)
    if found:
        return [os.path.abspath(found)]
    raise NotFound(f"{name}: not found (install ocikit's commands)")


def run(workspace: Workspace, overlay: Overlay, spec: RunSpec, output: int | None) -> tuple[int, bytes]:
    """Run the step; its exit status and, when `output` is None, what it printed.

    With an `output` fd, the container's stdout and stderr go there as they come.
    """
    image = spec.config.get("config") or {}
    cwd = posixpath.normpath(posixpath.join("/", image.get("WorkingDir") or "/"))
    with Tree(overlay.rootfs) as tree:
        if not tree.is_dir(cwd):
            os.close(tree.makedirs(cwd, Owner()))
        before = _existing(tree)
    bundle = workspace.new_dir("bundle")
    options = bundles.BundleOptions(
        args=spec.args, entrypoint="", env=spec.env, network=spec.network,
        security_opts=["no-new-privileges=false"], hostname=None if spec.network == "host" else "buildkitsandbox",
        oci_net=command("oci-net") if spec.network not in ("host", "none") else (),
        net_state_dir=spec.net_state_dir, environ={})
    config = bundles.build(spec.config, overlay.rootfs, bundle, options)
    container = f"ocibuild-{secrets.token_hex(6)}"
    config.setdefault("linux", {})["cgroupsPath"] = lifetime.cgroup_path(container)
    _write_config(bundle, config)
    runtime = runtime_root(workspace).command()
    captured = output is None
    # Tied to this process (lifetime's module doc): a SIGKILLed build takes the container along.
    process = subprocess.Popen(lifetime.tied([*runtime, "run", "--bundle", bundle, container]),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if captured else output,
                               stderr=subprocess.STDOUT if captured else output)
    try:
        printed, _ = process.communicate()
    except BaseException:  # interrupted: the pid namespace goes, then the container's record and cgroup
        process.kill()
        process.wait()
        try:
            subprocess.run([*runtime, "delete", "--force", container], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        except subprocess.TimeoutExpired:
            pass  # the workspace's close tries again, and then the next build
        raise
    _drop_mount_points(overlay.upper, before)
    shutil.rmtree(bundle, ignore_errors=True)
    return process.returncode, printed or b""


def runtime_root(workspace: Workspace) -> lifetime.RuntimeRoot:
    """oci-run's state folder for this build: private to it, locked while it runs, removed
    with the workspace (or by the next build when this one is killed)."""
    if workspace.runtime_root is None:
        workspace.runtime_root = lifetime.RuntimeRoot(command("oci-run"))
    return workspace.runtime_root


def _write_config(bundle: str, config: dict[str, Any]) -> None:
    path = os.path.join(bundle, "config.json")
    data = json.dumps(config, indent=2).encode() + b"\n"
    schema.load(data, "runtime-config", path, remember=True)
    write_atomic(path, data)


MOUNT_POINTS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc", "/proc", "/dev", "/sys")  # deepest first


def _existing(tree: Tree) -> set[str]:
    """Which of the mount points that oci-bundle's configs use the image has."""
    return {path for path in MOUNT_POINTS if tree.lstat(path) is not None}


def _drop_mount_points(upper: str, before: set[str]) -> None:
    """Remove the mount points the runtime made, still empty, from the upper directory."""
    with Root(upper) as root:
        for path in MOUNT_POINTS:
            if path in before:
                continue
            rel = clean(path)
            try:
                found = root.lstat(rel)
            except (UnsafePath, NotADirectoryError):
                continue
            if found is None:
                continue
            if stat.S_ISDIR(found.st_mode):
                try:
                    os.rmdir(os.path.join(upper, rel))
                except OSError:
                    pass  # the step put something there
            elif stat.S_ISREG(found.st_mode) and found.st_size == 0:
                root.remove(rel)
