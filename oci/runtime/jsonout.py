"""JSON for oci-run's stdout (`state`, `list --format json`) without importing json.

The json package imports re, and through it enum, functools and collections: ~6 ms, which
`state`, the verb engines call most, would pay on every call for a one-line document. For
plain dicts, lists, strings, numbers and None json.dumps hands the work to the C encoder of
its _json module; `dumps` calls that encoder directly with json.dumps's own settings (the
output is the same, byte for byte), and uses json itself where _json does not offer it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def dumps(document: Any) -> str:
    """json.dumps(document) for plain data."""
    try:
        import _json

        encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    except (ImportError, AttributeError, TypeError):  # another Python: the stdlib's public way
        import json

        return json.dumps(document)
    return "".join(encode(document, 0))
