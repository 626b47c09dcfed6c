"""How the front reaches a registry: transport options from its flags and the registry's name.

The transfer code (oci.registry) decides plain HTTP, TLS and verification; this is the one
place the front turns `--tls-verify` and `--cert-dir` into its options.
"""

from __future__ import annotations

from typing import Any

from oci.errors import UsageError


def parse_bool(text: str | None, flag: str) -> bool | None:
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise UsageError(f"{flag}: expected true or false, not {text!r}")


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    return name == "localhost" or name.startswith("127.") or name == "::1"


def options(reference: str | None, *, tls_verify: str | None = None, cert_dir: str | None = None) -> Any:
    """oci.registry.http.Options for the registry `reference` names."""
    from oci.registry.http import Options

    verify = parse_bool(tls_verify, "--tls-verify")
    host = ""
    if reference:
        from .images import parse_reference

        try:
            host = parse_reference(reference).registry
        except Exception:  # noqa: BLE001 -- a bare host name (login HOST)
            host = reference
    insecure = verify is None and not cert_dir and _loopback(host)  # loopback speaks plain HTTP, as Docker's
    if verify is False:
        raise UsageError("--tls-verify=false needs the registry transport of issue 18 (not merged yet)")
    return Options(insecure=insecure, cert_dir=cert_dir)
