"""`build`: Dockerfile builds through oci-build's library (issue 17), into the image store."""

from __future__ import annotations

from typing import Any


def build(context: Any, argv: list[str]) -> int:
    from oci.errors import Unsupported

    raise Unsupported("ocikit build needs oci-build (issue 17), which is not installed yet")
