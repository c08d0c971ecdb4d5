"""TLS contexts from the ``tls_cert`` / ``tls_key`` / ``tls_ca`` settings (Python's ``ssl``)."""

from __future__ import annotations

import ssl
from pathlib import Path

from ..errors import ConfigError


def server_context(cert: Path, key: Path, ca: Path | None = None) -> ssl.SSLContext:
    """A server context; with ``ca``, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
        if ca is not None:
            context.load_verify_locations(cafile=str(ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"cannot load the TLS certificate {cert} / key {key}: {error}") \
            from error
    return context


def client_context(ca: Path | None = None, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca`` (system CAs without it)."""
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if cert is not None and key is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"cannot load the TLS CA {ca}: {error}") from error
    return context
