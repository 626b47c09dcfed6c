"""linux.seccomp through libseccomp's Python binding: actions, argument conditions, architectures, flags."""

from __future__ import annotations

import errno

import seccomp

from oci.errors import InvalidInput, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ACTIONS = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"]
OPERATORS = {"SCMP_CMP_NE": seccomp.NE, "SCMP_CMP_LT": seccomp.LT, "SCMP_CMP_LE": seccomp.LE,
             "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_GE": seccomp.GE, "SCMP_CMP_GT": seccomp.GT,
             "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ}
ARCHES = {f"SCMP_ARCH_{name}": getattr(seccomp.Arch, name) for name in
          ("X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64",
           "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64", "RISCV64")}
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": seccomp.Attr.CTL_TSYNC, "SECCOMP_FILTER_FLAG_LOG": seccomp.Attr.CTL_LOG,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": seccomp.Attr.CTL_SSB}


def _action(name: str, errno_ret: int | None, pointer: str) -> Any:
    if errno_ret is not None and name not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        raise InvalidInput(f"{pointer}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {name}")
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    raise Unsupported(f"{pointer}: seccomp action {name} is not supported by oci-run")


def build(config: dict[str, Any], no_new_privs: bool) -> Any:
    """A loaded-to-be SyscallFilter for the config's linux.seccomp."""
    base = "/linux/seccomp"
    default = _action(config["defaultAction"], config.get("defaultErrnoRet"), base + "/defaultAction")
    flt = seccomp.SyscallFilter(default)
    flt.set_attr(seccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
    for i, arch in enumerate(config.get("architectures") or []):
        if arch not in ARCHES:
            raise Unsupported(f"{base}/architectures/{i}: unknown architecture {arch}")
        if ARCHES[arch] != seccomp.Arch.NATIVE:
            try:
                flt.add_arch(ARCHES[arch])
            except RuntimeError:
                pass  # the native one (already present) or one libseccomp cannot pair with it
    for i, flag in enumerate(config.get("flags") or []):
        if flag not in FLAGS:
            raise Unsupported(f"{base}/flags/{i}: seccomp flag {flag} is not supported by oci-run")
        flt.set_attr(FLAGS[flag], 1)
    for i, rule in enumerate(config.get("syscalls") or []):
        pointer = f"{base}/syscalls/{i}"
        action = _action(rule["action"], rule.get("errnoRet"), pointer + "/action")
        if rule["action"] == config["defaultAction"] and rule.get("errnoRet") == config.get("defaultErrnoRet"):
            continue  # libseccomp refuses rules that repeat the default
        conditions = []
        for j, arg in enumerate(rule.get("args") or []):
            op = OPERATORS.get(arg["op"])
            if op is None:
                raise InvalidInput(f"{pointer}/args/{j}/op: unknown operator {arg['op']}")
            conditions.append(seccomp.Arg(arg["index"], op, arg["value"], arg.get("valueTwo", 0)))
        indexes = [c for c in (rule.get("args") or [])]
        # Conditions on one argument index cannot be ANDed in libseccomp: each becomes its own rule.
        groups = ([[c] for c in conditions] if len({a["index"] for a in indexes}) < len(indexes)
                  else [conditions])
        for name in rule["names"]:
            for group in groups:
                try:
                    flt.add_rule(action, name, *group)
                except (ValueError, RuntimeError, OSError):
                    continue  # a syscall this libseccomp or architecture does not know
    return flt


def load(config: dict[str, Any], no_new_privs: bool) -> None:
    """Build and load the filter into this process (the last step before exec)."""
    build(config, no_new_privs).load()
