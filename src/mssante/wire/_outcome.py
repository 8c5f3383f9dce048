"""The outcome of one authentication attempt: one vocabulary for the client, the fronts and the judge.

:class:`AuthOutcome` names what a server answered to ``AUTHENTICATE``/``LOGIN`` (IMAP) or
``AUTH`` (SMTP). Each outcome maps both ways to the wire and to :mod:`mssante.errors`:

=========================  ==============================  ===============================  ===================
outcome                    IMAP (RFC 3501 §6.2.2,          SMTP (RFC 4954 §6, RFC 3463)     error
                           RFC 5530 §3)
=========================  ==============================  ===============================  ===================
``OK``                     ``OK``                          ``235 2.7.0``                    —
``AUTHENTICATIONFAILED``   ``NO [AUTHENTICATIONFAILED]``   ``535 5.7.8``                    ``TokenRejected``
``AUTHORIZATIONFAILED``    ``NO [AUTHORIZATIONFAILED]``    ``535 5.7.8`` + RFC 5530 name    ``NotAuthorized``
                                                           (read: also ``5.7.1``)
``UNAVAILABLE``            ``NO [UNAVAILABLE]``            ``454 4.7.0``                    ``AuthUnavailable``
``PRIVACYREQUIRED``        ``NO [PRIVACYREQUIRED]``        ``530 5.7.0`` (read: also 538)   ``StartTLSError``
``CANCELLED``              ``BAD``                         ``501 5.7.0``                    ``AuthError``
``MALFORMED``              ``BAD``                         ``501 5.5.2`` (read: 501, 503)   ``AuthError``
``NOMECHANISM``            ``NO [CANNOT]``                 ``504 5.5.4``                    ``AuthError``
``TOOBIG``                 ``BAD [TOOBIG]``                ``500 5.5.6`` (read: "too long") ``AuthError``
=========================  ==============================  ===============================  ===================

The five RFC 5530 outcomes are what an LPS must react to (ref2 §2.4). The other four are what the
sandbox fronts answered before a decision could be made, kept so that the journal says it
without prose:

* ``CANCELLED``: the client cancelled the exchange with ``*`` (RFC 3501 §6.2.2, RFC 4954 §4);
* ``MALFORMED``: the command or the SASL message broke the syntax or the sequence (not base64,
  not the mechanism's format, AUTH during a mail transaction);
* ``NOMECHANISM``: the mechanism is not offered (on this front, or under no TLS);
* ``TOOBIG``: a SASL line over the server's limit, e.g. a PSC token sent as an SMTP initial
  response over the 512-octet command line (RFC 4954 §4, Dovecot): a limit, not a refusal.

Reading a reply is lossy where the wire is: IMAP has one ``BAD`` for a cancelled and a malformed
exchange (it reads as ``MALFORMED``), and SMTP has one ``535 5.7.8`` for authentication and
authorization (the RFC 5530 name or the word "authorization" in the text tells them apart, as
the sandbox and real operators write it). Replies outside the table read as ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from mssante.errors import AuthError, AuthUnavailable, MssanteError, NotAuthorized, StartTLSError, TokenRejected

__all__ = ["AuthOutcome", "SMTPReply", "enhanced_code", "outcome_from_imap", "outcome_from_smtp", "outcome_of_error"]


class AuthOutcome(StrEnum):
    """What the server answered to one authentication attempt (see the module table).

    A ``StrEnum``: the value is the name, which is also the RFC 5530 response code for the five
    outcomes that have one, so JSON and the journal hold plain strings.
    """

    OK = "OK"
    AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
    AUTHORIZATIONFAILED = "AUTHORIZATIONFAILED"
    UNAVAILABLE = "UNAVAILABLE"
    PRIVACYREQUIRED = "PRIVACYREQUIRED"
    CANCELLED = "CANCELLED"
    MALFORMED = "MALFORMED"
    NOMECHANISM = "NOMECHANISM"
    TOOBIG = "TOOBIG"

    @property
    def ok(self) -> bool:
        """True for :attr:`OK`."""
        return self is AuthOutcome.OK

    @property
    def imap_status(self) -> str:
        """The IMAP tagged status: ``OK``, ``NO`` or ``BAD`` (RFC 3501 §6.2.2)."""
        return _IMAP[self][0]

    @property
    def imap_code(self) -> str | None:
        """The IMAP response code (RFC 5530 §3, RFC 4469 ``TOOBIG``), or None."""
        return _IMAP[self][1]

    @property
    def imap_result(self) -> str:
        """Status and code as the journal records them: ``NO [AUTHENTICATIONFAILED]``."""
        status, code, _ = _IMAP[self]
        return status if code is None else f"{status} [{code}]"

    def imap_response(self, tag: bytes, text: str | None = None) -> bytes:
        """The tagged IMAP response line a server sends for this outcome, CRLF included.

        ``text`` replaces the default human text (it must be one line of ASCII).

        Raises:
            ValueError: ``text`` holds a line break or is not ASCII.
        """
        status, code, default = _IMAP[self]
        human = _one_line(default if text is None else text)
        head = tag + b" " + status.encode()
        if code is not None:
            head += b" [" + code.encode() + b"]"
        return head + b" " + human.encode("ascii") + b"\r\n"

    @property
    def smtp(self) -> SMTPReply:
        """The SMTP reply a server sends for this outcome (RFC 4954 §6, RFC 3463)."""
        return _SMTP[self]

    @property
    def error_type(self) -> type[MssanteError] | None:
        """The error a client raises for this outcome (None for :attr:`OK`)."""
        return _ERRORS[self]

    def error(
        self,
        detail: str,
        *,
        imap_code: str | None = None,
        smtp_code: int | None = None,
        enhanced_code: str | None = None,
    ) -> MssanteError:
        """The error a client raises for this refusal: ``"<summary>: <detail>"`` with the wire codes.

        ``detail`` is what the server said (cut to 200 characters); ``PRIVACYREQUIRED`` carries the
        requirement ECO.1.2.1 (no credential before TLS).

        Raises:
            ValueError: the outcome is :attr:`OK` (there is nothing to raise).
        """
        kind = _ERRORS[self]
        if kind is None:
            raise ValueError("OK is not an error")
        requirement = "ECO.1.2.1" if self is AuthOutcome.PRIVACYREQUIRED else None
        error = kind(f"{_SUMMARY[self]}: {detail.strip()[:200]}", requirement=requirement, imap_code=imap_code,
                     smtp_code=smtp_code, enhanced_code=enhanced_code)
        error.auth_outcome = self.value
        return error


@dataclass(frozen=True)
class SMTPReply:
    """One SMTP reply: code, enhanced status code (RFC 3463) and text."""

    code: int
    enhanced: str
    text: str

    def line(self, text: str | None = None) -> str:
        """``"535 5.7.8 Authentication credentials invalid"``; ``text`` replaces the default text.

        Raises:
            ValueError: ``text`` holds a line break or is not ASCII.
        """
        return f"{self.code} {self.enhanced} {_one_line(self.text if text is None else text)}"


def _one_line(text: str) -> str:
    if "\r" in text or "\n" in text or not text.isascii():
        raise ValueError("a reply text is one line of ASCII")
    return text


_O = AuthOutcome
#: outcome -> (IMAP status, response code, default text)
_IMAP: Final[dict[AuthOutcome, tuple[str, str | None, str]]] = {
    _O.OK: ("OK", None, "Authentication successful."),
    _O.AUTHENTICATIONFAILED: ("NO", "AUTHENTICATIONFAILED", "Authentication failed."),
    _O.AUTHORIZATIONFAILED: ("NO", "AUTHORIZATIONFAILED", "Not authorized on this BAL."),
    _O.UNAVAILABLE: ("NO", "UNAVAILABLE", "Authentication service unavailable, try again later."),
    _O.PRIVACYREQUIRED: ("NO", "PRIVACYREQUIRED", "Use STARTTLS before authenticating."),
    _O.CANCELLED: ("BAD", None, "Authentication cancelled."),
    _O.MALFORMED: ("BAD", None, "Malformed SASL response."),
    _O.NOMECHANISM: ("NO", "CANNOT", "Mechanism not offered."),
    _O.TOOBIG: ("BAD", "TOOBIG", "SASL line too long."),
}
_SMTP: Final[dict[AuthOutcome, SMTPReply]] = {
    _O.OK: SMTPReply(235, "2.7.0", "Authentication successful"),
    _O.AUTHENTICATIONFAILED: SMTPReply(535, "5.7.8", "Authentication credentials invalid"),
    _O.AUTHORIZATIONFAILED: SMTPReply(535, "5.7.8",
                                      "Authorization failed: not allowed on this BAL (AUTHORIZATIONFAILED)"),
    _O.UNAVAILABLE: SMTPReply(454, "4.7.0", "Temporary authentication failure"),
    _O.PRIVACYREQUIRED: SMTPReply(530, "5.7.0", "Must issue a STARTTLS command first"),
    _O.CANCELLED: SMTPReply(501, "5.7.0", "Authentication cancelled"),
    _O.MALFORMED: SMTPReply(501, "5.5.2", "Malformed SASL response"),
    _O.NOMECHANISM: SMTPReply(504, "5.5.4", "Unrecognized authentication type"),
    _O.TOOBIG: SMTPReply(500, "5.5.6", "Authentication Exchange line is too long"),
}
#: The start of a client error's message, per refusal.
_SUMMARY: Final[dict[AuthOutcome, str]] = {
    _O.OK: "authenticated",
    _O.AUTHENTICATIONFAILED: "credentials rejected",
    _O.AUTHORIZATIONFAILED: "not allowed on this mailbox",
    _O.UNAVAILABLE: "authentication temporarily unavailable",
    _O.PRIVACYREQUIRED: "the server wants TLS before authentication",
    _O.CANCELLED: "authentication cancelled",
    _O.MALFORMED: "the server found the authentication exchange malformed",
    _O.NOMECHANISM: "the server does not offer this SASL mechanism",
    _O.TOOBIG: "an authentication line is over the server's limit",
}
_ERRORS: Final[dict[AuthOutcome, type[MssanteError] | None]] = {
    _O.OK: None,
    _O.AUTHENTICATIONFAILED: TokenRejected,
    _O.AUTHORIZATIONFAILED: NotAuthorized,
    _O.UNAVAILABLE: AuthUnavailable,
    _O.PRIVACYREQUIRED: StartTLSError,
    _O.CANCELLED: AuthError,
    _O.MALFORMED: AuthError,
    _O.NOMECHANISM: AuthError,
    _O.TOOBIG: AuthError,
}
#: IMAP ``NO`` codes after AUTHENTICATE. No code at all is a credentials refusal (RFC 3501
#: §6.2.2 "NO - authenticate failure"); ``EXPIRED`` (RFC 5530 §3) is one too: a new token is needed.
_IMAP_NO: Final[dict[str | None, AuthOutcome]] = {
    None: _O.AUTHENTICATIONFAILED,
    "AUTHENTICATIONFAILED": _O.AUTHENTICATIONFAILED,
    "EXPIRED": _O.AUTHENTICATIONFAILED,
    "AUTHORIZATIONFAILED": _O.AUTHORIZATIONFAILED,
    "UNAVAILABLE": _O.UNAVAILABLE,
    "PRIVACYREQUIRED": _O.PRIVACYREQUIRED,
    "CANNOT": _O.NOMECHANISM,
}
_BY_VALUE: Final[dict[str | None, AuthOutcome]] = {o.value: o for o in AuthOutcome}
_BY_IMAP_CODE: Final[dict[str, AuthOutcome]] = {
    **{k: v for k, v in _IMAP_NO.items() if k is not None}, "TOOBIG": _O.TOOBIG}
# RFC 3463 §2: class "." subject "." detail, at the start of the reply text (RFC 2034 §4).
_ENHANCED: Final = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_AUTHORIZATION: Final = re.compile(r"authori[sz]", re.IGNORECASE)
_TOO_LONG: Final = re.compile(r"too long", re.IGNORECASE)


def outcome_from_imap(status: str, code: str | None = None) -> AuthOutcome | None:
    """Read the tagged answer to ``AUTHENTICATE``/``LOGIN``: status and response code.

    ``BAD [TOOBIG]`` is :attr:`~AuthOutcome.TOOBIG`, any other ``BAD`` is
    :attr:`~AuthOutcome.MALFORMED` (IMAP does not tell a cancelled exchange apart). A ``NO`` with
    a code outside RFC 5530's authentication codes is None.
    """
    status = status.upper()
    code = code.upper() if code is not None else None
    if status == "OK":
        return _O.OK
    if status == "NO":
        return _IMAP_NO.get(code)
    if status == "BAD":
        return _O.TOOBIG if code == "TOOBIG" else _O.MALFORMED
    return None


def enhanced_code(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of an SMTP reply text, or None."""
    m = _ENHANCED.match(text.strip())
    return ".".join(m.groups()) if m else None


