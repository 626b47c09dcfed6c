"""Builds that only change the config (no layer, no mount: no root needed), in process.

They hold the config semantics: ENV replaced in place, ARG scoping, CMD and ENTRYPOINT
rules, SHELL, EXPOSE ranges, HEALTHCHECK, ONBUILD (recorded, and run from a base image),
the final image found again in the cache, reproducible digests, errors naming their line.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from oci.build.entry import Policy
from oci.build.layer import write_layer
from oci.descriptor import OCI_CONFIG, OCI_MANIFEST, Descriptor
from oci.digest import Digest
from oci.dockerfile.build import BuildOptions, build
from oci.dockerfile.progress import Progress
from oci.errors import InvalidInput, NotFound, UsageError
from oci.layout import Layout
from oci.platform import Platform


def run_build(tmp_path: Path, dockerfile: str, **options: Any) -> tuple[dict[str, Any], str, Any]:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    stream = io.StringIO()
    layout = tmp_path / "layout"
    result = build(BuildOptions(context=str(context), tags=[f"{layout}:t"], progress=Progress(stream),
                                platform=Platform("linux", "amd64"), **options))
    manifest = json.loads((layout / "blobs" / "sha256" / result.descriptor.digest.hex).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())
    return config, stream.getvalue(), result


def test_config_instructions(tmp_path: Path) -> None:
    config, out, result = run_build(tmp_path, """\
FROM scratch
ENV A=1 PATH=/bin
ENV A=2 B=$A
LABEL x=$B "y z"="w"
EXPOSE 80 8000-8001/udp
VOLUME /data ["/not-json"]
STOPSIGNAL SIGQUIT
USER app:app
SHELL ["/bin/bash", "-c"]
CMD echo hi
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
ONBUILD RUN echo later
MAINTAINER me
""")
    settings = config["config"]
    assert settings["Env"] == ["A=2", "PATH=/bin", "B=1"]  # replaced in place; B saw the old A
    assert settings["Labels"] == {"x": "1", "y z": "w"}
    assert settings["ExposedPorts"] == {"80/tcp": {}, "8000/udp": {}, "8001/udp": {}}
    assert set(settings["Volumes"]) == {"/data", "[/not-json]"}  # shell form: words, quotes removed
    assert settings["StopSignal"] == "SIGQUIT" and settings["User"] == "app:app"
    assert settings["Cmd"] == ["/bin/bash", "-c", "echo hi"]
    assert settings["Shell"] == ["/bin/bash", "-c"]
    assert settings["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert settings["OnBuild"] == ["RUN echo later"]
    assert config["author"] == "me"
    assert config["architecture"] == "amd64"
    empty_tar = Digest.of(b"\0" * 1024)  # an image has a layer (the image spec's schema says so): an empty one
    assert config["rootfs"] == {"type": "layers", "diff_ids": [str(empty_tar)]}
    assert [entry.get("empty_layer", False) for entry in config["history"]] == [True] * 12 + [False]
    assert "STEP 1/13: FROM scratch" in out and "STEP 13/13: MAINTAINER me" in out
    assert result.steps_run == 0


def test_entrypoint_resets_an_inherited_cmd_but_not_one_set_before(tmp_path: Path) -> None:
    config, _, _ = run_build(tmp_path, "FROM scratch AS a\nCMD [\"x\"]\nFROM a\nENTRYPOINT [\"e\"]\n")
    assert config["config"]["Entrypoint"] == ["e"] and "Cmd" not in config["config"]
    config, _, _ = run_build(tmp_path, "FROM scratch\nCMD [\"x\"]\nENTRYPOINT [\"e\"]\n")
    assert config["config"]["Cmd"] == ["x"]


def test_arg_scoping(tmp_path: Path) -> None:
    config, _, result = run_build(tmp_path, """\
