"""The SASL step of an SMTP submission session, on top of aiosmtplib.

aiosmtplib's own ``auth_*`` methods always send the initial response on the AUTH line, which
Dovecot refuses for real PSC tokens (over 512 octets, RFC 4954 §4), and it does not send EHLO
again after STARTTLS. This module drives :mod:`mssante.wire.sasl` mechanisms through
``SMTP.execute_command`` instead:

1. refuse to go on unless the connection is TLS-protected, TLS ≥ 1.2 (ECO.1.1.1, ECO.1.2.1);
2. ``AUTH <mech> <ir>`` when it fits in 512 octets, else ``AUTH <mech>`` then the response
   after the empty ``334`` challenge (RFC 4954 §4);
3. answer a ``334`` JSON error challenge as the mechanism says (empty line for XOAUTH2, ``^A``
   for OAUTHBEARER, RFC 7628 §3.2.3);
4. map the final reply to our error tree.
"""

from __future__ import annotations

import ssl
from typing import Final

import aiosmtplib

from mssante.errors import (
    AuthError,
    CommandFailed,
    ConnectionClosed,
    LocalProtocolError,
    MssanteError,
    RemoteProtocolError,
    StartTLSError,
    TimeoutError,
)
from mssante.trust import map_ssl_error
from mssante.wire import enhanced_code, outcome_from_smtp
from mssante.wire.sasl import SMTP_AUTH_LINE_LIMIT, ClientMechanism, b64decode, b64encode, smtp_auth_lines

__all__ = ["auth_error", "authenticate", "ehlo_after_starttls", "starttls"]

#: A bound on server challenges: the mechanisms here need at most two (empty 334 + error).
MAX_CHALLENGES: Final = 4
_TLS_VERSIONS: Final = frozenset({"TLSv1.2", "TLSv1.3"})  # ECO.1.1.1: TLS 1.2 minimum
_enhanced_code = enhanced_code  # the name client/_smtp.py imports


def auth_error(code: int, text: str) -> MssanteError:
    """Map a failed SMTP AUTH reply to our error tree (RFC 4954 §6, ref2 §2.4).

    The outcome is :func:`~mssante.wire.outcome_from_smtp`'s:

    * ``535`` → :class:`TokenRejected` (``5.7.8``), or :class:`NotAuthorized` when the enhanced
      code is ``5.7.1`` or the text speaks of authorization;
    * ``454`` → :class:`AuthUnavailable` (``4.7.0``, temporary, retry later);
    * ``530``/``538`` → :class:`StartTLSError` (the server wants TLS first, RFC 4954 §6);
    * ``500``/``501``/``503``/``504`` → :class:`AuthError` (too long, cancelled, malformed, no
      such mechanism);
    * any other code → :class:`CommandFailed`.

    Every error carries ``smtp_code`` and ``enhanced_code``.

    Returns:
        The error to raise.

    Raises:
        Nothing: this function returns the error.
    """
    enhanced = enhanced_code(text)
    outcome = outcome_from_smtp(code, text)
    if outcome is None or outcome.ok:
        return CommandFailed(f"AUTH failed: {text.strip()[:200]}", smtp_code=code, enhanced_code=enhanced)
    return outcome.error(text, smtp_code=code, enhanced_code=enhanced)


def _require_tls(smtp: aiosmtplib.SMTP) -> None:
    # ECO.1.2.1: TLS first, then SASL. Checked locally, before any credential is produced.
    if not smtp.is_connected:
        raise ConnectionClosed("the SMTP connection is not open")
    ssl_object = smtp.get_transport_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        raise LocalProtocolError("refusing to authenticate without TLS (STARTTLS first)", requirement="ECO.1.2.1")
    if ssl_object.version() not in _TLS_VERSIONS:
        raise LocalProtocolError(f"refusing to authenticate over {ssl_object.version()}", requirement="ECO.1.1.1")


