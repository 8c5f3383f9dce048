"""Delivery status notification *requests* (RFC 3461): SMTP envelope parameters as data.

A DSN is asked for in the SMTP envelope, not in the message: ``MAIL FROM ... RET= ENVID=``
and ``RCPT TO ... NOTIFY= ORCPT=``. Composing a message therefore returns a
:class:`DSNParameters` value that the SMTP layer passes on (ECO.2.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mssante.errors import UsageError
from mssante.message._text import check_header_value

__all__ = ["DSNParameters", "DSNRequest", "xtext_decode", "xtext_encode"]

_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def xtext_encode(value: str) -> str:
    """Encode a value as RFC 3461 §4 ``xtext`` (``+XX`` for ``+``, ``=`` and non-printables).

    Raises:
        UsageError: the value is not ASCII (UTF-8 addresses need RFC 6533, unsupported).
    """
    if not value.isascii():
        raise UsageError(f"DSN parameter {value!r} is not ASCII", requirement="RFC 3461 §4")
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


def xtext_decode(value: str) -> str:
    """Decode RFC 3461 §4 ``xtext``; a malformed ``+`` escape is kept as is.

    Raises:
        MssanteError: none on purpose.
    """
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "+" and i + 2 < len(value) and all(c in "0123456789ABCDEFabcdef" for c in value[i + 1 : i + 3]):
            out.append(chr(int(value[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True, kw_only=True)
class DSNRequest:
    """What the sender asks for in delivery status notifications (RFC 3461, ECO.2.3.1).

    Attributes:
        notify: ``("NEVER",)`` or any of ``SUCCESS``, ``FAILURE``, ``DELAY`` (RFC 3461 §4.1).
        ret: ``"HDRS"`` (headers only, the default: a DSN should not carry health data back)
            or ``"FULL"``; ``None`` leaves the choice to the MTA (RFC 3461 §4.3).
        envid: envelope id (RFC 3461 §4.4, at most 100 characters); ``None`` uses the
            Message-ID without its angle brackets when it fits.
        orcpt: add ``ORCPT=rfc822;<address>`` to each recipient (RFC 3461 §4.2).

    Raises:
        UsageError: an invalid NOTIFY, RET or ENVID value.
        ContentError: the ENVID holds a control character.
    """

    notify: tuple[str, ...] = ("SUCCESS", "FAILURE", "DELAY")
    ret: Literal["FULL", "HDRS"] | None = "HDRS"
    envid: str | None = None
    orcpt: bool = True

    def __post_init__(self) -> None:
        notify = tuple(n.upper() for n in self.notify)
        valid = bool(notify) and set(notify) <= _NOTIFY_VALUES and len(set(notify)) == len(notify)
        if notify != ("NEVER",) and not valid:
            raise UsageError(
                f"NOTIFY must be NEVER or a set of SUCCESS, FAILURE, DELAY: {self.notify!r}",
                requirement="RFC 3461 §4.1",
            )
        object.__setattr__(self, "notify", notify)
        if self.ret not in (None, "FULL", "HDRS"):
            raise UsageError(f"RET must be FULL or HDRS: {self.ret!r}", requirement="RFC 3461 §4.3")
        if self.envid is not None:
            check_header_value(self.envid, what="ENVID")
            if not self.envid or len(self.envid) > 100 or not self.envid.isascii():
                raise UsageError("ENVID must be 1 to 100 ASCII characters", requirement="RFC 3461 §4.4")


@dataclass(frozen=True, kw_only=True)
class DSNParameters:
    """ESMTP parameters for the SMTP layer (RFC 3461 §4).

    Attributes:
        mail_options: parameters for ``MAIL FROM`` (``RET=``, ``ENVID=``).
        rcpt_options: per recipient address, the parameters for its ``RCPT TO``
            (``NOTIFY=``, ``ORCPT=``), in recipient order.
    """

    mail_options: tuple[str, ...]
    rcpt_options: tuple[tuple[str, tuple[str, ...]], ...]

    def for_recipient(self, address: str) -> tuple[str, ...]:
        """The ``RCPT TO`` parameters of one recipient (empty when unknown).

        Raises:
            MssanteError: none on purpose.
        """
        for recipient, options in self.rcpt_options:
            if recipient == address:
                return options
        return ()


def dsn_parameters(request: DSNRequest, *, message_id: str, recipients: tuple[str, ...]) -> DSNParameters:
    """Turn a :class:`DSNRequest` into envelope parameters for one message.

    Raises:
        UsageError: a recipient address or the envelope id is not ASCII.
    """
    mail: list[str] = []
    if request.ret is not None:
        mail.append(f"RET={request.ret}")
    envid = request.envid if request.envid is not None else message_id.strip("<>")
    if envid and len(envid) <= 100:
        mail.append(f"ENVID={xtext_encode(envid)}")
    rcpt: list[tuple[str, tuple[str, ...]]] = []
    for address in recipients:
        options = [f"NOTIFY={','.join(request.notify)}"]
        if request.orcpt:
            options.append(f"ORCPT=rfc822;{xtext_encode(address)}")
        rcpt.append((address, tuple(options)))
    return DSNParameters(mail_options=tuple(mail), rcpt_options=tuple(rcpt))
