"""Fixtures shared by every test folder: running the commands as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
# The throwaway pure-cgroup-v2 VM of the development machines, beside the checkout (`../shared`),
# or where OCIKIT_CG2VM says (a clone elsewhere); tests that need it fail in CI (STRICT below)
# when it is missing.
CG2VM = os.environ.get("OCIKIT_CG2VM") or str(ROOT.parent / "shared" / "tools" / "cg2vm")
# The checkout and bin/ are importable because ocikit is installed in the venv the tests run with
# (.ci/install: ocikit.pth), as for any installed package (bin/ocisite.py says where code is found).


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


class _Recorder:
    """A sink for oci.log that keeps what the library said."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.debug_messages: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def debug(self, message: str) -> None:
        self.debug_messages.append(message)


@pytest.fixture
def library_warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The warnings the library gives through oci.log while the test runs."""
    import oci

    recorder = _Recorder()
    monkeypatch.setattr(oci, "log_sink", recorder)
    return recorder.warnings


@pytest.fixture
def oci():
    """The `run` helper as a fixture: `oci('fetch', REF, LAYOUT)`."""
    return run


# CI (`.ci/run` sets OCIKIT_CI=1; a CI=true of the CI system counts too) runs every test: a skip
# there is a failure, so a missing tool, daemon, path or root cannot turn the run green by accident.
# The one exception is a skip that says a *peer* (runc, crun) lacks a feature ocikit is checked for:
# its exception carries `allowed_in_ci` (see tests/conformance/ocitest/runtime.py, PeerGap).
STRICT = bool(os.environ.get("OCIKIT_CI") or os.environ.get("CI", "").lower() in ("1", "true", "yes"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `root` skip off root (a failure in CI, see STRICT)."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI, a test that skips fails instead, unless a peer's known gap is the reason."""
    outcome = yield
    report = outcome.get_result()
    if not STRICT or not report.skipped or hasattr(report, "wasxfail"):
        return
    exc = call.excinfo.value if call.excinfo is not None else None
    if getattr(exc, "allowed_in_ci", False):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, where every test must run ({reason})"
