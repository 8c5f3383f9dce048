"""Client ``ssl.SSLContext`` for the API LPS: verification on, TLS ≥ 1.2, the Ref #2 cipher baseline."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final

from mssante.errors import ConfigError, UsageError

__all__ = ["BASELINE_CIPHERS", "client_ssl_context"]

#: ECO.1.1.3 (SC.MSS/CONF.03). The v1.x list was not available; this is the Ref #2 v0.1 /
#: Ségur vague 1 [MSS3] list, "l'une des suites suivantes" (research note ref2-requirements.md
#: §1 "Cipher suites", source DBX-SEGUR): 0xC030 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
#: 0xC02F TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0xC028 TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
#: 0xC027 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, in OpenSSL names. It restricts TLS 1.2 only;
#: TLS 1.3 suites are negotiated separately by OpenSSL and stay allowed.
BASELINE_CIPHERS: Final = ":".join(
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-RSA-AES128-SHA256",
    )
)

_MIN_VERSION: Final = ssl.TLSVersion.TLSv1_2  # ECO.1.1.1: TLS 1.2 minimum


def _at_least_tls12(version: ssl.TLSVersion) -> bool:
    # MINIMUM_SUPPORTED / MAXIMUM_SUPPORTED are negative sentinels; only real versions ≥ 1.2 pass.
    return version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)


def client_ssl_context(
    *,
    ca_bundle: Path | None = None,
    ssl_context: ssl.SSLContext | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    min_version: ssl.TLSVersion = _MIN_VERSION,
    ciphers: str | None = BASELINE_CIPHERS,
) -> ssl.SSLContext:
    """Build (or check) the TLS context used to reach the API LPS.

    Certificate verification and host-name checking are always on; TLS 1.2 is the minimum
    (ECO.1.1.1); TLS 1.2 suites are restricted to ``ciphers`` (ECO.1.1.3, :data:`BASELINE_CIPHERS`).

    Args:
        ca_bundle: PEM file of trust anchors. For MSSanté this must hold the IGC Santé CAs only
            (ECO.1.1.10); None uses the system store (not MSSanté-compliant, for other servers).
        ssl_context: a context prepared by the caller, used instead of building one. It is
            checked (verification, host names, TLS ≥ 1.2), and the client certificate is loaded
            into it when given. Exclusive with ``ca_bundle``, ``min_version`` and ``ciphers``.
        client_cert: PEM certificate (chain) of a BAL APP (IGC Santé ORG AUTH_CLI).
        client_key: its private key; None when ``client_cert`` holds it too.
        min_version: TLSv1_2 (default) or TLSv1_3.
        ciphers: OpenSSL cipher string for TLS 1.2, or None for OpenSSL's defaults.

    Returns:
        A client-side context.

    Raises:
        UsageError: inconsistent arguments, or a loosened setting (a version below TLS 1.2,
            verification or host-name checking off in ``ssl_context``).
        ConfigError: a file cannot be read or does not hold what it should, or the cipher
            string selects nothing.
    """
    if client_key is not None and client_cert is None:
        raise UsageError("client_key needs client_cert")
    if ssl_context is not None:
        if ca_bundle is not None or min_version != _MIN_VERSION or ciphers != BASELINE_CIPHERS:
            raise UsageError("ssl_context is exclusive with ca_bundle, min_version and ciphers")
        if ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname:
            raise UsageError("ssl_context must verify certificates and host names", requirement="ECO.1.1.5")
        if not _at_least_tls12(ssl_context.minimum_version):
            raise UsageError("ssl_context must refuse TLS below 1.2", requirement="ECO.1.1.1")
        ctx = ssl_context
    else:
        if not _at_least_tls12(min_version):
            raise UsageError(f"min_version {min_version.name} is below TLS 1.2", requirement="ECO.1.1.1")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
        ctx.minimum_version = min_version
        if ciphers is not None:
            try:
                ctx.set_ciphers(ciphers)
            except ssl.SSLError as exc:
                raise ConfigError(f"no cipher suite matches {ciphers!r}", requirement="ECO.1.1.3") from exc
        try:
            if ca_bundle is None:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            else:
                ctx.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA bundle {ca_bundle}: {exc}") from exc
    if client_cert is not None:
        try:
            ctx.load_cert_chain(str(client_cert), str(client_key) if client_key is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the client certificate {client_cert}: {exc}") from exc
    return ctx
