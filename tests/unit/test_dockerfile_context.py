"""Sources of COPY: selection with globs and the ignore file, items, content digests."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from oci.dockerfile.context import HashCache, SourceRoot, has_wildcard, source_path
from oci.dockerfile.ignore import Matcher


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "a.py").write_text("a\n")
    (root / "src" / "b.py").write_text("b\n")
    (root / "src" / "pkg" / "c.py").write_text("c\n")
    (root / "src" / "pkg" / "c.pyc").write_text("compiled\n")
    (root / "README.md").write_text("readme\n")
    (root / "link").symlink_to("README.md")
    (root / "escape").symlink_to("/etc")
    os.link(root / "src" / "a.py", root / "src" / "a-hard.py")
    return root


def rels(found: list) -> list[str]:
    return [f.rel for f in found]


def test_source_path_cannot_leave_the_root() -> None:
    """`..` stops at the root, as BuildKit and buildah clean source paths."""
    assert source_path("/a/./b/") == "a/b"
    assert source_path(".") == "" and source_path("..") == "" and source_path("/") == ""
    assert source_path("../x") == "x"
    assert source_path("a/../../x") == "x"
    assert source_path("../../etc/passwd") == "etc/passwd"


def test_wildcards() -> None:
    assert has_wildcard("*.py") and has_wildcard("a[0-9]") and has_wildcard("a?")
    assert not has_wildcard("plain") and not has_wildcard("a\\*b")


def test_select_plain_glob_and_missing(context: Path) -> None:
    root = SourceRoot(str(context))
    assert rels(root.select("README.md")) == ["README.md"]
    assert rels(root.select("src/*.py")) == ["src/a-hard.py", "src/a.py", "src/b.py"]
    assert rels(root.select("*/pkg/c.p?")) == ["src/pkg/c.py"]
    assert root.select("nothing") == []
    assert root.select("*.nothing") == []


def test_symlinks_are_followed_inside_the_root(context: Path) -> None:
    root = SourceRoot(str(context))
    found = root.select("link")[0]
    assert found.host == str(context / "README.md") and not found.is_dir
    escaped = root.select("escape")
    assert not escaped or escaped[0].host.startswith(str(context))  # /etc resolves inside the context


def test_ignore_applies_to_selection_and_walk(context: Path) -> None:
    root = SourceRoot(str(context), Matcher(["**/*.pyc", "README.md"]))
    assert root.select("README.md") == []
    items = root.items(root.select(".")[0])
    names = [item.rel for item in items]
    assert "src/pkg/c.pyc" not in names and "README.md" not in names and "src/pkg/c.py" in names


def test_excluded_directory_kept_only_for_what_an_exception_brings_back(context: Path) -> None:
    root = SourceRoot(str(context), Matcher(["src", "!src/pkg/c.py"]))
    names = [item.rel for item in root.items(root.select(".")[0])]
    assert names[:3] == ["README.md", "escape", "link"]
    assert "src/pkg/c.py" in names and "src/pkg" in names and "src" in names and "src/a.py" not in names
    root = SourceRoot(str(context), Matcher(["src"]))
    assert not [n for n in (item.rel for item in root.items(root.select(".")[0])) if n.startswith("src")]


def test_items_of_a_directory_keep_hard_links(context: Path) -> None:
    root = SourceRoot(str(context))
    items = {item.rel: item for item in root.items(root.select("src")[0])}
    assert items["a-hard.py"].entry.type == tarfile.REGTYPE
    assert items["a.py"].entry.type == tarfile.LNKTYPE and items["a.py"].link_rel == "a-hard.py"
    assert items["pkg"].entry.type == tarfile.DIRTYPE


def test_digest_follows_content_and_mode_not_times(context: Path, tmp_path: Path) -> None:
    def digest() -> str:
        root = SourceRoot(str(context), hashes=HashCache(str(tmp_path / "hashes.json")))
        hasher = hashlib.sha256()
        for found in root.select("src"):
            root.digest(root.items(found), hasher)
        assert root.hashes is not None
        root.hashes.save()
        return hasher.hexdigest()

    first = digest()
    os.utime(context / "src" / "b.py", (1, 1))
    assert digest() == first
    (context / "src" / "b.py").write_text("changed\n")
    second = digest()
    assert second != first
    os.chmod(context / "src" / "b.py", 0o600)
    assert digest() != second


def test_hash_cache_answers_from_stat(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    cache = HashCache(str(tmp_path / "h.json"))
    first = cache.digest(str(path), os.stat(path))
    cache.save()
    again = HashCache(str(tmp_path / "h.json"))
    assert again.files and again.digest(str(path), os.stat(path)) == first and not again.changed
    path.write_text("two!")
    assert again.digest(str(path), os.stat(path)) == hashlib.sha256(b"two!").hexdigest()
    (tmp_path / "bad.json").write_text("{not json")
    assert HashCache(str(tmp_path / "bad.json")).files == {}
