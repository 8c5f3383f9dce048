"""SMTP submission (RFC 6409) on aiosmtplib: STARTTLS + re-EHLO, SASL, SIZE, DSN, error mapping.

The SASL step and STARTTLS are :mod:`mssante.client._smtp_auth` (AUTH line ≤ 512 octets,
RFC 4954 §4); this module adds the certificate revocation check after the handshake
(ECO.1.1.6), the ``SIZE`` check before ``DATA`` (RFC 1870 §6), the RFC 3461 DSN parameters
from the composed message (dropped, as RFC 3461 §4 requires, when DSN is not advertised),
and maps every failure to our error tree.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ssl
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib.typing import SMTPStatus

from mssante.errors import (
    CommandFailed,
    ConnectionClosed,
    LimitError,
    MssanteError,
    PeerLimitError,
    RemoteProtocolError,
    TimeoutError,
)
from mssante.message import DSNParameters
from mssante.trust import map_ssl_error
from mssante.wire.sasl import ClientMechanism

from ._config import ConnectionSettings
from ._smtp_auth import _enhanced_code, authenticate, starttls
from ._tls import TLSClient, map_connect_error

__all__ = ["SMTPSubmission", "StaleSession", "SubmissionResult", "smtp_error"]


class StaleSession(ConnectionClosed):
    """The server had closed the session before ``MAIL FROM`` was answered: nothing was submitted,
    so the message can be sent again on a new session."""


@dataclass(frozen=True, kw_only=True)
class SubmissionResult:
    """What the submission server said about one message.

    Attributes:
        accepted: recipients accepted at ``RCPT TO``.
        refused: ``(recipient, reply)`` for each refused one.
        reply: the final reply to ``DATA`` (``250 2.0.0 Ok: queued as ...``).
        dsn_requested: DSN parameters were sent (the server advertised DSN).
    """

    accepted: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]
    reply: str
    dsn_requested: bool


def smtp_error(exc: BaseException, during: str) -> MssanteError:
    """Map an aiosmtplib exception to our error tree.

    Returns:
        ``552`` → :class:`LimitError`; ``421`` or a lost connection → :class:`ConnectionClosed`;
        a timeout → :class:`TimeoutError`; a reply longer than aiosmtplib accepts (8 KiB a
        line, 32 KiB a reply) → :class:`PeerLimitError`; a reply that is no SMTP reply →
        :class:`RemoteProtocolError`; another reply → :class:`CommandFailed` (with
        ``smtp_code`` and ``enhanced_code``).

    Raises:
        Nothing: the error is returned.
    """
    if isinstance(exc, MssanteError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | builtins.TimeoutError):
        return TimeoutError(f"SMTP timeout during {during}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return ConnectionClosed(f"SMTP connection lost during {during}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = exc.message.strip()[:200]
        enhanced = _enhanced_code(exc.message)
        if exc.code == SMTPStatus.invalid_response:
            # aiosmtplib bounds what it buffers (MAX_LINE_LENGTH, MAX_RESPONSE_LENGTH) and says so
            # with this pseudo-code; the reply is the server's fault (RFC 5321 §4.5.3.1.5).
            if "too long" in exc.message:
                return PeerLimitError(f"the SMTP server sent a reply too long during {during}",
                                      requirement="RFC 5321 §4.5.3.1.5")
            return RemoteProtocolError(f"the SMTP server sent no valid reply during {during}: {text[:80]}",
                                       requirement="RFC 5321 §4.2")
        if exc.code == 421:
            return ConnectionClosed(f"the server closed the session during {during}: {text}", smtp_code=421)
        if exc.code == 552:
            return LimitError(f"message too large for the server: {text}", smtp_code=552, enhanced_code=enhanced)
        return CommandFailed(f"{during} refused: {text}", smtp_code=exc.code, enhanced_code=enhanced)
    if isinstance(exc, ssl.SSLError | OSError):
        return map_ssl_error(exc)
    return CommandFailed(f"SMTP failure during {during}: {type(exc).__name__}")


class SMTPSubmission:
    """One authenticated submission connection (use :meth:`open`); messages are sent one at a time."""

    def __init__(self, smtp: aiosmtplib.SMTP, *, server_name: str) -> None:
        """Wrap a connected, authenticated client; use :meth:`open` instead.

        Raises:
            Nothing.
        """
        self._smtp = smtp
        self.server_name = server_name
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SMTPSubmission({self.server_name!r}, connected={self.usable})"

    @property
    def usable(self) -> bool:
        """True while the connection is open.

        Raises:
            Nothing.
        """
        return self._smtp.is_connected

    @property
    def size_limit(self) -> int | None:
        """The ``SIZE`` the server advertised under TLS (RFC 1870), None if none or unlimited.

        Raises:
            Nothing.
        """
        value = self._smtp.esmtp_extensions.get("size", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        tls: TLSClient,
        settings: ConnectionSettings,
        mechanism: ClientMechanism,
        server_name: str | None = None,
    ) -> SMTPSubmission:
        """Connect, STARTTLS (+ EHLO again), check revocation, authenticate.

        Raises:
            ConnectError, TimeoutError, ConnectionClosed: the connection failed.
            StartTLSError, CertificateError, RevocationError, TrustError: TLS refused or untrusted.
            TokenRejected, NotAuthorized, AuthUnavailable, AuthError: authentication refused.
            CommandFailed: the server refused EHLO.
        """
        name = server_name or host
        smtp = aiosmtplib.SMTP(
            hostname=settings.address_of(host), port=port, start_tls=False, timeout=settings.command_timeout
        )
        try:
            await smtp.connect(timeout=settings.connect_timeout)
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
                cause = builtins.TimeoutError()
            raise map_connect_error(cause, host, port) from exc
        except aiosmtplib.SMTPException as exc:
            raise smtp_error(exc, "connect") from exc
        try:
            async with asyncio.timeout(settings.connect_timeout):
                await starttls(smtp, tls_context=tls.context, server_hostname=name)
                await tls.verify_peer(smtp.get_transport_info("ssl_object"))
            await authenticate(smtp, mechanism)
        except builtins.TimeoutError as exc:
            smtp.close()
            raise TimeoutError(f"{host}:{port}: STARTTLS did not complete in time") from exc
        except BaseException:
            smtp.close()
            raise
        return cls(smtp, server_name=name)

    async def send(
        self, sender: str, recipients: tuple[str, ...], data: bytes, *, dsn: DSNParameters | None = None
    ) -> SubmissionResult:
        """Submit one message: ``MAIL FROM`` (+SIZE, RET, ENVID), ``RCPT TO`` (+NOTIFY, ORCPT), ``DATA``.

        Raises:
            LimitError: larger than the advertised ``SIZE`` (checked before ``MAIL``, RFC 1870 §6),
                or refused with ``552``.
            CommandFailed: the sender, every recipient, or the data was refused.
            ConnectionClosed, TimeoutError: the connection failed (nothing was accepted when it
                failed before ``DATA``).
            UsageError: no recipient.
        """
        if not recipients:
            raise CommandFailed("the message has no recipient")
        limit = self.size_limit
        if limit is not None and len(data) > limit:
            raise LimitError(
                f"message of {len(data)} octets exceeds the server's SIZE {limit}", requirement="RFC 1870 §6"
            )
        smtp = self._smtp
        use_dsn = dsn is not None and smtp.supports_extension("dsn")
        mail_options = [f"SIZE={len(data)}"] if smtp.supports_extension("size") else []
        if use_dsn and dsn is not None:
            mail_options += dsn.mail_options
        if smtp.supports_extension("8bitmime") and not data.isascii():
            mail_options.append("BODY=8BITMIME")
        async with self._lock:
            try:
                await smtp.mail(sender, options=mail_options)
            except aiosmtplib.SMTPException as exc:
                error = smtp_error(exc, "MAIL FROM")
                if isinstance(error, ConnectionClosed):
                    raise StaleSession(error.message, smtp_code=error.smtp_code) from exc
                raise error from exc
            accepted: list[str] = []
            refused: list[tuple[str, str]] = []
            for recipient in recipients:
                options = list(dsn.for_recipient(recipient)) if use_dsn and dsn is not None else []
                try:
                    await smtp.rcpt(recipient, options=options)
                    accepted.append(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    refused.append((recipient, f"{exc.code} {exc.message.strip()[:200]}"))
                except aiosmtplib.SMTPException as exc:
                    raise smtp_error(exc, "RCPT TO") from exc
            if not accepted:
                with contextlib.suppress(aiosmtplib.SMTPException):
                    await smtp.rset()
                detail = "; ".join(f"{r}: {reply}" for r, reply in refused)
                raise CommandFailed(f"every recipient was refused: {detail}"[:400])
            try:
                response = await smtp.data(data)
            except aiosmtplib.SMTPException as exc:
                raise smtp_error(exc, "DATA") from exc
        return SubmissionResult(
            accepted=tuple(accepted),
            refused=tuple(refused),
            reply=f"{response.code} {response.message.strip()[:200]}",
            dsn_requested=use_dsn,
        )

    async def quit(self, *, grace: float = 2.0) -> None:
        """QUIT politely (bounded), then close. Never raises.

        Raises:
            Nothing.
        """
        if self._smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, builtins.TimeoutError, OSError):
                await self._smtp.quit(timeout=grace)
        self._smtp.close()

    def abort(self) -> None:
        """Close at once.

        Raises:
            Nothing.
        """
        self._smtp.close()
