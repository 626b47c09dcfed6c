"""The entry point: `build(BuildOptions) -> BuildResult`, without CLI concerns.

A build reads the Dockerfile, builds the target stage (and the stages it needs) in the
cache's layout, writes the final image (or finds it in the cache), and tags it in every
layout asked for, copying blobs where a layout is not the cache's. The first step that
mounts layers moves the calling process into a mount namespace of its own (see `mounts`):
call it from a process that may stay there (a command, or a child process).
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from oci import schema
from oci.build import config as configs
from oci.build.commit import copy_blobs
from oci.build.entry import Policy
from oci.build.layer import write_layer
from oci.descriptor import OCI_CONFIG, OCI_MANIFEST, Descriptor
from oci.dockerfile import ignore, lifetime, parser, runstep
from oci.dockerfile import instructions as ins
from oci.dockerfile.cache import BuildCache
from oci.dockerfile.context import HashCache, SourceRoot, open_in
from oci.dockerfile.executor import Executor
from oci.dockerfile.progress import Progress
from oci.dockerfile.squash import squash
from oci.dockerfile.state import MAX_ENTRIES, MAX_SIZE, PROXY_ARGS, Settings, State, step_key
from oci.dockerfile.stdin import context_from_stream
from oci.errors import InvalidInput, NotFound, UsageError
from oci.image import Image, parse_image_argument
from oci.layout import Layout
from oci.platform import Platform

DOCKERFILE_NAMES = ("Dockerfile", "Containerfile")
MAX_DOCKERFILE = 16 << 20  # bytes: a Dockerfile (or ignore file) is text a person wrote
BASE_ANNOTATION = "org.opencontainers.image.base.digest"


@dataclass
class BuildOptions:
    """What to build and how; the names of `docker build`'s and buildah's flags."""

    context: str
    dockerfile: str | None = None  # default: CONTEXT/Dockerfile, else CONTEXT/Containerfile
    dockerfile_text: str | None = None  # the Dockerfile itself (read from stdin), instead of a file
    tags: list[str] = field(default_factory=list)  # LAYOUT[:TAG], the first one printed
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    network: str = "host"
    net_state_dir: str | None = None
    platform: Platform | None = None
    squash: bool = False
    compression: str = "gzip"
    epoch: int | None = None  # SOURCE_DATE_EPOCH or --timestamp
    cache_dir: str | None = None  # the layout the cache lives in (default: the first tag's)
    layer_cache: str | None = None  # oci-unpack's layer cache (default: its own default)
    registry: Any = None  # oci.registry.http.Options
    progress: Progress | None = None
    output: int | None = 2  # RUN output: an fd, or None to capture it (shown when a step fails)
    max_size: int = MAX_SIZE  # cap on the uncompressed bytes of a base image, an ADD archive or URL
    max_entries: int = MAX_ENTRIES  # cap on the tar entries of a base image or an ADD archive
    context_stream: BinaryIO | None = None  # `-`: the context as a tar (or a lone Dockerfile) on this stream
    context_label: str | None = None  # how errors name a context read from a stream


@dataclass
class BuildResult:
    """The image built: where it is tagged, and how much ran."""

    layout: Layout
    descriptor: Descriptor
    tagged: list[tuple[Layout, Descriptor]]
    steps_run: int
    steps_cached: int
    seconds: float
    warnings: list[str] = field(default_factory=list)


def read_dockerfile(options: BuildOptions) -> tuple[str, str]:
    """(the text, the name errors use) of the Dockerfile; inside the context, symlinks are
    resolved inside it (`context.open_in`)."""
    if options.dockerfile_text is not None:
        return options.dockerfile_text, options.dockerfile or "Dockerfile"
    candidates = [options.dockerfile] if options.dockerfile is not None else \
        [os.path.join(options.context, name) for name in DOCKERFILE_NAMES]

    def shown(path: str) -> str:  # a stdin context's files by their names in the archive
        label = options.context_label
        return path if label is None else label + "/" + os.path.relpath(path, options.context)

    for path in candidates:
        try:
            with open_in(options.context, path) as f:
                return read_text(f, shown(path)), path
        except FileNotFoundError:
            if options.dockerfile is not None:
                raise NotFound(f"{shown(path)}: no such file") from None
        except IsADirectoryError:
            raise InvalidInput(f"{shown(path)}: is a directory, not a Dockerfile") from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise InvalidInput(f"{shown(path)}: too many levels of symbolic links (a symlink loop)") from None
            raise InvalidInput(f"{shown(path)}: cannot read: {err.strerror}") from None
    where = options.context_label or options.context
    raise NotFound(f"{where}: no Dockerfile or Containerfile (give one with -f)")


def read_text(f: BinaryIO, name: str, limit: int = MAX_DOCKERFILE) -> str:
    """The text of a Dockerfile or ignore file (`/dev/zero` given as one ends at the cap)."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{name}: larger than {limit >> 20} MiB: not a Dockerfile")
    return data.decode("utf-8", "surrogateescape")


