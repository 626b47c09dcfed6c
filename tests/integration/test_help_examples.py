"""Every example in every command's and every verb's `--help` runs as written.

The examples are read from the `--help` text itself (the lines under `examples:`, a line
ending in a backslash joined with the next, comment lines skipped) and run in order, each
with `bash -c` in a folder of the command's own, as a user would paste them. What they
name is prepared as a user would have it:

* a sandbox: a network namespace and a mount namespace of the test's own (`unshare`), so
  that 127.0.0.1:5000 is the test's, and the default state folders (/run/oci-run, runc's
  and crun's /run/runc and /run/crun, /var/lib/ocikit, /var/lib/oci-mon, /run/ocikit,
  /run/netns, /run/containers, /srv) are private tmpfs mounts: the examples run with every default, as written;
* a plain-HTTP registry on 127.0.0.1:5000 (also reached as localhost:5000) and a TLS one
  with a self-signed certificate on localhost:5443 (`tests/integration/registry_server.py`),
  each holding library/busybox:latest, an index of linux/amd64 and linux/arm64 images of
  Debian's busybox-static (every applet linked), signed with cosign.key (cosign.pub verifies it);
* in the command's folder, the files its examples name (PREPARE below: ./images, ./bundle...).

An example passes when it exits 0, or with N when its comment says `exit N`. What the test
recognises in an example's comment, as the help texts use it:

* `# ... until ctrl-c`: it runs until interrupted (`logs -f`, `events`): it must still run
  after a moment, and then leaves on SIGINT;
* `-it` / `-i -t` or `attach`: it runs on a terminal (a pty); once it is quiet, the test types
  ctrl-p ctrl-q to detach an `attach`, else `exit` to the shell.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration import registry_server

pytestmark = pytest.mark.root

COMMANDS = ("oci-fetch", "oci-push", "oci-unpack", "oci-bundle", "oci-commit", "oci-build", "oci-run",
            "oci-net", "oci-mon", "ocikit")
BIN = Path(sys.executable).parent  # the launchers of `make install`
PRIVATE = ("/run/oci-run", "/run/runc", "/run/crun", "/run/ocikit", "/var/lib/ocikit", "/var/lib/oci-mon", "/run/netns",
           "/run/containers", "/srv")


# -- what --help says ---------------------------------------------------------------------------


def environ(home: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "OCIKIT_ROOT", "OCI_MON_ROOT", "OCIKIT_LAYOUT",
                          "OCIKIT_NET_STATE_DIR", "DOCKER_CONFIG", "CONTAINERS_REGISTRIES_CONF", "TERM")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    if home is not None:
        env["HOME"] = str(home)
    return env


def help_text(*argv: str) -> str:
    done = subprocess.run([*argv, "--help"], env=environ(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(argv)} --help exited {done.returncode}: {done.stderr}"
    return done.stdout


def examples(text: str) -> list[str]:
    """The runnable lines of the help's examples section (continuations joined, comments dropped)."""
    found = re.search(r"^examples:\n(.*?)(?:\n\n|\n?\Z)", text, re.S | re.M)
    if not found:
        return []
    lines: list[str] = []
    pending = ""
    for line in found.group(1).splitlines():
        line = line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def verbs(command: str, text: str) -> list[list[str]]:
    """The verbs a command's --help lists, as argv tails (`["image", "tags"]` for ocikit's)."""
    if command == "ocikit":
        found = [[name] for name in re.findall(r"^  (\w+)\s{2,}", section(text, "commands:"), re.M)]
        for name, subs in re.findall(r"^  (\w+)\s{2,}(.*)$", section(text, "management commands:"), re.M):
            found += [[name, sub] for sub in subs.split()]
        return found
    if command not in ("oci-run", "oci-net", "oci-mon"):
        return []
    if command == "oci-net":
        return [[name] for name in re.findall(r"^    (\w+)\s", section(text, "positional arguments:"), re.M)]
    return [[name] for name in re.findall(r"^  (\w+)\s{2,}", section(text, "verbs ("), re.M)]


