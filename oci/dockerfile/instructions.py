"""Instructions with their arguments read (JSON or shell form, flags, key=value pairs), grouped
into stages; ARGs before the first FROM are the global ones.

Arguments stay as written here (quotes included where Docker removes them during
expansion): which variables are set depends on the stage being built, so the executor
expands them step by step with `words.Lexer`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from oci.dockerfile.parser import (
    WHITESPACE,
    Dockerfile,
    DockerfileError,
    Heredoc,
    Node,
    located,
    parse_heredoc,
    parse_json,
)
from oci.dockerfile.words import parse_words
from oci.errors import InvalidInput, Unsupported

STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}
KEYWORDS = ("from", "arg", "env", "label", "run", "cmd", "entrypoint", "shell", "copy", "add", "workdir", "user",
            "expose", "volume", "stopsignal", "healthcheck", "onbuild", "maintainer")


@dataclass
class Instruction:
    """What every instruction has: its node (lines, original text) and keyword."""

    node: Node

    @property
    def keyword(self) -> str:
        return self.node.keyword.upper()

    @property
    def text(self) -> str:
        """The instruction as written, on one line (continuations joined)."""
        return " ".join(self.node.original.split("\n")).strip()


@dataclass
class From(Instruction):
    base: str = ""
    name: str | None = None
    platform: str | None = None


@dataclass
class Arg(Instruction):
    pairs: list[tuple[str, str | None]] = field(default_factory=list)  # (name, raw default or None)


@dataclass
class Env(Instruction):
    pairs: list[tuple[str, str]] = field(default_factory=list)  # raw (key, value)


@dataclass
class Label(Instruction):
    pairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Run(Instruction):
    command: list[str] | str = ""  # JSON form, or the shell-form text
    heredocs: list[Heredoc] = field(default_factory=list)
    network: str | None = None


@dataclass
class Cmd(Instruction):
    command: list[str] | str = ""


@dataclass
class Entrypoint(Instruction):
    command: list[str] | str = ""


@dataclass
class Shell(Instruction):
    shell: list[str] = field(default_factory=list)


@dataclass
class Copy(Instruction):
    """COPY and ADD: sources (raw words), here-document sources, destination, flags."""

    sources: list[str] = field(default_factory=list)
    contents: list[Heredoc] = field(default_factory=list)
    dest: str = ""
    source_from: str | None = None  # --from (COPY)
    chown: str | None = None
    chmod: str | None = None
    checksum: str | None = None  # --checksum (ADD)
    link: bool = False
    add: bool = False  # ADD: archives are unpacked, URLs fetched


@dataclass
class Workdir(Instruction):
    path: str = ""


@dataclass
class User(Instruction):
    user: str = ""


@dataclass
class Expose(Instruction):
    ports: list[str] = field(default_factory=list)


@dataclass
class Volume(Instruction):
    paths: list[str] = field(default_factory=list)


@dataclass
class StopSignal(Instruction):
    signal: str = ""


@dataclass
class Healthcheck(Instruction):
    """HEALTHCHECK: `test` as Docker stores it (["NONE"], ["CMD", ...] or ["CMD-SHELL", cmd])."""

    test: list[str] = field(default_factory=list)
    interval: int = 0  # nanoseconds, 0 for the default
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass
class Onbuild(Instruction):
    expression: str = ""


@dataclass
class Maintainer(Instruction):
    maintainer: str = ""


@dataclass
class Stage:
    """A FROM and the instructions after it."""

    index: int
    base: From
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.base.name


@dataclass
class Program:
    """A Dockerfile as stages: the global ARGs and the stages in order."""

    dockerfile: Dockerfile
    global_args: list[Arg]
    stages: list[Stage]

    def stage(self, name: str) -> Stage | None:
        """The stage named `name` (case-insensitive), or with that index."""
        lowered = name.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        if name.isdigit() and int(name) < len(self.stages):
            return self.stages[int(name)]
        return None


class _Flags:
    """An instruction's `--name[=value]` flags: each asked for once, the rest refused."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.values: dict[str, str | None] = {}
        self.lists: dict[str, list[str]] = {}
        for flag in node.flags:
            if not flag.startswith("--"):
                raise InvalidInput(f"{node.keyword.upper()}: invalid flag {flag!r}")
            name, sep, value = flag[2:].partition("=")
            self.lists.setdefault(name, []).append(value if sep else "")
            self.values[name] = value if sep else None
        self.known: set[str] = set()

    def string(self, name: str) -> str | None:
        self.known.add(name)
        if name not in self.values:
            return None
        value = self.values[name]
        if value is None:
            raise InvalidInput(f"{self.node.keyword.upper()}: missing a value on flag: --{name}")
        if len(self.lists[name]) > 1:
            raise InvalidInput(f"{self.node.keyword.upper()}: duplicate flag specified: --{name}")
        return value

    def boolean(self, name: str) -> bool:
        self.known.add(name)
        if name not in self.values:
            return False
        value = (self.values[name] or "true").lower()
        if value not in ("true", "false"):
            raise InvalidInput(f"{self.node.keyword.upper()}: expecting boolean value for flag {name}, not: {value}")
        return value == "true"

    def done(self, unsupported: tuple[str, ...] = ()) -> None:
        for name in self.values:
            if name in unsupported:
                raise Unsupported(f"{self.node.keyword.upper()} --{name} is not supported by oci-build")
            if name not in self.known:
                raise InvalidInput(f"{self.node.keyword.upper()}: unknown flag: --{name}")