ARG G=global
ARG ONLY_GLOBAL=g
FROM scratch
ARG G
ARG LOCAL=default
ARG NOVALUE
ENV SEEN="$G $LOCAL ${ONLY_GLOBAL:-not-in-stage} ${NOVALUE:-unset} $TARGETARCH"
ARG TARGETARCH
ENV ARCH=$TARGETARCH
""", build_args={"LOCAL": "cli", "NEVER_USED": "x"})
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    assert env == {"SEEN": "global cli not-in-stage unset ", "ARCH": "amd64"}
    assert any("NEVER_USED" in w for w in result.warnings)


def test_unchanged_rebuild_gives_the_same_image_and_reproducible_with_epoch(tmp_path: Path) -> None:
    dockerfile = "FROM scratch\nENV A=1\nCMD [\"a\"]\n"
    _, _, first = run_build(tmp_path, dockerfile)
    _, _, again = run_build(tmp_path, dockerfile)
    assert first.descriptor.digest == again.descriptor.digest
    twins = []
    for name in ("one", "two"):  # fresh layouts, no cache: the same digest from SOURCE_DATE_EPOCH alone
        (tmp_path / name).mkdir()
        twins.append(run_build(tmp_path / name, dockerfile, epoch=1_700_000_000)[2].descriptor.digest)
    assert twins[0] == twins[1]


def parent_image(path: Path, onbuild: list[str]) -> None:
    """An image whose config carries ONBUILD triggers (one empty layer)."""
    layout = Layout.open(str(path), create=True)
    with layout.session():
        layer = write_layer(layout, [], Policy())
        config = {"architecture": "amd64", "os": "linux", "config": {"Env": ["P=1"], "OnBuild": onbuild},
                  "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]}, "history": [{"created_by": "x"}]}
        data = json.dumps(config).encode()
        config_descriptor = Descriptor(OCI_CONFIG, layout.put_bytes(data), len(data))
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor.to_json(),
                               "layers": [layer.descriptor.to_json()]}).encode()
        layout.tag("parent", Descriptor(OCI_MANIFEST, layout.put_bytes(manifest), len(manifest)))


def test_onbuild_triggers_run_in_the_child(tmp_path: Path) -> None:
    parent_image(tmp_path / "base", ["ENV TRIGGERED=yes", "LABEL from=trigger"])
    child, out, _ = run_build(tmp_path, f"FROM oci:{tmp_path / 'base'}:parent\nENV C=2\n")
    assert child["config"]["Env"] == ["P=1", "TRIGGERED=yes", "C=2"]
    assert child["config"]["Labels"] == {"from": "trigger"}
    assert "OnBuild" not in child["config"]
    assert "executing ONBUILD trigger: ENV TRIGGERED=yes" in out


def test_a_broken_onbuild_trigger_names_the_from_line(tmp_path: Path) -> None:
    parent_image(tmp_path / "base", ["BOGUS trigger"])
    with pytest.raises(InvalidInput) as err:
        run_build(tmp_path, f"# comment\nFROM oci:{tmp_path / 'base'}:parent\n")
    assert "Dockerfile:2: FROM" in str(err.value) and "unknown instruction: BOGUS" in str(err.value)


@pytest.mark.parametrize("dockerfile, kind, message", [
    ("FROM scratch\nENV A=${B:?needs_B}\n", InvalidInput, "Dockerfile:2: ENV A=${B:?needs_B}: B: needs_B"),
    ("FROM scratch\nEXPOSE 99999\n", InvalidInput, "Dockerfile:2: EXPOSE 99999: invalid port range '99999'"),
    ("FROM scratch\nSTOPSIGNAL bogus!\n", InvalidInput, "Dockerfile:2: STOPSIGNAL bogus!: invalid stop signal"),
    ("FROM scratch\nRUN --network=x true\n", InvalidInput, "Dockerfile:2: RUN --network=x: expected default"),
])
def test_errors_name_file_line_and_instruction(tmp_path: Path, dockerfile: str, kind: type, message: str) -> None:
    with pytest.raises(kind) as err:
        run_build(tmp_path, dockerfile)
    text = str(err.value)
    assert text.startswith(str(tmp_path / "ctx")) and message in text, text


def test_missing_target_context_and_tag(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="target stage 'nope'"):
        run_build(tmp_path, "FROM scratch\n", target="nope")
    with pytest.raises(UsageError):
        build(BuildOptions(context=str(tmp_path)))
    with pytest.raises(NotFound, match="no Dockerfile or Containerfile"):
        build(BuildOptions(context=str(tmp_path), tags=[f"{tmp_path}/l:t"]))


def test_target_builds_only_the_stages_it_needs(tmp_path: Path) -> None:
    config, out, _ = run_build(tmp_path, "FROM scratch AS a\nENV A=1\nFROM scratch AS b\nENV B=1\nFROM a\nENV C=1\n",
                               target="b")
    assert config["config"]["Env"] == ["B=1"]
    assert "[1/3]" not in out and "[2/3] STEP 1/2: FROM scratch AS b" in out