def _targets(options: BuildOptions) -> list[tuple[str, str]]:
    found = []
    for text in options.tags:
        path, tag = parse_image_argument(text)
        if tag is not None and tag.startswith(("sha256:", "sha512:")):
            raise UsageError(f"{text}: give a tag, not a digest, to name the new image")
        found.append((path, tag or "latest"))
    return found


def _open_layout(path: str) -> Layout:
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise InvalidInput(f"{path}: exists and is not a directory (expected an OCI image layout)")
        if not os.path.exists(os.path.join(path, "oci-layout")) and os.listdir(path):
            raise InvalidInput(f"{path}: not an OCI image layout (no oci-layout file) and not empty")
    return Layout.open(path, create=True)


def _parse(options: BuildOptions) -> tuple[ins.Program, ins.Stage, str, str | None]:
    """The program, the stage to build, the Dockerfile's name, its path when it is a file."""
    text, name = read_dockerfile(options)
    program = ins.program(parser.parse(text, name))
    stage = program.stages[-1]
    if options.target:
        found = program.stage(options.target)
        if found is None:
            raise NotFound(f"target stage {options.target!r} could not be found")
        stage = found
    path = None if options.dockerfile_text is not None else name
    if path is not None and options.context_label is not None:  # read from a stdin context: shown as such
        name = options.context_label + "/" + os.path.relpath(path, options.context)
        program.dockerfile.path = name
    return program, stage, name, path


def build(options: BuildOptions) -> BuildResult:
    """Build the image the options describe; see the module doc."""
    started = time.monotonic()
    targets = _targets(options)
    if not targets and not options.cache_dir:
        raise UsageError("name the image with -t LAYOUT[:TAG] (or give --cache-dir)")
    if options.context_stream is None:
        if not os.path.isdir(options.context):
            raise NotFound(f"{options.context}: no such directory (the build context)")
        parsed = _parse(options)  # before the layout is touched: a bad Dockerfile leaves no trace
    progress = options.progress or Progress()
    store = _open_layout(options.cache_dir or targets[0][0])
    cache = BuildCache(store)
    cache.make_private()
    _reap_killed_builds(cache, progress)
    work: list[str] = []

    def workspace_dir() -> str:
        if not work:
            work.append(cache.work_dir())
        return work[0]

    executor: Executor | None = None
    try:
        if options.context_stream is not None:
            options = context_from_stream(options, os.path.join(workspace_dir(), "context"))
            parsed = _parse(options)
        program, stage, _, dockerfile_path = parsed
        context = os.path.abspath(options.context)
        hashes = HashCache(cache.context_hashes(context) if options.context_label is None else None)
        source = SourceRoot(context, ignore.load(context, dockerfile_path), hashes)
        settings = Settings(store=store, cache=cache, context=source, progress=progress,
                            build_args=dict(options.build_args), platform=options.platform or Platform.host(),
                            epoch=options.epoch, compression=options.compression, no_cache=options.no_cache,
                            pull=options.pull, network=options.network, net_state_dir=options.net_state_dir,
                            registry=options.registry, layer_cache=options.layer_cache, output=options.output,
                            workspace_dir=workspace_dir, max_size=options.max_size, max_entries=options.max_entries)
        executor = Executor(program, settings)
        warnings = list(program.dockerfile.warnings)
        with store.session():
            state = executor.build(stage.index)
            descriptor = _final_image(executor, state, options)
            tagged = _tag(store, descriptor, targets)
        source.hashes.save() if source.hashes else None
    finally:
        if executor is not None:
            executor.close()
        for path in work:
            cache.release(path)
    unused = sorted(set(options.build_args) - executor.used_args - set(PROXY_ARGS))
    if unused:
        warnings.append(f"one or more build-args {unused} were not consumed")
    for warning in warnings:
        progress.warn(warning)
    layout, first = tagged[0] if tagged else (store, descriptor)
    progress.commit(f"{layout.path}:{targets[0][1]}" if targets else store.path, first.digest)
    return BuildResult(layout, first, tagged, executor.steps_run, executor.steps_cached,
                       time.monotonic() - started, warnings)


