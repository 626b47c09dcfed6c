"""What oci-build's integration tests share: the base image in the test registry, a private
buildah (the peer and reference), oci-build itself, and tree-for-tree comparison.

* `base_image(registry, workdir)` makes a busybox-static image (every applet linked in /bin,
  users root, app (1000) and nobody, their groups) with the checkout's oci-commit, pushes
  it to the test registry with skopeo and returns its reference (`HOST/ocikit/busybox:build`).
* `Buildah(base)`: Debian's buildah 1.28 with its storage (vfs), run root, containers.conf
  (runc, cgroupfs, host network, no default ulimits) and registries.conf all under `base`,
  so nothing in /etc/containers or /var/lib/containers is read or written. `bud(...)` is
  `buildah bud --layers --format docker`; `export(image, layout, tag)` pushes to an OCI
  layout; `config(image)` is the Docker config `buildah inspect` shows. `close()` removes its
  containers and images, unmounts what is left under `base` and deletes it.
* `oci_build(*args)` runs the checkout's bin/oci_build.py with the test interpreter.
* `snapshot(rootfs)` describes a tree path by path: type, mode, owner, size and content
  digest, symlink target, device numbers, kept xattrs (user.*, security.capability) and the
  other names of a hard-linked file; `unpack(layout_ref, rootfs)` fills a rootfs with oci-unpack.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = "/bin/busybox"
CORPUS = Path(__file__).resolve().parent / "build_corpus"
KEPT_XATTRS = ("user.", "security.capability")


def run(argv: list[str], timeout: float = 300, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def oci_build(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300,
              input: str | None = None) -> subprocess.CompletedProcess:
    """The checkout's oci-build, run by the test interpreter."""
    return run([sys.executable, str(ROOT / "bin" / "oci_build.py"), *args], timeout=timeout, check=check,
               env={**os.environ, **(env or {})}, input=input)


def ocikit(command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, str(ROOT / "bin" / f"{command.replace('-', '_')}.py"), *args], check=check)


def busybox_rootfs(path: Path) -> Path:
    """A busybox-static root filesystem with users root, app and nobody."""
    for sub in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app", "var"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(path / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    applets = run([BUSYBOX, "--list"]).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (path / "bin" / applet).symlink_to("busybox")
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (path / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nnogroup:x:65534:\n")
    os.chown(path / "home" / "app", 1000, 1000)
    return path


def base_image(registry: Any, workdir: Path, repository: str = "ocikit/busybox", tag: str = "build") -> str:
    """The busybox base image, pushed to `registry`; its reference."""
    from . import images

    rootfs = busybox_rootfs(workdir / "base-rootfs")
    layout = workdir / "base-layout"
    run([sys.executable, str(ROOT / "bin" / "oci_commit.py"), "-q", "--from-dir", str(rootfs), "--cmd", "/bin/sh",
         "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"{layout}:{tag}"],
        env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    return images.push_layout(str(layout), tag, registry, repository, all_platforms=False)


class Buildah:
    """A private buildah (see the module doc)."""

    def __init__(self, base: Path, driver: str = "vfs") -> None:
        self.base = base
        self.driver = driver
        base.mkdir(parents=True, exist_ok=True)
        (base / "tmp").mkdir(exist_ok=True)
        (base / "containers.conf").write_text(f"""\
[containers]
default_ulimits = []
netns = "host"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
runtime = "runc"
tmp_dir = "{base}/tmp"
""")
        (base / "storage.conf").write_text(f"""\
[storage]
driver = "{driver}"
graphroot = "{base}/storage"
runroot = "{base}/run"
""")
        (base / "registries.conf").write_text("unqualified-search-registries = []\n")

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.base / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(self.base / "storage.conf"),
                "CONTAINERS_REGISTRIES_CONF": str(self.base / "registries.conf"), "TMPDIR": str(self.base / "tmp"),
                "BUILDAH_ISOLATION": "oci"}

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return run(["buildah", *args], check=check, timeout=timeout, env=self.environ)

    def bud(self, context: Path, tag: str, dockerfile: Path | None = None, build_args: dict[str, str] | None = None,
            target: str | None = None, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        argv = ["bud", "--layers", "--format", "docker", "--tls-verify=false", "-t", tag]
        for key, value in (build_args or {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        if dockerfile is not None:
            argv += ["-f", str(dockerfile)]
        if target:
            argv += ["--target", target]
        return self.run(*argv, *extra, str(context))

    def export(self, image: str, layout: Path, tag: str) -> None:
        self.run("push", "-q", image, f"oci:{layout}:{tag}")

    def config(self, image: str) -> dict[str, Any]:
        return json.loads(self.run("inspect", "--type", "image", image).stdout)["Docker"]["config"]

    def close(self) -> None:
        self.run("rm", "--all", check=False)
        self.run("rmi", "--all", "--force", check=False)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for target in reversed(mounts):
            if target == str(self.base) or target.startswith(f"{self.base}/"):
                subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def unpack(image: str, rootfs: Path) -> Path:
    """`oci-unpack IMAGE ROOTFS`."""
    ocikit("oci-unpack", "-q", image, str(rootfs))
    return rootfs


def read_config(layout: Path, tag: str) -> dict[str, Any]:
    """The image config of LAYOUT:TAG (a manifest, not an index)."""
    index = json.loads((layout / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name")
                 == tag)
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_text())
    return json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())


def manifest_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    return next(m["digest"] for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    return {name: os.getxattr(path, name, follow_symlinks=False).hex() for name in sorted(names)
            if name.startswith(KEPT_XATTRS)}


def snapshot(rootfs: Path) -> dict[str, dict[str, Any]]:
    """Path -> what a tree comparison looks at (mtimes left out)."""
    found: dict[str, dict[str, Any]] = {}
    inodes: dict[int, list[str]] = {}
    for parent, dirs, files in os.walk(rootfs):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(parent, name)
            rel = "/" + os.path.relpath(path, rootfs)
            st = os.lstat(path)
            info: dict[str, Any] = {"mode": oct(stat.S_IMODE(st.st_mode)), "owner": f"{st.st_uid}:{st.st_gid}",
                                    "xattrs": _xattrs(path)}
            if stat.S_ISDIR(st.st_mode):
                info["type"] = "dir"
            elif stat.S_ISLNK(st.st_mode):
                info["type"] = "symlink"
                info["target"] = os.readlink(path)
                info.pop("mode")  # a symlink's mode means nothing
            elif stat.S_ISREG(st.st_mode):
                info["type"] = "file"
                info["size"] = st.st_size
                with open(path, "rb") as f:
                    info["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISFIFO(st.st_mode):
                info["type"] = "fifo"
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info["type"] = "chr" if stat.S_ISCHR(st.st_mode) else "blk"
                info["device"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                info["type"] = "other"
            found[rel] = info
    for names in inodes.values():
        for name in names:
            found[name]["links"] = sorted(names)
    return found


CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes", "StopSignal",
                 "Healthcheck", "OnBuild", "Shell")


def config_fields(config: dict[str, Any], drop_labels: tuple[str, ...] = ("io.buildah.version",)) -> dict[str, Any]:
    """The fields compared, empty values (null, [], {}, "") read as absent, as Docker reads them."""
    found = {}
    for key in CONFIG_FIELDS:
        value = config.get(key)
        if key == "Labels" and value:
            value = {k: v for k, v in value.items() if k not in drop_labels}
        if value in (None, [], {}, ""):
            continue
        found[key] = value
    return found

