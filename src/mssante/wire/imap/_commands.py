"""Client commands (RFC 3501 §6 and extensions) as frozen, validated dataclasses.

You cannot build an invalid command: arguments are checked in ``__post_init__`` (h11
``_events.py`` habit) and :class:`LocalProtocolError` names the rule. Secrets (passwords, SASL
initial responses) are excluded from ``repr``.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from mssante.errors import LocalProtocolError
from mssante.secret import Secret

from ._abnf import ATOM, SASL_MECH
from ._serializer import Ctx, Lit, Part, Str, check_string, date_time_text, flag_list, mailbox

__all__ = [
    "Append",
    "Authenticate",
    "Capability",
    "Close",
    "Command",
    "Enable",
    "Examine",
    "Expunge",
    "Id",
    "Idle",
    "ListMailboxes",
    "Login",
    "Logout",
    "Noop",
    "Select",
    "StartTLS",
    "Status",
    "Unselect",
    "atoms",
]


class Command:
    """Base of all commands. ``name`` is the command keyword; ``requires`` a capability."""

    name: ClassVar[str]
    requires: ClassVar[str | None] = None

    def parts(self, ctx: Ctx) -> list[Part]:
        """Arguments after the command name (each starting with its SP)."""
        return []


def atoms(values: Sequence[str], what: str) -> list[bytes]:
    out = []
    for value in values:
        raw = value.encode("ascii", "replace")
        if ATOM.fullmatch(raw) is None:
            raise LocalProtocolError(f"{what} must be an atom: {value!r}")
        out.append(raw)
    return out


def _utf8(value: str | Secret) -> bytes:
    raw = (value.reveal() if isinstance(value, Secret) else value).encode("utf-8")
    check_string(raw)
    return raw


@dataclass(frozen=True, kw_only=True)
class Capability(Command):
    """``CAPABILITY`` (RFC 3501 §6.1.1)."""

    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, kw_only=True)
class Noop(Command):
    """``NOOP`` (RFC 3501 §6.1.2)."""

    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, kw_only=True)
class Logout(Command):
    """``LOGOUT`` (RFC 3501 §6.1.3)."""

    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, kw_only=True)
class StartTLS(Command):
    """``STARTTLS`` (RFC 3501 §6.2.1); see :meth:`ClientConnection.tls_established`."""

    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, kw_only=True)
class Authenticate(Command):
    """``AUTHENTICATE mechanism [initial-response]`` (RFC 3501 §6.2.2, RFC 4959).

    The SASL mechanism is opaque here: ``initial_response`` is sent inline if the server
    advertises SASL-IR, else on the first empty challenge (see ``Continuation``).

    Raises:
        LocalProtocolError: ``mechanism`` is not a SASL mechanism name (RFC 4422 §3.1).
    """

    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str
    initial_response: bytes | Secret | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if SASL_MECH.match(self.mechanism.upper().encode("ascii", "replace")) is None:
            raise LocalProtocolError("not a SASL mechanism name (RFC 4422 §3.1)")

    def initial_bytes(self) -> bytes | None:
        """The initial response as octets."""
        if isinstance(self.initial_response, Secret):
            return self.initial_response.reveal().encode("utf-8")
        return self.initial_response

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP mechanism [SP (base64 / "=")]``."""
        out: list[Part] = [b" " + self.mechanism.upper().encode()]
        initial = self.initial_bytes()
        if ctx.sasl_ir and initial is not None:
            # RFC 4959 §3: an empty initial response is sent as "=".
            out.append(b" " + (base64.b64encode(initial) or b"="))
        return out


@dataclass(frozen=True, kw_only=True)
class Login(Command):
    """``LOGIN userid password`` (RFC 3501 §6.2.3); strings go as quoted or literal.

    Raises:
        LocalProtocolError: a NUL in the user name or the password.
    """

    name: ClassVar[str] = "LOGIN"
    username: str
    password: str | Secret = field(repr=False)

    def __post_init__(self) -> None:
        _utf8(self.username)
        _utf8(self.password)

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP astring SP astring``."""
        return [b" ", Str(_utf8(self.username)), b" ", Str(_utf8(self.password))]


@dataclass(frozen=True, kw_only=True)
class _MailboxCommand(Command):
    mailbox: str | bytes

    def __post_init__(self) -> None:
        mailbox(self.mailbox)

    def parts(self, ctx: Ctx) -> list[Part]:
        return [b" ", mailbox(self.mailbox, ctx.utf8)]


@dataclass(frozen=True, kw_only=True)
class Select(_MailboxCommand):
    """``SELECT mailbox`` (RFC 3501 §6.3.1).

    Raises:
        LocalProtocolError: the mailbox name cannot be encoded.
    """

    name: ClassVar[str] = "SELECT"


@dataclass(frozen=True, kw_only=True)
class Examine(_MailboxCommand):
    """``EXAMINE mailbox`` (RFC 3501 §6.3.2), read-only SELECT.

    Raises:
        LocalProtocolError: the mailbox name cannot be encoded.
    """

    name: ClassVar[str] = "EXAMINE"


@dataclass(frozen=True, kw_only=True)
class ListMailboxes(Command):
    """``LIST reference pattern [RETURN (SPECIAL-USE)]`` (RFC 3501 §6.3.8, RFC 6154 §5.1).

    Raises:
        LocalProtocolError: a name cannot be encoded.
    """

    name: ClassVar[str] = "LIST"
    reference: str = ""
    pattern: str = "*"
    special_use: bool = False

    def __post_init__(self) -> None:
        mailbox(self.reference)
        mailbox(self.pattern)

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP mailbox SP list-mailbox [SP "RETURN (SPECIAL-USE)"]``."""
        pattern = mailbox(self.pattern, ctx.utf8).value
        out: list[Part] = [b" ", mailbox(self.reference, ctx.utf8), b" ", Str(pattern, list_mailbox=True)]
        if self.special_use:
            out.append(b" RETURN (SPECIAL-USE)")
        return out


