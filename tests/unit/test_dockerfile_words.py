"""Docker's word processing: quotes, escapes, variable expansion, word splitting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci.dockerfile.words import ExpansionError, Lexer, parse_words

ENV = {"A": "1", "EMPTY": "", "P": "/usr/local/bin", "SPACED": "a b  c", "X": "x"}


@pytest.mark.parametrize("word, expected", [
    ("$A", "1"), ("${A}", "1"), ("pre${A}post", "pre1post"), ("$UNSET", ""), ("${UNSET}", ""),
    ("$", "$"), ("a$", "a$"), ("$1", ""),
    ("${UNSET:-def}", "def"), ("${EMPTY:-def}", "def"), ("${A:-def}", "1"),
    ("${UNSET-def}", "def"), ("${EMPTY-def}", ""),
    ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""), ("${EMPTY+alt}", "alt"), ("${UNSET+alt}", ""),
    ("${A:-$X}", "1"), ("${UNSET:-$X}", "x"), ("${UNSET:-a b}", "a b"),
    ("${P#*/}", "usr/local/bin"), ("${P##*/}", "bin"), ("${P%/*}", "/usr/local"), ("${P%%/*}", ""),
    ("${P/local/LOC}", "/usr/LOC/bin"), ("${P//l/L}", "/usr/LocaL/bin"), ("${P#/usr}", "/local/bin"),
    ("'$A'", "$A"), ('"$A"', "1"), ('"a \\"q\\" $A"', 'a "q" 1'), ('"\\x"', "\\x"),
    ("a\\ b", "a b"), ("\\$A", "$A"), ("it's", None),
])
def test_process_word(word: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ExpansionError):
            Lexer().process_word(word, ENV)
    else:
        assert Lexer().process_word(word, ENV) == expected


def test_unset_error_forms() -> None:
    with pytest.raises(ExpansionError, match="UNSET: must be set"):
        Lexer().process_word("${UNSET:?must be set}", ENV)
    with pytest.raises(ExpansionError, match="is not allowed to be empty"):
        Lexer().process_word("${EMPTY:?}", ENV)
    assert Lexer().process_word("${EMPTY?}", ENV) == ""


@pytest.mark.parametrize("word", ["${", "${A", "${:}", "${}", "${A:=x}", "${A:#x}", '"open', "'open"])
def test_syntax_errors(word: str) -> None:
    with pytest.raises(ExpansionError):
        Lexer().process_word(word, ENV)


def test_backtick_escape_keeps_backslashes() -> None:
    lexer = Lexer("`")
    assert lexer.process_word("a\\b", ENV) == "a\\b"
    assert lexer.process_word("a``b", ENV) == "a`b"
    assert lexer.process_word("`$A", ENV) == "$A"
    assert lexer.process_word('"C:\\path `"q`""', ENV) == 'C:\\path "q"'


def test_process_words_splits_expanded_text_but_not_quotes() -> None:
    assert Lexer().process_words("$SPACED x", ENV) == ["a", "b", "c", "x"]
    assert Lexer().process_words('"$SPACED" x', ENV) == ["a b  c", "x"]
    assert Lexer().process_words("a\\ b c", ENV) == ["a b", "c"]


def test_skip_unset_keeps_references() -> None:
    lexer = Lexer(skip_unset=True)
    assert lexer.process_word("$UNSET ${UNSET} ${UNSET:-x} $A", ENV) == "$UNSET ${UNSET} ${UNSET:-x} 1"


def test_raw_quotes_keep_quotes() -> None:
    assert Lexer(raw_quotes=True).process_word("'a' \"$A\"", ENV) == "'a' \"1\""


def test_skip_process_quotes_for_heredoc_bodies() -> None:
    assert Lexer(skip_process_quotes=True).process_word("it's \"$A\"\n", ENV) == "it's \"1\"\n"


def test_parse_words_keeps_quotes_for_expansion() -> None:
    assert parse_words('A="hello world" B=x\\ y C=\'q\'') == ['A="hello world"', "B=x\\ y", "C='q'"]
    assert parse_words('K=""') == ['K=""']
    assert parse_words("  a   b  ") == ["a", "b"]


@given(st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="$'\"\\{}`"), max_size=40))
def test_plain_text_is_unchanged(text: str) -> None:
    assert Lexer().process_word(text, ENV) == text


@given(st.text(alphabet="abc XYZ_09", max_size=20))
def test_single_quotes_are_literal(text: str) -> None:
    assert Lexer().process_word(f"'${text}'", ENV) == f"${text}"


def test_expansion_is_capped_in_depth_and_size() -> None:
    from oci.dockerfile.words import MAX_DEPTH, MAX_EXPANSION

    nested = "${A:-" * (MAX_DEPTH - 1) + "x" + "}" * (MAX_DEPTH - 1)  # the word itself is the first level
    assert Lexer().process_word(nested, {}) == "x"
    with pytest.raises(ExpansionError, match="nested more than"):
        Lexer().process_word("${A:-" + nested + "}", {})
    with pytest.raises(ExpansionError, match="nested more than"):
        Lexer().process_word("${A:-" * 5000, {})  # never Python's RecursionError
    half = "x" * (MAX_EXPANSION // 2)
    assert len(Lexer().process_word("$H$H", {"H": half})) == MAX_EXPANSION
    with pytest.raises(ExpansionError, match="expands to more than"):
        Lexer().process_word("$H$H$H", {"H": half})
    with pytest.raises(ExpansionError, match="expands to more than"):
        Lexer().process_words('"$H" $H $H', {"H": half})


@pytest.mark.parametrize("word, expected", [
    ("${V#a*}", "bcabc"), ("${V##a*}", ""), ("${V#*b}", "cabc"), ("${V##*b}", "c"), ("${V#\\*}", "abcabc"),
    ("${V%b*}", "abca"), ("${V%%b*}", "a"), ("${V%?}", "abcab"), ("${V%%*}", ""),
    ("${V/b/X}", "aXcabc"), ("${V//b/X}", "aXcaXc"), ("${V/b*/X}", "aX"), ("${V//?/.}", "......"),
    ("${V/*/X}", "X"), ("${V//x/X}", "abcabc"), ("${V/a?c/X}", "Xabc"),
])
def test_pattern_operators(word: str, expected: str) -> None:
    assert Lexer().process_word(word, {"V": "abcabc"}) == expected


def test_patterns_take_time_linear_in_the_value() -> None:
    """A backtracking regular expression takes exponential time on these (a hang, not a failure)."""
    value = "a" * 50_000
    assert Lexer().process_word("${V#*a*a*a*a*a*b}", {"V": value}) == value
    assert Lexer().process_word("${V%%*a*a*a*a*a*b}", {"V": value}) == value
    assert Lexer().process_word("${V//*a*a*a*a*b/x}", {"V": value}) == value
