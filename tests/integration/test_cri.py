"""containerd's CRI (the kubelet's path) on oci-run and oci-net, beside runc and the Debian CNI plugins.

Each engine column gets a private containerd 1.6 with its CRI plugin (cri_env) and runs the
kubelet's calls for one pod (cri_checks.CHECKS): the reference with runc and
bridge + host-local + portmap, then the checkout's oci-run as the runtime handler with oci-net
as the pod network's CNI plugin. Every check is a test of its own, per column; the last test
holds oci-run + oci-net to every check the reference passes. These tests need root and never
skip as root: what they need is installed by .ci/install and the test extras.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration import cri_checks, cri_env, engine_matrix

pytestmark = [pytest.mark.root, pytest.mark.slow]
ENGINE = "CRI (containerd 1.6 as the kubelet drives it; CNI bridge+host-local+portmap beside oci-net)"
_results: dict[str, list[cri_checks.Check]] = {}
_left: dict[str, dict[str, object]] = {}  # what each column's network left behind once its pod was removed


@pytest.fixture(scope="module")
def images(registry, tmp_path_factory) -> cri_env.Images:
    missing = cri_env.missing_tools()
    if missing:  # as root this is a failure, never a skip: .ci/install must bring them
        pytest.fail(f"the CRI tests need: {', '.join(missing)}")
    return cri_env.push_images(tmp_path_factory.mktemp("cri-images"), registry.host)


def column_results(column: cri_env.Column, images: cri_env.Images, base: Path, stubs: Path) -> list[cri_checks.Check]:
    """Run the sequence once per column per session; later tests read the remembered results."""
    if column.name not in _results:
        lines: list[str] = []
        with cri_env.session(base, column, images, stubs) as cri:
            checks = cri_checks.run(cri, lines.append)
            if not all(c.ok for c in checks):
                print(f"containerd log ({column.name}):\n{cri.log_tail(30)}")
            _left[column.name] = {
                "bridge": subprocess.run(["ip", "link", "show", cri.bridge], capture_output=True).returncode == 0,
                "table": subprocess.run(["nft", "list", "table", "inet", cri.nft_table],
                                        capture_output=True).returncode == 0,
                "networks": json.loads(subprocess.run([cri_env.ocikit_command("net"), "--state-dir",
                                                       str(cri.net_state), "ls"], capture_output=True,
                                                      text=True).stdout or "null"),
                "ignored": [line for line in cri.log_tail(100000).splitlines() if "oci-net: " in line],
            }
        print("\n".join(lines))
        _results[column.name] = checks
        for check in checks:  # the engine matrix's CRI row: runc's column is the reference
            engine_matrix.record(ENGINE, check.name, "oci-run" if column.ocikit else "runc", check.ok, check.detail)
    return _results[column.name]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cri-stubs")


@pytest.mark.parametrize("column", cri_env.COLUMNS, ids=[c.handler for c in cri_env.COLUMNS])
def test_cri_sequence(column, images, stubs, tmp_path_factory):
    checks = column_results(column, images, tmp_path_factory.mktemp(f"cri-{column.handler}"), stubs)
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    assert not failed, "\n".join(failed)


def test_ocikit_passes_every_check_the_reference_passes(images, stubs, tmp_path_factory):
    results = {c.name: column_results(c, images, tmp_path_factory.mktemp(f"cri-{c.handler}"), stubs)
               for c in cri_env.COLUMNS}
    print(cri_checks.table(results))
    reference, ours = results[cri_env.RUNC.name], results[cri_env.OCIKIT.name]
    behind = [f"{r.name}: {o.detail}" for r, o in zip(reference, ours, strict=True) if r.ok and not o.ok]
    assert not behind, "\n".join(behind)
    assert os.geteuid() == 0


def test_oci_net_removed_the_pod_network_with_the_last_del(images, stubs, tmp_path_factory):
    """After RemovePodSandbox (containerd's CNI DEL): no bridge, no nftables table, no network in
    `oci-net ls`; and oci-net logged nothing as ignored (containerd's keys are all understood)."""
    column = cri_env.OCIKIT
    checks = column_results(column, images, tmp_path_factory.mktemp(f"cri-{column.handler}"), stubs)
    if not next(c for c in checks if c.name.startswith("RunPodSandbox")).ok:
        pytest.fail("the pod never started")
    assert _left[column.name] == {"bridge": False, "table": False, "networks": [], "ignored": []}
