"""Settings and reply texts of the sandbox submission fronts (see :mod:`.smtp`).

Every strictness a real operator may or may not have is a switch here, with the default the
sandbox ships (chosen to catch client bugs that real operators would punish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from mssante._i18n import Lang
from mssante.errors import ConfigError
from mssante.wire import AuthOutcome

__all__ = ["DEFAULT_MAX_SIZE", "RecipientPolicy", "Replies", "SubmissionOptions"]

#: 25 MiB: the total size MES accepts (ref2-requirements §5.6); advertised as ``SIZE`` (RFC 1870).
DEFAULT_MAX_SIZE: Final = 25 * 1024 * 1024

#: What to do with a recipient the sandbox cannot deliver to.
#: ``"refuse"``: answer the ``RCPT`` at once (``550``); ``"bounce"``: accept it, then send the
#: sender a failure DSN (RFC 3464) in its INBOX.
RecipientPolicy = Literal["refuse", "bounce"]


class Replies:
    """The reply lines the fronts send; client libraries may rely on these texts.

    The AUTH answers are :class:`~mssante.wire.AuthOutcome`'s replies. Codes and enhanced codes:
    RFC 4954 §6 (AUTH), RFC 3207 §4 (STARTTLS), RFC 1870 §6 (SIZE),
    RFC 6409 §6.1 (sender ownership), RFC 5321 §4.2 and RFC 3463 (everything else).
    """

    STARTTLS_FIRST: Final = AuthOutcome.PRIVACYREQUIRED.smtp.line()
    AUTH_FIRST: Final = "530 5.7.0 Authentication required"
    AUTH_OK: Final = AuthOutcome.OK.smtp.line()
    AUTH_INVALID: Final = AuthOutcome.AUTHENTICATIONFAILED.smtp.line()
    AUTHZ_FAILED: Final = AuthOutcome.AUTHORIZATIONFAILED.smtp.line()
    AUTH_TEMPFAIL: Final = AuthOutcome.UNAVAILABLE.smtp.line()
    AUTH_MECH: Final = AuthOutcome.NOMECHANISM.smtp.line()
    AUTH_CANCELLED: Final = AuthOutcome.CANCELLED.smtp.line()
    AUTH_BASE64: Final = AuthOutcome.MALFORMED.smtp.line("Cannot decode base64")
    AUTH_EXCHANGE_TOO_LONG: Final = AuthOutcome.TOOBIG.smtp.line()
    LINE_TOO_LONG: Final = "500 5.5.2 Line too long"
    #: RFC 4954 §4: the initial response must fit the 512-octet command line; else send ``AUTH <mech>``
    #: alone and the response after ``334`` (what Dovecot expects too).
    AUTH_LINE_TOO_LONG: Final = ("500 5.5.2 Line too long: send AUTH <mechanism> alone, then the initial response "
                                 "after 334 (RFC 4954 section 4)")
    SEND_EHLO: Final = "503 5.5.1 Error: send EHLO first"
    SENDER_NOT_OWNED: Final = "553 5.7.1 Sender address not owned by the authenticated user"
    TOO_BIG: Final = "552 5.3.4 Message size exceeds fixed maximum message size"
    UNKNOWN_USER: Final = "550 5.1.1 Recipient address rejected: user unknown"
    RELAY_DENIED: Final = "550 5.7.1 Relay access denied"
    TOO_MANY_RCPT: Final = "452 4.5.3 Too many recipients"
    #: DATA after every RCPT was refused (RFC 5321 §3.3, RFC 2920 §3.1); Postfix's text.
    NO_VALID_RCPT: Final = "554 5.5.1 Error: no valid recipients"
    NEED_RCPT: Final = "503 5.5.1 Error: need RCPT command"
    NEED_MAIL: Final = "503 5.5.1 Error: need MAIL command"
    #: RFC 3030 §2: a chunk size that is not a number, or words after it other than ``LAST``. The
    #: chunk's end is then unknown, so the stream cannot be followed: the connection is closed
    #: after this reply, as Postfix does.
    BDAT_SYNTAX: Final = "521 5.5.4 Syntax: BDAT count [LAST]"
    #: ``BDAT`` while ``CHUNKING`` is off (``chunking=False``); the chunk is still read.
    BDAT_OFF: Final = "502 5.5.1 Error: BDAT not offered (no CHUNKING in EHLO)"
    #: RFC 3030 §2: ``BDAT 0`` without ``LAST`` carries nothing (Postfix's refusal).
    BDAT_NULL: Final = "551 5.7.1 Null BDAT request"
    #: RFC 3030 §2: chunks already in the pipeline after a refused one are read and discarded.
    BDAT_AFTER_FAILURE: Final = "503 5.5.1 Error: BDAT after a refused chunk: send RSET (RFC 3030 section 2)"
    #: RFC 3030 §3: DATA and BDAT cannot be mixed in one transaction (Postfix's texts).
    DATA_AFTER_BDAT: Final = "503 5.5.1 Error: DATA after BDAT"
    MAIL_AFTER_BDAT: Final = "503 5.5.1 Error: MAIL after BDAT"
    RCPT_AFTER_BDAT: Final = "503 5.5.1 Error: RCPT after BDAT"
    BYE_FAULT: Final = "421 4.4.2 Connection closed by the operator"


@dataclass(frozen=True, kw_only=True)
class SubmissionOptions:
    """Behaviour switches of a submission front.

    Attributes:
        max_size: largest message accepted, in octets (RFC 1870); advertised in ``EHLO``,
            checked on ``MAIL FROM ... SIZE=`` and on the data actually received.
        strict_ehlo_after_starttls: require a new ``EHLO`` after STARTTLS (RFC 3207 §4.2 says the
            client SHOULD send one; aiosmtpd enforces it with ``503``, Dovecot and Postfix do not).
            On by default: it catches clients (e.g. aiosmtplib users) that forget to re-EHLO.
        auth_line_limit: octets allowed on the ``AUTH`` command line including CRLF. 512 is the
            RFC 5321 §4.5.3.1.4 command line limit that RFC 4954 §4 keeps for AUTH, and what
            Dovecot submission enforces: a long token sent as an initial response gets
            ``500 5.5.2 Line too long``; the same token after ``334`` passes. ``None``: no limit
            below the 64 KiB read buffer.
        command_line_limit: octets allowed on other command lines (MAIL and RCPT carry DSN
            parameters, so this is wider than 512).
        max_line_length: longest text line in DATA, CRLF included (RFC 5321 §4.5.3.1.6), or
            ``None`` for no check below the 64 KiB read buffer.
        max_recipients: ``RCPT`` commands accepted per message (RFC 5321 §4.5.3.1.8).
        unknown_recipients: local-domain address without a BAL: ``"refuse"`` (default, what a
            Postfix with ``reject_unlisted_recipient`` does) or ``"bounce"``.
        foreign_recipients: address outside the sandbox domain: ``"refuse"`` (default,
            ``550 5.7.1 Relay access denied``: the sandbox reaches no other operator) or
            ``"bounce"`` (failure DSN with ``5.4.4``, as a relaying operator that cannot route).
        bounce_domains: foreign domains always accepted then bounced, whatever
            ``foreign_recipients`` says: those a real operator relays to and the sandbox cannot
            reach, Mon espace santé (``<INS>@patient.mssante.fr``, ECO.2.2.6) by default; the
            submission is journaled, so the conformance suite can judge a message to a patient.
        pipelining: advertise ``PIPELINING`` (RFC 2920) in the ``EHLO`` answer after STARTTLS, as
            Postfix does. Commands are always read and answered in order, so a client that
            pipelines anyway is served; this only says whether the client may.
        chunking: advertise ``CHUNKING`` (RFC 3030) after STARTTLS and accept ``BDAT``, as Postfix
            does since 3.4 (MailKit then sends every message with ``BDAT``). ``BINARYMIME`` is
            not offered (neither does Postfix): the IMAP side could not serve binary bodies.
            Off: not advertised, and a ``BDAT`` gets ``502`` (its chunk still read).
        copy_to_sent: also store the submitted message in the sender's ``Sent`` folder. Off by
            default: real operators mostly do not, and the client library appends to Sent itself.
        responder_limit: at most this many responder answers per responder address ...
        responder_window: ... within this many seconds (loop guard backstop, RFC 3834 §2).
        timeout: idle seconds before the server closes a connection.
        hostname: the name in the greeting, ``Received:`` and DSNs; default
            ``smtp.<front>.<domain>``.
        bearer_scope: the ``scope`` of the RFC 7628 §3.2.2 JSON error challenge.
        report_lang: language of the DSNs' subject and text (``fr`` by default, or ``en``).
    """

    max_size: int = DEFAULT_MAX_SIZE
    strict_ehlo_after_starttls: bool = True
    auth_line_limit: int | None = 512
    command_line_limit: int = 2048
    max_line_length: int | None = 1000
    max_recipients: int = 100
    unknown_recipients: RecipientPolicy = "refuse"
    foreign_recipients: RecipientPolicy = "refuse"
    bounce_domains: tuple[str, ...] = ("patient.mssante.fr",)
    pipelining: bool = True
    chunking: bool = True
    copy_to_sent: bool = False
    responder_limit: int = 10
    responder_window: float = 60.0
    timeout: float = 300.0
    hostname: str | None = None
    bearer_scope: str = "openid scope_all"
    report_lang: Lang = "fr"

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ConfigError("max_size must be a positive number of octets")
        if self.auth_line_limit is not None and self.auth_line_limit < 16:
            raise ConfigError("auth_line_limit must be at least 16 octets, or None")
        if self.command_line_limit < 512:
            raise ConfigError("command_line_limit must be at least 512 (RFC 5321 §4.5.3.1.4)")
        if self.max_line_length is not None and self.max_line_length < 80:
            raise ConfigError("max_line_length must be at least 80, or None")
        if self.max_recipients < 1 or self.responder_limit < 0 or self.responder_window <= 0:
            raise ConfigError("max_recipients, responder_limit and responder_window must be positive")
        for name in ("unknown_recipients", "foreign_recipients"):
            if getattr(self, name) not in ("refuse", "bounce"):
                raise ConfigError(f"{name} must be 'refuse' or 'bounce'")
        if self.timeout <= 0:
            raise ConfigError("timeout must be positive")