def outcome_from_smtp(code: int, text: str = "") -> AuthOutcome | None:
    """Read the final reply to ``AUTH`` (RFC 4954 §6): reply code and text.

    ``535`` is :attr:`~AuthOutcome.AUTHORIZATIONFAILED` when the enhanced code is ``5.7.1`` or the
    text speaks of authorization (SMTP has no code of its own for it), else
    :attr:`~AuthOutcome.AUTHENTICATIONFAILED`. Codes outside the table are None.
    """
    enhanced = enhanced_code(text)
    if code == 235:
        return _O.OK
    if code == 535:
        return _O.AUTHORIZATIONFAILED if enhanced == "5.7.1" or _AUTHORIZATION.search(text) else _O.AUTHENTICATIONFAILED
    if code == 454:
        return _O.UNAVAILABLE
    if code in (530, 538):  # RFC 3207 §4 "Must issue a STARTTLS command first"; RFC 4954 §6 538 5.7.11
        return _O.PRIVACYREQUIRED
    if code == 501:
        return _O.CANCELLED if enhanced == "5.7.0" else _O.MALFORMED
    if code == 503:  # bad sequence: AUTH twice, before EHLO, during a transaction (RFC 4954 §4)
        return _O.MALFORMED
    if code == 504:
        return _O.NOMECHANISM
    if code == 500:  # RFC 5321 §4.2.4: 500 may mean "command line too long"
        return _O.TOOBIG if enhanced == "5.5.6" or _TOO_LONG.search(text) else _O.MALFORMED
    return None


