"""From an image config to an OCI runtime bundle: conversion, docker-run options, secure defaults.

Modules, one concern each:

* `defaults`  - the Docker-like secure base config (namespaces, mounts, capabilities, rlimits);
* `seccomp`   - the default seccomp profile, in the runtime-spec's JSON;
* `users`     - `Config.User` resolved against the rootfs's /etc/passwd and /etc/group;
* `convert`   - image config -> process args, env, cwd, annotations, volumes (conversion.md);
* `options`   - docker-run option values parsed (units, devices, mounts, env files, ...);
* `etcfiles`  - the generated hostname, hosts and resolv.conf of a bundle;
* `build`     - everything put together into a validated config.json;
* `rootfs`    - the overlay rootfs oci-unpack described, mounted when the bundle needs it.

Files inside the rootfs are read through oci.linux.inroot, which never leaves it.
"""
