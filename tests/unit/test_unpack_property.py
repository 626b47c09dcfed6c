"""Property: for generated layer stacks (whiteouts, opaque directories, hardlinks, `.` entries,
mode and owner changes, files and directories replacing each other), a plain unpack and an
--overlay unpack give the same tree, and umoci's `unpack` gives it too.

The generator keeps a model of the tree each layer sees, so that every entry is one a real
image could hold: parents exist (declared in the layer, or a directory beneath it), hardlinks
point at regular files, opaque markers follow their directory's entry, whiteouts name what
lower layers hold. Trees are compared with their root (mode, owner, xattrs), contents, link
targets and owners; umoci 0.4.7's tree without the trusted.overlay.* xattrs it keeps.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from unpack_util import diff_trees, dir_, link, put_image, reg, snapshot, sym, tar_bytes

pytestmark = pytest.mark.root

NAMES = ("a", "b", "c")
MODES = {"dir": (0o755, 0o700, 0o750, 0o711), "file": (0o644, 0o600, 0o755, 0o640)}
OWNERS = ((0, 0), (1000, 1000), (0, 42))
OVERLAY_XATTRS = ("trusted.overlay.",)


@dataclass
class LayerModel:
    """What the tree holds while one layer is written, and what the layer did so far."""

    tree: dict[str, str]  # path -> "dir", "file" or "symlink" (the root "" is always a dir)
    entries: list = field(default_factory=list)
    created: set[str] = field(default_factory=set)

    def dirs(self) -> list[str]:
        return sorted(p for p, kind in self.tree.items() if kind == "dir")

    def under(self, path: str) -> list[str]:
        return [p for p in self.tree if path == "" and p or p.startswith(path + "/")]

    def remove(self, path: str) -> None:
        for p in self.under(path) + ([path] if path else []):
            self.tree.pop(p, None)

    def mine(self, path: str) -> bool:
        """True for what this layer made, and the folders it made things in."""
        return path in self.created or any(c.startswith(path + "/") for c in self.created)

    def hide_lower(self, path: str) -> None:
        """What an opaque marker (or a whiteout of a folder this layer writes into) does."""
        for p in self.under(path):
            if not self.mine(p):
                self.tree.pop(p)


def child(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


@st.composite
def layer(draw, tree: dict[str, str]) -> tuple[list, dict[str, str]]:
    """One layer's entries on top of `tree`; the entries and the tree after them."""
    model = LayerModel(dict(tree))
    for _ in range(draw(st.integers(1, 7))):
        op = draw(st.sampled_from(["dir", "file", "file", "symlink", "hardlink", "whiteout", "opaque", "root"]))
        owner = draw(st.sampled_from(OWNERS))
        if op == "root":
            if "" in model.created:
                continue
            model.entries.append(dir_(draw(st.sampled_from([".", "./"])), draw(st.sampled_from(MODES["dir"])),
                                      uid=owner[0], gid=owner[1]))
            model.created.add("")
            continue
        if op == "whiteout":
            lower = sorted(p for p in model.tree if p and p not in model.created
                           and not any(p.startswith(c + "/") for c in model.created if c))
            if not lower:
                continue
            path = draw(st.sampled_from(lower))
            head, _, name = path.rpartition("/")
            model.entries.append(reg(child(head, f".wh.{name}")))
            if model.mine(path):
                model.hide_lower(path)
            else:
                model.remove(path)
            continue
        if op == "opaque":
            mine = sorted(p for p in model.created if model.tree.get(p) == "dir" or p == "")
            if not mine:
                if draw(st.booleans()):
                    continue
                mine = [""]  # an opaque root without a `.` entry
            path = draw(st.sampled_from(mine))
            model.entries.append(reg(child(path, ".wh..wh..opq")))
            model.hide_lower(path)
            continue
        parents = [d for d in ["", *model.dirs()] if d == "" or d in model.created or d in tree]
        parent = draw(st.sampled_from(parents))
        path = child(parent, draw(st.sampled_from(NAMES)))
        if path in model.created or any(path.startswith(c + "/") for c in model.created if c and
                                        model.tree.get(c) != "dir"):
            continue
        if op == "dir":
            if model.tree.get(path) not in (None, "dir"):
                model.remove(path)
            model.entries.append(dir_(path, draw(st.sampled_from(MODES["dir"])), uid=owner[0], gid=owner[1]))
            model.tree[path] = "dir"
        elif op in ("file", "symlink", "hardlink"):
            targets = sorted(p for p, kind in model.tree.items()
                             if kind == "file" and p != path and not p.startswith(path + "/"))
            if op == "hardlink" and not targets:
                continue
            model.remove(path)
            if op == "file":
                data = draw(st.sampled_from([b"", b"x", b"hello\n", bytes(range(256)) * 3]))
                model.entries.append(reg(path, data, mode=draw(st.sampled_from(MODES["file"])),
                                         uid=owner[0], gid=owner[1]))
                model.tree[path] = "file"
            elif op == "symlink":
                model.entries.append(sym(path, draw(st.sampled_from(["a", "../b", "/etc/c", "a/b"]))))
                model.tree[path] = "symlink"
            else:
                model.entries.append(link(path, draw(st.sampled_from(targets))))
                model.tree[path] = "file"
        model.created.add(path)
    return model.entries, model.tree


