"""pymap's connection state, adapted to the sandbox: no loopback trust, front capabilities, SPECIAL-USE.

pymap's :class:`~pymap.imap.state.ConnectionState` offers its post-TLS mechanisms to loopback
peers without STARTTLS (``do_greeting``); every sandbox test runs on loopback, so that trust is
removed here: before STARTTLS the capability is ``STARTTLS LOGINDISABLED`` and no ``AUTH=``
(RFC 3501 §6.2.1, §7.2.1), whatever the peer. After STARTTLS it lists the front's mechanisms
and ``SASL-IR`` (RFC 4959 §3); after authentication it adds ``SPECIAL-USE`` (RFC 6154) to
pymap's IMAP4rev1, IDLE, UIDPLUS, MOVE... capabilities.

RFC 6154 §2: LIST responses carry ``\\Sent``, ``\\Drafts`` and ``\\Trash`` on the matching
folders; ``LIST (SPECIAL-USE) ...`` (selection option, §5.3) lists only them, and
``RETURN (SPECIAL-USE)`` is accepted (the attributes are always returned anyway).

pymap 0.36.7's modified UTF-7 decoder loops forever on an unterminated shift (a mailbox name
such as ``"&Jjo"``), which would freeze the whole event loop; importing this module replaces
it, in the two pymap parsing modules that call it, by a checked version that refuses such
names (``BAD``, RFC 3501 §5.1.3).
"""

from __future__ import annotations

import re
from typing import Any, Final

import pymap.parsing.command.auth as _pymap_auth
import pymap.parsing.specials.mailbox as _pymap_mailbox
from pymap.imap.state import ConnectionState
from pymap.parsing import EndLine, Params, Space
from pymap.parsing.command.auth import ListCommand
from pymap.parsing.exceptions import NotParseable
from pymap.parsing.modutf7 import modutf7_decode as _pymap_modutf7_decode
from pymap.parsing.primitives import String
from pymap.parsing.response import CommandResponse, ResponseOk
from pymap.parsing.response.code import Capability
from pymap.parsing.response.specials import ListResponse, LSubResponse
from pymap.parsing.specials import Mailbox

from mssante.sandbox.fronts.authz import FrontKind
from mssante.sandbox.fronts.store import SPECIAL_USE

__all__ = ["FRONT_MECHANISMS", "FrontState", "ListExtendedCommand"]

#: SASL mechanisms offered after STARTTLS, per front (EX_LPS_0300 fronts; §2.2 / §2.3 of the requirements).
FRONT_MECHANISMS: Final[dict[FrontKind, tuple[bytes, ...]]] = {
    "psc": (b"XOAUTH2", b"OAUTHBEARER"),
    "authcli": (b"PLAIN",),
}

# RFC 3501 §5.1.3: "&" starts a base64 shift that "-" must end; "&-" is a literal "&".
_MODUTF7: Final = re.compile(rb"(?:[^&]|&-|&[A-Za-z0-9+,]+-)*", re.DOTALL)


def modutf7_decode(data: bytes) -> str:
    """Decode a modified UTF-7 mailbox name, refusing malformed ones instead of looping.

    Raises:
        NotParseable: unterminated or invalid shift (pymap turns it into ``BAD``).
    """
    if not _MODUTF7.fullmatch(data):
        raise NotParseable(memoryview(data))
    try:
        return _pymap_modutf7_decode(data)
    except UnicodeError:
        raise NotParseable(memoryview(data)) from None


for _module in (_pymap_auth, _pymap_mailbox):
    setattr(_module, "modutf7_decode", modutf7_decode)  # noqa: B010 - the name is not exported

_OPTIONS: Final = re.compile(rb"\(([A-Za-z0-9 -]*)\)")
_SELECT_OPTIONS: Final = frozenset({b"SPECIAL-USE"})
_RETURN_OPTIONS: Final = frozenset({b"SPECIAL-USE", b"CHILDREN"})


def _options(buf: memoryview, allowed: frozenset[bytes]) -> tuple[frozenset[bytes], memoryview]:
    match = _OPTIONS.match(bytes(buf))
    if match is None:
        raise NotParseable(buf)
    opts = frozenset(o.upper() for o in match.group(1).split())
    if not opts <= allowed:
        raise NotParseable(buf)
    return opts, buf[match.end(0):]


