"""Output as Docker's CLI prints it: aligned tables, `--format json`, and Go-template-like formats.

Templates understand what everyday scripts use: `{{.Field}}` and `{{.Field.Sub}}`,
`{{json .}}` / `{{json .Field}}`, `{{upper .F}}`, `{{lower .F}}`, `{{join .F ","}}`,
`{{index .F "key"}}`, `{{println}}`, and a leading `table` that prints a header row. `\\t`
and `\\n` typed in a format stand for a tab and a newline, as in Docker.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Iterable, Sequence

from oci.errors import UsageError
from oci.monitor import times

ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def human_size(size: float) -> str:
    """Docker's HumanSize: decimal units, three significant digits (`1.23MB`)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time; None for Go's zero time or text that is none."""
    if not text or text.startswith("0001-"):
        return None
    try:
        return times.parse_rfc3339(text) / times.NS
    except ValueError:
        return None


def ago(text: str) -> str:
    t = parse_time(text)
    return "N/A" if t is None else f"{times.human_duration(time.time() - t)} ago"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded as Docker's tabwriter does (at least three spaces between them)."""
    rows = [list(map(str, r)) for r in rows]
    all_rows = [list(headers), *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for r in all_rows:
        cells = [c.ljust(w) if i < len(r) - 1 else c for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("   ".join(cells).rstrip())
    return "".join(line + "\n" for line in lines)


def _lookup(value: Any, path: str) -> Any:
    if path in (".", ""):
        return value
    for part in path.lstrip(".").split("."):
        if isinstance(value, dict):
            if part in value:
                value = value[part]
                continue
            lowered = {k.lower(): v for k, v in value.items()}  # Go's templates on structs: exact; be kind
            value = lowered.get(part.lower(), "")
        else:
            value = getattr(value, part, "")
    return value


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _argument(token: str, data: Any) -> Any:
    if token.startswith("."):
        return _lookup(data, token)
    if token.startswith('"') and token.endswith('"'):
        return json.loads(token)
    if token == "$":
        return data
    raise UsageError(f"template: cannot evaluate {token!r}")


def _evaluate(expression: str, data: Any) -> str:
    import shlex

    try:
        words = shlex.split(expression, posix=False)
    except ValueError as err:
        raise UsageError(f"template: {err}") from None
    if not words:
        return ""
    head, rest = words[0], words[1:]
    if head.startswith(".") or head == "$":
        return _text(_argument(head, data))
    args = [_argument(w, data) for w in rest]
    if head == "json":
        return json.dumps(args[0] if args else data, separators=(",", ":"))
    if head in ("upper", "lower", "title"):
        text = _text(args[0]) if args else ""
        return getattr(text, head)()
    if head == "join":
        items = args[0] if args and isinstance(args[0], list) else []
        return (args[1] if len(args) > 1 else "").join(_text(i) for i in items)
    if head == "index":
        container, key = (args + [None, None])[:2]
        if isinstance(container, dict):
            return _text(container.get(key))
        if isinstance(container, list) and isinstance(key, int):
            return _text(container[key])
        return "<no value>"
    if head == "println":
        return " ".join(_text(a) for a in args) + "\n"
    if head == "len":
        return str(len(args[0])) if args else "0"
    raise UsageError(f'template: function "{head}" not defined')


def render(template: str, data: Any) -> str:
    """One record through a template."""
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    return ACTION.sub(lambda m: _evaluate(m.group(1), data), template)


def emit(rows: list[dict[str, Any]], fmt: str | None, default: Callable[[list[dict[str, Any]]], str],
         quiet_field: str | None = None, quiet: bool = False) -> str:
    """The text to print for `rows`: the default table, JSON lines, or each row through the template."""
    if quiet and quiet_field:
        return "".join(f"{r[quiet_field]}\n" for r in rows)
    if not fmt or fmt == "table":
        return default(rows)
    if fmt == "json":
        return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
    if fmt.startswith("table "):
        body = fmt[len("table "):]
        header_line = ACTION.sub(lambda m: _header(m.group(1)), body.replace("\\t", "\t"))
        return _align([header_line, *(render(body, r) for r in rows)])
    return "".join(render(fmt, r) + "\n" for r in rows)


def _header(expression: str) -> str:
    word = expression.split()[-1] if expression.split() else ""
    name = word.lstrip(".").split(".")[-1]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper() if name else ""


def _align(lines: list[str]) -> str:
    split = [line.split("\t") for line in lines]
    columns = max(len(s) for s in split)
    widths = [max((len(s[i]) for s in split if i < len(s)), default=0) for i in range(columns)]
    out = []
    for s in split:
        cells = [c.ljust(widths[i]) if i < len(s) - 1 else c for i, c in enumerate(s)]
        out.append("   ".join(cells).rstrip())
    return "".join(line + "\n" for line in out)


def document(value: Any) -> str:
    """`docker inspect`'s JSON: an indented array."""
    return json.dumps(value, indent=4) + "\n"
