"""oci-mon: watching over detached containers (the role of containerd-shim and conmon).

One monitor process per state root (`daemon`) watches every container: `loop` (epoll, timers,
the children it reaps), `stdio` (FIFOs, the pty master, stdin), `server` and `operations`
(requests on the control socket, `proto` their wire form). What it writes: `record` (one
record per container, record.schema.json), `events` (event.schema.json), `crilog` (CRI logs
with rotation); `follow` reads rotated files back. `policy` is Docker's restart policies,
`runtimes` the runc command line, `oom` the cgroup's OOM kill count, `times` the times it
writes and reads, `paths` the layout of the root. Commands use `client` and `attach`.
"""
