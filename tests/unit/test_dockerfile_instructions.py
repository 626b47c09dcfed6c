"""Instructions read into their arguments, stages and global ARGs; what Docker refuses."""

from __future__ import annotations

from typing import Any

import pytest

from oci.dockerfile import instructions as ins
from oci.dockerfile.parser import parse
from oci.errors import InvalidInput, Unsupported


def program(text: str) -> ins.Program:
    return ins.program(parse(text, "Dockerfile"))


def only(text: str) -> Any:
    return program("FROM a\n" + text).stages[0].instructions[0]


def test_stages_and_global_args() -> None:
    found = program("ARG V=1\nARG W\nFROM base:$V AS Build\nRUN x\nFROM build\nCOPY --from=build a b\n")
    assert [(a.pairs) for a in found.global_args] == [[("V", "1")], [("W", None)]]
    assert [s.name for s in found.stages] == ["build", None]
    assert found.stage("BUILD") is found.stages[0] and found.stage("1") is found.stages[1]
    assert found.stage("nope") is None


def test_instruction_before_from_refused_with_its_line() -> None:
    with pytest.raises(InvalidInput) as err:
        program("ENV A=1\nFROM a\n")
    assert str(err.value).startswith("Dockerfile:1: ENV: no build stage")


def test_unknown_instruction_names_line() -> None:
    with pytest.raises(InvalidInput) as err:
        program("FROM a\nFOO bar\n")
    assert str(err.value) == "Dockerfile:2: unknown instruction: FOO"


def test_duplicate_stage_name_refused() -> None:
    with pytest.raises(InvalidInput, match="duplicate stage name 'x'"):
        program("FROM a AS x\nFROM b AS X\n")


@pytest.mark.parametrize("line", ["FROM", "FROM a b", "FROM a AS", "FROM a AS 1x", "FROM a FOR b"])
def test_bad_from(line: str) -> None:
    with pytest.raises(InvalidInput):
        program(line + "\n")


def test_from_platform_flag() -> None:
    stage = program("FROM --platform=linux/arm64 a AS b\n").stages[0]
    assert (stage.base.base, stage.base.platform, stage.name) == ("a", "linux/arm64", "b")


def test_env_forms() -> None:
    assert only('ENV A="x y" B=z\\ w').pairs == [("A", '"x y"'), ("B", "z\\ w")]
    assert only("ENV OLD the rest").pairs == [("OLD", "the rest")]
    with pytest.raises(InvalidInput, match="can't find ="):
        only("ENV A=1 B")
    with pytest.raises(InvalidInput, match="must have two arguments"):
        only("ENV LONELY")


def test_label_and_arg() -> None:
    assert only('LABEL "a b"=c d=e').pairs == [('"a b"', "c"), ("d", "e")]
    assert only("ARG A B=2 C=").pairs == [("A", None), ("B", "2"), ("C", "")]


def test_run_forms_and_flags() -> None:
    assert only("RUN echo $A").command == "echo $A"
    assert only('RUN ["echo", "a"]').command == ["echo", "a"]
    assert only("RUN --network=none true").network == "none"
    with pytest.raises(Unsupported, match="RUN --mount is not supported"):
        only("RUN --mount=type=cache,target=/x true")
    with pytest.raises(InvalidInput, match="unknown flag: --bogus"):
        only("RUN --bogus=1 true")
    with pytest.raises(InvalidInput, match="expected default, none or host"):
        only("RUN --network=bridge true")


def test_copy_and_add() -> None:
    copy = only("COPY --from=b --chown=1:2 --chmod=0755 a b* /dst/")
    assert isinstance(copy, ins.Copy) and not copy.add
    assert (copy.sources, copy.dest, copy.source_from, copy.chown, copy.chmod) == (["a", "b*"], "/dst/", "b", "1:2",
                                                                                    "0755")
    assert only('COPY ["a b", "c d/"]').sources == ["a b"]
    add = only("ADD --checksum=sha256:00 http://x/y /z")
    assert isinstance(add, ins.Copy) and add.add and add.checksum == "sha256:00"
    with pytest.raises(InvalidInput, match="unknown flag: --from"):
        only("ADD --from=x a b")
    with pytest.raises(InvalidInput, match="at least two arguments"):
        only("COPY onlyone")
    with pytest.raises(InvalidInput, match="missing a value"):
        only("COPY --chown a b")
    with pytest.raises(Unsupported):
        only("COPY --parents a b/")


def test_copy_heredoc_sources() -> None:
    copy = program("FROM a\nCOPY <<EOF <<-\"RAW\" /d/\nx $A\nEOF\n\traw\n\tRAW\n").stages[0].instructions[0]
    assert isinstance(copy, ins.Copy)
    assert [(c.name, c.content, c.expand) for c in copy.contents] == [("EOF", "x $A\n", True), ("RAW", "raw\n", False)]
    assert copy.sources == [] and copy.dest == "/d/"


def test_shell_needs_json() -> None:
    assert only('SHELL ["/bin/bash", "-c"]').shell == ["/bin/bash", "-c"]
    with pytest.raises(InvalidInput, match="JSON form"):
        only("SHELL /bin/bash -c")


def test_healthcheck() -> None:
    check = only("HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://x/")
    assert isinstance(check, ins.Healthcheck)
    assert check.test == ["CMD-SHELL", "curl -f http://x/"]
    assert (check.interval, check.timeout, check.retries) == (90_000_000_000, 500_000_000, 3)
    assert only('HEALTHCHECK CMD ["true"]').test == ["CMD", "true"]
    assert only("HEALTHCHECK NONE").test == ["NONE"]
    for bad in ("HEALTHCHECK", "HEALTHCHECK CMD", "HEALTHCHECK FOO x", "HEALTHCHECK --interval=1x CMD t",
                "HEALTHCHECK --retries=-1 CMD t", "HEALTHCHECK --interval=10us CMD t"):
        with pytest.raises(InvalidInput):
            only(bad)


def test_onbuild_rules() -> None:
    assert only("ONBUILD RUN echo hi").expression == "RUN echo hi"
    for bad in ("ONBUILD ONBUILD RUN x", "ONBUILD FROM a", "ONBUILD MAINTAINER x", "ONBUILD BOGUS x", "ONBUILD"):
        with pytest.raises(InvalidInput):
            only(bad)


def test_single_argument_instructions() -> None:
    assert only("WORKDIR /a").path == "/a"
    assert only("USER app:app").user == "app:app"
    assert only("STOPSIGNAL SIGKILL").signal == "SIGKILL"
    assert only("EXPOSE 80 443/udp").ports == ["80", "443/udp"]
    assert only('VOLUME ["/a", "/b"]').paths == ["/a", "/b"]
    assert only("VOLUME /a /b").paths == ["/a", "/b"]
    assert only("MAINTAINER someone <x@y>").maintainer == "someone <x@y>"
    for bad in ("WORKDIR a b", "USER", "STOPSIGNAL", "EXPOSE", 'VOLUME [""]'):
        with pytest.raises(InvalidInput):
            only(bad)


def test_cmd_entrypoint_forms() -> None:
    assert only("CMD echo hi").command == "echo hi"
    assert only('ENTRYPOINT ["a", "b"]').command == ["a", "b"]
    assert only("ENTRYPOINT []").command == []


def test_durations() -> None:
    assert ins.parse_duration("", "interval") == 0
    assert ins.parse_duration("0", "interval") == 0
    assert ins.parse_duration("2h1s", "interval") == 7_201_000_000_000