def _reap_killed_builds(cache: BuildCache, progress: Progress) -> None:
    """What SIGKILLed builds left (see `lifetime`): containers and their records, scratch
    folders (the layout's session removes their temporaries)."""
    lifetime.reap(lambda: runstep.command("oci-run"), progress.warn)
    cache.sweep_work()


def _final_image(executor: Executor, state: State, options: BuildOptions) -> Descriptor:
    """The stage's image: from the cache when its key is known, else written now."""
    settings = executor.settings
    key = step_key(state.key, "IMAGE", json.dumps(options.labels, sort_keys=True), f"squash={options.squash}")
    if not options.no_cache:
        found = settings.cache.image(key)
        if found is not None:
            return found
    if options.squash:
        squash(executor, state)
    if not state.layers:
        _empty_layer(executor, state)
    config = state.config
    if options.labels:
        config.setdefault("config", {})["Labels"] = {**(config["config"].get("Labels") or {}), **options.labels}
    config["created"] = configs.timestamp(settings.epoch)
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["type"] = "layers"
    config_descriptor = _put_json(settings.store, OCI_CONFIG, config, "config")
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor.to_json(),
                                "layers": [layer.to_json() for layer in state.layers]}
    if state.base_digest:
        manifest["annotations"] = {BASE_ANNOTATION: state.base_digest}
    descriptor = _put_json(settings.store, OCI_MANIFEST, manifest, "manifest")
    settings.cache.put_image(key, descriptor)
    return descriptor


def _empty_layer(executor: Executor, state: State) -> None:
    """One empty layer for an image that has none: the image spec's schema wants a layer."""
    settings = executor.settings
    layer = write_layer(settings.store, [], Policy(epoch=settings.epoch), settings.compression)
    state.layers.append(layer.descriptor)
    state.config.setdefault("rootfs", {"type": "layers", "diff_ids": []}).setdefault("diff_ids", []).append(
        str(layer.diff_id))
    state.config.setdefault("history", []).append(
        {"created": configs.timestamp(settings.epoch), "created_by": "oci-build: an empty layer (an image has one)",
         "comment": "oci-build"})


def _put_json(layout: Layout, media_type: str, document: dict[str, Any], kind: str) -> Descriptor:
    # Keys sorted: a history entry read back from the cache and one made now are the same bytes.
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    if b"\\ud" in data:  # bytes of invalid UTF-8 kept from the Dockerfile: U+FFFD, as Go writes them
        data = json.dumps(_valid_unicode(document), sort_keys=True, separators=(",", ":")).encode()
    schema.load(data, kind, f"the new image {kind}", remember=True)
    return Descriptor(media_type, layout.put_bytes(data), len(data))


def _valid_unicode(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, list):
        return [_valid_unicode(item) for item in value]
    if isinstance(value, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    return value


def _tag(store: Layout, descriptor: Descriptor, targets: list[tuple[str, str]]) -> list[tuple[Layout, Descriptor]]:
    tagged = []
    layouts: dict[str, Layout] = {store.path: store}
    for path, tag in targets:
        layout = layouts.get(os.path.abspath(path))
        if layout is None:
            layout = layouts[os.path.abspath(path)] = _open_layout(path)
        if layout.path != store.path:
            with layout.session():
                copy_blobs(Image.load(store, descriptor), layout)
                if not layout.has_blob(descriptor.digest, descriptor.size):
                    layout.put_bytes(store.read_blob(descriptor), descriptor.digest)
                tagged.append((layout, layout.tag(tag, descriptor)))
        else:
            tagged.append((layout, layout.tag(tag, descriptor)))
    return tagged


def prune(layout_path: str) -> tuple[int, int]:
    """Empty the build cache of a layout and collect its unreferenced blobs."""
    return BuildCache(Layout.open(layout_path)).prune()
