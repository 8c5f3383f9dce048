"""UID commands of the selected state (RFC 3501 §6.4.8, RFC 4315, RFC 6851), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from mssante.errors import LocalProtocolError

from ._abnf import FETCH_ATT
from ._commands import Command, atoms
from ._search import SearchKey
from ._serializer import Ctx, Part, UidsLike, flag_list, mailbox, sequence_set

__all__ = ["UidCopy", "UidExpunge", "UidFetch", "UidMove", "UidSearch", "UidStore"]


@dataclass(frozen=True, kw_only=True)
class _UidCommand(Command):
    uids: UidsLike

    def __post_init__(self) -> None:
        object.__setattr__(self, "uids", sequence_set(self.uids).decode())


@dataclass(frozen=True, kw_only=True)
class UidSearch(Command):
    """``UID SEARCH [RETURN (...)] [CHARSET UTF-8] criteria`` (RFC 3501 §6.4.4, RFC 4731).

    ``CHARSET UTF-8`` is added when a string is not ASCII (and UTF8=ACCEPT is not enabled).

    Raises:
        LocalProtocolError: a return option is not an atom.
    """

    name: ClassVar[str] = "UID SEARCH"
    criteria: SearchKey
    return_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        atoms(self.return_options, "a SEARCH return option")

    def parts(self, ctx: Ctx) -> list[Part]:
        """``[SP "RETURN (" ... ")"] [SP "CHARSET UTF-8"] SP search-key``."""
        out: list[Part] = []
        if self.return_options:
            out.append(b" RETURN (" + b" ".join(atoms(self.return_options, "option")).upper() + b")")
        if not ctx.utf8 and not self.criteria.is_ascii():
            out.append(b" CHARSET UTF-8")
        return [*out, b" ", *self.criteria.parts]


@dataclass(frozen=True, kw_only=True)
class UidFetch(_UidCommand):
    """``UID FETCH set (items)`` (RFC 3501 §6.4.8, §6.4.5).

    Raises:
        LocalProtocolError: a bad UID set or fetch item.
    """

    name: ClassVar[str] = "UID FETCH"
    items: tuple[str, ...]
    changedsince: int | None = None  # RFC 7162 §3.1.4.1 CHANGEDSINCE

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.items or any(FETCH_ATT.match(i.encode("ascii", "replace")) is None for i in self.items):
            raise LocalProtocolError("fetch items must be fetch-att names (RFC 3501 §6.4.5)")

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP sequence-set SP "(" fetch-att *(SP fetch-att) ")" [SP "(CHANGEDSINCE n)"]``."""
        out: list[Part] = [f" {self.uids} ({' '.join(self.items)})".encode()]
        if self.changedsince is not None:
            out.append(b" (CHANGEDSINCE %d)" % self.changedsince)
        return out


@dataclass(frozen=True, kw_only=True)
class UidStore(_UidCommand):
    """``UID STORE set [+|-]FLAGS[.SILENT] (flags)`` (RFC 3501 §6.4.6).

    Raises:
        LocalProtocolError: a bad UID set, mode or flag.
    """

    name: ClassVar[str] = "UID STORE"
    flags: tuple[str, ...]
    mode: Literal["+", "-", ""] = "+"
    silent: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("+", "-", ""):
            raise LocalProtocolError("STORE mode is '+', '-' or ''")
        flag_list(self.flags)

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP sequence-set SP store-att-flags``."""
        item = f"{self.mode}FLAGS{'.SILENT' if self.silent else ''}".encode()
        return [f" {self.uids} ".encode() + item + b" " + flag_list(self.flags)]


@dataclass(frozen=True, kw_only=True)
class UidCopy(_UidCommand):
    """``UID COPY set mailbox`` (RFC 3501 §6.4.7).

    Raises:
        LocalProtocolError: a bad UID set or mailbox name.
    """

    name: ClassVar[str] = "UID COPY"
    mailbox: str | bytes

    def __post_init__(self) -> None:
        super().__post_init__()
        mailbox(self.mailbox)

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP sequence-set SP mailbox``."""
        return [f" {self.uids} ".encode(), mailbox(self.mailbox, ctx.utf8)]


@dataclass(frozen=True, kw_only=True)
class UidMove(UidCopy):
    """``UID MOVE set mailbox`` (RFC 6851 §3.2).

    Raises:
        LocalProtocolError: a bad UID set or mailbox name.
    """

    name: ClassVar[str] = "UID MOVE"
    requires: ClassVar[str | None] = "MOVE"


@dataclass(frozen=True, kw_only=True)
class UidExpunge(_UidCommand):
    """``UID EXPUNGE set`` (RFC 4315 §2.1).

    Raises:
        LocalProtocolError: a bad UID set.
    """

    name: ClassVar[str] = "UID EXPUNGE"
    requires: ClassVar[str | None] = "UIDPLUS"

    def parts(self, ctx: Ctx) -> list[Part]:
        """``SP sequence-set``."""
        return [f" {self.uids}".encode()]
