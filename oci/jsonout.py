"""JSON text for stdout and hooks' stdin without importing the json package.

The json package imports re, and through it enum, functools and collections: ~6 ms, which
a command writing one small document (oci-run `state`, a warm oci-fetch's descriptor)
would pay on every call. For plain dicts, lists, strings, numbers and None json.dumps hands
the work to the C encoder of its _json module; `dumps` calls that encoder directly with
json.dumps's own settings, and lays out `indent` itself: the text is json.dumps's, byte
for byte. Where _json is missing, json itself does the work. Both are imported with this
module: oci-run's hooks run in the container after pivot_root too, where the runtime's and
the stdlib's files may be out of reach.
"""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii, make_encoder

    C_ENCODER = True
except ImportError:  # another Python: the stdlib's public way
    import json

    C_ENCODER = False

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def dumps(document: Any, separators: tuple[str, str] | None = None, indent: int | None = None) -> str:
    """json.dumps(document, separators=separators, indent=indent) for plain data."""
    if separators is None:
        separators = (",", ": ") if indent is not None else (", ", ": ")
    if not C_ENCODER:
        return json.dumps(document, separators=separators, indent=indent)
    item, key = separators
    encode = make_encoder(None, _unserializable, encode_basestring_ascii, None, key, item, False, False, True)
    if indent is None:
        return "".join(encode(document, 0))
    return _indented(document, encode, " " * indent, "\n", item, key)


def _indented(value: Any, encode: Any, step: str, newline: str, item: str, key: str) -> str:
    if isinstance(value, dict) and value:
        inner = newline + step
        parts = [f"{encode_basestring_ascii(_key(k))}{key}{_indented(v, encode, step, inner, item, key)}"
                 for k, v in value.items()]
        return "{" + inner + (item + inner).join(parts) + newline + "}"
    if isinstance(value, list | tuple) and value:
        inner = newline + step
        parts = [_indented(v, encode, step, inner, item, key) for v in value]
        return "[" + inner + (item + inner).join(parts) + newline + "]"
    return "".join(encode(value, 0))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int | float):
        return "".join(make_encoder(None, _unserializable, encode_basestring_ascii, None, ":", ",", False, False,
                                    True)(key, 0))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _unserializable(value: Any) -> Any:
    """What json.dumps says of a value it cannot write."""
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
