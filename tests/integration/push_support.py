"""Helpers of the oci-push tests: flags and environment to reach a test registry, request counts."""

from __future__ import annotations

import json
import os
from typing import Any

from .registry_server import Registry, Request


def flags(registry: Registry) -> list[str]:
    """oci-push/oci-fetch flags to reach `registry` (plain HTTP, or its CA)."""
    return ["--insecure"] if registry.insecure else ["--cert-dir", registry.cert_dir or ""]


def environment(tmp_path: Any, registry: Registry | None = None, **credentials: str) -> dict[str, str]:
    """An environment whose only credentials are the registry's (or none): $REGISTRY_AUTH_FILE and
    an empty $DOCKER_CONFIG, so the host's own files never interfere."""
    user = credentials.get("username") or (registry.username if registry else None)
    folder = os.path.join(str(tmp_path), f"creds-{user or 'anonymous'}-{credentials.get('password', '')}")
    os.makedirs(os.path.join(folder, "docker"), exist_ok=True)
    auth = os.path.join(folder, "auth.json")
    doc: dict[str, Any] = {"auths": {}}
    if registry and user:
        from .images import auth_document

        doc = auth_document(registry, user, credentials.get("password") or registry.password)
    with open(auth, "w") as f:
        json.dump(doc, f)
    return {"REGISTRY_AUTH_FILE": auth, "DOCKER_CONFIG": os.path.join(folder, "docker"),
            "XDG_CONFIG_HOME": os.path.join(folder, "xdg"), "OCIKIT_CERT_DIR": ""}


def blob_writes(requests: list[Request]) -> list[Request]:
    """The requests that send blob content (upload sessions, chunks, closing PUTs)."""
    return [r for r in requests if "/blobs/uploads/" in r.path and r.method in ("POST", "PATCH", "PUT")]


def uploads_started(requests: list[Request]) -> int:
    """How many upload sessions were opened (mount requests aside)."""
    return sum(1 for r in requests if r.method == "POST" and r.path.endswith("/blobs/uploads/")
               and "mount=" not in r.query)