def section(text: str, title: str) -> str:
    start = text.find("\n" + title)
    assert start >= 0, f"no {title!r} in:\n{text}"
    body = text[start + 1:].split("\n", 1)[1]
    return body.split("\n\n", 1)[0]


@dataclass
class Example:
    where: str  # `oci-run` or `ocikit image tags`
    line: str

    @property
    def expected_exit(self) -> int:
        found = re.search(r"#.*\bexit (\d+)\b", self.line)
        return int(found.group(1)) if found else 0

    @property
    def until_interrupted(self) -> bool:
        return bool(re.search(r"#.*\buntil ctrl-c\b", self.line))

    @property
    def on_terminal(self) -> bool:
        command = self.line.split("#", 1)[0]
        return bool(re.search(r"\s-it\s|\s-i -t\s|\s-ti\s|\battach\b", command))


def command_examples(command: str) -> list[Example]:
    """The command's examples, then each verb's (those another --help showed already left out)."""
    text = help_text(command)
    found = [Example(command, line) for line in examples(text)]
    seen = {example.line for example in found}
    for verb in verbs(command, text):
        for line in examples(help_text(command, *verb)):
            if line not in seen:
                seen.add(line)
                found.append(Example(f"{command} {' '.join(verb)}", line))
    return found


# -- the sandbox --------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_network_namespace(pid: int) -> Iterator[None]:
    """This thread (and the processes it starts) in the network namespace of `pid`."""
    with open("/proc/thread-self/ns/net") as back, open(f"/proc/{pid}/ns/net") as there:
        if _libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if _libc.setns(back.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


class Sandbox:
    """A holder process owning a private network and mount namespace; commands run in them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        mounts = "".join(f"mkdir -p {path} && mount -t tmpfs -o mode=0755 tmpfs {path}\n" for path in PRIVATE)
        # /sys/class/net as this network namespace sees it (the cgroup mounts under /sys stay)
        sysfs = ("sys=$(mktemp -d) && mount -t sysfs sysfs $sys && mount --bind $sys/class/net /sys/class/net && "
                 "mount --bind $sys/devices/virtual/net /sys/devices/virtual/net && umount $sys && rmdir $sys\n")
        script = f"set -e\nip link set lo up\n{sysfs}{mounts}echo $$\nexec sleep 86400\n"
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--fork",
                                        "--kill-child", "sh", "-c", script], stdout=subprocess.PIPE, text=True,
                                       stdin=subprocess.DEVNULL)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        assert line.strip().isdigit(), f"the sandbox did not start: {line!r}"
        self.pid = int(line)
        self.started: list[int] = []  # background processes of the test's own, stopped by pid

    def argv(self, script: str, cwd: Path) -> list[str]:
        return ["nsenter", f"--target={self.pid}", "--net", "--mount", "--", "bash", "-c",
                f"cd {shlex_quote(str(cwd))} || exit 125\n{script}"]

    def run(self, script: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        """Output goes to files: a detached container keeps what it inherited open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            done = subprocess.run(self.argv(script, cwd), env=environ(self.workdir / "home"), stdout=out,
                                  stderr=err, timeout=timeout, stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(done.args, done.returncode, out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))

    def check(self, script: str, cwd: Path, timeout: float = 300) -> str:
        done = self.run(script, cwd, timeout)
        assert done.returncode == 0, f"{script}\nexited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def popen(self, script: str, cwd: Path) -> subprocess.Popen:
        return subprocess.Popen(self.argv(script, cwd), env=environ(self.workdir / "home"), text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def on_terminal(self, script: str, cwd: Path, keys: bytes, timeout: float = 120) -> tuple[int, str]:
        """Run `script` on a new pty; type `keys` once it has been quiet for 1.5 s (a prompt shown,
        an attach made)."""
        import pty

        argv = self.argv(script, cwd)
        env = {**environ(self.workdir / "home"), "TERM": "xterm"}
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover (the child)
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        out, typed, start = b"", False, time.monotonic()
        last_output = start
        try:
            while time.monotonic() - start < timeout:
                if select.select([fd], [], [], 0.2)[0]:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:
                        break
                    if not data:
                        break
                    out += data
                    last_output = time.monotonic()
                if not typed and time.monotonic() - last_output > 1.5:
                    os.write(fd, keys)
                    typed = True
            else:
                os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out.decode(errors="replace")
        finally:
            os.close(fd)

    def close(self) -> None:
        for pid in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.holder.kill()
        self.holder.wait()


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# -- what the examples name ---------------------------------------------------------------------

SEED = """
mkdir -p src/bin && cp /bin/busybox src/bin/
for applet in $(busybox --list); do [ "$applet" = busybox ] || ln -sf busybox src/bin/$applet; done
mkdir -p src/etc && printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/:/bin/sh\\n' > src/etc/passwd
printf 'root:x:0:\\nnobody:x:65534:\\n' > src/etc/group
oci-commit -q --from-dir ./src --owner 0:0 --cmd /bin/sh ./seed:amd64 > amd64.json
oci-commit -q --from-dir ./src --owner 0:0 --cmd /bin/sh --platform linux/arm64 ./seed:arm64 > arm64.json
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out cosign.key 2>/dev/null
openssl pkey -in cosign.key -pubout -out cosign.pub
"""

# Per command: what its examples name, made in its folder before they run (`../seed` holds the
# seed: src/, cosign.key, cosign.pub).
PREPARE = {
    "oci-fetch": "cp ../seed/cosign.pub .",
    "oci-push": "cp ../seed/cosign.key . && "
                "oci-fetch -q 127.0.0.1:5000/library/busybox ./images --tag busybox >/dev/null",
    "oci-unpack": "oci-fetch -q 127.0.0.1:5000/library/busybox ./images --tag busybox >/dev/null",
    "oci-bundle": "oci-fetch -q 127.0.0.1:5000/library/busybox ./images --tag busybox >/dev/null && "
                  "oci-unpack -q ./images:busybox ./bundle/rootfs >/dev/null",
    "oci-commit": "cp -a ../seed/src ./rootfs && "
                  "oci-fetch -q 127.0.0.1:5000/library/busybox ./base --tag busybox >/dev/null && "
                  "mkdir -p app && echo 'echo app' > app/run && chmod +x app/run && tar -czf app.tar.gz app && "
                  "mkdir -p upper/app && echo changed > upper/app/state && "
                  "oci-unpack -q ./base:busybox ./bundle/rootfs >/dev/null && echo changed > ./bundle/rootfs/etc/motd",
    "oci-build": "printf 'FROM 127.0.0.1:5000/library/busybox\\nRUN echo built > /built\\nCMD [\"cat\", \"/built\"]\\n'"
                 " > Dockerfile && mkdir -p docker && "
                 "printf 'FROM 127.0.0.1:5000/library/busybox AS build\\nARG VERSION=1\\n"
                 "RUN echo $VERSION > /version\\nFROM scratch AS runtime\\nCOPY --from=build /version /\\n"
                 "FROM runtime AS test\\n' > docker/Containerfile && mkdir -p app && cp Dockerfile app/",
    "oci-run": "oci-fetch -q 127.0.0.1:5000/library/busybox ./images --tag busybox >/dev/null && "
               "oci-unpack -q ./images:busybox ./bundle/rootfs >/dev/null && "
               "oci-bundle -q ./images:busybox ./bundle --rootfs ./bundle/rootfs -- sleep 600 >/dev/null && "
               "oci-unpack -q ./images:busybox ./hello/rootfs >/dev/null && "
               "oci-bundle -q ./images:busybox ./hello --rootfs ./hello/rootfs -- echo hello >/dev/null",
    "oci-net": "mkdir -p c2 && touch c2/hosts && (unshare --net sleep 600 >/dev/null 2>&1 & echo $! > c2.pid)",
    "oci-mon": "oci-fetch -q 127.0.0.1:5000/library/busybox ./images --tag busybox >/dev/null && "
               "oci-unpack -q ./images:busybox ./web/rootfs >/dev/null && "
               "oci-bundle -q ./images:busybox ./web --rootfs ./web/rootfs -- httpd -f -p 80 >/dev/null && "
               "oci-unpack -q ./images:busybox ./shell/rootfs >/dev/null && "
               "oci-bundle -q -i -t ./images:busybox ./shell --rootfs ./shell/rootfs -- sh >/dev/null",
    "ocikit": "echo secret > password.txt && mkdir -p app && "
              "printf 'FROM 127.0.0.1:5000/library/busybox AS runtime\\nARG VERSION=1\\n"
              "RUN echo $VERSION > /version\\nCMD [\"cat\", \"/version\"]\\n' > app/Dockerfile && "
              "cp app/Dockerfile app/Containerfile",
}

# Per command: what its examples left running, stopped after them (the sandbox takes the rest).
CLEANUP = {
    "oci-bundle": "oci-run delete --force web; oci-net rm --state-dir /srv/net web",
    "oci-run": "oci-run delete --force demo",
    "oci-net": "kill $(cat c2.pid); ip netns del c1",
    "oci-mon": "for c in $(oci-mon ps -a --ids); do oci-mon rm -f $c; done",
    "ocikit": "ocikit rm -f $(ocikit ps -aq)",
}


@contextlib.contextmanager
def open_sandbox(workdir: Path, with_registries: bool = True) -> Iterator[Sandbox]:
    """A sandbox, with the registries and the seed image unless `with_registries` is false."""
    (workdir / "home").mkdir()
    box = Sandbox(workdir)
    registries: list[registry_server.Registry] = []
    try:
        if not with_registries:
            yield box
            return
        with in_network_namespace(box.pid):
            registries.append(registry_server.start_registry(str(workdir / "plain"), port=5000))
            registries.append(registry_server.start_registry(str(workdir / "tls"), tls=True, port=5443))
        seed = workdir / "seed"
        seed.mkdir()
        box.check(SEED, seed)
        write_index(seed)
        box.check("oci-push -q --sign cosign.key ./seed:busybox 127.0.0.1:5000/library/busybox:latest && "
                  "oci-push -q --tls-verify=false --sign cosign.key ./seed:busybox "
                  "localhost:5443/library/busybox:latest", seed)
        yield box
    finally:
        for registry in registries:
            registry.stop()
        # what examples started detached: oci-mon's and ocikit's monitors, stopped by their pids
        for pidfile in ("/var/lib/oci-mon/monitor.pid", "/var/lib/ocikit/monitor/monitor.pid"):
            box.run(f"test -f {pidfile} && kill $(jq -r .pid {pidfile})", workdir)
        box.close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with open_sandbox(tmp_path_factory.mktemp("help-examples")) as box:
        yield box


def write_index(seed: Path) -> None:
    """./seed:busybox, an OCI index over the amd64 and arm64 images oci-commit made."""
    import json

    from oci.descriptor import Descriptor
    from oci.layout import Layout

    layout = Layout.open(str(seed / "seed"))
    entries = []
    for arch in ("amd64", "arm64"):
        desc = json.loads((seed / f"{arch}.json").read_text())
        entries.append({key: desc[key] for key in ("mediaType", "digest", "size")}
                       | {"platform": {"os": "linux", "architecture": arch}})
    media_type = "application/vnd.oci.image.index.v1+json"
    data = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()
    with layout.session():
        layout.tag("busybox", Descriptor(media_type, layout.put_bytes(data), len(data)))


# -- the tests ----------------------------------------------------------------------------------


def run_example(box: Sandbox, example: Example, cwd: Path) -> str | None:
    """None when the example did what it promised, else what went wrong."""
    if example.on_terminal:
        keys = b"\x10\x11" if re.search(r"\battach\b", example.line.split("#", 1)[0]) else b"exit\r"
        code, out = box.on_terminal(example.line, cwd, keys)
        return None if code == example.expected_exit else f"exited {code} on a terminal:\n{out}"
    if example.until_interrupted:
        process = box.popen(example.line, cwd)
        time.sleep(3)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=20)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                return "did not leave on SIGINT"
            return None
        out, err = process.communicate()
        return None if process.returncode == 0 else f"ended with {process.returncode}:\n{out}\n{err}"
    done = box.run(example.line, cwd)
    if done.returncode == example.expected_exit:
        return None
    return f"exited {done.returncode} (expected {example.expected_exit}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def test_every_command_has_examples() -> None:
    for command in COMMANDS:
        assert examples(help_text(command)), f"{command} --help shows no examples"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_examples_run_as_written(sandbox: Sandbox, command: str) -> None:
    found = command_examples(command)
    assert found, f"{command}: no examples"
    cwd = sandbox.workdir / command
    cwd.mkdir()
    sandbox.check(PREPARE.get(command, "true"), cwd)
    failures = []
    try:
        for example in found:
            start = time.monotonic()
            problem = run_example(sandbox, example, cwd)
            print(f"{'FAIL' if problem else 'ok  '} {time.monotonic() - start:5.1f}s [{example.where}] {example.line}")
            if problem:
                failures.append(f"[{example.where}] {example.line}\n  {problem}")
    finally:
        if command in CLEANUP:
            sandbox.run(CLEANUP[command], cwd)
    ran = len(found) - len(failures)
    print(f"{command}: {ran} of {len(found)} examples ran as written")
    assert not failures, f"{len(failures)} of {len(found)} examples of {command} failed:\n\n" + "\n\n".join(failures)


# -- the README's blocks that say they run as written ------------------------------------------

README_PREPARE = {
    "everyday": "echo secret > password.txt",
    "oci-mon": "oci-fetch -q 127.0.0.1:5000/library/busybox ./images --tag busybox >/dev/null && "
               "for b in web worker shell; do oci-unpack -q ./images:busybox ./$b/rootfs >/dev/null; done && "
               "oci-bundle -q ./images:busybox ./web --rootfs ./web/rootfs -- httpd -f -p 80 >/dev/null && "
               "oci-bundle -q ./images:busybox ./worker --rootfs ./worker/rootfs -- sleep 600 >/dev/null && "
               "oci-bundle -q -i -t ./images:busybox ./shell --rootfs ./shell/rootfs -- sh >/dev/null",
}
README_CLEANUP = {
    "everyday": "ocikit rm -f $(ocikit ps -aq); ocikit network rm backend",
    "oci-mon": "for c in $(oci-mon ps -a --ids); do oci-mon rm -f $c; done",
}


def readme_block(name: str) -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.search(rf"<!-- example: {re.escape(name)} -->\n```sh\n(.*?)```", readme, re.S)
    assert found, f"README.md has no block marked <!-- example: {name} -->"
    return found.group(1)


def test_readme_small_commands_run_as_written(tmp_path: Path) -> None:
    """The block starts its own registry on 127.0.0.1:5000: a sandbox without the test's."""
    with open_sandbox(tmp_path, with_registries=False) as box:
        cwd = tmp_path / "empty"
        cwd.mkdir()
        done = box.run("set -e\n" + readme_block("small-commands"), cwd)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1] == "hello", done.stdout


@pytest.mark.parametrize("name", ("everyday", "oci-mon"))
def test_readme_blocks_run_as_written(tmp_path: Path, name: str) -> None:
    with open_sandbox(tmp_path) as box:
        cwd = tmp_path / name
        cwd.mkdir()
        box.check(README_PREPARE[name], cwd)
        failures = []
        lines = examples("examples:\n" + readme_block(name))
        try:
            for line in lines:
                problem = run_example(box, Example(f"README {name}", line), cwd)
                print(f"{'FAIL' if problem else 'ok  '} [README {name}] {line}")
                if problem:
                    failures.append(f"{line}\n  {problem}")
        finally:
            box.run(README_CLEANUP[name], cwd)
        assert not failures, f"{len(failures)} of {len(lines)} lines failed:\n\n" + "\n\n".join(failures)
