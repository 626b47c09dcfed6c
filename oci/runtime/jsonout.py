"""JSON for oci-run's stdout (`state`, `list --format json`) and hooks' stdin without importing json.

The json package imports re, and through it enum, functools and collections: ~6 ms, which
`state`, the verb engines call most, would pay on every call for a one-line document. For
plain dicts, lists, strings, numbers and None json.dumps hands the work to the C encoder of
its _json module; `dumps` calls that encoder directly with json.dumps's own settings (the
output is the same, byte for byte), and uses json itself where _json does not offer it.
Both are imported with this module: hooks run in the container after pivot_root too, where
the runtime's and the stdlib's files may be out of reach.
"""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii, make_encoder
except ImportError:  # another Python: the stdlib's public way
    import json

    make_encoder = None

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def dumps(document: Any, separators: tuple[str, str] = (", ", ": ")) -> str:
    """json.dumps(document, separators=separators) for plain data."""
    if make_encoder is None:
        return json.dumps(document, separators=separators)
    item, key = separators
    return "".join(make_encoder(None, None, encode_basestring_ascii, None, key, item, False, False, True)(document, 0))
