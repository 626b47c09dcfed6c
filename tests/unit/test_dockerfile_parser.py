"""The Dockerfile parser: directives, comments, continuations, here-documents, flags, forms."""

from __future__ import annotations

import pytest

from oci.dockerfile.parser import DockerfileError, extract_flags, parse, parse_heredoc, parse_json
from oci.errors import InvalidInput


def nodes(text: str) -> list[tuple[str, str, list[str], int, int]]:
    return [(n.keyword, n.args, n.flags, n.start, n.end) for n in parse(text).nodes]


def test_instructions_keywords_case_insensitive_and_lines() -> None:
    assert nodes("from busybox\n\n  Run echo hi\n") == [
        ("from", "busybox", [], 1, 1), ("run", "echo hi", [], 3, 3)]


def test_continuation_joins_lines_keeping_leading_space_of_the_next() -> None:
    found = nodes("FROM a\nRUN echo one \\\n    two\\\nthree\n")
    assert found[1] == ("run", "echo one     twothree", [], 2, 4)


def test_continuation_allows_trailing_blanks_after_the_escape() -> None:
    assert nodes("FROM a\nRUN a \\   \n b\n")[1][1] == "a  b"


def test_comments_and_blank_lines_inside_a_continuation_are_dropped() -> None:
    parsed = parse("FROM a\nRUN a \\\n# inside\n\n  b\n")
    assert parsed.nodes[1].args == "a   b"
    assert parsed.nodes[1].end == 5
    assert any("empty continuation line" in w for w in parsed.warnings)


def test_comment_lines_are_skipped_anywhere() -> None:
    assert [n[0] for n in nodes("# top\nFROM a\n   # indented comment\nRUN x\n")] == ["from", "run"]


def test_escape_directive_backtick() -> None:
    parsed = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo\n")
    assert parsed.escape == "`"
    assert parsed.nodes[1].args == "dir c:\\   && echo"


def test_directives_only_at_the_top() -> None:
    parsed = parse("FROM a\n# escape=`\nRUN a \\\n b\n")
    assert parsed.escape == "\\"
    assert parsed.nodes[1].args == "a  b"


def test_directive_syntax_recorded_and_unknown_directive_is_a_comment() -> None:
    parsed = parse("# syntax=docker/dockerfile:1\n# foo=bar\n# escape=`\nFROM a\n")
    assert parsed.directives == {"syntax": "docker/dockerfile:1"}
    assert parsed.escape == "\\"  # `foo` ended the directives


def test_bad_escape_directive_names_the_line() -> None:
    with pytest.raises(DockerfileError) as err:
        parse("# escape=x\nFROM a\n", "Dockerfile.test")
    assert str(err.value).startswith("Dockerfile.test:1: invalid escape token")


def test_repeated_directive_refused() -> None:
    with pytest.raises(DockerfileError, match="only one escape"):
        parse("# escape=\\\n# escape=`\nFROM a\n")


def test_bom_is_dropped() -> None:
    assert nodes("\ufeffFROM a\n")[0][0] == "from"


def test_empty_file_refused() -> None:
    with pytest.raises(DockerfileError, match="no instructions"):
        parse("# only a comment\n\n")


def test_flags_are_extracted() -> None:
    assert nodes("FROM a\nCOPY --chown=1:2 --from=build src dst\n")[1] == (
        "copy", "src dst", ["--chown=1:2", "--from=build"], 2, 2)


def test_extract_flags_quotes_and_double_dash() -> None:
    assert extract_flags('--a="x y" --b rest of line') == ("rest of line", ["--a=x y", "--b"])
    rest, flags = extract_flags("--a=1 -- --not-a-flag")
    assert (rest.strip(), flags) == ("--not-a-flag", ["--a=1"])
    assert extract_flags("-x plain") == ("-x plain", [])


def test_heredoc_body_and_lines() -> None:
    parsed = parse("FROM a\nRUN <<EOF\necho 1\necho 2\nEOF\nRUN next\n")
    run = parsed.nodes[1]
    assert run.args == "<<EOF" and (run.start, run.end) == (2, 5)
    assert [(h.name, h.content, h.expand, h.chomp) for h in run.heredocs] == [("EOF", "echo 1\necho 2\n", True,
                                                                              False)]
    assert parsed.nodes[2].start == 6


