"""Where a command finds its code: the one place a command module puts anything on sys.path.

Every command module imports this one first (directly or through ocicli). It does two things:

* the checkout: a command file run from a checkout (bin/ beside oci/: `python3 bin/oci_run.py`,
  the checkout's launchers bin/oci-*, a hook's `python3 .../bin/oci_net.py`) puts the checkout
  first after the script's folder, so `oci` is the checkout's. An installed package (wheel)
  has no oci/ beside its modules and finds it in site-packages.
* site's folders under -S: the installed launchers (.venv/bin/oci-*, written by .ci/install)
  start Python with -S and put only bin/ on sys.path: site's start-up (the code lines of .pth
  files, sitecustomize, the interactive helpers) costs ~2-3 ms per call, and commands start
  often (engines call a runtime several times per container). Under -S this module puts a
  finder last on sys.meta_path, so the first import nothing else finds (jsonschema, pyroute2,
  seccomp, ...) adds the folders site would have added and looks again. Without -S it does
  nothing of the kind.

Any other Python code (tests, benchmarks) runs with the venv's interpreter, where ocikit is
installed in editable mode (.ci/install writes ocikit.pth naming the checkout and bin/), as
any installed package is found; the library itself never touches sys.path (oci-mon's daemon
is started with the folder its own `oci` package was loaded from: oci.monitor.client).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_site_folders() -> None:
    """Put on sys.path the folders `site` would, without running its .pth code or sitecustomize:
    the venv's site-packages, the user's when site would add them, the system's when the venv
    includes them (python3-seccomp lives there), and the folder lines of their .pth files (how
    an editable install names the checkout)."""
    import site

    first, user_site, rest = [], True, [sys.prefix]  # site's order: the venv's, the user's, the system's
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    config = os.path.join(venv, "pyvenv.cfg")
    if os.path.isfile(config):
        system = True
        with open(config, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip().lower() == "include-system-site-packages":
                    system = value.strip().lower() == "true"
        sys.prefix = sys.exec_prefix = venv  # as site.venv() sets them
        first, user_site, rest = site.getsitepackages([venv]), system, [sys.base_prefix] if system else []
    folders = [*first, *([site.getusersitepackages()] if user_site and site.check_enableusersite() else []),
               *(site.getsitepackages(rest) if rest else [])]
    for folder in folders:
        if folder in sys.path or not os.path.isdir(folder):
            continue
        sys.path.append(folder)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".pth"):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                    for line in f:
                        line = line.strip()
                        if line and not line.startswith(("#", "import ", "import\t")):
                            path = os.path.abspath(os.path.join(folder, line))
                            if path not in sys.path and os.path.isdir(path):
                                sys.path.append(path)


class _SiteFoldersOnMiss:
    """Last on sys.meta_path under -S: the first import nothing finds adds site's folders and looks again."""

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
        sys.meta_path.remove(cls)
        add_site_folders()
        from importlib.machinery import PathFinder

        return PathFinder.find_spec(name, path, target)


CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if os.path.isfile(os.path.join(CHECKOUT, "oci", "__init__.py")) and CHECKOUT not in sys.path:
    sys.path.insert(1, CHECKOUT)  # running from a checkout
if sys.flags.no_site:
    sys.meta_path.append(_SiteFoldersOnMiss)
