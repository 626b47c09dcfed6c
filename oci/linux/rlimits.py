"""Resource numbers of prlimit(2) by the config's names (asm-generic/resource.h, x86_64): constants only.

Apart from oci.linux.syscalls (which imports ctypes), so that checking a config's rlimits costs
`create` nothing before its cgroup exists (the cgroup-move grace period overlaps the imports after it).
"""

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_OFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
