"""The documents a runtime reads and writes against the runtime-spec JSON schemas (vendored in spec/)."""

from __future__ import annotations

import pytest
from ocitest.bundle import default_config

from oci import schema


@pytest.mark.spec("config.md")
def test_default_config_of_the_suite_is_valid():
    """The suite's own starting point is a valid config.json (a sanity check of ocitest.bundle)."""
    assert schema.violations(default_config(["/checker", "report"], "1.2.0"), "runtime-config") == []


@pytest.mark.spec("runtime.md#state")
def test_state_is_valid(runtime, bundle):
    bundle.config["annotations"] = {"org.ocikit.test": "state"}
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    assert schema.violations(runtime.state(cid).json(), "state") == []
    runtime.start(cid).check()
    assert schema.violations(runtime.state(cid).json(), "state") == []


@pytest.mark.spec("features.md")
def test_features_document(runtime):
    """`features` describes the runtime: a valid document naming at least the hooks and namespaces tested here."""
    runtime.require("features")
    features = runtime.call("features").json()
    assert schema.violations(features, "features") == []
    assert set(features["hooks"]) >= {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                                      "poststop"}
    assert set(features["linux"]["namespaces"]) >= {"pid", "network", "ipc", "uts", "mount", "user", "cgroup"}
    assert {"bind", "rbind", "ro", "nosuid", "nodev", "noexec"} <= set(features["mountOptions"])
