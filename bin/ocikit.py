#!/usr/bin/env python3
"""ocikit: Docker's everyday workflow in one command, made of the small commands' code.

Verbs and flags are Docker's where Docker has them (`alias docker=ocikit` serves for everyday
work). Here: the verb table, the global flags and what every verb shares; the verbs themselves in
ocikit_containers.py, ocikit_images.py and ocikit_objects.py, each imported only for its verbs.
"""

from __future__ import annotations

import sys

import ocicli

from oci import __version__
from oci.errors import NotFound, OciError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable

PROG = "ocikit"
DESCRIPTION = """\
Docker's everyday workflow in one command: images in one OCI layout, layers in the shared
overlay cache, containers, volumes and networks under a state root (--root, else $OCIKIT_ROOT,
else /var/lib/ocikit as root). Verbs and flags are Docker's."""
EXAMPLES = """\
  ocikit run --rm 127.0.0.1:5000/library/busybox echo hello          # pulled when missing
  ocikit run -d --name web -p 8080:80 -v site:/www 127.0.0.1:5000/library/busybox httpd -f -p 80 -h /www
  ocikit ps -a
  ocikit logs -f web                                                 # follows until ctrl-c
  ocikit exec -it web sh
  ocikit stop web && ocikit rm web
  ocikit images --format '{{.Repository}}:{{.Tag}} {{.ID}}'
  ocikit tag 127.0.0.1:5000/library/busybox 127.0.0.1:5000/team/busybox:1
  ocikit push 127.0.0.1:5000/team/busybox:1
  ocikit save -o busybox.tar 127.0.0.1:5000/team/busybox:1 && ocikit load -i busybox.tar
  ocikit login -u ocikit --password-stdin 127.0.0.1:5000 < password.txt
  ocikit volume create data && ocikit volume ls
  ocikit network create backend && ocikit run --rm --network backend 127.0.0.1:5000/library/busybox hostname"""

