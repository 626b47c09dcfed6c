"""Namespaces (config-linux.md#namespaces) against the fake kernel: which are made, which joined and in what
order, entering a network namespace for a netlink socket, and lo brought up in a new one."""

from __future__ import annotations

import errno
import os

import pytest

from oci.errors import InvalidInput, NotFound, OciError
from oci.linux import kernel, namespaces
from oci.runtime import process


def test_new_and_joined_namespaces_are_told_apart():
    ns = namespaces.Namespaces([{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}, {"type": "mount"},
                                {"type": "user"}])
    assert ns.new == {"pid", "mount", "user"} and ns.join == {"network": "/proc/1/ns/net"}
    assert ns.has("network") and ns.has("pid") and not ns.has("uts")
    assert ns.unshare_flags() == kernel.CLONE_NEWPID | kernel.CLONE_NEWNS | kernel.CLONE_NEWUSER
    assert ns.unshare_flags(exclude=("user", "cgroup")) == kernel.CLONE_NEWPID | kernel.CLONE_NEWNS


def test_a_namespace_listed_twice_is_refused():
    with pytest.raises(InvalidInput, match="/linux/namespaces/1: namespace ipc listed twice"):
        namespaces.Namespaces([{"type": "ipc"}, {"type": "ipc", "path": "/proc/1/ns/ipc"}])


def test_paths_to_join_are_opened_first_user_first_mount_last(fake_kernel):
    entries = [{"type": kind, "path": f"/proc/self/ns/{namespaces.PROC_NAMES[kind]}"}
               for kind in ("mount", "network", "uts", "user")]
    ns = namespaces.Namespaces(entries)
    fds = ns.open_joins()
    assert list(fds) == ["user", "uts", "network", "mount"]
    for kind, fd in fds.items():
        namespaces.join(kind, fd)
    assert [nstype for _, nstype in fake_kernel.called("setns")] == [
        kernel.CLONE_NEWUSER, kernel.CLONE_NEWUTS, kernel.CLONE_NEWNET, kernel.CLONE_NEWNS]
    for fd in fds.values():  # join closes what it joined
        with pytest.raises(OSError):
            os.fstat(fd)


def test_a_missing_namespace_path_is_invalid_input():
    ns = namespaces.Namespaces([{"type": "network", "path": "/proc/self/ns/no-such"}])
    with pytest.raises(InvalidInput, match="namespace network: /proc/self/ns/no-such"):
        ns.open_joins()


def test_a_netlink_socket_is_opened_inside_and_the_thread_comes_back(fake_kernel):
    """oci-net's socket in a container's netns (oci.net.links): setns there, the call, setns home."""
    result = namespaces.run_in("/proc/self/ns/net", "network", lambda: fake_kernel.names()[:])
    assert result == ["setns"]
    assert [nstype for _, nstype in fake_kernel.called("setns")] == [kernel.CLONE_NEWNET] * 2
    assert fake_kernel.called("setns")[1][0].startswith("net:[")  # back in the thread's own


def test_entering_fails_with_one_line(fake_kernel):
    with pytest.raises(NotFound, match="/run/netns/none: no such network namespace"):
        namespaces.run_in("/run/netns/none", "network", lambda: None)
    fake_kernel.fail("setns", errno.EINVAL)
    with pytest.raises(InvalidInput, match=r"/proc/self/ns/net: not a network namespace \(Invalid argument\)"):
        namespaces.run_in("/proc/self/ns/net", "network", lambda: None)
    inside: list[bool] = []
    fake_kernel.fail("setns", errno.EPERM, when=lambda path, nstype: bool(inside))  # the way back
    with pytest.raises(OciError, match="cannot return to the host network namespace"):
        namespaces.run_in("/proc/self/ns/net", "network", lambda: inside.append(True))


def test_lo_comes_up_in_a_new_network_namespace(fake_kernel):
    namespaces.loopback_up()
    assert fake_kernel.link_flags["lo"] & namespaces.IFF_UP
    assert [request for request, _ in fake_kernel.called("ioctl")] == [namespaces.SIOCGIFFLAGS,
                                                                        namespaces.SIOCSIFFLAGS]
    fake_kernel.calls.clear()
    namespaces.loopback_up()  # already up: left alone
    assert [request for request, _ in fake_kernel.called("ioctl")] == [namespaces.SIOCGIFFLAGS]


@pytest.mark.parametrize("entries, direct", [
    ([{"type": "pid"}, {"type": "network"}, {"type": "mount"}], True),
    ([{"type": "user"}, {"type": "mount"}], False),  # id maps go between user and the others
    ([{"type": "time"}], False),  # offsets go between unshare and the first child
    ([{"type": "pid", "path": "/proc/1/ns/pid"}], False),
])
def test_when_the_runtime_forks_the_init_itself(entries, direct):
    assert process.forks_init_directly(namespaces.Namespaces(entries)) is direct


def test_fork_init_makes_the_next_child_pid_1_and_takes_its_own_pid_namespace_back(fake_kernel, monkeypatch):
    monkeypatch.setattr(process.os, "fork", lambda: 4242)
    ours, theirs = process.Channel.pair()
    try:
        ns = namespaces.Namespaces([{"type": "pid"}, {"type": "mount"}])
        assert process.fork_init(theirs, ours, None, ns) == 4242  # type: ignore[arg-type]
    finally:
        ours.close()
        theirs.close()
    assert fake_kernel.calls == [("unshare", (kernel.CLONE_NEWPID,)),
                                 ("setns", (os.readlink("/proc/self/ns/pid"), kernel.CLONE_NEWPID))]
