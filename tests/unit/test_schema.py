"""oci.schema: offline draft-04 validation of image and runtime documents."""

import json
from pathlib import Path

import pytest

from oci import schema
from oci.errors import InvalidDocument, InvalidInput, NotFound

DATA = Path(__file__).parent / "data" / "runtime-spec"
DIGEST = "sha256:" + "a" * 64

MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 7023, "digest": DIGEST},
    "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 32654, "digest": DIGEST},
    ],
    "annotations": {"com.example.key1": "value1"},
}
INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 7143, "digest": DIGEST,
         "platform": {"architecture": "ppc64le", "os": "linux"}},
    ],
}
CONFIG = {
    "created": "2015-10-31T22:22:56.015925234Z",
    "architecture": "amd64",
    "os": "linux",
    "config": {"User": "alice", "ExposedPorts": {"8080/tcp": {}}, "Env": ["PATH=/bin"],
               "Entrypoint": ["/bin/my-app-binary"], "Cmd": ["--foreground"], "WorkingDir": "/home/alice"},
    "rootfs": {"diff_ids": [DIGEST], "type": "layers"},
    "history": [{"created": "2015-10-31T22:22:54.690851953Z", "created_by": "/bin/sh -c #(nop) ADD file"}],
}


@pytest.mark.parametrize("path", sorted((DATA).glob("*/good/*.json")), ids=lambda p: f"{p.parent.parent.name}-{p.name}")
def test_runtime_spec_good_examples_validate(path):
    kind = {"config": "runtime-config", "state": "state", "features": "features"}[path.parent.parent.name]
    schema.load_file(str(path), kind)


@pytest.mark.parametrize("path", sorted((DATA).glob("*/bad/*.json")), ids=lambda p: f"{p.parent.parent.name}-{p.name}")
def test_runtime_spec_bad_examples_fail(path):
    kind = {"config": "runtime-config", "state": "state", "features": "features"}[path.parent.parent.name]
    with pytest.raises(InvalidDocument) as info:
        schema.load_file(str(path), kind)
    assert all(line.startswith(f"{path}: /") for line in info.value.lines())


@pytest.mark.parametrize("kind,doc", [("manifest", MANIFEST), ("index", INDEX), ("config", CONFIG),
                                      ("layout", {"imageLayoutVersion": "1.0.0"}),
                                      ("descriptor", MANIFEST["config"])])
def test_image_spec_examples_validate(kind, doc):
    schema.validate(doc, kind, "example.json")


def test_media_types_select_the_schema():
    schema.load(json.dumps(MANIFEST), "application/vnd.oci.image.manifest.v1+json", "m.json")
    schema.load(json.dumps(INDEX), "application/vnd.docker.distribution.manifest.list.v2+json", "i.json")
    with pytest.raises(InvalidInput, match="no schema for media type"):
        schema.load("{}", "text/plain", "x")


def test_every_violation_is_reported_with_file_and_pointer():
    broken = json.loads(json.dumps(MANIFEST))
    broken["schemaVersion"] = 3
    broken["config"]["digest"] = "md5:nothex!"
    broken["layers"][0]["size"] = "big"
    with pytest.raises(InvalidDocument) as info:
        schema.validate(broken, "manifest", "m.json")
    lines = info.value.lines()
    pointers = [line.split(": ")[1] for line in lines]
    assert "/schemaVersion" in pointers
    assert "/config/digest" in pointers
    assert "/layers/0/size" in pointers
    assert all(line.startswith("m.json: /") for line in lines)


def test_missing_required_field_points_at_the_parent():
    with pytest.raises(InvalidDocument) as info:
        schema.validate({"ociVersion": "1.0.0"}, "state", "state.json")
    assert any("'id' is a required property" in line for line in info.value.lines())


def test_runtime_config_errors_name_the_pointer():
    doc = json.loads((DATA / "config" / "good" / "minimal.json").read_text())
    doc["process"] = {"cwd": "relative", "args": "not-a-list", "user": {"uid": -1, "gid": 0}}
    with pytest.raises(InvalidDocument) as info:
        schema.validate(doc, "runtime-config", "config.json")
    text = "\n".join(info.value.lines())
    assert "config.json: /process/args:" in text
    assert "config.json: /process/user/uid:" in text


def test_json_syntax_error_is_one_violation_with_position():
    with pytest.raises(InvalidDocument) as info:
        schema.load(b'{"a": 1,,}', "manifest", "bad.json")
    (line,) = info.value.lines()
    assert line.startswith("bad.json: /: not valid JSON at line 1 column")


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no such file"):
        schema.load_file(str(tmp_path / "nope.json"), "runtime-config")


def test_pointer_escapes_special_characters():
    doc = json.loads(json.dumps(MANIFEST))
    doc["annotations"] = {"a/b~c": 5}
    with pytest.raises(InvalidDocument) as info:
        schema.validate(doc, "manifest", "m.json")
    assert "m.json: /annotations/a~1b~0c: 5 is not of type 'string'" in info.value.lines()


def test_validators_are_cached():
    assert schema.validator("manifest") is schema.validator("manifest")


def test_remembered_documents_skip_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path))
    data = (DATA / "config" / "good" / "minimal.json").read_bytes()
    schema.load(data, "runtime-config", "config.json", remember=True)
    assert len(list((tmp_path / "validated").iterdir())) == 1
    calls = []
    monkeypatch.setattr(schema, "validate", lambda *a: calls.append(a))
    schema.load(data, "runtime-config", "config.json", remember=True)
    assert calls == []
    schema.load(data + b" ", "runtime-config", "config.json", remember=True)
    assert len(calls) == 1


def test_remembered_documents_come_back_parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path))
    data = (DATA / "config" / "good" / "minimal.json").read_bytes()
    first = schema.load(data, "runtime-config", "config.json", remember=True)
    monkeypatch.setattr(schema, "parse", lambda *a: pytest.fail("parsed again"))
    second = schema.load(data, "runtime-config", "config.json", remember=True)
    assert second == first and second is not first


def test_a_remembered_entry_must_hold_the_same_bytes(tmp_path, monkeypatch):
    """An entry under the same name (a CRC-32 collision, or garbage) is a miss, never an answer."""
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path))
    data = (DATA / "config" / "good" / "minimal.json").read_bytes()
    schema.load(data, "runtime-config", "config.json", remember=True)
    (entry,) = (tmp_path / "validated").iterdir()
    import marshal

    schemas, kind, raw, doc = marshal.loads(entry.read_bytes())
    entry.write_bytes(marshal.dumps((schemas, kind, raw.replace(b"{", b"[", 1), {"forged": True})))
    assert schema.load(data, "runtime-config", "config.json", remember=True) == doc
    entry.write_bytes(b"garbage")
    assert schema.load(data, "runtime-config", "config.json", remember=True) == doc


def test_invalid_documents_are_not_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path))
    with pytest.raises(InvalidDocument):
        schema.load(b'{"ociVersion": 5}', "runtime-config", "config.json", remember=True)
    assert not (tmp_path / "validated").exists() or not list((tmp_path / "validated").iterdir())
