"""The docker-CLI acceptance script (tests/acceptance/everyday.sh) run with `docker` (a private
Docker 20.10, dockerd_env) and with `ocikit`, comparing what a user sees: exit codes, output,
the files in the shared volume (through the container that serves them), the pushed images.

What differs on purpose is listed in KNOWN (the README's table of differences is made from the
same list): such a step is compared as the entry says, every other step exactly after
normalisation (IDs, digests, durations).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration import dockerd_env, images
from tests.integration.netutil import free_subnet

pytestmark = pytest.mark.root
SCRIPT = ROOT / "tests" / "acceptance" / "everyday.sh"

# step -> (how it is compared, why): "rc" compares exit codes only, "failed" that both failed,
# "stdout-first" the first line of stdout and the exit code.
KNOWN = {
    "push": ("rc", "docker prints a line per layer while it pushes; ocikit prints the last line only "
                   "(`TAG: digest: DIGEST size: N`), its summary on stderr"),
    "push-tls": ("rc", "as push"),
    "rmi-pushed": ("stdout-first", "docker also prints `Untagged: REPO@DIGEST`, and `Deleted:` for each layer"),
    "rmi-tls": ("rc", "as rmi-pushed"),
    "rmi": ("rc", "as rmi-pushed"),
    "network-create": ("rc", "docker prints the network's 64-hex ID, ocikit its name (ocikit names are IDs)"),
    "rm-running": ("failed", "docker exits 1 for every failure; ocikit exits by its table (7: conflict)"),
    "exec-missing": ("failed", "docker exec exits 126 whatever the reason exec failed; ocikit 127 when the "
                               "command is not found, 126 when it cannot be run, as docker run does"),
}


def normalise(text: str, run: dict[str, str]) -> str:
    """Values of one run (its port, namespace) and of one moment (IDs, digests, durations) made neutral."""
    text = text.replace(f":{run['PORT']}", ":<PORT>").replace(run["NS"], "<NS>")
    text = re.sub(r"sha256:[0-9a-f]{64}", "<DIGEST>", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "<ID>", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<ID>", text)
    text = re.sub(r"(Less than a second|About an? \w+|\d+ \w+) ago", "<AGO>", text)
    text = re.sub(r"Up (Less than a second|About an? \w+|\d+ \w+)", "Up <TIME>", text)
    return text


class AcceptanceDocker(dockerd_env.DockerEnv):
    """The private dockerd, with the TLS registry trusted as Docker trusts an insecure one (ocikit reads
    the same from registries.conf's `insecure = true`, as podman does) and
    published ports served by docker-proxy (the default test daemon has neither)."""

    tls_host: str = ""

    def daemon_config(self) -> dict:
        config = super().daemon_config()
        config["insecure-registries"] = [self.registry.host, self.tls_host]
        config["userland-proxy"] = True
        config["userland-proxy-path"] = "/usr/sbin/docker-proxy"
        return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(out: Path, env: dict[str, str]) -> dict[str, tuple[int, str, str]]:
    done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    steps = {}
    for rc in sorted(out.glob("*.rc")):
        stem = rc.name[:-3]
        name = stem.split("-", 1)[1]
        steps[name] = (int(rc.read_text()), (out / f"{stem}.out").read_text(errors="replace"),
                       (out / f"{stem}.err").read_text(errors="replace"))
    return steps


@pytest.fixture(scope="module")
def results(tmp_path_factory, registry, tls_registry):
    if not dockerd_env.docker_available():
        pytest.fail("docker.io, containerd or busybox-static is missing (.ci/install installs them)")
    base = tmp_path_factory.mktemp("acceptance")
    docker = AcceptanceDocker(base / "docker", registry, runtimes={}, default_runtime="runc")
    docker.tls_host = tls_registry.host
    root = base / "ocikit"
    found = {}
    try:
        docker.setup()
        common = {"IMAGE": docker.image, "REGISTRY": registry.host, "TLS_REGISTRY": tls_registry.host,
                  "TLS_USER": tls_registry.username, "TLS_PASSWORD": tls_registry.password}
        taken: list[str] = []
        for who in ("docker", "ocikit"):
            subnet = free_subnet(taken)
            taken.append(subnet)
            out = base / f"out-{who}"
            env = {**os.environ, **common, "SUBNET": subnet, "PORT": str(free_port()), "OUT": str(out),
                   "NS": f"acceptance-{who}-{os.getpid()}"}
            if who == "docker":
                env.update(docker.environ, CLI=dockerd_env.DOCKER)
            else:  # the TLS registry trusted as docker's daemon.json does it, through registries.conf
                conf = base / "registries.conf"
                conf.write_text(f'[[registry]]\nlocation = "{tls_registry.host}"\ninsecure = true\n')
                env.update(CLI=f"{ROOT / '.venv' / 'bin' / 'ocikit'} --root {root}",
                           REGISTRY_AUTH_FILE=str(base / "auth.json"), CONTAINERS_REGISTRIES_CONF=str(conf))
            found[who] = run_script(out, env)
            found[f"{who}-run"] = {"PORT": env["PORT"], "NS": env["NS"]}
            found[f"{who}-pushed"] = {
                repo: (images.skopeo_inspect(f"{host.host}/{env['NS']}/{repo}", host, raw=True),
                       json.loads(images.skopeo("inspect", "--config", *images.skopeo_flags(host, ""),
                                                f"docker://{host.host}/{env['NS']}/{repo}").stdout))
                for repo, host in (("web:2", registry), ("busybox:1", tls_registry))}
        yield found
    finally:
        subprocess.run([str(ROOT / ".venv" / "bin" / "ocikit"), "--root", str(root), "rm", "-f", "web"],
                       capture_output=True)
        subprocess.run([str(ROOT / ".venv" / "bin" / "ocikit"), "--root", str(root), "network", "rm", "accnet"],
                       capture_output=True)
        from tests.integration.test_ocikit import remove_runtime_folder, stop_monitor

        stop_monitor(root)
        remove_runtime_folder(root)
        docker.teardown()


def test_every_step_ran_in_both(results):
    assert list(results["docker"]) == list(results["ocikit"])
    assert len(results["docker"]) >= 40


def test_what_a_user_sees_is_the_same(results):
    differences = []
    theirs_run, ours_run = results["docker-run"], results["ocikit-run"]
    for name, (rc, out, err) in results["docker"].items():
        ours_rc, ours_out, ours_err = results["ocikit"][name]
        out, ours_out = normalise(out, theirs_run), normalise(ours_out, ours_run)
        how = KNOWN.get(name, ("all", ""))[0]
        if how == "failed":
            same = rc != 0 and ours_rc != 0
        elif how == "rc":
            same = rc == ours_rc
        elif how == "stdout-first":
            same = rc == ours_rc and out.splitlines()[:1] == ours_out.splitlines()[:1]
        else:
            same = rc == ours_rc and out == ours_out
        if not same:
            differences.append(f"{name}: docker exited {rc} with {out!r} ({err.strip()[:200]!r}); "
                               f"ocikit exited {ours_rc} with {ours_out!r} ({ours_err.strip()[:200]!r})")
    assert not differences, "\n".join(differences)


def test_the_steps_did_what_they_should(results):
    for who in ("docker", "ocikit"):
        steps = results[who]
        assert steps["run-hello"][1] == "hello\n", who
        assert steps["run-exit-3"][0] == 3 and steps["run-missing-command"][0] == 127, who
        assert steps["curl"][1] == "hello-web\n" and steps["run-second-on-volume"][1] == "hello-web\n", who
        assert steps["curl-after-start"][1] == "hello-web\n", who  # start ran the command again
        assert steps["logs"][1] == "web-started\n", who
        assert steps["logs-of-foreground"][1:] == ("to-stdout\n", "to-stderr\n"), who
        assert steps["run-pulled"][1] == "committed\n" and steps["run-loaded"][1] == "loaded\n", who
        assert steps["login"][1] == "Login Succeeded\n" and steps["ps-a-end"][1] == "", who


def test_the_pushed_images_say_the_same(results):
    for repo in ("web:2", "busybox:1"):
        (docker_manifest, docker_config) = results["docker-pushed"][repo]
        (ours_manifest, ours_config) = results["ocikit-pushed"][repo]
        assert len(ours_manifest["layers"]) == len(docker_manifest["layers"]), repo
        for key in ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts"):
            assert (ours_config.get("config") or {}).get(key) == (docker_config.get("config") or {}).get(key), \
                (repo, key)
        assert ours_config["rootfs"]["diff_ids"][:-1] == docker_config["rootfs"]["diff_ids"][:-1], repo
