"""The sandbox mailbox store: every BAL's folders, in memory, on pymap's dict backend.

Both IMAP fronts open sessions on the same :class:`MailStore`, and the SMTP front delivers into
it through :class:`~mssante.sandbox.fronts.delivery.MailDelivery`; a delivery appends to the
INBOX, which wakes the IDLE sessions of that BAL (``* n EXISTS``, RFC 2177).

Every configured BAL gets the four folders an LPS expects (RFC 6154 §2 special uses):
``INBOX``, ``Sent`` (``\\Sent``), ``Drafts`` (``\\Drafts``) and ``Trash`` (``\\Trash``), all
subscribed. pymap identities and passwords are not used: the fronts decide access with
:class:`~mssante.sandbox.fronts.authz.AccessDecider` and then open a session here by BAL
address (:meth:`MailStore.open_session`), so no password can ever open a mailbox.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
from argparse import Namespace
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import Session as DictSession
from pymap.backend.dict.filter import FilterSet
from pymap.backend.dict.mailbox import MailboxData, MailboxSet
from pymap.concurrent import Subsystem
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials import FetchRequirement

from mssante.errors import UsageError
from mssante.sandbox.config import SandboxConfig

__all__ = ["DEFAULT_MAX_MESSAGE", "SPECIAL_USE", "MailStore", "StoredMessage"]

#: Largest message (and IMAP literal) accepted by default: above the 25 MB SMTP size.
DEFAULT_MAX_MESSAGE: Final = 50 * 1024 * 1024

#: Folder name → RFC 6154 §2 special-use attribute (without the backslash).
SPECIAL_USE: Final[Mapping[str, bytes]] = {"Sent": b"Sent", "Drafts": b"Drafts", "Trash": b"Trash"}

_FOLDERS: Final = ("INBOX", *SPECIAL_USE)
_HEADERS: Final = ("From", "To", "Cc", "Subject", "Date", "Message-ID")


@dataclass(frozen=True, kw_only=True)
class StoredMessage:
    """A summary of one stored message for the sandbox API (no body).

    Attributes:
        uid: the IMAP UID in its folder.
        flags: the permanent flags, e.g. ``("\\\\Seen",)``.
        internal_date: the IMAP INTERNALDATE (aware).
        size: the RFC 822 size in octets.
        headers: a few top-level headers (From, To, Cc, Subject, Date, Message-ID) when present.
    """

    uid: int
    flags: tuple[str, ...]
    internal_date: datetime
    size: int
    headers: Mapping[str, str]


def pymap_config(cls: type[DictConfig] = DictConfig, **overrides: Any) -> DictConfig:
    """Build a pymap dict-backend configuration without the pymap command line.

    ``overrides`` go to the config constructor (``ssl_context``, ``max_append_len``...).
    Remote checks (DNSBL) and password hashing threads are disabled.

    Raises:
        UsageError: an override is not accepted by pymap.
    """
    args = Namespace(
        debug=False, passlib_cfg=None, proxy_protocol=None, inherited_sockets=None, tls=True, cert=None, key=None,
        host=None, port=0, demo_data=False, demo_user="-", demo_password="-",  # noqa: S106 - pymap demo user, never enabled
    )
    kwargs: dict[str, Any] = {
        "host": None, "port": 0, "reject_dnsbl": False, "cpu_subsystem": Subsystem.for_asyncio(),
        "invalid_user_sleep": 0.0, "demo_data": False, "demo_user": "-", "demo_password": "-",
    }
    kwargs.update(overrides)
    try:
        return cls(args, **kwargs)
    except TypeError as exc:
        raise UsageError(f"invalid pymap setting: {exc}") from exc


class MailStore:
    """In-memory mailboxes of every configured BAL; implements ``MailDelivery``."""

    def __init__(self, config: SandboxConfig, *, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        """Prepare the store for ``config``'s BALs; call :meth:`start` before use.

        Raises:
            UsageError: ``max_message`` is not positive.
        """
        if max_message <= 0:
            raise UsageError("max_message must be > 0")
        self._config = config
        self.max_message = max_message
        self.pymap_config = pymap_config(max_append_len=max_message)
        self._sets: dict[str, tuple[MailboxSet, FilterSet]] = {}
        self._started = False

    async def start(self) -> None:
        """Create the folders of every configured BAL (idempotent); never raises."""
        if self._started:
            return
        for bal in self._config.bals:
            await self._create(bal.address.lower())
        self._started = True

    async def _create(self, key: str) -> tuple[MailboxSet, FilterSet]:
        mailbox_set, filter_set = MailboxSet(), FilterSet()
        for name in _FOLDERS:
            if name != "INBOX":
                await mailbox_set.add_mailbox(name)
            await mailbox_set.set_subscribed(name, True)
        self._sets[key] = (mailbox_set, filter_set)
        return mailbox_set, filter_set

    def has_mailbox(self, address: str) -> bool:
        """True when ``address`` is a BAL of this operator (case-insensitive); never raises."""
        return self._config.bal(address) is not None

    async def _set_of(self, address: str) -> MailboxSet:
        key = address.lower()
        if self._config.bal(key) is None:
            raise UsageError(f"{address} is not a BAL of this sandbox")
        pair = self._sets.get(key)
        if pair is None:
            pair = await self._create(key)
        return pair[0]

    async def _folder(self, address: str, folder: str) -> MailboxData:
        mailbox_set = await self._set_of(address)
        try:
            return await mailbox_set.get_mailbox(folder)
        except KeyError:
            raise UsageError(f"BAL {address} has no folder {folder!r}") from None

    async def open_session(self, address: str) -> DictSession:
        """Return a pymap session on BAL ``address`` (called by a front after access is granted).

        Raises:
            UsageError: ``address`` is not a BAL of this sandbox.
        """
        mailbox_set = await self._set_of(address)
        filter_set = self._sets[address.lower()][1]
        bal = self._config.bal(address)
        assert bal is not None
        return DictSession(bal.address, self.pymap_config, mailbox_set, filter_set)

    async def deliver(self, address: str, message: bytes, *, folder: str = "INBOX") -> None:
        """Store ``message`` in ``folder`` of BAL ``address`` as a new (\\Recent) message.

        IDLE sessions on that folder then receive ``* n EXISTS`` (RFC 2177, RFC 3501 §7.3.1).

        Raises:
            UsageError: ``address`` is not a BAL, the folder does not exist, or the message is
                larger than ``max_message``.
        """
        if len(message) > self.max_message:
            raise UsageError(f"message of {len(message)} octets exceeds {self.max_message}")
        mailbox = await self._folder(address, folder)
        await mailbox.append(AppendMessage(message, datetime.now(UTC), frozenset()), recent=True)

    async def list_messages(self, address: str, folder: str = "INBOX") -> list[StoredMessage]:
        """Summaries of the messages in ``folder`` of BAL ``address``, by ascending UID.

        Raises:
            UsageError: ``address`` is not a BAL or the folder does not exist.
        """
        mailbox = await self._folder(address, folder)
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        out = []
        async for msg in mailbox.messages():
            loaded = await msg.load_content(FetchRequirement.CONTENT)
            raw = bytes(loaded)
            parsed = parser.parsebytes(raw)
            headers = {name: str(parsed[name]) for name in _HEADERS if parsed[name] is not None}
            flags = tuple(sorted(flag.value.decode("ascii", "replace") for flag in msg.permanent_flags))
            out.append(StoredMessage(uid=msg.uid, flags=flags, internal_date=msg.internal_date, size=len(raw),
                                     headers=headers))
        return sorted(out, key=lambda m: m.uid)

    async def get_message(self, address: str, folder: str, uid: int) -> bytes:
        """Return the raw message with ``uid`` in ``folder`` of BAL ``address``.

        Raises:
            UsageError: unknown BAL, folder or UID.
        """
        mailbox = await self._folder(address, folder)
        async for msg in mailbox.messages():
            if msg.uid == uid:
                loaded = await msg.load_content(FetchRequirement.CONTENT)
                return bytes(loaded)
        raise UsageError(f"no message with UID {uid} in {folder} of {address}")

    async def reset(self, address: str) -> None:
        """Empty BAL ``address``: expunge every message, remove extra folders, keep the four folders.

        Connected sessions see the expunges (``* n EXPUNGE``) on their next command or IDLE.

        Raises:
            UsageError: ``address`` is not a BAL of this sandbox.
        """
        mailbox_set = await self._set_of(address)
        tree = await mailbox_set.list_mailboxes()
        names = [entry.name for entry in tree.list()]
        for name in names:
            try:
                mailbox = await mailbox_set.get_mailbox(name)
            except KeyError:
                continue
            uids = [msg.uid async for msg in mailbox.messages()]
            if uids:
                await mailbox.delete(uids)
        for name in sorted(names, key=len, reverse=True):
            if name not in _FOLDERS:
                try:
                    await mailbox_set.delete_mailbox(name)
                except KeyError:
                    continue
        for name in _FOLDERS:
            if name != "INBOX":
                with contextlib.suppress(ValueError):
                    await mailbox_set.add_mailbox(name)
            await mailbox_set.set_subscribed(name, True)
