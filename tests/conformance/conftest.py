"""Fixtures of the runtime-spec conformance suite.

Every test gets `runtime` (one of $OCI_CONFORMANCE_RUNTIMES, see ocitest/runtime.py) and
`bundle` (a fresh root filesystem with the checker, and a default config.json to tweak).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from ocitest.bundle import Bundle, make_rootfs_template
from ocitest.checker import build_checker
from ocitest.runtime import Runtime, selected_runtimes, unavailable_reason

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spec(section): the runtime-spec section a conformance test checks")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "runtime_name" in metafunc.fixturenames:
        names = selected_runtimes()
        metafunc.parametrize("runtime_name", names, ids=names, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every conformance test needs root (namespaces, mounts and cgroups are real) and names its spec section."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.root)
            if not item.get_closest_marker("spec"):
                raise pytest.UsageError(f"{item.nodeid}: conformance tests need @pytest.mark.spec(SECTION)")


@pytest.fixture(scope="session")
def checker() -> Path:
    return build_checker()


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory, checker: Path) -> Path:
    return make_rootfs_template(tmp_path_factory.mktemp("rootfs-template"), checker)


_unavailable: dict[str, str | None] = {}


@pytest.fixture(scope="session")
def runtime_root(tmp_path_factory: pytest.TempPathFactory, runtime_name: str) -> Path:
    """The --root state directory of one runtime for the whole session."""
    if runtime_name not in _unavailable:
        _unavailable[runtime_name] = unavailable_reason(runtime_name)
    if _unavailable[runtime_name]:
        pytest.skip(_unavailable[runtime_name])
    return tmp_path_factory.mktemp(f"state-{runtime_name}")


@pytest.fixture
def runtime(runtime_name: str, runtime_root: Path, tmp_path: Path):
    """The runtime under test; every container it made is force-deleted afterwards."""
    driver = Runtime(runtime_name, runtime_root, tmp_path)
    yield driver
    driver.cleanup()


@pytest.fixture(scope="session")
def bundles_dir():
    """Where bundles live: reachable by every uid (user namespaces map root to an unprivileged host uid)."""
    path = Path(tempfile.mkdtemp(prefix="ocikit-conformance-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_bundle(runtime: Runtime, rootfs_template: Path, bundles_dir: Path):
    """Factory of bundles: `make_bundle("name")` gives a new Bundle with its own root filesystem."""
    test_dir = Path(tempfile.mkdtemp(dir=bundles_dir))
    test_dir.chmod(0o711)

    def make(name: str = "bundle") -> Bundle:
        return Bundle(test_dir / name, rootfs_template, runtime.oci_version)

    yield make
    runtime.cleanup()  # containers go before their bundles
    shutil.rmtree(test_dir, ignore_errors=True)


@pytest.fixture
def bundle(make_bundle) -> Bundle:
    return make_bundle()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A host directory that tests bind into containers at /out."""
    path = tmp_path / "out"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    return path
