"""Object keys matched to known fields the way Go's encoding/json matches them to struct fields.

The CNI plugins runtimes are used to are Go programs: they decode their configuration into
structs, and Go's decoder takes an object key for a field when it equals the field's name,
else when it equals it ignoring case (Unicode simple folding), and ignores keys that match
no field; when several keys match one field, the last one wins. Runtimes rely on it:

* containerd (go-cni, every version up to 2.x) hands the `portMappings` capability as its
  Go struct `PortMapping` without JSON tags, so the keys are `HostPort`, `ContainerPort`,
  `Protocol` and `HostIP`; the reference `portmap` plugin reads them through its
  `hostPort`... tags, case-insensitively. Its `ipRanges`, `bandwidth` and `dns`
  capabilities are untagged structs as well (`Subnet`, `IngressRate`, `Servers`...).
* Administrators copy configurations between plugins: a key spelt `Bridge` or `IPMasq`
  works with the Go plugins.

So oci-net reads every document a runtime hands it, the configuration and its
`runtimeConfig`, through `match` with the fields it knows; what matches nothing is
reported (as JSON pointers) for the caller to log, and ignored.
"""

from __future__ import annotations

from typing import Any, Union

# A field's shape: None (a value taken as it is), a dict of sub-fields (an object read the
# same way), or a one-element list holding the shape of a list's items.
Shape = Union[None, dict[str, "Shape"], list["Shape"]]


def _fold(key: str) -> str:
    # Go's equalFold: ASCII case, plus the two non-ASCII letters that fold onto ASCII ones
    # (the Kelvin sign onto k, the long s onto s); casefold() does both
    return key.casefold()


def match(doc: Any, fields: dict[str, Shape], pointer: str, unknown: list[str]) -> Any:
    """`doc` with its keys renamed to the fields they match as Go would; others dropped into `unknown`."""
    if type(doc) is not dict:
        return doc  # not an object: left for the schema to report
    out: dict[str, Any] = {}
    folded: dict[str, str] | None = None
    for key, value in doc.items():
        name = key if key in fields else None
        if name is None:
            if folded is None:
                folded = {_fold(f): f for f in fields}
            name = folded.get(_fold(key))
        if name is None:
            unknown.append(f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
            continue
        shape = fields[name]
        here = f"{pointer}/{name}"
        if isinstance(shape, dict):
            value = match(value, shape, here, unknown)
        elif isinstance(shape, list) and type(value) is list and isinstance(shape[0], dict):
            value = [match(item, shape[0], f"{here}/{i}", unknown) for i, item in enumerate(value)]
        out.pop(name, None)  # the last matching key wins, and takes the place of its order
        out[name] = value
    return out
