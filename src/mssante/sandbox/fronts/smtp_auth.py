"""SMTP AUTH (RFC 4954) for the submission fronts, decided by :class:`AccessDecider`.

* PSC front: ``XOAUTH2`` and ``OAUTHBEARER`` (RFC 7628). A refusal follows RFC 7628 §3.2.2:
  the server sends the JSON error as a ``334`` challenge, the client answers (an empty line for
  XOAUTH2, ``AQ==`` i.e. ``%x01`` for OAUTHBEARER, RFC 7628 §3.2.3), then the final reply:
  ``535 5.7.8`` (credentials invalid), ``535 5.7.8`` with an authorization text, or
  ``454 4.7.0`` (temporary failure) — the RFC 4954 §6 codes, from :class:`~mssante.wire.AuthOutcome`.
* AUTH_CLI front: ``PLAIN`` (RFC 4616) whose authcid is the APP BAL, with the TLS client
  certificate checked by the decider; the password is ignored.

An initial response may be sent on the AUTH line (RFC 4954 §4); ``=`` means an empty one. The
line itself is limited by the session gate, not here. Answers to ``334`` may be up to 64 KiB.

Every answer to AUTH has its :class:`~mssante.wire.AuthOutcome`, which the journal keeps on the
session (with the reason as detail) and on the command.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from aiosmtpd.smtp import syntax

from mssante.sandbox.fronts.authz import AccessDecider, AccessDecision, FrontKind
from mssante.sandbox.fronts.faults import Faults, LiveSession
from mssante.sandbox.fronts.imap_sasl import SaslMalformed, json_error, parse_oauthbearer, parse_plain, parse_xoauth2
from mssante.sandbox.fronts.journal import Journal, SessionRecord
from mssante.sandbox.fronts.smtp_dispatch import Dispatcher
from mssante.sandbox.fronts.smtp_options import Replies, SubmissionOptions
from mssante.wire import AuthOutcome

__all__ = ["AuthMixin", "FrontContext"]

# RFC 7628 §3.2.2 "status": an OAuth error code for OAUTHBEARER; XOAUTH2 clients expect Google's HTTP-like codes.
_AUTHN, _AUTHZ = AuthOutcome.AUTHENTICATIONFAILED, AuthOutcome.AUTHORIZATIONFAILED
_UNAVAILABLE = AuthOutcome.UNAVAILABLE
_STATUS: Final[dict[str, dict[AuthOutcome, str]]] = {
    "OAUTHBEARER": {_AUTHN: "invalid_token", _AUTHZ: "insufficient_scope", _UNAVAILABLE: "temporarily_unavailable"},
    "XOAUTH2": {_AUTHN: "401", _AUTHZ: "403", _UNAVAILABLE: "503"},
}
_ACK: Final = {"XOAUTH2": b"", "OAUTHBEARER": b"\x01"}


@dataclass(kw_only=True)
class FrontContext:
    """What every connection of one front shares."""

    kind: FrontKind
    hostname: str
    ssl_context: ssl.SSLContext
    options: SubmissionOptions
    decider: AccessDecider
    journal: Journal
    faults: Faults
    dispatcher: Dispatcher
    sessions: set[Any] = field(default_factory=set)

    @property
    def journal_front(self) -> str:
        """The ``front`` of the journal records: ``smtp-psc`` or ``smtp-authcli``."""
        return f"smtp-{self.kind}"

    @property
    def mechanisms(self) -> tuple[str, ...]:
        """The SASL mechanisms advertised after STARTTLS."""
        return ("XOAUTH2", "OAUTHBEARER") if self.kind == "psc" else ("PLAIN",)


class AuthMixin:
    """The AUTH verb of :class:`~.smtp_session.SubmissionSession`."""

    if TYPE_CHECKING:
        _ctx: FrontContext
        _record: SessionRecord | None
        _reader: asyncio.StreamReader
        _tls_protocol: Any
        session: Any
        envelope: Any
        transport: Any

        async def push(self, status: str) -> None: ...

        def abort(self, graceful: bool) -> None: ...

    def _init_auth(self) -> None:
        self._bal: str | None = None
        self._live: LiveSession | None = None
        #: The outcome of the AUTH command in progress, journaled with it by the session's gate.
        self._auth_outcome: AuthOutcome | None = None

    def _note_auth_outcome(self, outcome: AuthOutcome, detail: str | None) -> None:
        """Journal the outcome of the current AUTH command (the record's, and the command's)."""
        self._auth_outcome = outcome
        if self._record is not None:
            self._ctx.journal.auth(self._record, outcome, detail)

    async def _auth_reply(self, outcome: AuthOutcome, detail: str, line: str | None = None) -> None:
        """Answer the AUTH command with ``outcome``'s reply (RFC 4954 §6), or ``line``, and journal it."""
        self._note_auth_outcome(outcome, detail)
        await self.push(line if line is not None else outcome.smtp.line())

    def _note_auth_attempt(self, arg: str | None, *, in_clear: bool) -> None:
        """Record the first attempt time, and credentials sent before TLS (an initial response)."""
        if self._record is None:
            return
        if self._record.auth_at is None:
            self._record.auth_at = time.time()
        if in_clear and arg is not None and len(arg.split()) >= 2:
            self._record.credentials_before_tls = True
        self._ctx.journal.update(self._record)

    def _forget_live(self) -> None:
        if self._live is not None:
            self._ctx.faults.unregister(self._live)
            self._live = None

    @syntax("AUTH <mechanism> [initial-response]")
    async def smtp_AUTH(self, arg: str | None) -> None:
        """AUTH (RFC 4954 §4) with the front's mechanisms."""
        malformed = AuthOutcome.MALFORMED
        if not self.session.host_name or not self.session.extended_smtp:
            await self._auth_reply(malformed, "AUTH before EHLO", Replies.SEND_EHLO)
            return
        if self.session.authenticated:
            await self._auth_reply(malformed, "already authenticated", "503 5.5.1 Already authenticated")
            return
        if self.envelope.mail_from:
            await self._auth_reply(malformed, "AUTH during a mail transaction",
                                   "503 5.5.1 AUTH not permitted during a mail transaction")
            return
        words = (arg or "").split()
        if not 1 <= len(words) <= 2:
            await self._auth_reply(malformed, "AUTH syntax", "501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        mechanism = words[0].upper()
        if mechanism not in self._ctx.mechanisms:
            await self._auth_reply(AuthOutcome.NOMECHANISM, f"{mechanism[:40]} is not offered on this front")
            return
        if self._record is not None:
            self._record.mechanism = mechanism
        if len(words) == 2:
            raw = await self._decode(words[1])
        else:
            raw = await self._challenge(b"")
        if raw is None:
            return
        if mechanism == "PLAIN":
            await self._plain(raw)
        else:
            await self._bearer(mechanism, raw)

    async def _decode(self, text: str) -> bytes | None:
        if text == "=":
            return b""
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            await self._auth_reply(AuthOutcome.MALFORMED, "not base64", Replies.AUTH_BASE64)
            return None

    async def _challenge(self, payload: bytes) -> bytes | None:
        """Send ``334 <base64>`` and return the decoded answer, or None once a reply was sent."""
        await self.push("334 " + base64.b64encode(payload).decode("ascii"))
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await self._drain(exc.consumed)
            await self._auth_reply(AuthOutcome.TOOBIG, "SASL response over the line limit")  # RFC 4954 §6
            return None
        except asyncio.IncompleteReadError:
            self.abort(graceful=True)
            return None
        text = line.rstrip(b"\r\n").decode("ascii", "replace").strip()
        if text == "*":
            await self._auth_reply(AuthOutcome.CANCELLED, "cancelled by the client")  # RFC 4954 §4
            return None
        return await self._decode(text) if text else b""

    async def _drain(self, consumed: int) -> None:
        await self._reader.read(consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.read(exc.consumed)

    async def _bearer(self, mechanism: str, raw: bytes) -> None:
        try:
            response = parse_xoauth2(raw) if mechanism == "XOAUTH2" else parse_oauthbearer(raw)
        except SaslMalformed as exc:
            await self._auth_reply(AuthOutcome.MALFORMED, exc.message,
                                   f"501 5.5.2 Malformed {mechanism} response: {exc.message}"[:200])
            return
        decision = await self._ctx.decider.bearer(self._ctx.kind, response.user, response.token)
        if decision.ok:
            await self._succeed(decision, None)
            return
        self._journal_decision(decision, None)
        challenge = json_error(_STATUS[mechanism][decision.code], self._ctx.options.bearer_scope)
        answer = await self._challenge(challenge)  # RFC 7628 §3.2.2
        if answer is None:
            return
        if answer != _ACK[mechanism] and self._record is not None:
            note = "unexpected client answer (RFC 7628 section 3.2.3)"
            self._ctx.journal.command(self._record, "<sasl-error-ack>", note)
        await self._auth_reply(decision.code, decision.reason)

    async def _plain(self, raw: bytes) -> None:
        try:
            response = parse_plain(raw)
        except SaslMalformed as exc:
            await self._auth_reply(AuthOutcome.MALFORMED, exc.message,
                                   f"501 5.5.2 Malformed PLAIN response: {exc.message}"[:200])
            return
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        decision, subject = await self._ctx.decider.certificate_plain(
            self._ctx.kind, response.authzid, response.authcid, der
        )
        if decision.ok:
            await self._succeed(decision, subject)
            return
        self._journal_decision(decision, subject)
        await self._auth_reply(decision.code, decision.reason)

    def _journal_decision(self, decision: AccessDecision, subject: str | None) -> None:
        if self._record is not None:
            self._record.identity = decision.identity
            self._record.bal = decision.bal
            if subject is not None:
                self._record.client_cert_subject = subject
        self._note_auth_outcome(decision.code, decision.reason)

    async def _succeed(self, decision: AccessDecision, subject: str | None) -> None:
        self.session.authenticated = True
        self._bal = decision.bal
        self._journal_decision(decision, subject)
        self._live = LiveSession(bal=decision.bal or "", front=self._ctx.journal_front, close=self._fault_close)
        self._ctx.faults.register(self._live)
        await self.push(Replies.AUTH_OK)

    async def _fault_close(self, mode: Literal["bye", "drop"]) -> None:
        """Close callback for :class:`Faults`: ``bye`` says ``421 4.4.2`` first, ``drop`` aborts."""
        self._live = None
        if mode == "bye":
            try:
                await self.push(Replies.BYE_FAULT)
            finally:
                self.abort(graceful=True)
        else:
            self.abort(graceful=False)