@st.composite
def stacks(draw) -> list[list]:
    tree: dict[str, str] = {}
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        entries, tree = draw(layer(tree))
        layers.append(entries)
    return layers


def describe(layers: list[list]) -> str:
    """The layers as tar listings (what a failing example's report shows)."""
    kinds = {tarfile.DIRTYPE: "d", tarfile.REGTYPE: "-", tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h"}
    return "\n".join(f"layer {i}: " + ", ".join(
        f"{kinds.get(t.type, '?')}{t.mode:o} {t.uid}:{t.gid} {t.name}" + (f" -> {t.linkname}" if t.linkname else "")
        + (f" ({len(data)} bytes)" if data else "") for t, data in entries) for i, entries in enumerate(layers))


def unpack_both(workdir: str, layout: str) -> tuple[dict, dict]:
    """The plain and the overlay tree of the image (in this process, through oci-unpack's code)."""
    import types

    import oci_unpack

    from oci.image import Image, open_image
    from oci.unpack.options import Budget, Options
    from oci.unpack.rootfs import fresh_directory, unpack

    image = Image.load(*open_image(f"{layout}:latest"))
    plain, over = os.path.join(workdir, "plain"), os.path.join(workdir, "overlay")
    unpack(image, plain, Options(), Budget(1 << 30, 100_000))
    args = types.SimpleNamespace(cache=os.path.join(workdir, "cache"), emit_mount=False)
    with fresh_directory(over):
        oci_unpack.overlay(args, image, over, Options(), Budget(1 << 30, 100_000), None)
    try:
        return snapshot(plain, with_root=True), snapshot(over, with_root=True)
    finally:
        subprocess.run(["umount", over], check=True)


def umoci_tree(workdir: str, layout: str) -> dict | None:
    """umoci's tree, or None where umoci cannot read the image."""
    bundle = os.path.join(workdir, "umoci")
    done = subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", bundle], capture_output=True)
    if done.returncode != 0:
        return None
    return snapshot(os.path.join(bundle, "rootfs"), with_root=True, skip_xattrs=OVERLAY_XATTRS)


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(layers=stacks())
def test_plain_overlay_and_umoci_make_the_same_tree(tmp_path, layers):
    note(describe(layers))
    workdir = tempfile.mkdtemp(dir=tmp_path)
    layout = os.path.join(workdir, "img")
    put_image(layout, [tar_bytes(entries) for entries in layers])
    plain, over = unpack_both(workdir, layout)
    assert diff_trees(over, plain) == []
    theirs = umoci_tree(workdir, layout)
    event(f"umoci {'reads' if theirs is not None else 'refuses'} it")
    if theirs is not None:
        assert diff_trees(theirs, plain) == []