def test_heredoc_quoted_terminator_does_not_expand() -> None:
    for word in ('<<"EOF"', "<<'EOF'", '<<E"O"F'):
        heredoc = parse_heredoc(word)
        assert heredoc is not None and heredoc.name == "EOF" and not heredoc.expand, word
    plain = parse_heredoc("<<EOF")
    assert plain is not None and plain.expand


def test_heredoc_chomp_strips_leading_tabs_of_body_and_terminator() -> None:
    parsed = parse("FROM a\nRUN <<-EOT\n\techo a\n\t\techo b\n\tEOT\n")
    heredoc = parsed.nodes[1].heredocs[0]
    assert heredoc.chomp and heredoc.body() == "echo a\necho b\n"


def test_several_heredocs_on_one_line() -> None:
    parsed = parse("FROM a\nRUN cat <<A <<B > out\none\nA\ntwo\nB\n")
    assert [(h.name, h.content) for h in parsed.nodes[1].heredocs] == [("A", "one\n"), ("B", "two\n")]


def test_heredoc_with_fd_number() -> None:
    heredoc = parse_heredoc("3<<EOF")
    assert heredoc is not None and heredoc.fd == 3


def test_heredoc_not_in_json_form_or_other_instructions() -> None:
    parsed = parse('FROM a\nRUN ["echo", "<<EOF"]\nENV A=<<EOF\n')
    assert all(not n.heredocs for n in parsed.nodes)


def test_unterminated_heredoc_names_its_line() -> None:
    with pytest.raises(DockerfileError) as err:
        parse("FROM a\nRUN <<EOF\necho\n", "D")
    assert str(err.value) == "D:2: unterminated heredoc"


def test_onbuild_child_node_and_heredoc() -> None:
    parsed = parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    node = parsed.nodes[1]
    assert node.child is not None and node.child.keyword == "run"
    assert node.heredocs[0].content == "echo hi\n"


def test_json_form() -> None:
    assert parse_json('["a", "b c"]') == ["a", "b c"]
    assert parse_json("echo [a]") is None
    assert parse_json("[not json") is None
    with pytest.raises(InvalidInput, match="strings only"):
        parse_json('["a", 1]', "cmd")


def test_crlf_ends_lines_here_documents_included_and_only_newline_splits() -> None:
    parsed = parse("FROM a\r\nRUN <<EOF\r\none\r\nEOF\r\nLABEL a=b\u2028c\r\n")
    assert [n.keyword for n in parsed.nodes] == ["from", "run", "label"]
    assert parsed.nodes[1].heredocs[0].content == "one\n"
    assert parsed.nodes[2].args == "a=b\u2028c"  # U+2028 is no line break for BuildKit's scanner


def test_bom_nul_and_line_length() -> None:
    assert parse("\ufeff# escape=`\nFROM a\n").escape == "`"
    with pytest.raises(DockerfileError, match="NUL byte") as err:
        parse("FROM a\nRUN echo\n\nRUN a\0b\n", "Df")
    assert err.value.source == "Df:4"
    parse("FROM a\nLABEL a=" + "x" * (65535 - 8) + "\n")  # 65535 bytes: BuildKit's largest line
    with pytest.raises(DockerfileError, match="greater than max allowed size of 65535") as err:
        parse("FROM a\nLABEL a=" + "x" * (65536 - 8) + "\n", "Df")
    assert err.value.source == "Df:2"
    with pytest.raises(DockerfileError, match="greater than"):
        parse("FROM a\nLABEL a=" + "\u00e9" * 40000 + "\n")  # bytes, not characters


def test_invalid_utf8_is_kept_byte_for_byte() -> None:
    text = b"FROM a\nRUN echo \xff\n".decode("utf-8", "surrogateescape")
    assert parse(text).nodes[1].args.encode("utf-8", "surrogateescape") == b"echo \xff"