@dataclass(frozen=True, kw_only=True)
class Status(_MailboxCommand):
    """``STATUS mailbox (items)`` (RFC 3501 §6.3.10).

    Raises:
        LocalProtocolError: an item is not an atom, or the name cannot be encoded.
    """

    name: ClassVar[str] = "STATUS"
    items: tuple[str, ...] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.items:
            raise LocalProtocolError("STATUS needs at least one item")
        atoms(self.items, "a STATUS item")

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP mailbox SP "(" status-att *(SP status-att) ")"``."""
        return [*super().parts(ctx), b" (" + b" ".join(atoms(self.items, "a STATUS item")).upper() + b")"]


@dataclass(frozen=True, kw_only=True)
class Append(_MailboxCommand):
    """``APPEND mailbox [(flags)] [date-time] literal`` (RFC 3501 §6.3.11).

    The message goes as a synchronizing literal (wait for ``+``, then ``send_literal()``), or
    non-synchronizing under LITERAL+/LITERAL- (RFC 7888). A message holding NUL needs BINARY
    (``~{n}``, RFC 3516 §4.4).

    Raises:
        LocalProtocolError: bad flags, naive date, or a bad mailbox name.
    """

    name: ClassVar[str] = "APPEND"
    message: bytes = field(repr=False)
    flags: tuple[str, ...] = ()
    internaldate: dt.datetime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        flag_list(self.flags)
        if self.internaldate is not None:
            date_time_text(self.internaldate)

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP mailbox [SP flag-list] [SP date-time] SP literal``."""
        out: list[Part] = [*super().parts(ctx)]
        if self.flags:
            out.append(b" " + flag_list(self.flags))
        if self.internaldate is not None:
            out.append(b" " + date_time_text(self.internaldate))
        binary = b"\x00" in self.message
        if binary and not ctx.binary:
            raise LocalProtocolError("message holds NUL: APPEND needs the BINARY extension (RFC 3516)")
        return [*out, b" ", Lit(self.message, binary=binary)]


@dataclass(frozen=True, kw_only=True)
class Expunge(Command):
    """``EXPUNGE`` (RFC 3501 §6.4.3)."""

    name: ClassVar[str] = "EXPUNGE"


@dataclass(frozen=True, kw_only=True)
class Close(Command):
    """``CLOSE`` (RFC 3501 §6.4.2): expunge silently and leave the selected state."""

    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, kw_only=True)
class Unselect(Command):
    """``UNSELECT`` (RFC 3691): leave the selected state without expunging."""

    name: ClassVar[str] = "UNSELECT"
    requires: ClassVar[str | None] = "UNSELECT"


@dataclass(frozen=True, kw_only=True)
class Idle(Command):
    """``IDLE`` (RFC 2177); end it with :meth:`ClientConnection.idle_done`."""

    name: ClassVar[str] = "IDLE"
    requires: ClassVar[str | None] = "IDLE"


@dataclass(frozen=True, kw_only=True)
class Enable(Command):
    """``ENABLE capability...`` (RFC 5161 §3.1).

    Raises:
        LocalProtocolError: no capability, or one that is not an atom.
    """

    name: ClassVar[str] = "ENABLE"
    requires: ClassVar[str | None] = "ENABLE"
    capabilities: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.capabilities:
            raise LocalProtocolError("ENABLE needs at least one capability")
        atoms(self.capabilities, "an ENABLE capability")

    def parts(self, ctx: Ctx) -> list[Part]:
        """``1*(SP capability)``."""
        return [b" " + b" ".join(atoms(self.capabilities, "capability")).upper()]


@dataclass(frozen=True, kw_only=True)
class Id(Command):
    """``ID ("key" "value" ...)`` or ``ID NIL`` (RFC 2971 §3.1).

    Raises:
        LocalProtocolError: more than 30 pairs, or a string over 1024 octets (RFC 2971 §3.3),
            or a NUL.
    """

    name: ClassVar[str] = "ID"
    requires: ClassVar[str | None] = "ID"
    params: tuple[tuple[str, str | None], ...] | None = None

    def __post_init__(self) -> None:
        if self.params is None:
            return
        if len(self.params) > 30:
            raise LocalProtocolError("ID allows at most 30 field-value pairs (RFC 2971 §3.3)")
        for key, value in self.params:
            for text in (key, value or ""):
                raw = _utf8(text)
                if len(raw) > 1024:
                    raise LocalProtocolError("ID strings are at most 1024 octets (RFC 2971 §3.3)")

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP ("(" string SP nstring ... ")" / nil)``."""
        if not self.params:
            return [b" NIL"]
        out: list[Part] = [b" ("]
        for i, (key, value) in enumerate(self.params):
            out += [b" " if i else b"", Str(_utf8(key), astring=False), b" "]
            out.append(b"NIL" if value is None else Str(_utf8(value), astring=False))
        return [*out, b")"]
