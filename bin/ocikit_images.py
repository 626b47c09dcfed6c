"""ocikit's image and registry verbs: images, pull, push, tag, rmi, image prune, save, load,
build, login, logout, image inspect, image tags, manifest create/push/inspect."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import ocicli
from ocikit import Context, add_registry_flags, parser, print_documents, pull_with_progress

from oci.errors import NotFound, OciError, Unsupported, UsageError


def cmd_images(context: Context, argv: list[str]) -> int:
    p = parser("images", "List images", "ocikit images [OPTIONS] [REPOSITORY[:TAG]]")
    p.add_argument("-a", "--all", action="store_true", help="accepted (there are no intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-f", "--filter", action="append", default=[], help="dangling=true|false, reference=, label=")
    p.add_argument("--format", help="table (default), json, or a Go template ({{.Repository}} {{.Tag}} {{.ID}})")
    p.add_argument("reference", nargs="?")
    args = p.parse_args(argv)
    from oci.engine import listing
    from oci.engine.formatting import emit

    rows = listing.images(context.engine, no_trunc=args.no_trunc, reference=args.reference, filters=args.filter)
    if args.quiet:
        context.out("".join(f"{i}\n" for i in dict.fromkeys(r["ID"] for r in rows)))
        return 0
    context.out(emit(rows, args.format, lambda r: listing.images_table(r, args.digests)))
    return 0


def cmd_pull(context: Context, argv: list[str]) -> int:
    p = parser("pull", "Download an image from a registry (docker://REF accepted)",
               "ocikit pull [OPTIONS] NAME[:TAG|@DIGEST]")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.add_argument("--platform", help="OS/ARCH[/VARIANT] (default: this machine's)")
    p.add_argument("-a", "--all-tags", action="store_true", help="not supported")
    add_registry_flags(p)
    p.add_argument("name")
    args = p.parse_args(argv)
    if args.all_tags:
        raise Unsupported("pull --all-tags is not supported")
    pulled = pull_with_progress(context, args.name, args, quiet=args.quiet)
    context.out(str(pulled.reference) + "\n")
    return 0


def cmd_push(context: Context, argv: list[str]) -> int:
    p = parser("push", "Upload an image to the registry its name says", "ocikit push [OPTIONS] NAME[:TAG]")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress")
    p.add_argument("-a", "--all-tags", action="store_true", help="push every tag of the repository")
    add_registry_flags(p)
    p.add_argument("name")
    args = p.parse_args(argv)
    from oci.engine import transfer
    from oci.engine.images import parse_reference

    engine = context.engine
    names = [args.name]
    if args.all_tags:
        repo = parse_reference(args.name).name
        names = [n for s in engine.images.images() for n in s.names if n.rsplit(":", 1)[0] == repo]
    registry = ocicli.registry_options(args)
    for name in names:
        bar = ocicli.progress(args.quiet)
        try:
            result = transfer.push(engine.images, name, registry, progress=bar)
        finally:
            if bar:
                bar.finish()
        ref = parse_reference(name)
        if not args.quiet:
            context.messages.info(f"{ref.familiar()}: {result.blobs_uploaded} blobs uploaded "
                                  f"({result.bytes_uploaded / 1e6:.1f} MB), {result.blobs_mounted} mounted, "
                                  f"{result.blobs_present} already present")
        context.out(f"{ref.tag or 'latest'}: digest: {result.descriptor.digest} size: {result.descriptor.size}\n")
    return 0


def cmd_tag(context: Context, argv: list[str]) -> int:
    p = parser("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", "ocikit tag SOURCE_IMAGE TARGET_IMAGE")
    p.add_argument("source")
    p.add_argument("target")
    args = p.parse_args(argv)
    from oci.engine.images import parse_reference

    images = context.engine.images
    stored = images.find(args.source)
    images.name([str(parse_reference(args.target))], stored.descriptor)
    return 0


def cmd_rmi(context: Context, argv: list[str]) -> int:
    p = parser("rmi", "Remove one or more images", "ocikit rmi [OPTIONS] IMAGE [IMAGE...]")
    p.add_argument("-f", "--force", action="store_true", help="remove the image even if stopped containers use it")
    p.add_argument("--no-prune", action="store_true", help="accepted")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    args = p.parse_args(argv)
    from oci.engine import imagegc

    code = 0
    for text in args.images:
        try:
            context.out("".join(line + "\n" for line in imagegc.remove(context.engine, text, args.force,
                                                                        context.monitor())))
        except OciError as err:
            context.messages.error(err.message)
            code = err.exit_code
    imagegc.collect(context.engine)
    return code


def cmd_image_prune(context: Context, argv: list[str]) -> int:
    p = parser("image prune", "Remove unused images (dangling ones; with -a every image no container uses)")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (ocikit never asks)")
    p.add_argument("--filter", action="append", default=[], help="accepted")
    args = p.parse_args(argv)
    from oci.engine import imagegc
    from oci.engine.formatting import human_size

    lines = imagegc.prune(context.engine, args.all, context.monitor())
    freed = imagegc.collect(context.engine)
    if lines:
        context.out("Deleted Images:\n" + "".join(line + "\n" for line in lines) + "\n")
    context.out(f"Total reclaimed space: {human_size(freed)}\n")
    return 0


def cmd_image_inspect(context: Context, argv: list[str]) -> int:
    p = parser("image inspect", "Low-level information on images (docker://REF: in its registry, not pulled)")
    p.add_argument("-f", "--format", help="a Go template, or json")
    add_registry_flags(p)
    p.add_argument("names", nargs="+", metavar="IMAGE")
    args = p.parse_args(argv)

    from oci.engine import inspection

    registry = ocicli.registry_options(args)

    def find(name: str) -> Any:
        if name.startswith("docker://"):
            return inspection.remote(name, registry)
        return inspection.image(context.engine, name)

    return print_documents(context, args, find)


def cmd_image_tags(context: Context, argv: list[str]) -> int:
    p = parser("image tags", "List the tags of a repository in its registry (nothing pulled)",
               "ocikit image tags [OPTIONS] [docker://]REPOSITORY")
    p.add_argument("--format", help="json for a JSON document (skopeo list-tags' shape)")
    add_registry_flags(p)
    p.add_argument("repository")
    args = p.parse_args(argv)
    from oci.engine import transfer
    from oci.engine.images import parse_reference

    ref = parse_reference(args.repository)
    tags = transfer.repository(args.repository, ocicli.registry_options(args)).list_tags()
    if args.format == "json":
        context.out(json.dumps({"Repository": ref.name, "Tags": tags}, indent=4) + "\n")
    else:
        context.out("".join(f"{t}\n" for t in tags))
    return 0


def cmd_save(context: Context, argv: list[str]) -> int:
    p = parser("save", "Save images to a tar archive (to stdout unless -o)", "ocikit save [OPTIONS] IMAGE [IMAGE...]")
    p.add_argument("-o", "--output", help="write to a file instead of stdout")
    p.add_argument("--format", default="docker-oci", choices=("docker-archive", "oci-archive", "docker-oci"),
                   help="docker-oci (default: both docker-archive and OCI layout, as Docker 25 writes), "
                   "docker-archive or oci-archive")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    args = p.parse_args(argv)
    from oci.engine import archive

    if args.output:
        from oci.fsutil import atomic_file

        with atomic_file(os.path.abspath(args.output)) as f:
            archive.save(context.engine.images, args.images, f, args.format)
        return 0
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    archive.save(context.engine.images, args.images, sys.stdout.buffer, args.format)
    sys.stdout.flush()
    return 0


def cmd_load(context: Context, argv: list[str]) -> int:
    p = parser("load", "Load images from a tar archive (docker-archive or oci-archive; stdin unless -i)")
    p.add_argument("-i", "--input", help="read from a file instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    args = p.parse_args(argv)
    from oci.engine import archive

    source: Any
    if args.input:
        try:
            source = open(args.input, "rb")
        except FileNotFoundError:
            raise NotFound(f"open {args.input}: no such file or directory") from None
    else:
        import tempfile

        if sys.stdin.isatty():
            raise UsageError("requested load from stdin, but stdin is empty")
        source = tempfile.TemporaryFile()  # tar members are read on demand: spool the stream
        import shutil

        shutil.copyfileobj(sys.stdin.buffer, source, 1 << 20)
        source.seek(0)
    with source:
        lines = archive.load(context.engine.images, source)
    if not args.quiet:
        context.out("".join(line + "\n" for line in lines))
    return 0


def cmd_build(context: Context, argv: list[str]) -> int:
    p = parser("build", "Build an image from a Dockerfile (oci-build), into the image store",
               "ocikit build [OPTIONS] PATH", "  ocikit build -t app:1 ./app\n  ocikit build -f ./app/Containerfile "
               "--build-arg VERSION=2 --target runtime -t 127.0.0.1:5000/team/app:2 ./app")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="name the image")
    p.add_argument("-f", "--file", help="the Dockerfile (default: PATH/Dockerfile, else PATH/Containerfile; - stdin)")
    p.add_argument("--build-arg", action="append", default=[], metavar="NAME[=VALUE]")
    p.add_argument("--target", help="the stage to build")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-cache", action="store_true", help="run every step")
    p.add_argument("--pull", action="store_true", help="ask the registry for base images even when cached")
    p.add_argument("--network", default="host", help="RUN steps' network: host (default), none or a network")
    p.add_argument("--platform", help="the platform of the base images")
    p.add_argument("--squash", action="store_true", help="one layer for what the build adds")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("--iidfile", help="write the image ID to this file")
    add_registry_flags(p)
    p.add_argument("path", metavar="PATH")
    args = p.parse_args(argv)
    from oci_build import build_args

    from oci.build import config as configs
    from oci.dockerfile.progress import Progress
    from oci.engine import building
    from oci.platform import Platform

    text = None
    if args.file == "-":
        text = sys.stdin.read()
    progress = Progress(sys.stderr, quiet=args.quiet)
    stored = building.build(
        context.engine, context=args.path, dockerfile=None if args.file == "-" else args.file, dockerfile_text=text,
        names=args.tag, build_args=build_args(args.build_arg), target=args.target,
        labels=dict(configs.parse_pair(item, "--label") for item in args.label), no_cache=args.no_cache,
        pull=args.pull, network=args.network, platform=Platform.parse(args.platform) if args.platform else None,
        squash=args.squash, epoch=configs.parse_epoch(os.environ.get("SOURCE_DATE_EPOCH")),
        registry=ocicli.registry_options(args), progress=progress,
        output=None if args.quiet else sys.stderr.fileno())
    if args.iidfile:
        from oci.fsutil import write_atomic

        write_atomic(args.iidfile, stored.id.encode())
    if args.quiet:
        context.out(stored.id + "\n")
        return 0
    from oci.engine.images import familiar

    context.out(f"Successfully built {stored.short_id}\n" +
                "".join(f"Successfully tagged {familiar(n)}\n" for n in stored.names if "@" not in n))
    return 0


def cmd_login(context: Context, argv: list[str]) -> int:
    p = parser("login", "Log in to a registry; the credentials go to the auth file podman and skopeo read "
               "($REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json)",
               "ocikit login [OPTIONS] [SERVER]")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add_registry_flags(p)
    p.add_argument("server", nargs="?")
    args = p.parse_args(argv)
    from oci.engine import login

    password = args.password
    if args.password_stdin:
        if args.password:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not args.username:
            raise UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
    elif args.password:
        context.messages.warn("using --password via the CLI is insecure. Use --password-stdin.")
    username = args.username
    if not username:
        if not sys.stdin.isatty():
            raise UsageError("cannot perform an interactive login from a non TTY device")
        username = input("Username: ")
    if not password:
        if not sys.stdin.isatty():
            raise UsageError("cannot perform an interactive login from a non TTY device")
        import getpass

        password = getpass.getpass("Password: ")
    path = login.login(args.server, username, password, ocicli.registry_options(args))
    context.messages.debug(f"credentials written to {path}")
    context.out("Login Succeeded\n")
    return 0


def cmd_logout(context: Context, argv: list[str]) -> int:
    p = parser("logout", "Log out from a registry (its entry removed from the auth file)", "ocikit logout [SERVER]")
    p.add_argument("server", nargs="?")
    args = p.parse_args(argv)
    from oci.engine import login

    key = login.registry_key(args.server)
    if login.logout(args.server):
        context.out(f"Removing login credentials for {key}\n")
    else:
        context.out(f"Not logged in to {key}\n")
    return 0


def cmd_manifest_create(context: Context, argv: list[str]) -> int:
    p = parser("manifest create", "Make a manifest list (OCI index) of images for several platforms, stored "
               "under LIST (images are pulled when missing)", "ocikit manifest create [OPTIONS] LIST IMAGE [IMAGE...]")
    p.add_argument("-a", "--amend", action="store_true", help="add to an existing list")
    add_registry_flags(p)
    p.add_argument("list")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    args = p.parse_args(argv)
    from oci.engine import manifests

    def image(text: str) -> Any:
        found = context.engine.images.maybe_find(text)
        if found is None:
            args.platform = None
            found = pull_with_progress(context, text, args, quiet=True).image
        return found

    digest = manifests.create(context.engine.images, args.list, [image(t) for t in args.images], args.amend)
    context.messages.info(f"Created manifest list {args.list}")
    context.out(f"{digest}\n")
    return 0


def cmd_manifest_push(context: Context, argv: list[str]) -> int:
    p = parser("manifest push", "Push a manifest list and every image in it", "ocikit manifest push LIST [DEST]")
    p.add_argument("-p", "--purge", action="store_true", help="remove the local list after pushing")
    add_registry_flags(p)
    p.add_argument("list")
    p.add_argument("destination", nargs="?")
    args = p.parse_args(argv)
    from oci.engine import manifests

    target = args.destination or args.list
    result = manifests.push(context.engine.images, args.list, target, ocicli.registry_options(args))
    if args.purge:
        manifests.remove(context.engine.images, args.list)
    context.out(f"{result.descriptor.digest}\n")
    return 0


def cmd_manifest_inspect(context: Context, argv: list[str]) -> int:
    p = parser("manifest inspect", "Show a manifest or manifest list: a local list, else the registry's",
               "ocikit manifest inspect [OPTIONS] NAME")
    p.add_argument("-v", "--verbose", action="store_true", help="accepted")
    add_registry_flags(p)
    p.add_argument("name")
    args = p.parse_args(argv)
    from oci.engine import manifests

    document = manifests.inspect(context.engine.images, args.name, ocicli.registry_options(args))

    context.out(json.dumps(document, indent=4) + "\n")
    return 0


def cmd_manifest_annotate(context: Context, argv: list[str]) -> int:
    p = parser("manifest annotate", "Not supported (exit 8): a list takes each image's platform from its config",
               "ocikit manifest annotate [OPTIONS] LIST IMAGE")
    p.parse_known_args(argv)  # --help answers
    raise Unsupported("manifest annotate is not supported: create the list from images with the right platforms")


def cmd_manifest_rm(context: Context, argv: list[str]) -> int:
    p = parser("manifest rm", "Delete local manifest lists", "ocikit manifest rm LIST [LIST...]")
    p.add_argument("lists", nargs="+")
    args = p.parse_args(argv)
    from oci.engine import manifests

    for name in args.lists:
        manifests.remove(context.engine.images, name)
    return 0
