"""The vendored schemas and spec examples are exactly what spec/README.md records."""

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "spec" / "README.md").read_text()


def recorded() -> list[tuple[str, Path]]:
    pairs = []
    for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", README, re.M):
        base = ROOT / "tests" / "unit" / "data" if name.startswith("runtime-spec/") else ROOT / "spec"
        pairs.append((digest, base / name))
    return pairs


def test_every_recorded_file_matches_its_sha256():
    pairs = recorded()
    assert len(pairs) >= 40
    for digest, path in pairs:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path


def test_every_schema_file_is_recorded():
    listed = {path for _, path in recorded()}
    on_disk = set((ROOT / "spec").rglob("*.json")) | set((ROOT / "spec").rglob("*.proto"))
    assert on_disk <= listed, sorted(on_disk - listed)


def test_versions_are_named():
    assert "v1.1.1" in README and "v1.3.0" in README
    assert "k8s.io/cri-api v0.25.0" in README  # the runtime.v1 of containerd 1.6.20 (Debian bookworm)
