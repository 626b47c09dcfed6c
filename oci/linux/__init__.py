"""Linux kernel interfaces the runtime uses: namespaces, mounts, capabilities, seccomp, cgroups."""