class ListExtendedCommand(ListCommand):
    """``LIST [(SPECIAL-USE)] ref pattern [RETURN (SPECIAL-USE)]`` (RFC 5258 §3 subset, RFC 6154 §5.3)."""

    def __init__(self, tag: bytes, ref_name: str, filter_: str, *, special_use_only: bool = False) -> None:
        """Build the command (called by the parser); never raises."""
        super().__init__(tag, ref_name, filter_)
        self.special_use_only = special_use_only

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[ListExtendedCommand, memoryview]:
        """Parse the LIST arguments; unknown options give ``BAD`` (RFC 5258 §3).

        Raises:
            NotParseable: pymap's parse failure.
        """
        _, buf = Space.parse(buf, params)
        selection: frozenset[bytes] = frozenset()
        if bytes(buf[:1]) == b"(":
            selection, buf = _options(buf, _SELECT_OPTIONS)
            _, buf = Space.parse(buf, params)
        ref_name, buf = Mailbox.parse(buf, params)
        _, buf = Space.parse(buf, params)
        match = cls._list_mailbox_pattern.match(buf)
        if match:
            filter_ = modutf7_decode(match.group(0))
            buf = buf[match.end(0):]
        else:
            filter_str, buf = String.parse(buf, params)
            filter_ = modutf7_decode(filter_str.value)
        if bytes(buf[:8]).upper() == b" RETURN ":
            _, buf = _options(buf[8:], _RETURN_OPTIONS)
        _, buf = EndLine.parse(buf, params)
        return cls(params.tag, ref_name.value, filter_, special_use_only=b"SPECIAL-USE" in selection), buf


class FrontState(ConnectionState):
    """The per-connection state of a sandbox IMAP front."""

    def __init__(self, login: Any, config: Any, front: FrontKind) -> None:
        """Start unauthenticated and without TLS; never raises."""
        super().__init__(login, config)
        self.front: FrontKind = front
        self.tls = False

    @property
    def authenticated(self) -> bool:
        """True once a mailbox session is open (never raises)."""
        return self._session is not None

    @property
    def capability(self) -> Capability:
        """The CAPABILITY list for the current step (RFC 3501 §7.2.1, RFC 4959 §3, RFC 6154 §5); never raises."""
        caps = list(self._capability)
        if self._session is None:
            if not self.tls:
                caps.append(b"LOGINDISABLED")
            else:
                caps.append(b"SASL-IR")
                caps.extend(b"AUTH=" + mech for mech in FRONT_MECHANISMS[self.front])
                if self.front == "psc":
                    caps.append(b"LOGINDISABLED")
        return Capability(caps)

    async def do_greeting(self) -> CommandResponse:
        """Greet without pymap's loopback trust (no post-TLS mechanisms before STARTTLS); never raises."""
        return ResponseOk(b"*", b"MSSante sandbox IMAP (" + self.front.encode() + b" front) ready.", self.capability)

    def open_session(self, session: Any) -> None:
        """Attach the mailbox session opened after a granted authentication; never raises."""
        self._session = session
        self._capability.extend(self.config.login_capability)
        self._capability.append(b"SPECIAL-USE")

    async def do_list(self, cmd: ListCommand) -> tuple[CommandResponse, Any]:
        """LIST / LSUB with RFC 6154 §2 special-use attributes on LIST responses.

        Raises:
            ResponseError: pymap's errors (e.g. no such mailbox), turned into ``NO`` by the caller.
        """
        mailboxes, updates = await self.session.list_mailboxes(
            cmd.ref_name, cmd.filter, subscribed=cmd.only_subscribed, selected=self._selected
        )
        resp = ResponseOk(cmd.tag, cmd.command + b" completed.")
        only_special = bool(getattr(cmd, "special_use_only", False))
        for name, sep, attrs in mailboxes:
            use = SPECIAL_USE.get(name)
            if only_special and use is None:
                continue
            if cmd.only_subscribed:
                resp.add_untagged(LSubResponse(name, sep, attrs))
            else:
                resp.add_untagged(ListResponse(name, sep, [*attrs, use] if use else attrs))
        return resp, updates
