"""Parsing of ``MAIL FROM`` and ``RCPT TO`` arguments for the submission fronts.

Paths follow RFC 5321 §4.1.2 (``FROM:<path>``, angle brackets; a bare address is tolerated as
aiosmtpd does), parameters RFC 5321 §4.1.2 ``esmtp-param``. Recognised parameters:

* ``MAIL``: ``SIZE`` (RFC 1870 §6), ``BODY`` (RFC 6152), ``RET`` and ``ENVID`` (RFC 3461 §4.3,
  §4.4), ``AUTH`` (RFC 4954 §5, accepted and ignored);
* ``RCPT``: ``NOTIFY`` and ``ORCPT`` (RFC 3461 §4.1, §4.2).

Keys are case-insensitive, values keep their case (``ORCPT`` and ``ENVID`` carry addresses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from mssante.errors import MssanteError, RemoteProtocolError
from mssante.sandbox.fronts.dsn import decode_xtext

__all__ = ["MailRequest", "ParamError", "RcptRequest", "parse_mail", "parse_rcpt"]

_KEYWORD: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_VALUE: Final = re.compile(r"^[\x21-\x3c\x3e-\x7e]+$")
_ADDRESS: Final = re.compile(r"^[^\s<>@\"(),:;\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_NOTIFY: Final = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_MAX_ENVID: Final = 100  # RFC 3461 §4.4


class ParamError(MssanteError):
    """A ``MAIL`` or ``RCPT`` argument the front refuses; ``reply`` is the SMTP line to send."""

    fault = "peer"
    error = "smtp_param"

    def __init__(self, reply: str) -> None:
        """Refuse with the full reply line ``reply`` (code, enhanced code, text)."""
        super().__init__(reply, smtp_code=int(reply[:3]), enhanced_code=reply.split(" ")[1])
        self.reply = reply


@dataclass(frozen=True, kw_only=True)
class MailRequest:
    """A parsed ``MAIL FROM``; ``address`` is ``""`` for the null reverse-path."""

    address: str
    size: int | None = None
    body: str | None = None
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None

    def journal_options(self) -> dict[str, str | int]:
        """The parameters given, for the journal."""
        out: dict[str, str | int] = {}
        for key in ("size", "body", "ret", "envid"):
            value = getattr(self, key)
            if value is not None:
                out[key.upper()] = value
        return out


@dataclass(frozen=True, kw_only=True)
class RcptRequest:
    """A parsed ``RCPT TO``; ``notify`` is None when the client gave no ``NOTIFY``."""

    address: str
    notify: frozenset[str] | None = None
    orcpt: str | None = None

    def wants(self, event: Literal["SUCCESS", "FAILURE"]) -> bool:
        """Whether a DSN is due for ``event``; the default is FAILURE only (RFC 3461 §4.1)."""
        if self.notify is None:
            return event == "FAILURE"
        return event in self.notify


def _split(arg: str | None, keyword: str, syntax: str) -> tuple[str, dict[str, str | None]]:
    if arg is None or arg[: len(keyword)].upper() != keyword:
        raise ParamError(f"501 5.5.4 Syntax: {syntax}")
    rest = arg[len(keyword):].lstrip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            raise ParamError(f"501 5.5.4 Syntax: {syntax}")
        address, words = rest[1:end], rest[end + 1:]
        if words and not words.startswith(" "):
            raise ParamError(f"501 5.5.4 Syntax: {syntax}")
    else:
        address, _, words = rest.partition(" ")
    if address and not _ADDRESS.match(address):
        raise ParamError("553 5.1.3 Malformed address (RFC 5321 section 4.1.2)")
    params: dict[str, str | None] = {}
    for word in words.split():
        key, eq, value = word.partition("=")
        if not _KEYWORD.match(key) or (eq and not _VALUE.match(value)):
            raise ParamError(f"501 5.5.4 Malformed parameter {key[:40]!r} (RFC 5321 section 4.1.2)")
        if key.upper() in params:
            raise ParamError(f"501 5.5.4 Duplicate parameter {key.upper()}")
        params[key.upper()] = value if eq else None
    return address, params


def _xtext(name: str, value: str | None) -> str:
    if value is None:
        raise ParamError(f"501 5.5.4 {name} needs a value")
    try:
        return decode_xtext(value)
    except RemoteProtocolError:
        raise ParamError(f"501 5.5.4 {name} is not xtext (RFC 3461 section 4)") from None


def parse_mail(arg: str | None) -> MailRequest:
    """Parse the argument of ``MAIL`` (``FROM:<addr> [params]``).

    Raises:
        ParamError: bad syntax (``501``), bad address (``553``) or unknown parameter (``555``).
    """
    address, params = _split(arg, "FROM:", "MAIL FROM:<address> [SP <mail-parameters>]")
    size: int | None = None
    body = ret = envid = None
    for key, value in params.items():
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise ParamError("501 5.5.4 SIZE needs a number of octets (RFC 1870 section 6)")
            size = int(value)
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise ParamError("501 5.5.4 BODY must be 7BIT or 8BITMIME (RFC 6152)")
            body = value.upper()
        elif key == "RET":
            if value is None or value.upper() not in ("FULL", "HDRS"):
                raise ParamError("501 5.5.4 RET must be FULL or HDRS (RFC 3461 section 4.3)")
            ret = value.upper()
        elif key == "ENVID":
            envid = _xtext("ENVID", value)
            if len(value or "") > _MAX_ENVID:
                raise ParamError("501 5.5.4 ENVID longer than 100 characters (RFC 3461 section 4.4)")
        elif key != "AUTH":
            raise ParamError(f"555 5.5.4 MAIL FROM parameter {key[:40]} not recognized")
    return MailRequest(
        address=address, size=size, body=body, ret="FULL" if ret == "FULL" else "HDRS" if ret else None,
        envid=envid,
    )


def parse_rcpt(arg: str | None) -> RcptRequest:
    """Parse the argument of ``RCPT`` (``TO:<addr> [params]``).

    Raises:
        ParamError: bad syntax (``501``), bad address (``553``) or unknown parameter (``555``).
    """
    address, params = _split(arg, "TO:", "RCPT TO:<address> [SP <rcpt-parameters>]")
    if not address:
        raise ParamError("501 5.5.4 Syntax: RCPT TO:<address> [SP <rcpt-parameters>]")
    notify: frozenset[str] | None = None
    orcpt: str | None = None
    for key, value in params.items():
        if key == "NOTIFY":
            items = frozenset((value or "").upper().split(","))
            if items != {"NEVER"} and not (items and items <= _NOTIFY):
                raise ParamError("501 5.5.4 NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY (RFC 3461 section 4.1)")
            notify = frozenset() if items == {"NEVER"} else items
        elif key == "ORCPT":
            decoded = _xtext("ORCPT", value)
            kind, sep, addr = decoded.partition(";")
            if not sep or not kind or not addr:
                raise ParamError("501 5.5.4 ORCPT must be addr-type;xtext (RFC 3461 section 4.2)")
            orcpt = decoded
        else:
            raise ParamError(f"555 5.5.4 RCPT TO parameter {key[:40]} not recognized")
    return RcptRequest(address=address, notify=notify, orcpt=orcpt)
