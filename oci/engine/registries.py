"""How the front reaches a registry, as oci-fetch and oci-push do: registries.conf (short names,
mirrors, insecure and blocked registries) read as podman and skopeo read it, `--tls-verify`
and `--cert-dir`; loopback registries need no flag (oci.registry decides plain HTTP or TLS).
The one place the front turns its registry flags into transport options.
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


def places(text: str, *, pull: bool) -> list[Any]:
    """Where `text` (`docker://` accepted) is pulled from (registries.conf's mirrors first) or pushed to."""
    from oci.reference import Reference
    from oci.registry.registries_conf import Config, endpoints, strip_transport

    return endpoints(text, pull=pull, config=Config.load(Reference.is_short(strip_transport(text))))


def options(found: list[Any] | None = None, *, tls_verify: str | None = None, cert_dir: str | None = None) -> Any:
    """oci.registry.http.Options for the places a reference resolves to (their insecure hosts)."""
    from oci.registry.http import Options

    verify = parse_bool(tls_verify, "--tls-verify")
    hosts = frozenset(place.reference.api_host for place in found or [] if place.insecure)
    return Options(cert_dir=cert_dir, tls_verify=verify is not False, insecure_hosts=hosts)


def for_host(host: str, *, tls_verify: str | None = None, cert_dir: str | None = None) -> Any:
    """Options for a registry named by its host alone (login): its registries.conf entry too."""
    try:
        found = places(f"{host}/ocikit-login", pull=False)
    except Exception:  # noqa: BLE001 -- a host registries.conf blocks or cannot parse: no insecure hosts
        found = []
    return options(found, tls_verify=tls_verify, cert_dir=cert_dir)
