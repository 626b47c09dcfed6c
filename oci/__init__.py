"""ocikit's shared library: OCI images, layouts, bundles and runtimes, without CLI concerns.

Each module holds one concept; import the module you need, nothing is re-exported here
so that a command pays only for what it uses.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.log import Sink

__version__ = "0.1.0"
# The OCI runtime-spec version ocikit implements (its schemas: spec/runtime): what oci-run reports,
# writes in the configs it makes (`oci-run spec`, oci-bundle) and accepts at most.
RUNTIME_SPEC_VERSION = "1.3.0"
# Where oci.log sends the library's warnings and debug messages: the running command's Messages
# (set by ocicli.run), else None (the logging package). Kept here rather than in oci.log so that a
# command with nothing to say (oci-run's verbs) never imports that module.
log_sink: Sink | None = None