# verb -> (module, function, one line of help). Management forms (`image ls`) map onto these.
VERBS: dict[str, tuple[str, str, str]] = {
    "run": ("ocikit_containers", "cmd_run", "create and run a new container from an image"),
    "create": ("ocikit_containers", "cmd_create", "create a new container"),
    "start": ("ocikit_containers", "cmd_start", "start one or more stopped containers"),
    "stop": ("ocikit_containers", "cmd_stop", "stop one or more running containers"),
    "restart": ("ocikit_containers", "cmd_restart", "restart one or more containers"),
    "kill": ("ocikit_containers", "cmd_kill", "kill one or more running containers"),
    "rm": ("ocikit_containers", "cmd_rm", "remove one or more containers"),
    "ps": ("ocikit_containers", "cmd_ps", "list containers"),
    "logs": ("ocikit_containers", "cmd_logs", "fetch the logs of a container"),
    "exec": ("ocikit_containers", "cmd_exec", "run a command in a running container"),
    "attach": ("ocikit_containers", "cmd_attach", "attach to a running container"),
    "wait": ("ocikit_containers", "cmd_wait", "block until containers stop, then print their exit codes"),
    "pause": ("ocikit_containers", "cmd_pause", "pause all processes within containers"),
    "unpause": ("ocikit_containers", "cmd_unpause", "unpause all processes within containers"),
    "top": ("ocikit_containers", "cmd_top", "display the running processes of a container"),
    "stats": ("ocikit_containers", "cmd_stats", "display resource usage statistics of containers"),
    "port": ("ocikit_containers", "cmd_port", "list port mappings of a container"),
    "rename": ("ocikit_containers", "cmd_rename", "rename a container"),
    "cp": ("ocikit_containers", "cmd_cp", "copy files between a container and the host"),
    "commit": ("ocikit_containers", "cmd_commit", "create a new image from a container's changes"),
    "inspect": ("ocikit", "cmd_inspect", "return low-level information on containers, images, volumes, networks"),
    "images": ("ocikit_images", "cmd_images", "list images"),
    "pull": ("ocikit_images", "cmd_pull", "download an image from a registry"),
    "push": ("ocikit_images", "cmd_push", "upload an image to a registry"),
    "tag": ("ocikit_images", "cmd_tag", "create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("ocikit_images", "cmd_rmi", "remove one or more images"),
    "save": ("ocikit_images", "cmd_save", "save images to a tar archive (docker-archive or oci-archive)"),
    "load": ("ocikit_images", "cmd_load", "load images from a tar archive"),
    "build": ("ocikit_images", "cmd_build", "build an image from a Dockerfile"),
    "login": ("ocikit_images", "cmd_login", "log in to a registry"),
    "logout": ("ocikit_images", "cmd_logout", "log out from a registry"),
    "version": ("ocikit", "cmd_version", "show the ocikit version"),
}
MANAGEMENT: dict[str, dict[str, str]] = {
    "container": {"run": "run", "create": "create", "start": "start", "stop": "stop", "restart": "restart",
                  "kill": "kill", "rm": "rm", "ls": "ps", "list": "ps", "ps": "ps", "logs": "logs", "exec": "exec",
                  "attach": "attach", "wait": "wait", "pause": "pause", "unpause": "unpause", "top": "top",
                  "stats": "stats", "port": "port", "rename": "rename", "cp": "cp", "commit": "commit",
                  "inspect": "container-inspect", "prune": "container-prune"},
    "image": {"ls": "images", "list": "images", "pull": "pull", "push": "push", "tag": "tag", "rm": "rmi",
              "save": "save", "load": "load", "build": "build", "inspect": "image-inspect", "prune": "image-prune",
              "tags": "image-tags"},
    "volume": {"create": "volume-create", "ls": "volume-ls", "list": "volume-ls", "inspect": "volume-inspect",
               "rm": "volume-rm", "remove": "volume-rm", "prune": "volume-prune"},
    "network": {"create": "network-create", "ls": "network-ls", "list": "network-ls",
                "inspect": "network-inspect", "rm": "network-rm", "remove": "network-rm",
                "connect": "network-connect", "disconnect": "network-disconnect", "prune": "network-prune"},
    "manifest": {"create": "manifest-create", "push": "manifest-push", "inspect": "manifest-inspect",
                 "annotate": "manifest-annotate", "rm": "manifest-rm"},
}
SUBVERBS: dict[str, tuple[str, str]] = {  # verbs reached only through their management command
    "container-inspect": ("ocikit_containers", "cmd_container_inspect"),
    "container-prune": ("ocikit_containers", "cmd_container_prune"),
    "image-inspect": ("ocikit_images", "cmd_image_inspect"),
    "image-prune": ("ocikit_images", "cmd_image_prune"),
    "image-tags": ("ocikit_images", "cmd_image_tags"),
    "manifest-create": ("ocikit_images", "cmd_manifest_create"),
    "manifest-push": ("ocikit_images", "cmd_manifest_push"),
    "manifest-inspect": ("ocikit_images", "cmd_manifest_inspect"),
    "manifest-annotate": ("ocikit_images", "cmd_manifest_annotate"),
    "manifest-rm": ("ocikit_images", "cmd_manifest_rm"),
    **{f"volume-{v}": ("ocikit_objects", f"cmd_volume_{v}") for v in ("create", "ls", "inspect", "rm", "prune")},
    **{f"network-{v}": ("ocikit_objects", f"cmd_network_{v}")
       for v in ("create", "ls", "inspect", "rm", "connect", "disconnect", "prune")},
}


class Context:
    """What every verb gets: the global flags, the state root's engine, messages on stderr."""

    def __init__(self, root: str | None, runtime: str, messages: ocicli.Messages) -> None:
        self.root_path, self.runtime, self.messages = root, runtime, messages
        self._engine: Any = None
        self._monitor: Any = False

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from oci.engine.engine import Engine
            from oci.engine.root import StateRoot

            self._engine = Engine(StateRoot(self.root_path), self.runtime)
        return self._engine

    def monitor(self) -> Any:
        """The monitor of detached containers (oci-mon), or None where it is not installed."""
        if self._monitor is False:
            from oci.engine import monitor

            self._monitor = monitor.connect(self.engine)
        return self._monitor

    def out(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def parser(verb: str, description: str, usage: str | None = None, examples: str = "") -> argparse.ArgumentParser:
    """A verb's parser: Docker's flags, ocikit's exit codes in --help, no common flags of the small commands."""
    return ocicli.Parser(f"{PROG} {verb}", description, examples, common=False, usage=usage)


def split_globals(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The flags before the verb: --root, --runtime, --log-format, -D/--debug, -v, -h."""
    found, verb, rest = ocicli.split_globals(argv, ("--root", "--runtime", "--log-format"), ("-D", "--debug"))
    flags = {"root": found.get("--root"), "runtime": found.get("--runtime", "oci-run"),
             "log_format": found.get("--log-format", "text"), "debug": "-D" in found or "--debug" in found}
    if verb == "--version":
        return flags, ["version"]
    return flags, [verb, *rest] if verb is not None else []


def raise_usage(message: str) -> None:
    raise UsageError(message)


def top_help() -> str:
    lines = [f"usage: {PROG} [--root DIR] [--runtime oci-run] [--log-format F] [--debug] COMMAND [ARGS...]", "",
             DESCRIPTION, "",
             "commands:"]
    lines += [f"  {name:10s} {text}" for name, (_, _, text) in VERBS.items()]
    lines += ["", "management commands:"]
    lines += [f"  {name:10s} {' '.join(sorted(subs))}" for name, subs in MANAGEMENT.items()]
    lines += ["", "global flags:",
              "  --root DIR       state root (default: $OCIKIT_ROOT, else /var/lib/ocikit as root)",
              "  --runtime NAME   oci-run (in process), or runc, crun or a path, through the monitor",
              "  --log-format F   messages on stderr as text lines or JSON lines (text, json; default: text)",
              "  -D, --debug      tracebacks and debug messages",
              "", "examples:", EXAMPLES, "", ocicli.EXIT_CODES, "",
              f"Run '{PROG} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def body(argv: list[str], messages: ocicli.Messages) -> int:
    flags, rest = split_globals(argv)
    messages.debug_on = messages.debug_on or flags["debug"]
    messages.log_format = flags["log_format"]
    if not rest:
        sys.stdout.write(top_help())
        return 0 if argv else 2
    verb, args = rest[0], rest[1:]
    if verb in MANAGEMENT:
        subs = MANAGEMENT[verb]
        if not args or args[0] in ("-h", "--help"):
            sys.stdout.write(f"usage: {PROG} {verb} COMMAND\n\ncommands: {', '.join(sorted(subs))}\n")
            return 0 if args else 2
        if args[0] not in subs:
            raise_usage(f"{verb}: unknown command {args[0]!r} (one of: {', '.join(sorted(subs))})")
        verb, args = subs[args[0]], args[1:]
    if verb in VERBS:
        module_name, function, _ = VERBS[verb]
    elif verb in SUBVERBS:
        module_name, function = SUBVERBS[verb]
    else:
        raise_usage(f"unknown command {verb!r} (see '{PROG} --help')")
    module = sys.modules[__name__] if module_name == "ocikit" else __import__(module_name)
    context = Context(flags["root"], flags["runtime"], messages)
    return getattr(module, function)(context, args)


def add_registry_flags(p: argparse.ArgumentParser) -> None:
    """How to reach registries, as podman and skopeo spell it: --tls-verify[=false] and --cert-dir, the
    small commands' flags (ocicli.REGISTRY_FLAGS); `ocicli.registry_options(args)` reads them."""
    ocicli.add_flags(p, ocicli.registry_flags("--tls-verify", "--cert-dir"))


def pull_with_progress(context: Context, text: str, args: Any, quiet: bool = False) -> Any:
    from oci.engine import transfer
    from oci.platform import Platform

    platform = Platform.parse(args.platform) if getattr(args, "platform", None) else None
    bar = ocicli.progress(quiet)
    try:
        pulled = transfer.pull(context.engine.images, text, ocicli.registry_options(args), platform=platform,
                               progress=bar)
    finally:
        if bar:
            bar.finish()
    if not quiet:
        ref = pulled.reference
        state = "Downloaded newer image" if pulled.changed else "Image is up to date"
        context.messages.info(f"{ref.familiar()}: {pulled.fetched} blobs fetched ({pulled.bytes / 1e6:.1f} MB), "
                              f"{pulled.present} present; digest {pulled.image.descriptor.digest}; {state}")
    return pulled


def cmd_inspect(context: Context, argv: list[str]) -> int:
    p = parser("inspect", "Low-level information on containers, images, volumes or networks (docker://REF: a "
               "registry's image, not pulled)", f"{PROG} inspect [OPTIONS] NAME|ID|docker://REF [...]")
    p.add_argument("-f", "--format", help="a Go template, or json")
    p.add_argument("--type", choices=("container", "image", "volume", "network"), help="only this kind of object")
    p.add_argument("-s", "--size", action="store_true", help="accepted; sizes are always shown for images")
    add_registry_flags(p)
    p.add_argument("names", nargs="+", metavar="NAME")
    args = p.parse_args(argv)
    from oci.engine import inspection

    registry = ocicli.registry_options(args)
    return print_documents(context, args, lambda name: inspection.any_object(context.engine, name, args.type,
                                                                            context.monitor(), registry))


def remove_each(context: Context, names: list[str], remove: Callable[[str], None], force: bool) -> int:
    """`remove(name)` for each name, as Docker's `volume rm` and `network rm`: the name printed once
    removed, a missing one an error unless `force`, other errors printed while the rest go on."""
    code = 0
    for name in names:
        try:
            remove(name)
            context.out(name + "\n")
        except NotFound as err:
            if not force:
                context.messages.error(err.message)
                code = err.exit_code
        except OciError as err:
            context.messages.error(err.message)
            code = err.exit_code
    return code


def print_documents(context: Context, args: Any, find: Callable[[str], Any]) -> int:
    from oci.engine.formatting import document, render

    found, code = [], 0
    for name in args.names:
        try:
            found.append(find(name))
        except OciError as err:
            context.messages.error(err.message)
            code = err.exit_code
    if args.format and args.format != "json":
        context.out("".join(render(args.format, doc) + "\n" for doc in found))
    else:
        context.out(document(found))
    return code


def cmd_version(context: Context, argv: list[str]) -> int:
    context.out(f"ocikit version {__version__}\n")
    return 0


def main() -> None:
    ocicli.run(PROG, body)


if __name__ == "__main__":
    sys.modules.setdefault("ocikit", sys.modules[__name__])  # the verb modules import it by name
    main()
