"""What a TLS connection to a registry trusts and presents: the system's CAs, and the CA
certificates and client certificates of the certificate directories that apply to the host
(oci.registry.http.cert_dirs: `--cert-dir`, else $OCIKIT_CERT_DIR, else
/etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST, as podman, skopeo and Docker look
for them). oci.registry.http imports this module (and `ssl`) only for a TLS connection.
"""

from __future__ import annotations

import os

from oci.errors import RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl


def tls_context(cert_dirs: list[str], verify: bool = True) -> ssl.SSLContext:
    """A verifying TLS context: system CAs (and SSL_CERT_FILE), plus the CAs (*.crt) and client
    certificates (*.cert with *.key) of `cert_dirs` (oci.registry.http.cert_dirs: which ones apply
    to a host). Without `verify`, neither the chain nor the host name is checked (the client
    certificate is still presented)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        _load_system_roots(context)
    for folder in cert_dirs:
        names = sorted(os.listdir(folder))
        for ca in [os.path.join(folder, name) for name in names if name.endswith(".crt")]:
            try:
                context.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as err:
                raise RegistryError(f"{ca}: cannot load CA certificate: {err}") from None
        for cert in [os.path.join(folder, name) for name in names if name.endswith(".cert")]:
            key = cert[: -len(".cert")] + ".key"
            try:
                context.load_cert_chain(cert, key if os.path.exists(key) else None)
            except (OSError, ssl.SSLError) as err:
                raise RegistryError(f"{cert}: cannot load client certificate: {err}") from None
    return context


def _load_system_roots(context: ssl.SSLContext) -> None:
    """Trust the system's CAs, where OpenSSL's default paths say ($SSL_CERT_FILE, $SSL_CERT_DIR).

    Loading the CA bundle parses every certificate in it (~20 ms for Debian's ~140, on every
    TLS command). When the bundle sits in a hashed directory of the same CAs, as Debian's
    update-ca-certificates writes them, the directory alone is given: OpenSSL then reads only
    the issuers a handshake needs. Anything else loads the default paths as they are."""
    import ssl

    paths = ssl.get_default_verify_paths()
    capath = paths.capath
    if paths.cafile and capath and os.path.dirname(os.path.realpath(paths.cafile)) == os.path.realpath(capath):
        try:
            hashed = any(len(name) == 10 and name.endswith(".0") for name in os.listdir(capath))
        except OSError:
            hashed = False
        if hashed:
            context.load_verify_locations(capath=capath)
            return
    context.load_default_certs()
