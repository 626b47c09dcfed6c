""".dockerignore patterns as Docker matches them (moby/patternmatcher)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci.dockerfile.ignore import Matcher, find, load, read_patterns
from oci.errors import InvalidInput


@pytest.mark.parametrize("patterns, path, excluded", [
    (["*.md"], "a.md", True),
    (["*.md"], "sub/a.md", False),  # * never crosses a /
    (["**/*.md"], "sub/deep/a.md", True),
    (["**/*.md"], "a.md", True),
    (["docs/**"], "docs/a/b", True),
    (["docs/**"], "docs", False),  # the folder itself stays (its contents go)
    (["build"], "build/x/y", True),  # a matching parent excludes its tree
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["/top"], "top", True),  # a leading / is the context root
    (["./x//y/../z"], "x/z", True),  # cleaned like a path
    (["x[0-9]"], "x5", True),
    (["x[^0-9]"], "x5", False),
    (["x?"], "xy", True),
    (["x?"], "x/", False),
    (["\\*literal"], "*literal", True),
    (["*", "!keep"], "keep", False),
    (["*", "!keep"], "other", True),
    (["*.log", "!important.log", "important.log"], "important.log", True),  # the last match wins
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/other", True),
    (["  spaced  "], "spaced", True),
    (["a.b"], "axb", False),  # regex metacharacters are literal
])
def test_matches(patterns: list[str], path: str, excluded: bool) -> None:
    assert Matcher(patterns).excluded(path) is excluded


def test_empty_matcher_and_root() -> None:
    assert not Matcher([])
    assert not Matcher(["*"]).excluded("")


def test_exclusion_needs_a_pattern() -> None:
    with pytest.raises(InvalidInput):
        Matcher(["!"])


def test_walk_pruning() -> None:
    matcher = Matcher(["build", "docs", "!docs/README.md"])
    assert not matcher.may_include_below("build")
    assert matcher.may_include_below("docs")


def test_read_patterns_drops_comments() -> None:
    assert read_patterns("\ufeff# comment\n*.log\n\n!keep.log\n") == ["*.log", "", "!keep.log"]


def test_which_file(tmp_path: Path) -> None:
    assert find(str(tmp_path), None) is None
    (tmp_path / ".containerignore").write_text("a\n")
    assert find(str(tmp_path), None) == str(tmp_path / ".containerignore")
    (tmp_path / ".dockerignore").write_text("b\n")
    assert find(str(tmp_path), None) == str(tmp_path / ".dockerignore")
    dockerfile = tmp_path / "app.Dockerfile"
    (tmp_path / "app.Dockerfile.dockerignore").write_text("c\n")
    assert find(str(tmp_path), str(dockerfile)) == str(tmp_path / "app.Dockerfile.dockerignore")
    assert load(str(tmp_path), str(dockerfile)).excluded("c")
