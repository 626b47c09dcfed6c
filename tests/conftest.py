"""Fixtures shared by every test folder: running the commands as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
sys.path.insert(0, str(ROOT))


def command(name: str) -> list[str]:
    """argv prefix that runs `oci-NAME` from this checkout with the test interpreter."""
    return [sys.executable, str(BIN / f"oci_{name.removeprefix('oci-').replace('-', '_')}.py")]


def run(name: str, *args: str, input: bytes | None = None, check: bool = False,
        env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run an ocikit command, capturing stdout and stderr as text."""
    proc = subprocess.run(command(name) + list(args), input=input, capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    result = subprocess.CompletedProcess(proc.args, proc.returncode,
                                         proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    if check and result.returncode != 0:
        raise AssertionError(f"{name} {args} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="session", autouse=True)
def blob_locations(tmp_path_factory: pytest.TempPathFactory):
    """The blob-location cache of oci-fetch and oci-push (oci.registry.locations) is the test
    session's own, never the machine's."""
    folder = str(tmp_path_factory.mktemp("blob-locations"))
    previous = os.environ.get("OCIKIT_BLOB_LOCATIONS")
    os.environ["OCIKIT_BLOB_LOCATIONS"] = folder
    yield folder
    if previous is None:
        os.environ.pop("OCIKIT_BLOB_LOCATIONS", None)
    else:
        os.environ["OCIKIT_BLOB_LOCATIONS"] = previous


@pytest.fixture
def oci():
    """The `run` helper as a fixture: `oci('fetch', REF, LAYOUT)`."""
    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `root` skip off root, except in CI, where a skip would hide a failure."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        for item in items:
            if item.get_closest_marker("root"):
                item.add_marker(pytest.mark.xfail(reason="needs root but CI is not root", run=False, strict=True))
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(skip)
