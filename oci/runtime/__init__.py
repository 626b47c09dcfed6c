"""The OCI runtime: container state, lifecycle, hooks and the container's init process."""