def parse_duration(text: str, flag: str) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds; empty or zero is 0."""
    if not text:
        return 0
    if text == "0":
        return 0
    if not DURATION.match(text):
        raise InvalidInput(f"HEALTHCHECK --{flag}: invalid duration {text!r}")
    total = sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    if 0 < total < 1_000_000:
        raise InvalidInput(f"HEALTHCHECK: Interval {flag!r} cannot be less than 1ms")
    return int(total)


def _words(node: Node) -> list[str]:
    return [word for word in WHITESPACE.split(node.args) if word] if node.args else []


def _list_form(node: Node) -> list[str]:
    """JSON array, else whitespace-separated words (COPY, ADD, VOLUME)."""
    found = node.json_args()
    return found if found is not None else _words(node)


def _command(node: Node) -> list[str] | str:
    found = node.json_args()
    return found if found is not None else node.args


def _pairs(node: Node, escape: str) -> list[tuple[str, str]]:
    """ENV and LABEL arguments: `KEY=VALUE ...`, or the old `KEY VALUE` (the rest of the line)."""
    keyword = node.keyword.upper()
    words = parse_words(node.args, escape)
    if not words:
        raise InvalidInput(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = WHITESPACE.split(node.args, maxsplit=1)
        if len(parts) < 2:
            raise InvalidInput(f"{keyword} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise InvalidInput(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        if not key:
            raise InvalidInput(f"{keyword} names can not be blank")
        pairs.append((key, value))
    return pairs


def instruction(node: Node, escape: str) -> Instruction:
    """The typed instruction of a node; InvalidInput for anything Docker refuses."""
    keyword = node.keyword
    if keyword not in KEYWORDS:
        raise InvalidInput(f"unknown instruction: {node.keyword.upper()}")
    flags = _Flags(node)
    built: Instruction
    if keyword == "from":
        words = _words(node)
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise InvalidInput("FROM requires either one or three arguments (FROM IMAGE [AS NAME])")
        name = words[2].lower() if len(words) == 3 else None
        if name is not None and not STAGE_NAME.match(name):
            raise InvalidInput(f"invalid name for build stage: {words[2]!r}, name can't start with a number or "
                               "contain symbols")
        built = From(node, base=words[0], name=name, platform=flags.string("platform"))
    elif keyword == "arg":
        words = parse_words(node.args, escape)
        if not words:
            raise InvalidInput("ARG requires at least one argument")
        pairs: list[tuple[str, str | None]] = []
        for word in words:
            key, sep, value = word.partition("=")
            if not key:
                raise InvalidInput("ARG names can not be blank")
            pairs.append((key, value if sep else None))
        built = Arg(node, pairs=pairs)
    elif keyword == "env":
        built = Env(node, pairs=_pairs(node, escape))
    elif keyword == "label":
        built = Label(node, pairs=_pairs(node, escape))
    elif keyword == "run":
        network = flags.string("network")
        if network is not None and network not in ("default", "none", "host"):
            raise InvalidInput(f"RUN --network={network}: expected default, none or host")
        flags.done(unsupported=("mount", "security", "device"))
        command = _command(node)
        if not command:
            raise InvalidInput("RUN requires at least one argument")
        built = Run(node, command=command, heredocs=list(node.heredocs), network=network)
    elif keyword in ("cmd", "entrypoint"):
        command = _command(node)
        built = (Cmd if keyword == "cmd" else Entrypoint)(node, command=command)
    elif keyword == "shell":
        shell = node.json_args()
        if shell is None:
            raise InvalidInput("SHELL requires the arguments to be in JSON form")
        if not shell:
            raise InvalidInput("SHELL requires at least one argument")
        built = Shell(node, shell=shell)
    elif keyword in ("copy", "add"):
        built = _copy(node, flags, keyword == "add")
    elif keyword == "workdir":
        words = _words(node)
        if len(words) != 1:
            raise InvalidInput("WORKDIR requires exactly one argument")
        built = Workdir(node, path=node.args)
    elif keyword == "user":
        if len(_words(node)) != 1:
            raise InvalidInput("USER requires exactly one argument")
        built = User(node, user=node.args)
    elif keyword == "expose":
        ports = _words(node)
        if not ports:
            raise InvalidInput("EXPOSE requires at least one argument")
        built = Expose(node, ports=ports)
    elif keyword == "volume":
        paths = [path.strip() for path in _list_form(node)]
        if not paths:
            raise InvalidInput("VOLUME requires at least one argument")
        if any(not path for path in paths):
            raise InvalidInput("VOLUME specified can not be an empty string")
        built = Volume(node, paths=paths)
    elif keyword == "stopsignal":
        if len(_words(node)) != 1:
            raise InvalidInput("STOPSIGNAL requires exactly one argument")
        built = StopSignal(node, signal=node.args)
    elif keyword == "healthcheck":
        built = _healthcheck(node, flags)
    elif keyword == "onbuild":
        built = _onbuild(node, escape)
    else:
        if not node.args:
            raise InvalidInput("MAINTAINER requires exactly one argument")
        built = Maintainer(node, maintainer=node.args)
    flags.done()
    return built


def _copy(node: Node, flags: _Flags, add: bool) -> Copy:
    keyword = node.keyword.upper()
    chown, chmod = flags.string("chown"), flags.string("chmod")
    link = flags.boolean("link")
    source_from = None if add else flags.string("from")
    checksum = flags.string("checksum") if add else None
    if flags.lists.get("exclude"):
        raise Unsupported(f"{keyword} --exclude is not supported by oci-build")
    flags.done(unsupported=("parents", "keep-git-dir", "unpack", "exclude"))
    args = _list_form(node)
    if len(args) < 2:
        raise InvalidInput(f"{keyword} requires at least two arguments, but only one was provided. "
                           "Destination could not be determined")
    *sources, dest = args
    if parse_heredoc(dest) is not None:
        raise InvalidInput(f"{keyword} cannot accept a heredoc as a destination")
    by_name = {heredoc.name: heredoc for heredoc in node.heredocs}
    paths, contents = [], []
    for source in sources:
        heredoc = parse_heredoc(source) if node.heredocs else None
        if heredoc is not None:
            body = by_name.get(heredoc.name)
            contents.append(Heredoc(heredoc.name, body.body() if body else "", heredoc.expand, False))
        else:
            paths.append(source)
    return Copy(node, sources=paths, contents=contents, dest=dest, source_from=source_from, chown=chown,
                chmod=chmod, checksum=checksum, link=link, add=add)


def _healthcheck(node: Node, flags: _Flags) -> Healthcheck:
    pieces = WHITESPACE.split(node.args, maxsplit=1)
    head, rest = pieces[0], pieces[1] if len(pieces) > 1 else ""
    kind = head.upper()
    if not kind:
        raise InvalidInput("HEALTHCHECK requires at least one argument")
    if kind == "NONE":
        if rest.strip():
            raise InvalidInput("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(node, test=["NONE"])
    if kind != "CMD":
        raise InvalidInput(f"Unknown type {head!r} in HEALTHCHECK (try CMD)")
    interval = parse_duration(flags.string("interval") or "", "interval")
    timeout = parse_duration(flags.string("timeout") or "", "timeout")
    start_period = parse_duration(flags.string("start-period") or "", "start-period")
    start_interval = parse_duration(flags.string("start-interval") or "", "start-interval")
    retries_text = flags.string("retries")
    retries = 0
    if retries_text:
        if not re.fullmatch(r"-?\d+", retries_text):
            raise InvalidInput(f"HEALTHCHECK --retries: invalid number {retries_text!r}")
        retries = int(retries_text)
        if retries < 0:
            raise InvalidInput(f"--retries cannot be negative ({retries})")
    found = parse_json(rest.strip(), "HEALTHCHECK")
    if found is not None:
        test = ["CMD", *found]
    else:
        test = ["CMD-SHELL", rest.strip()] if rest.strip() else []
    if len(test) < 2:
        raise InvalidInput("Missing command after HEALTHCHECK CMD")
    return Healthcheck(node, test=test, interval=interval, timeout=timeout, start_period=start_period,
                       start_interval=start_interval, retries=retries)


def _onbuild(node: Node, escape: str) -> Onbuild:
    if node.child is None:
        raise InvalidInput("ONBUILD requires at least one argument")
    trigger = node.child.keyword.upper()
    if trigger == "ONBUILD":
        raise InvalidInput("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise InvalidInput(f"{trigger} isn't allowed as an ONBUILD trigger")
    instruction(node.child, escape)  # refuses what the trigger could never run
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    if node.heredocs:
        expression += "".join(f"\n{heredoc.content}{heredoc.name}" for heredoc in node.heredocs)
    return Onbuild(node, expression=expression)


def program(dockerfile: Dockerfile) -> Program:
    """Group the instructions into stages; errors name FILE:LINE."""
    global_args: list[Arg] = []
    stages: list[Stage] = []
    for node in dockerfile.nodes:
        try:
            built = instruction(node, dockerfile.escape)
        except (InvalidInput, Unsupported) as err:
            raise located(err, node.where(dockerfile.path)) from None
        if isinstance(built, From):
            stages.append(Stage(len(stages), built))
        elif not stages:
            if not isinstance(built, Arg):
                raise DockerfileError(f"{built.keyword}: no build stage in current context (expected FROM first)",
                                      source=node.where(dockerfile.path))
            global_args.append(built)
        else:
            stages[-1].instructions.append(built)
    if not stages:
        raise DockerfileError("no FROM instruction", source=f"{dockerfile.path}:1")
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            raise DockerfileError(f"duplicate stage name {stage.name!r}", source=stage.base.node.where(dockerfile.path))
        if stage.name:
            seen.add(stage.name)
    return Program(dockerfile, global_args, stages)
