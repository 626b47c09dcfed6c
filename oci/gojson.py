"""JSON objects read as Go's encoding/json decodes them into structs.

The programs that hand ocikit documents are Go programs (runc's callers, the CNI runtimes,
podman, containerd), and what they write is whatever Go's decoder accepts. So oci-run reads
config.json, process.json and `update -r` documents, and oci-net its CNI configuration, with
Go's rules, as the Go runtimes and plugins they stand in for do (encoding/json's decode.go):

* a key names the field spelled exactly so; else the first field (in declaration order) equal
  to it under simple case folding (bytes.EqualFold: ASCII case, and Unicode's one-letter folds:
  the Kelvin sign is a k, the long s an s; ß stays ß);
* keys are decoded in the document's order, so a later key for a field overrides an earlier
  one (`{"hostname": "a", "Hostname": "b"}` sets "b"); a later object for a struct field is
  decoded into what the earlier one filled (its fields override, the others stay);
* null leaves a field as it was (a non-pointer field's rule: unset unless an earlier key set it);
* a key that matches no field is ignored.

The fields are described by a shape: a dict of field names to their shapes (an object read the
same way), a one-element list holding the shape of a list's items, or anything else (a value
taken as it is). Values of another JSON type than the shape expects are left as they are, for
the schema to report.

Each caller says what becomes of keys that match nothing and writes down the engine that needs
the tolerance (oci.runtime.config, oci.net.cni): dropped and named as JSON pointers (`unknown`),
or kept in place for the caller's own review (`unknown` None); keys read under another spelling
are named in `folded`.
"""

from __future__ import annotations

from oci.errors import json_pointer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def fold(key: str) -> str:
    """`key` under Go's simple case folding: equal for two keys exactly when bytes.EqualFold says so."""
    if key.isascii():
        return key.upper()
    return "".join(_fold_char(c) for c in key)


def _fold_char(c: str) -> str:
    """The smallest letter of `c`'s simple fold orbit (Go's foldRune), from its one-letter case mappings."""
    orbit = {c}
    for mapped in (c.lower(), c.upper()):
        if len(mapped) == 1:
            orbit.add(mapped)
            orbit.update(m for m in (mapped.lower(), mapped.upper()) if len(m) == 1)
    return min(orbit)


def decode(doc: Any, shape: Any, pointer: str = "", *, unknown: list[str] | None = None,
           folded: list[str] | None = None) -> Any:
    """`doc` as Go decodes it into the fields `shape` describes: a new object, keys spelled as their
    fields. Keys that match no field go to `unknown` (as JSON pointers) and are dropped, or stay as
    they are when `unknown` is None; keys matched under another spelling go to `folded`."""
    if isinstance(shape, list) and shape and type(doc) is list:
        return [decode(item, shape[0], pointer + json_pointer(i), unknown=unknown, folded=folded)
                for i, item in enumerate(doc)]
    if not isinstance(shape, dict) or type(doc) is not dict:
        return doc
    out: dict[str, Any] = {}
    by_fold: dict[str, str] | None = None
    for key, value in doc.items():
        name: str | None = key if key in shape else None
        if name is None:
            if by_fold is None:
                by_fold = {}
                for field in shape:
                    by_fold.setdefault(fold(field), field)  # the first field of a fold set
            name = by_fold.get(fold(key))
        if name is None:
            if unknown is not None:
                unknown.append(pointer + json_pointer(key))
            else:
                out[key] = value
            continue
        if value is None:
            continue  # null: the field stays as it was
        if name != key and folded is not None:
            folded.append(f"{pointer}{json_pointer(key)}: read as {name!r}, as Go's JSON decoder reads it")
        field_shape = shape[name]
        value = decode(value, field_shape, pointer + json_pointer(name), unknown=unknown, folded=folded)
        earlier = out.pop(name, None)
        if isinstance(field_shape, dict) and type(earlier) is dict and type(value) is dict:
            value = _into(earlier, value, field_shape)
        out[name] = value  # a later key overrides, and takes the place of its order
    return out


def _into(earlier: dict[str, Any], later: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    """A later object decoded into the struct an earlier one filled."""
    merged = dict(earlier)
    for name, value in later.items():
        before = merged.pop(name, None)
        field_shape = shape.get(name)
        if isinstance(field_shape, dict) and type(before) is dict and type(value) is dict:
            value = _into(before, value, field_shape)
        merged[name] = value
    return merged
