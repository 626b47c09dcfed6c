"""config-linux.md#namespaces, user namespace mappings, and config.md hostname / domainname."""

from __future__ import annotations

import os
import subprocess

import pytest

# config.json namespace type -> name under /proc/PID/ns
PROC_NAME = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
             "cgroup": "cgroup", "time": "time"}


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{PROC_NAME[kind]}")


@pytest.fixture
def holder():
    """A host process in new network, ipc and uts namespaces, for containers to join by path."""
    proc = subprocess.Popen(["unshare", "--net", "--ipc", "--uts", "sleep", "60"])
    try:
        ns = f"/proc/{proc.pid}/ns/net"
        for _ in range(500):
            if os.path.exists(ns) and os.readlink(ns) != host_ns("network"):
                break
            subprocess.run(["sleep", "0.01"])
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.spec("config-linux.md#namespaces")
@pytest.mark.parametrize("kind", ["pid", "network", "mount", "ipc", "uts", "cgroup", "time"])
def test_new_namespace(runtime, bundle, kind):
    """A namespace without `path` MUST be a new container namespace of that type."""
    if kind == "time":
        runtime.require("time-namespace")
    bundle.set_namespace(kind).checker("report", "-r", "/proc/net/dev").write()
    report = runtime.run_json(bundle.path)
    assert report["namespaces"][PROC_NAME[kind]] != host_ns(kind)
    if kind == "pid":
        assert report["pid"] == 1
    if kind == "network":  # a new network namespace holds only its loopback interface
        lines = report["read"]["/proc/net/dev"]["text"].splitlines()[2:]
        assert [line.split(":")[0].strip() for line in lines] == ["lo"]


@pytest.mark.spec("config-linux.md#namespaces")
@pytest.mark.parametrize("kind", ["pid", "network", "ipc", "uts", "cgroup"])
def test_unlisted_namespace_is_inherited(runtime, bundle, kind):
    """A namespace type not in the array MUST be inherited from the runtime."""
    bundle.drop_namespace(kind)
    if kind == "uts":
        del bundle.config["hostname"]
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["namespaces"][PROC_NAME[kind]] == host_ns(kind)


@pytest.mark.spec("config-linux.md#namespaces")
@pytest.mark.parametrize("kind", ["network", "ipc", "uts"])
def test_join_namespace_by_path(runtime, bundle, holder, kind):
    """With `path`, the runtime MUST place the container process in that namespace."""
    path = f"/proc/{holder}/ns/{PROC_NAME[kind]}"
    if kind == "uts":
        del bundle.config["hostname"]
    bundle.set_namespace(kind, path).checker("report").write()
    assert runtime.run_json(bundle.path)["namespaces"][PROC_NAME[kind]] == os.readlink(path)


@pytest.mark.spec("config-linux.md#namespaces")
def test_path_of_the_wrong_type_is_an_error(runtime, bundle, holder):
    """The runtime MUST generate an error if `path` is not a namespace of type `type`."""
    bundle.set_namespace("network", f"/proc/{holder}/ns/ipc").checker("exit", "0").write()
    assert runtime.run(bundle.path).returncode != 0


@pytest.mark.spec("config-linux.md#namespaces")
def test_duplicated_namespace_is_an_error(runtime, bundle):
    """Duplicated namespaces of the same type MUST generate an error."""
    runtime.require("duplicate-namespace-error")
    bundle.linux["namespaces"].append({"type": "ipc"})
    bundle.checker("exit", "0").write()
    assert runtime.run(bundle.path).returncode != 0


@pytest.mark.spec("config-linux.md#user-namespace-mappings")
def test_user_namespace_with_mappings(runtime, bundle):
    """uidMappings and gidMappings are written to the new user namespace: root inside is 100000 outside."""
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    bundle.checker("report").write()
    report = runtime.run_json(bundle.path)
    assert report["namespaces"]["user"] != host_ns("user")
    assert [line.split() for line in report["uid_map"]] == [["0", "100000", "65536"]]
    assert [line.split() for line in report["gid_map"]] == [["0", "200000", "65536"]]
    assert (report["uid"], report["gid"]) == (0, 0)


@pytest.mark.spec("config.md#hostname")
def test_hostname(runtime, bundle):
    """hostname is set in the container's UTS namespace, not on the host."""
    bundle.config["hostname"] = "conformance-host"
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["hostname"] == "conformance-host"
    assert os.uname().nodename != "conformance-host"


@pytest.mark.spec("config.md#hostname")
def test_hostname_without_a_uts_namespace_of_its_own_is_an_error(runtime, bundle):
    """Without a UTS namespace of its own the container's hostname would be the host's: create fails
    (runtime.md#create: a property that is not applied is an error, and no container is created)."""
    bundle.drop_namespace("uts")
    bundle.config["hostname"] = "conformance-host"
    bundle.checker("exit", "0").write()
    cid, result = runtime.create(bundle.path)
    assert result.returncode != 0
    assert runtime.state(cid).returncode != 0
    assert os.uname().nodename != "conformance-host"


@pytest.mark.spec("config.md#domainname")
def test_domainname(runtime, bundle):
    runtime.require("domainname")
    bundle.config["domainname"] = "conformance.test"
    bundle.checker("report").write()
    assert runtime.run_json(bundle.path)["domainname"] == "conformance.test"
