"""``ssl.SSLContext`` factories for the sandbox servers and their test clients.

Revocation and the TLS handshake: OpenSSL checks CRLs only if they are loaded into the
context and ``VERIFY_CRL_CHECK_LEAF`` is set, and a context keeps the CRL it loaded at
creation; a revocation made later (e.g. by ``mssante sandbox pki revoke`` in another process)
would not be seen until the context is rebuilt. So by default the server context does **not**
check revocation during the handshake: the AUTH_CLI front calls
:meth:`TestPKI.check_client_certificate` at the SASL step, which reads the current CRL from
disk each time and lets the server answer a clear authentication error instead of a bare TLS
alert. ``check_crl=True`` is there for fronts that prefer refusing in the handshake.

What the handshake already refuses when a client certificate is *presented* (even with
``CERT_OPTIONAL``): an unknown issuer, bad signature, expiry, and a certificate without the
clientAuth extended key usage (OpenSSL applies the ``sslclient`` purpose on the server side).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from mssante.errors import ConfigError, UsageError


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load certificate {cert} with key {key}: {exc}") from exc


def _load_verify(ctx: ssl.SSLContext, cafile: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA/CRL file {cafile}: {exc}") from exc


def server_context(
    *,
    cert_chain: Path,
    key: Path,
    client_ca: Path | None = None,
    verify_mode: ssl.VerifyMode = ssl.CERT_OPTIONAL,
    crl_pem: Path | None = None,
) -> ssl.SSLContext:
    """Build a TLS ≥ 1.2 server context; with ``client_ca``, ask for and verify client certificates.

    Raises:
        ConfigError: a certificate, key, CA or CRL file cannot be loaded.
        UsageError: ``verify_mode`` is ``CERT_NONE`` while ``client_ca`` is given.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # MSSanté operators: TLS 1.2 or later
    _load_chain(ctx, cert_chain, key)
    if client_ca is not None:
        if verify_mode == ssl.CERT_NONE:
            raise UsageError("a client CA was given but verify_mode is CERT_NONE")
        _load_verify(ctx, client_ca)
        ctx.verify_mode = verify_mode
        if crl_pem is not None:
            _load_verify(ctx, crl_pem)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF  # only the leaf: the bundle's root CRL is not loaded
    return ctx


def client_context(*, ca_bundle: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Build a TLS ≥ 1.2 client context trusting ``ca_bundle``, optionally presenting a certificate.

    Host name checking stays on (``check_hostname``); pass ``server_hostname`` when wrapping.

    Raises:
        ConfigError: the bundle, certificate or key cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_verify(ctx, ca_bundle)
    if cert is not None:
        _load_chain(ctx, cert, key or cert)
    return ctx
