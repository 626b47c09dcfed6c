"""Stages built instruction by instruction, with the cache.

A stage's state is an image being made: its config, its layers (blob descriptors in the
build's layout) and, for each layer, the folder holding its files when one is at hand.
Config instructions (ENV, LABEL, CMD, USER, ...) only change the config. Filesystem steps
(RUN, COPY, ADD, WORKDIR) mount the layers with overlayfs, do their work, and turn the
overlay's upper directory into a layer, written with oci-commit's deterministic layer code.

Every instruction extends the stage's cache key (`step_key`): the parent's key, the
instruction after ARG and ENV expansion (with the build arguments a RUN sees), and, for
COPY and ADD, the content digest of what they copy. A filesystem step whose key has a
record reuses that record's layer without mounting anything; the first miss runs, and so
does everything after it (their keys change with it). A stage's final key names its image,
so an unchanged rebuild writes nothing and gives the very same manifest.

Copy semantics follow buildah (the reference the corpus tests hold us to), which follows
Docker: a directory source copies its contents; a file goes to DEST/NAME when DEST ends
with `/` or is a directory, else to DEST; several sources need a DEST ending with `/`;
symlinks named as sources are followed inside their root; files from the context belong
to root (or `--chown`), files from another stage or image keep their owners; directories
made on the way belong to the `--chown` owner; archives that ADD unpacks keep theirs.
"""

from __future__ import annotations

import copy
import os
import posixpath
import re
import shlex
from typing import Any, Callable

from oci.build import config as configs
from oci.build.entry import Policy
from oci.build.layer import write_layer
from oci.build.source import from_directory
from oci.dockerfile import base, runstep
from oci.dockerfile import instructions as ins
from oci.dockerfile.cache import LayerRecord
from oci.dockerfile.copystep import CopySteps
from oci.dockerfile.mounts import Overlay, Workspace
from oci.dockerfile.parser import located, parse, parse_heredoc
from oci.dockerfile.state import (
    DEFAULT_SHELL,
    KEY_VERSION,
    PROXY_ARGS,
    Settings,
    State,
    StepFailed,
    keyed_config,
    oci_layer,
    owner_of,
    step_key,
    to_json,
)
from oci.dockerfile.tree import Owner, Tree
from oci.dockerfile.words import Lexer
from oci.errors import IntegrityError, InvalidInput, OciError
from oci.image import Image
from oci.platform import Platform
from oci.unpack import overlay as layer_cache
from oci.unpack.options import Options

_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


