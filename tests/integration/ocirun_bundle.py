"""Bundles for oci-run's integration tests: a busybox-static rootfs and a default config to adjust."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from oci.runtime.defaults import default_config
from tests.conftest import command

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
APPLETS = ["sh", "true", "false", "echo", "cat", "ls", "sleep", "id", "mount", "readlink", "stat", "grep",
           "mkdir", "touch", "hostname", "test", "tr", "head", "ps", "kill", "wc", "cut"]


def make_rootfs(path: Path) -> Path:
    """A minimal root filesystem: busybox-static and its applets in /bin."""
    (path / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", path / "bin" / applet)
    for folder in ("proc", "sys", "dev", "tmp", "etc"):
        (path / folder).mkdir()
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return path


class Bundle:
    """A bundle directory whose config.json is written by `write()`."""

    def __init__(self, path: Path, rootfs_template: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        shutil.copytree(rootfs_template, path / "rootfs", symlinks=True)
        self.config: dict[str, Any] = default_config()
        self.config["process"]["terminal"] = False
        self.config["root"]["readonly"] = False
        self.config["hostname"] = "ocirun-test"

    def args(self, *args: str) -> Bundle:
        self.config["process"]["args"] = list(args)
        return self

    def write(self) -> str:
        (self.path / "config.json").write_text(json.dumps(self.config))
        return str(self.path)


def unique_id(prefix: str = "ocirun-it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class OciRun:
    """oci-run from this checkout with its own --root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return [*command("run"), "--root", str(self.root), *args]

    def __call__(self, *args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess:
        """Run oci-run; output goes through files, as a created container keeps our stdio open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(self.argv(*args), timeout=timeout, stdout=out, stderr=err, **kwargs)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))

    def state(self, cid: str) -> dict[str, Any]:
        result = self("state", cid)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def cleanup(self) -> None:
        for cid in self("list", "-q").stdout.split():
            self("delete", "--force", cid)
