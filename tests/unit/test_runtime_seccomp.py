"""Seccomp filters from linux.seccomp: every action, conditions, architectures, flags, and refusals."""

import pytest

from oci.errors import InvalidInput, Unsupported
from oci.linux import seccomp


def profile(**extra):
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], **extra}


def test_every_action_and_operator_builds():
    rules = [{"names": ["getpid"], "action": action} for action in seccomp.ACTIONS if action != "SCMP_ACT_ALLOW"]
    rules += [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
               "args": [{"index": 1, "op": op, "value": 1, "valueTwo": 1}]} for op in seccomp.OPERATORS]
    rules += [{"names": ["no_such_syscall_at_all"], "action": "SCMP_ACT_ERRNO"}]
    assert seccomp.build(profile(syscalls=rules, flags=sorted(seccomp.FLAGS)), True) is not None


def test_same_index_conditions_become_separate_rules():
    rule = {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 0}, {"index": 0, "op": "SCMP_CMP_EQ", "value": 8}]}
    assert seccomp.build(profile(defaultAction="SCMP_ACT_ERRNO", syscalls=[rule]), True) is not None


def test_refusals():
    with pytest.raises(InvalidInput, match="errnoRet"):
        seccomp.build(profile(syscalls=[{"names": ["getpid"], "action": "SCMP_ACT_LOG", "errnoRet": 1}]), True)
    with pytest.raises(Unsupported, match="SCMP_ACT_NOTIFY"):
        seccomp.build(profile(syscalls=[{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]), True)
    with pytest.raises(Unsupported, match="architectures/0"):
        seccomp.build(profile(architectures=["SCMP_ARCH_VAX"]), True)
    with pytest.raises(Unsupported, match="flags/0"):
        seccomp.build(profile(flags=["SECCOMP_FILTER_FLAG_NOPE"]), True)