#: Most specific first: StartTLSError is a TrustError, the others AuthError subclasses.
_ERROR_OUTCOMES: Final[tuple[tuple[type[MssanteError], AuthOutcome], ...]] = (
    (TokenRejected, _O.AUTHENTICATIONFAILED),
    (NotAuthorized, _O.AUTHORIZATIONFAILED),
    (AuthUnavailable, _O.UNAVAILABLE),
    (StartTLSError, _O.PRIVACYREQUIRED),
)


def outcome_of_error(error: BaseException) -> AuthOutcome | None:
    """The outcome an error of :mod:`mssante.errors` stands for, or None.

    ``TokenRejected`` → ``AUTHENTICATIONFAILED``, ``NotAuthorized`` → ``AUTHORIZATIONFAILED``,
    ``AuthUnavailable`` → ``UNAVAILABLE``, ``StartTLSError`` → ``PRIVACYREQUIRED``; an error made
    by :meth:`AuthOutcome.error` says its own (``auth_outcome``); another ``AuthError`` says it by
    the IMAP or SMTP code it carries, when it carries one.
    """
    if isinstance(error, MssanteError) and error.auth_outcome in _BY_VALUE:
        return _BY_VALUE[error.auth_outcome]
    for kind, outcome in _ERROR_OUTCOMES:
        if isinstance(error, kind):
            return outcome
    if not isinstance(error, AuthError):
        return None
    if error.imap_code is not None:
        return _BY_IMAP_CODE.get(error.imap_code.upper())
    if error.smtp_code is not None:
        return outcome_from_smtp(error.smtp_code, error.enhanced_code or "")
    return None
