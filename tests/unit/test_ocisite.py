"""The installed launchers start Python with -S: every command module must still find the
third-party packages (site's folders added on the first import nothing else finds)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["fetch", "push", "unpack", "bundle", "run", "net", "commit"]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_started_with_dash_S_finds_site_packages(name):
    code = (f"import sys; sys.path.append({str(ROOT / 'bin')!r}); import oci_{name}; "  # as the launchers
            "import jsonschema, pyroute2.netlink, zstandard, cryptography, seccomp")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_without_dash_S_nothing_is_added():
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'bin')!r}); import ocisite; print(len(sys.meta_path))"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    baseline = subprocess.run([sys.executable, "-c", "import sys; print(len(sys.meta_path))"],
                              capture_output=True, text=True)
    assert plain.stdout == baseline.stdout


def test_a_command_run_from_the_checkout_finds_its_library_first():
    """ocisite puts the checkout first after the script's folder: its `oci`, not an installed one."""
    code = (f"import sys; sys.path.append({str(ROOT / 'bin')!r}); import ocisite, oci; "
            "print(sys.path.index(ocisite.CHECKOUT), oci.__file__)")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd="/")
    index, where = done.stdout.split()
    assert index == "1" and where == str(ROOT / "oci" / "__init__.py"), done.stderr
