"""`--squash`: the layers a build added on top of its base image merged into one.

The base image's layers stay as they are (Docker's --squash). The added layers are
applied in order, with oci-unpack's layer code (whiteouts and opaque directories
included), onto an overlay of the base; the overlay's upper directory then holds their
combined effect, and becomes the one new layer. Their history entries stay, marked
empty, and one entry for the squashed layer follows them.
"""

from __future__ import annotations

from oci.build import config as configs
from oci.dockerfile.cache import LayerRecord
from oci.dockerfile.executor import Executor
from oci.dockerfile.state import State
from oci.unpack.apply import apply_layer
from oci.unpack.decompress import LayerStream
from oci.unpack.options import Options
from oci.unpack.safepath import Root


def squash(executor: Executor, state: State) -> None:
    """Replace the state's added layers with one layer of their combined changes."""
    base = state.base_layers
    added = state.layers[base:]
    if len(added) < 2:
        return
    settings = executor.settings
    diff_ids = state.diff_ids
    lowers = executor.lowers(state)[:base]
    workspace = executor._workspace()
    overlay = workspace.mount(lowers)
    budget = executor.settings.budget()
    try:
        with Root(overlay.rootfs) as root:
            for index in range(base, len(state.layers)):
                layer = state.layers[index]
                with LayerStream(settings.store.blob_path(layer.digest), layer, diff_ids[index],
                                 budget.bytes_left) as stream:
                    apply_layer(root, stream, Options(), budget)
    finally:
        workspace.unmount(overlay)
    record: LayerRecord = executor._commit(overlay, "oci-build --squash")
    history = [dict(entry) for entry in state.config.get("history", [])]
    remaining = len(added)
    for entry in reversed(history):  # the added layers' entries: the last non-empty ones
        if remaining == 0:
            break
        if not entry.get("empty_layer"):
            entry["empty_layer"] = True
            remaining -= 1
    state.layers = state.layers[:base]
    state.dirs = state.dirs[:base]
    ids = [str(d) for d in diff_ids[:base]]
    if record.layer is not None and record.diff_id is not None:
        state.layers.append(record.layer)
        state.dirs.append(settings.cache.tree(record.diff_id))
        ids.append(str(record.diff_id))
    else:
        record.history["empty_layer"] = True
    history.append({**record.history, "created": configs.timestamp(settings.epoch)})
    state.config["history"] = history
    state.config.setdefault("rootfs", {"type": "layers"})["diff_ids"] = ids