class Executor(CopySteps):
    """Builds the stages of a program that a target needs, each once."""

    def __init__(self, program: ins.Program, settings: Settings) -> None:
        self.program = program
        self.settings = settings
        self.lexer = Lexer(program.dockerfile.escape)
        self.built: dict[int, State] = {}
        self.workspace: Workspace | None = None
        self.steps_run = 0
        self.steps_cached = 0
        self.used_args: set[str] = set()
        self.global_args = self._global_args()
        self._layer_cache_session: Any = None
        self._warned_platform = False

    def close(self) -> None:
        """Unmount and remove the scratch area; let the layer cache be collected again."""
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None
        if self._layer_cache_session is not None:
            self._layer_cache_session.__exit__(None, None, None)
            self._layer_cache_session = None

    # -- arguments -------------------------------------------------------------

    def _automatic_args(self) -> dict[str, str]:
        target, host = self.settings.platform, Platform.host()
        found = {}
        for prefix, platform in (("TARGET", target), ("BUILD", host)):
            found[f"{prefix}PLATFORM"] = str(platform)
            found[f"{prefix}OS"] = platform.os
            found[f"{prefix}ARCH"] = platform.architecture
            found[f"{prefix}VARIANT"] = platform.variant or ""
        return found

    def _global_args(self) -> dict[str, str]:
        scope = self._automatic_args()
        for arg in self.program.global_args:
            for name, default in arg.pairs:
                self.used_args.add(name)
                if name in self.settings.build_args:
                    scope[name] = self.settings.build_args[name]
                elif default is not None:
                    scope[name] = self._expand(default, scope, arg)
        return scope

    def _expand(self, word: str, env: dict[str, str], at: ins.Instruction) -> str:
        try:
            return self.lexer.process_word(word, env)
        except InvalidInput as err:
            raise self._fail(at, err.message, InvalidInput) from None

    def _fail(self, at: ins.Instruction, message: str, kind: type[OciError] = StepFailed) -> OciError:
        return kind(f"{at.keyword} {_short(at)}: {message}" if message else at.text,
                    source=at.node.where(self.program.dockerfile.path))

    # -- stages ------------------------------------------------------------------

    def stage_for(self, name: str, before: int | None = None) -> ins.Stage | None:
        stage = self.program.stage(name)
        if stage is None or (before is not None and stage.index >= before):
            return None
        return stage

    def build(self, index: int) -> State:
        """Build stage `index` once, after the earlier stages it names (FROM, COPY --from)."""
        if index in self.built:
            return self.built[index]
        for needed in sorted(self.dependencies(index)):
            self.build(needed)
        stage = self.program.stages[index]
        progress = self.settings.progress
        progress.stage(stage, len(self.program.stages))
        total = 1 + len(stage.instructions)
        progress.step(1, total, stage.base.text)
        state = self._from(stage)
        triggers = list(state.settings.get("OnBuild") or [])
        if triggers:
            state.settings.pop("OnBuild", None)
            for trigger in triggers:
                progress.note(f"executing ONBUILD trigger: {trigger.splitlines()[0]}")
                self._trigger(state, trigger, stage.base)
        for number, instruction in enumerate(stage.instructions, start=2):
            progress.step(number, total, instruction.text)
            self.execute(state, instruction)
        self.built[index] = state
        return state

    def dependencies(self, index: int) -> set[int]:
        """The earlier stages stage `index` names in FROM or COPY --from (global ARGs expanded)."""
        stage = self.program.stages[index]
        names = [stage.base.base] + [i.source_from for i in stage.instructions
                                     if isinstance(i, ins.Copy) and i.source_from]
        found = set()
        for name in names:
            try:
                expanded = self.lexer.process_word(name, self.global_args)
            except InvalidInput:
                continue
            other = self.stage_for(expanded, index)
            if other is not None:
                found.add(other.index)
        return found

    def _trigger(self, state: State, text: str, at: ins.From) -> None:
        try:
            parsed = parse(text, f"{self.program.dockerfile.path} (ONBUILD of the base image)")
            for node in parsed.nodes:
                node.start = node.end = at.node.start
                self.execute(state, ins.instruction(node, parsed.escape))
        except InvalidInput as err:
            raise self._fail(at, f"ONBUILD trigger {text.splitlines()[0]!r}: {err.message}", InvalidInput) from None

    def _from(self, stage: ins.Stage) -> State:
        at = stage.base
        scope = dict(self.global_args)
        name = self._expand(at.base, scope, at)
        platform = self.settings.platform
        if at.platform:
            try:
                platform = Platform.parse(self._expand(at.platform, scope, at))
            except InvalidInput as err:
                raise self._fail(at, err.message, InvalidInput) from None
        parent = self.stage_for(name, stage.index)
        if parent is not None:
            built = self.build(parent.index)
            return State(copy.deepcopy(built.config), list(built.layers), list(built.dirs),
                         step_key(built.key, "FROM-STAGE"), built.platform, shell=list(built.shell),
                         base_digest=built.base_digest, name=stage.name, index=stage.index,
                         base_layers=built.base_layers)

        try:
            image = base.resolve(name, platform, self.settings.store, self.settings.cache,
                                 registry=self.settings.registry, pull=self.settings.pull,
                                 info=self.settings.progress.note)
        except OciError as err:
            raise located(err, at.node.where(self.program.dockerfile.path), f"FROM {name}") from None
        if image is None:
            config = configs.new_config(platform)
            return State(config, [], [], step_key(KEY_VERSION, self._settings_key(), "scratch", str(platform)),
                         platform, name=stage.name, index=stage.index)
        config = copy.deepcopy(image.config)
        config.setdefault("config", {})
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        config.setdefault("history", [])
        layers = [oci_layer(layer) for layer in image.layers]
        dirs = [self.settings.cache.tree(diff_id) for diff_id in image.diff_ids]
        shell = list(config["config"].get("Shell") or DEFAULT_SHELL)
        return State(config, layers, dirs, step_key(KEY_VERSION, self._settings_key(), str(image.descriptor.digest)),
                     Platform(config.get("os") or platform.os, config.get("architecture") or platform.architecture,
                              config.get("variant")),
                     shell=shell, base_digest=str(image.descriptor.digest), name=stage.name, index=stage.index,
                     base_layers=len(layers))

    def _settings_key(self) -> str:
        s = self.settings
        return f"epoch={s.epoch} compression={s.compression}"

    # -- instructions ------------------------------------------------------------------

    def execute(self, state: State, instruction: ins.Instruction) -> None:
        handler = getattr(self, "_do_" + type(instruction).__name__.lower())
        try:
            handler(state, instruction)
        except OciError as err:
            if err.source:
                raise
            raise located(err, instruction.node.where(self.program.dockerfile.path),
                          f"{instruction.keyword} {_short(instruction)}") from None
        except OSError as err:  # a file the step could not read or write, named with the step
            name = str(err.filename) if err.filename else ""
            where = f"{name if len(name) <= 200 else name[:100] + '...' + name[-80:]}: " if name else ""
            raise located(OciError(f"{where}{err.strerror or err}"), instruction.node.where(
                self.program.dockerfile.path), f"{instruction.keyword} {_short(instruction)}") from None

    def _history(self, state: State, created_by: str, empty: bool = True) -> dict[str, Any]:
        entry: dict[str, Any] = {"created": configs.timestamp(self.settings.epoch), "created_by": created_by,
                                 "comment": "oci-build"}
        if empty:
            entry["empty_layer"] = True
        return entry

    def _config_step(self, state: State, text: str) -> None:
        """A step that only changes the config: extend the key, record the history entry."""
        state.key = step_key(state.key, text)
        state.config.setdefault("history", []).append(self._history(state, text))
        self.settings.progress.config_step()

    def _do_from(self, state: State, instruction: ins.From) -> None:
        raise self._fail(instruction, "FROM is not allowed here", InvalidInput)

    def _do_maintainer(self, state: State, instruction: ins.Maintainer) -> None:
        state.config["author"] = instruction.maintainer
        self._config_step(state, f"MAINTAINER {instruction.maintainer}")

    def _do_arg(self, state: State, instruction: ins.Arg) -> None:
        parts = []
        for name, default in instruction.pairs:
            self.used_args.add(name)
            if name in self.settings.build_args:
                value: str | None = self.settings.build_args[name]
            elif default is not None:
                value = self._expand(default, state.env(), instruction)
            else:
                value = self.global_args.get(name)
            if value is None:
                state.args.pop(name, None)
                parts.append(name)
            else:
                state.args[name] = value
                parts.append(f"{name}={value}")
        state.key = step_key(state.key, "ARG " + " ".join(parts))
        self.settings.progress.config_step()

    def _do_env(self, state: State, instruction: ins.Env) -> None:
        env = state.env()
        pairs = [(self._expand(k, env, instruction), self._expand(v, env, instruction)) for k, v in instruction.pairs]
        current = list(state.settings.get("Env") or [])
        for key, value in pairs:
            entry = f"{key}={value}"
            for i, item in enumerate(current):
                if item.partition("=")[0] == key:
                    current[i] = entry
                    break
            else:
                current.append(entry)
        state.settings["Env"] = current
        self._config_step(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_label(self, state: State, instruction: ins.Label) -> None:
        env = state.env()
        pairs = [(self._expand(k, env, instruction), self._expand(v, env, instruction)) for k, v in instruction.pairs]
        labels = dict(state.settings.get("Labels") or {})
        labels.update(pairs)
        state.settings["Labels"] = labels
        self._config_step(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    def _command(self, state: State, command: list[str] | str) -> list[str]:
        return list(command) if isinstance(command, list) else [*state.shell, command]

    def _do_cmd(self, state: State, instruction: ins.Cmd) -> None:
        cmd = self._command(state, instruction.command)
        state.settings["Cmd"] = cmd
        state.cmd_set = True
        self._config_step(state, f"CMD {to_json(cmd)}")

    def _do_entrypoint(self, state: State, instruction: ins.Entrypoint) -> None:
        command = instruction.command
        entrypoint = self._command(state, command) if command != "" else []
        state.settings["Entrypoint"] = entrypoint
        if not state.cmd_set:
            state.settings.pop("Cmd", None)
        self._config_step(state, f"ENTRYPOINT {to_json(entrypoint)}")

    def _do_shell(self, state: State, instruction: ins.Shell) -> None:
        state.shell = list(instruction.shell)
        state.settings["Shell"] = list(instruction.shell)
        self._config_step(state, f"SHELL {to_json(instruction.shell)}")

    def _do_user(self, state: State, instruction: ins.User) -> None:
        user = self._expand(instruction.user, state.env(), instruction)
        state.settings["User"] = user
        self._config_step(state, f"USER {user}")

    def _do_expose(self, state: State, instruction: ins.Expose) -> None:
        env = state.env()
        ports: list[str] = []
        for word in instruction.ports:
            for text in self.lexer.process_words(word, env):
                ports += _ports(text)
        exposed = dict(state.settings.get("ExposedPorts") or {})
        for port in ports:
            exposed[port] = {}
        state.settings["ExposedPorts"] = exposed
        self._config_step(state, "EXPOSE " + " ".join(ports))

    def _do_volume(self, state: State, instruction: ins.Volume) -> None:
        env = state.env()
        paths = [self._expand(path, env, instruction) for path in instruction.paths]
        volumes = dict(state.settings.get("Volumes") or {})
        for path in paths:
            if not path:
                raise self._fail(instruction, "VOLUME specified can not be an empty string", InvalidInput)
            volumes[path] = {}
        state.settings["Volumes"] = volumes
        self._config_step(state, "VOLUME " + to_json(paths))

    def _do_stopsignal(self, state: State, instruction: ins.StopSignal) -> None:
        signal = self._expand(instruction.signal, state.env(), instruction)
        configs.parse_signal(signal)
        state.settings["StopSignal"] = signal
        self._config_step(state, f"STOPSIGNAL {signal}")

    def _do_healthcheck(self, state: State, instruction: ins.Healthcheck) -> None:
        check: dict[str, Any] = {"Test": list(instruction.test)}
        for key, value in (("Interval", instruction.interval), ("Timeout", instruction.timeout),
                           ("StartPeriod", instruction.start_period), ("StartInterval", instruction.start_interval),
                           ("Retries", instruction.retries)):
            if value:
                check[key] = value
        state.settings["Healthcheck"] = check
        self._config_step(state, f"HEALTHCHECK {to_json(check)}")

    def _do_onbuild(self, state: State, instruction: ins.Onbuild) -> None:
        triggers = list(state.settings.get("OnBuild") or [])
        triggers.append(instruction.expression)
        state.settings["OnBuild"] = triggers
        self._config_step(state, f"ONBUILD {instruction.expression}")

    # -- filesystem steps -----------------------------------------------------------------

    def _workspace(self) -> Workspace:
        if self.workspace is None:
            assert self.settings.workspace_dir is not None
            self.workspace = Workspace(self.settings.workspace_dir())
        return self.workspace

    def lowers(self, state: State) -> list[str]:
        """The folders of the state's layers (unpacked into the layer cache where needed)."""
        missing = [i for i, folder in enumerate(state.dirs) if folder is None]
        if not missing:
            return [folder for folder in state.dirs if folder is not None]

        last = max(missing) + 1
        manifest = {"layers": [layer.to_json() for layer in state.layers[:last]]}
        config = {"rootfs": {"diff_ids": [str(d) for d in state.diff_ids[:last]]}}
        image = Image(self.settings.store, None, manifest, None, config)
        cache = layer_cache.LayerCache(self.settings.layer_cache or layer_cache.default_cache())
        if self._layer_cache_session is None:  # held until the build ends: oci-unpack --gc waits for it
            self._layer_cache_session = cache.session()
            self._layer_cache_session.__enter__()
        try:
            folders = cache.ensure(image, Options(), self.settings.budget())
        except IntegrityError as err:
            err.message = f"the layers of the stage's base image: {err.message}"
            err.args = (err.message,)
            raise
        for i, folder in enumerate(folders):
            state.dirs[i] = state.dirs[i] or folder
        return [folder for folder in state.dirs if folder is not None]

    def _fs_step(self, state: State, instruction: ins.Instruction, key: str, created_by: str,
                 work: Callable[[Overlay], None]) -> None:
        """Reuse the cached layer of `key`, or mount the state, do `work`, and commit the changes."""
        cache = self.settings.cache
        record = None if self.settings.no_cache else cache.layer(key)
        if record is None:
            workspace = self._workspace()
            overlay = workspace.mount(self.lowers(state))
            try:
                work(overlay)
            finally:
                workspace.unmount(overlay)
            record = self._commit(overlay, created_by)
            cache.put_layer(key, record)
            self.steps_run += 1
            self.settings.progress.done(record.layer.digest if record.layer else None)
        else:
            self.steps_cached += 1
            self.settings.progress.cached(record.layer.digest if record.layer else None)
        state.key = key
        if record.layer is not None and record.diff_id is not None:
            state.layers.append(record.layer)
            state.config.setdefault("rootfs", {"type": "layers", "diff_ids": []}).setdefault(
                "diff_ids", []).append(str(record.diff_id))
            state.dirs.append(cache.tree(record.diff_id))
        state.config.setdefault("history", []).append(dict(record.history))

    def _commit(self, overlay: Overlay, created_by: str) -> LayerRecord:
        entries = from_directory(overlay.upper, upper=True)
        first = next(entries, None)
        history: dict[str, Any] = {"created": configs.timestamp(self.settings.epoch), "created_by": created_by,
                                   "comment": "oci-build"}
        if first is None:
            history["empty_layer"] = True
            return LayerRecord(None, None, history)

        def all_entries() -> Any:
            yield first
            yield from entries

        layer = write_layer(self.settings.store, all_entries(), Policy(epoch=self.settings.epoch),
                            self.settings.compression)
        self.settings.cache.adopt(layer.diff_id, overlay.upper)
        return LayerRecord(layer.descriptor, layer.diff_id, history)

    # -- RUN ------------------------------------------------------------------------------

    def _run_args(self, state: State, instruction: ins.Run) -> list[str]:
        command = instruction.command
        if isinstance(command, list):
            return list(command)
        if instruction.heredocs:
            single = parse_heredoc(command)
            if single is not None:
                data = instruction.heredocs[0].body()
                if data.startswith("#!"):
                    return ["/bin/sh", "-c", _script_runner(data)]
                return [*state.shell, data]
            body = command + "".join(f"\n{doc.content}{doc.name}" for doc in instruction.heredocs)
            return [*state.shell, body]
        return [*state.shell, command]

    def _do_run(self, state: State, instruction: ins.Run) -> None:
        args = self._run_args(state, instruction)
        host = Platform.host()
        if state.platform.architecture != host.architecture and not self._warned_platform:
            self._warned_platform = True
            self.settings.progress.warn(f"RUN steps of a {state.platform} image run on this {host} host: they need "
                                        "the kernel to run its binaries (binfmt_misc)")
        env = state.env()
        image_env = {item.partition("=")[0] for item in state.settings.get("Env") or []}
        arg_env = [f"{k}={v}" for k, v in sorted(state.args.items()) if k not in image_env]
        proxies = [f"{k}={v}" for k, v in self.settings.build_args.items() if k in PROXY_ARGS and k not in env]
        network = instruction.network if instruction.network not in (None, "default") else self.settings.network
        shown = "|".join(arg_env)
        created_by = f"RUN {to_json(args)}" + (f" (args: {shown})" if shown else "")
        key = step_key(state.key, "RUN", to_json(args), *arg_env, to_json(keyed_config(state)))

        def work(overlay: Overlay) -> None:
            spec = runstep.RunSpec(args, state.config, arg_env + proxies, network, self.settings.net_state_dir)
            self.settings.progress.flush()
            status, printed = runstep.run(self._workspace(), overlay, spec, self.settings.output)
            if status != 0:
                shown_output = printed.decode("utf-8", "replace").rstrip()
                raise self._fail(instruction, f"exit status {status}" + (f"\n{shown_output}" if shown_output else ""))

        self._fs_step(state, instruction, key, created_by, work)

    # -- WORKDIR --------------------------------------------------------------------------

    def _do_workdir(self, state: State, instruction: ins.Workdir) -> None:
        path = self._expand(instruction.path, state.env(), instruction)
        current = state.settings.get("WorkingDir") or "/"
        workdir = posixpath.normpath(posixpath.join("/", current, path))
        state.settings["WorkingDir"] = workdir
        user = state.settings.get("User") or ""
        key = step_key(state.key, f"WORKDIR {workdir}", f"user={user}")

        def work(overlay: Overlay) -> None:
            with Tree(overlay.rootfs) as tree:
                if tree.stat(workdir) is None:
                    owner = Owner(*owner_of(overlay.rootfs, user)) if user else Owner()
                    os.close(tree.makedirs(workdir, owner))

        self._fs_step(state, instruction, key, f"WORKDIR {workdir}", work)

    # -- COPY and ADD ------------------------------------------------------------------------

def _script_runner(data: str) -> str:
    """A here-document with a shebang runs as a script (BuildKit writes it to a file)."""
    return f"f=$(mktemp) && printf %s {shlex.quote(data)} > \"$f\" && chmod +x \"$f\" && \"$f\"; s=$?; rm -f \"$f\"; " \
           "exit $s"


def _short(instruction: ins.Instruction) -> str:
    text = instruction.text
    text = text[len(instruction.node.keyword):].strip() if text.lower().startswith(instruction.node.keyword) else text
    return text if len(text) <= 80 else text[:77] + "..."


def _ports(text: str) -> list[str]:
    found = _PORT.match(text)
    if not found:
        raise InvalidInput(f"invalid port {text!r}: expected PORT[-PORT][/tcp|udp|sctp]")
    first = int(found.group(1))
    last = int(found.group(2) or first)
    proto = (found.group(3) or "tcp").lower()
    if not 0 < first <= last <= 65535:
        raise InvalidInput(f"invalid port range {text!r}")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