async def _command(smtp: aiosmtplib.SMTP, *args: bytes) -> aiosmtplib.SMTPResponse:
    # Per-command timeouts are the aiosmtplib client's own (``SMTP(timeout=...)``).
    try:
        return await smtp.execute_command(*args)
    except aiosmtplib.SMTPServerDisconnected as exc:
        raise ConnectionClosed(f"connection lost during AUTH: {exc}") from exc
    except aiosmtplib.SMTPTimeoutError as exc:
        raise TimeoutError(f"timeout during AUTH: {exc}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise RemoteProtocolError(f"malformed reply during AUTH: {exc.message}", smtp_code=exc.code) from exc


async def ehlo_after_starttls(smtp: aiosmtplib.SMTP, *, hostname: str | None = None) -> aiosmtplib.SMTPResponse:
    """Send EHLO again after STARTTLS, which aiosmtplib does not do (RFC 3207 §4.2).

    The server's pre-TLS extension list is discarded by aiosmtplib; this learns the one sent
    under TLS (including ``AUTH``). Does nothing when EHLO was already sent under TLS.

    Returns:
        The EHLO reply under TLS.

    Raises:
        LocalProtocolError: the connection is not TLS-protected (TLS ≥ 1.2).
        CommandFailed: the server refused EHLO.
        ConnectionClosed, TimeoutError: the connection failed.
    """
    _require_tls(smtp)
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo(hostname=hostname)
        except aiosmtplib.SMTPHeloError as exc:
            raise CommandFailed(f"EHLO refused: {exc.message}", smtp_code=exc.code) from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise ConnectionClosed(f"connection lost during EHLO: {exc}") from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise TimeoutError(f"timeout during EHLO: {exc}") from exc
    response = smtp.last_ehlo_response
    if response is None:  # pragma: no cover - aiosmtplib sets it on success
        raise RemoteProtocolError("no EHLO reply under TLS")
    return response


async def starttls(
    smtp: aiosmtplib.SMTP,
    *,
    tls_context: ssl.SSLContext,
    server_hostname: str,
    hostname: str | None = None,
) -> aiosmtplib.SMTPResponse:
    """Upgrade a plaintext submission connection with STARTTLS, then EHLO again.

    ``server_hostname`` is the name the certificate must carry: the SRV target (RFC 6125),
    never the mail domain.

    Returns:
        The EHLO reply under TLS.

    Raises:
        StartTLSError: the server does not offer STARTTLS or refuses it (ECO.1.0.1).
        CertificateError, RevocationError, TrustError: the TLS handshake failed (see
            :func:`mssante.trust.map_ssl_error`).
        ConnectionClosed, TimeoutError, CommandFailed: see :func:`ehlo_after_starttls`.
    """
    try:
        if smtp.is_ehlo_or_helo_needed:
            await smtp.ehlo(hostname=hostname)
        if not smtp.supports_extension("starttls"):
            raise StartTLSError("the server does not offer STARTTLS", requirement="ECO.1.0.1")
        await smtp.starttls(tls_context=tls_context, server_hostname=server_hostname)
    except aiosmtplib.SMTPResponseException as exc:
        raise StartTLSError(f"STARTTLS refused: {exc.message}", smtp_code=exc.code) from exc
    except aiosmtplib.SMTPServerDisconnected as exc:
        cause = exc.__cause__
        raise (map_ssl_error(cause) if cause is not None else ConnectionClosed(str(exc))) from exc
    except aiosmtplib.SMTPTimeoutError as exc:
        raise TimeoutError(f"timeout during STARTTLS: {exc}") from exc
    except aiosmtplib.SMTPException as exc:
        raise StartTLSError(f"STARTTLS failed: {exc}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise map_ssl_error(exc) from exc
    return await ehlo_after_starttls(smtp, hostname=hostname)


async def authenticate(
    smtp: aiosmtplib.SMTP,
    mechanism: ClientMechanism,
    *,
    max_line: int = SMTP_AUTH_LINE_LIMIT,
) -> aiosmtplib.SMTPResponse:
    """Run SMTP AUTH (RFC 4954) with ``mechanism`` on a TLS-protected connection.

    TLS is checked first, before the mechanism produces any credential. If EHLO has not been
    sent under TLS yet, it is sent. The initial response goes on the AUTH line only when the
    line stays within ``max_line`` octets (RFC 4954 §4).

    Args:
        smtp: a connected ``aiosmtplib.SMTP`` after STARTTLS.
        mechanism: a client mechanism from :mod:`mssante.wire.sasl` (``XOAuth2Client``...).
        max_line: the AUTH line limit, CRLF included.

    Returns:
        The ``235`` reply.

    Raises:
        LocalProtocolError: the connection is not TLS-protected (nothing was sent).
        AuthError: the server does not offer the mechanism under TLS.
        TokenRejected, NotAuthorized, AuthUnavailable, StartTLSError, CommandFailed: the server
            refused (see :func:`auth_error`); ``str(error)`` carries the codes, and the JSON
            error challenge, if any, is on ``mechanism.error``.
        RemoteProtocolError: an unexpected or malformed challenge (we cancel with ``*``).
        ConnectionClosed, TimeoutError: the connection failed.
    """
    _require_tls(smtp)
    await ehlo_after_starttls(smtp)
    name = str(mechanism.name)
    if name.lower() not in smtp.server_auth_methods:
        raise AuthError(f"the server does not offer SASL {name} under TLS", requirement="RFC 4954 §3")
    lines = smtp_auth_lines(name, mechanism.initial_response(), max_line=max_line)
    response = await _command(smtp, *lines.command.split(b" "))
    pending = lines.pending
    challenges = 0
    while response.code == 334:
        challenges += 1
        try:
            if challenges > MAX_CHALLENGES:
                raise RemoteProtocolError(f"more than {MAX_CHALLENGES} SASL challenges")
            challenge = b64decode(response.message.encode("ascii", "replace"))
            if pending is not None:
                # RFC 4954 §4: without an initial response the server sends an empty challenge.
                if challenge:
                    raise RemoteProtocolError("expected an empty 334 challenge", requirement="RFC 4954 §4")
                answer, pending = pending, None
            else:
                answer = b64encode(mechanism.respond(challenge))
        except RemoteProtocolError:
            # RFC 4954 §4: "*" cancels the exchange; the server answers 501.
            await _command(smtp, b"*")
            raise
        response = await _command(smtp, answer)
    if response.code == 235:
        return response
    raise auth_error(response.code, response.message)
