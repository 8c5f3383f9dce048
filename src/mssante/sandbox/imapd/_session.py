"""The authenticated part of an IMAP session: commands in, response octets out (no I/O).

:class:`Session` runs every command of the authenticated and selected states (RFC 3501 §6.3,
§6.4, IMAP4rev2 additions NAMESPACE and UNSELECT, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 3516
BINARY, RFC 6154 SPECIAL-USE, RFC 5258 LIST options subset) and returns each answer as one
``bytes``, so the connection writes it with one ``write()``. The connection handles the
greeting, STARTTLS, authentication, IDLE's waiting and the limits.

Answers follow what Dovecot 2.3 sends where RFC 3501 leaves a choice (the differential test
``tests/interop/test_imap_differential.py`` checks them): ``BAD`` for a message number past the
end, ``NO [BADCHARSET]`` for an unknown SEARCH charset, keywords kept and announced
(``PERMANENTFLAGS`` with ``\\*``), ``OK`` for CLOSE after EXAMINE, and ``BYE`` on the command
after the selected mailbox was deleted by this session.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from mssante.sandbox.imapd._command import BadCommand, FetchAtt, Reader, SeqSet
from mssante.sandbox.imapd._fetch import Undecodable, body_text, decoded_header, flag_list, item, sent_date
from mssante.sandbox.imapd._mime import quote
from mssante.sandbox.imapd._store import SYSTEM_FLAGS, Account, Mailbox, Message, Store, View, canonical_flag
from mssante.wire.imap import encode_mutf7

__all__ = ["Answer", "Session"]

SEP: Final = "/"
_CHARSETS: Final = frozenset({"UTF-8", "US-ASCII"})
_SEEN: Final = "\\Seen"
_DELETED: Final = "\\Deleted"


@dataclass
class Answer:
    """One command's answer: the octets to send, and what the connection must do after."""

    data: bytes
    status: str  # "OK", "NO", "BAD"
    logout: bool = False
    idle: bool = False


class _No(Exception):
    def __init__(self, text: str, code: str = "") -> None:
        super().__init__(text)
        self.text, self.code = text, code


_ATOM_NAME: Final = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")


def _name(mailbox: str) -> bytes:
    """A mailbox name as an atom when it can be one, else quoted (as Dovecot sends them)."""
    raw = encode_mutf7(mailbox)
    return raw if _ATOM_NAME.fullmatch(raw) else quote(raw)


_MAX_WILDCARDS: Final = 16  # a LIST pattern's regex backtracks at most this deep


def _match(pattern: str, name: str) -> bool:
    """RFC 3501 §6.3.8 LIST pattern matching (``*`` any, ``%`` any but the separator)."""
    pattern = re.sub(r"[*%]*\*[*%]*", "*", pattern)  # "*%*" is "*": fewer nested repeats
    regex = "".join(".*" if c == "*" else f"[^{re.escape(SEP)}]*" if c == "%" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


class Session:
    """One authenticated client of the mailbox ``account`` in ``store``."""

    def __init__(self, store: Store, account: Account, *, special_use: dict[str, str],
                 capability: Callable[[], bytes], max_append: int) -> None:
        """Start in the authenticated state (nothing selected); never raises."""
        self.store = store
        self.account = account
        self.special_use = special_use
        self.capability = capability
        self.max_append = max_append
        self.view: View | None = None
        self.selected_deleted = False

    @property
    def selected(self) -> Mailbox | None:
        """The selected mailbox, or None."""
        return self.view.mailbox if self.view is not None else None

    def close(self) -> None:
        """Forget the selection (end of the connection); never raises."""
        if self.view is not None:
            self.view.close()
            self.view = None

    # ------------------------------------------------------------------ dispatch

    def run(self, tag: bytes, command: bytes, reader: Reader) -> Answer:
        """Run one command (``reader`` is placed after the command name) and return its answer.

        Raises:
            Nothing: grammar errors become ``BAD``, refusals ``NO``.
        """
        if self.selected_deleted:
            self.close()
            return Answer(b"* BYE Selected mailbox was deleted, have to disconnect.\r\n", "BYE", logout=True)
        name = command.upper()
        uid = name == b"UID"
        out: list[bytes] = []
        try:
            if uid:
                reader.sp()
                name = b"UID " + reader.atom().upper()
            handler = _HANDLERS.get(name)
            if handler is None:
                raise BadCommand(f"unknown command {name.decode('ascii', 'replace')}")
            needs, method = handler
            if needs == "selected" and self.view is None:
                raise BadCommand("no mailbox selected")
            text = method(self, reader, out, uid)
        except BadCommand as exc:
            self._updates(out, expunge=False, uid=uid)
            return Answer(b"".join(out) + tag + b" BAD " + exc.message.encode() + b"\r\n", "BAD")
        except _No as exc:
            self._updates(out, expunge=name not in _NO_EXPUNGE_UPDATES, uid=uid)
            code = b"[" + exc.code.encode() + b"] " if exc.code else b""
            return Answer(b"".join(out) + tag + b" NO " + code + exc.text.encode() + b"\r\n", "NO")
        if name == b"IDLE":
            return Answer(b"".join(out), "OK", idle=True)
        if name == b"LOGOUT":
            return Answer(b"* BYE Logging out\r\n" + tag + b" OK Logout completed.\r\n", "OK", logout=True)
        self._updates(out, expunge=name not in _NO_EXPUNGE_UPDATES, uid=uid)
        return Answer(b"".join(out) + tag + b" OK " + text + b"\r\n", "OK")

    # ------------------------------------------------------------------ updates (RFC 3501 §7)

    def updates(self, *, expunge: bool = True) -> bytes:
        """The pending untagged updates of the selected mailbox (IDLE, NOOP); never raises."""
        out: list[bytes] = []
        self._updates(out, expunge=expunge, uid=False)
        return b"".join(out)

    def _updates(self, out: list[bytes], *, expunge: bool, uid: bool) -> None:
        view = self.view
        if view is None:
            return
        view.changed.clear()
        if expunge and view.expunged:
            kept = []
            removed = 0
            for index, msg in enumerate(view.messages, 1):
                if msg.uid in view.expunged:
                    out.append(b"* %d EXPUNGE\r\n" % (index - removed))
                    removed += 1
                else:
                    kept.append(msg)
            view.messages = kept
            view.flag_changes -= view.expunged
            view.expunged.clear()
        if view.flags_changed:
            view.flags_changed = False
            out.append(b"* FLAGS " + _mailbox_flags(view.mailbox) + b"\r\n")
            if not view.readonly:
                out.append(b"* OK [PERMANENTFLAGS " + self._permanent(view.mailbox) + b"] Flags permitted.\r\n")
        if view.new:
            view.messages.extend(m for m in view.new if m not in view.messages)
            view.new.clear()
            out.append(b"* %d EXISTS\r\n" % len(view.messages))
        if view.flag_changes:
            for index, msg in enumerate(view.messages, 1):
                if msg.uid in view.flag_changes and msg.uid not in view.expunged:
                    uid_item = b"UID %d " % msg.uid if uid else b""
                    out.append(b"* %d FETCH (%sFLAGS %s)\r\n" % (index, uid_item, flag_list(msg.flags)))
            view.flag_changes.clear()

    def _permanent(self, box: Mailbox) -> bytes:
        return b"(" + " ".join([*SYSTEM_FLAGS, *sorted(box.keywords), "\\*"]).encode() + b")"

    # ------------------------------------------------------------------ helpers

    def _mailbox(self, name: str, *, code: str = "NONEXISTENT") -> Mailbox:
        box = self.account.get(name)
        if box is None:
            raise _No(f"Mailbox doesn't exist: {name}", code)
        return box

    def _numbers(self, seq: SeqSet, uid: bool) -> list[tuple[int, Message]]:
        """(sequence number, message) named by ``seq``; message numbers past the end are BAD (as Dovecot)."""
        assert self.view is not None
        messages = self.view.messages
        if uid:
            top = messages[-1].uid if messages else 0
            wanted = set()
            for lo, hi in seq.ranges:
                a = top if lo is None else lo
                b = top if hi is None else hi
                a, b = min(a, b), max(a, b)
                wanted.add((a, b))
            return [(i, m) for i, m in enumerate(messages, 1) if any(a <= m.uid <= b for a, b in wanted)]
        if seq.max_number(len(messages)) > len(messages) or (not messages and seq.has_star()):
            raise BadCommand("Error in IMAP command: Invalid messageset")
        numbers = seq.resolve(len(messages))
        return [(n, messages[n - 1]) for n in sorted(numbers)]

    def _require_writable(self) -> None:
        assert self.view is not None
        if self.view.readonly:
            raise _No("Mailbox is read-only.", "READ-ONLY")

    # ------------------------------------------------------------------ any state

    def capability_cmd(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()
        out.append(b"* CAPABILITY " + self.capability() + b"\r\n")
        return b"Capability completed."

    def noop(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()
        return b"NOOP completed."

    def logout(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()
        self.close()
        return b""

    def idle(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()
        self._updates(out, expunge=True, uid=False)
        return b""

    def enable(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.sp()  # RFC 5161 §3.1: at least one capability; none of ours needs enabling
        r.atom()
        while r.take(b" "):
            r.atom()
        r.end()
        out.append(b"* ENABLED\r\n")
        return b"Enabled."

    def namespace(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()  # RFC 2342 / RFC 9051 §6.3.10: one personal namespace, no shared or other users'
        out.append(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        return b"Namespace completed."

    # ------------------------------------------------------------------ authenticated state

    def select(self, r: Reader, out: list[bytes], uid: bool, *, readonly: bool = False) -> bytes:
        r.sp()
        name = r.mailbox()
        r.end()
        if self.view is not None:  # RFC 9051 §7.1: the previous mailbox is closed first
            self.close()
            out.append(b"* OK [CLOSED] Previous mailbox closed.\r\n")
        box = self._mailbox(name)
        view = self.view = box.open_view(readonly=readonly)
        out.append(b"* FLAGS " + _mailbox_flags(box) + b"\r\n")
        permanent = b"()" if readonly else self._permanent(box)
        out.append(b"* OK [PERMANENTFLAGS " + permanent + b"] " + (
            b"Read-only mailbox." if readonly else b"Flags permitted.") + b"\r\n")
        out.append(b"* %d EXISTS\r\n" % len(view.messages))
        recent = sum(1 for m in view.messages if m.recent)
        if not readonly:
            for msg in view.messages:
                msg.recent = False
        out.append(b"* %d RECENT\r\n" % recent)
        unseen = next((i for i, m in enumerate(view.messages, 1) if _SEEN not in m.flags), None)
        if unseen is not None:
            out.append(b"* OK [UNSEEN %d] First unseen.\r\n" % unseen)
        out.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % box.uidvalidity)
        out.append(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % box.uidnext)
        return (b"[READ-ONLY] Examine" if readonly else b"[READ-WRITE] Select") + b" completed."

    def examine(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        return self.select(r, out, uid, readonly=True)

    def create(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.sp()
        name = r.mailbox().rstrip(SEP)
        r.end()
        if not name or SEP * 2 in name:
            raise BadCommand("invalid mailbox name")
        if self.account.get(name) is not None:
            raise _No("Mailbox already exists", "ALREADYEXISTS")
        # Superior names are implied, listed \Noselect while they have children (as Dovecot does).
        self.store.create(self.account, name)
        return b"Create completed."

    def delete(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.sp()
        name = r.mailbox()
        r.end()
        if name == "INBOX":
            raise _No("INBOX can't be deleted.")
        box = self._mailbox(name)
        if any(other.startswith(name + SEP) for other in self.account.mailboxes):
            raise _No("Mailbox has children, delete them first", "INUSE")
        mine = self.view is not None and self.view.mailbox is box
        self.store.delete(box)
        if mine:
            self.view = None
            self.selected_deleted = True  # Dovecot: BYE on the next command
        return b"Delete completed."

    def rename(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.sp()
        old = r.mailbox()
        r.sp()
        new = r.mailbox().rstrip(SEP)
        r.end()
        box = self._mailbox(old)
        if self.account.get(new) is not None:
            raise _No("Target mailbox already exists", "ALREADYEXISTS")
        if old == "INBOX":  # RFC 3501 §6.3.5: move INBOX's messages, INBOX stays
            target = self.store.create(self.account, new)
            for msg in list(box.messages):
                self.store.append(target, msg.raw, msg.flags, msg.internal_date, recent=False)
            self.store.expunge(box, {m.uid for m in box.messages})
            return b"Rename completed."
        children = sorted((n for n in self.account.mailboxes if n.startswith(old + SEP)), key=len)
        self.store.rename(box, new)
        for child in children:
            child_box = self.account.mailboxes[child]
            self.store.rename(child_box, new + child[len(old):])
        return b"Rename completed."

    def subscribe(self, r: Reader, out: list[bytes], uid: bool, *, on: bool = True) -> bytes:
        r.sp()
        name = r.mailbox()
        r.end()
        box = self.account.get(name)
        if box is None:
            if on:
                raise _No(f"Mailbox doesn't exist: {name}", "NONEXISTENT")
            return b"Unsubscribe completed."
        self.store.subscribe(box, on)
        return b"Subscribe completed." if on else b"Unsubscribe completed."

    def unsubscribe(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        return self.subscribe(r, out, uid, on=False)

    def _attributes(self, name: str, *, subscribed_only: bool = False) -> list[str]:
        children = any(n.startswith(name + SEP) for n in self.account.mailboxes)
        attrs = ["\\HasChildren" if children else "\\HasNoChildren"]
        if name in self.special_use:
            attrs.append("\\" + self.special_use[name])
        return attrs

    def list_cmd(self, r: Reader, out: list[bytes], uid: bool, *, lsub: bool = False) -> bytes:
        r.sp()
        special_only = False
        if not lsub and r.take(b"("):  # RFC 5258 §3 selection options (RFC 6154 §5.3: SPECIAL-USE)
            options = r.atom().upper() if not r.peek(b")") else b""
            opts = {options}
            while r.take(b" "):
                opts.add(r.atom().upper())
            r.expect(b")")
            r.sp()
            if not opts <= {b"SPECIAL-USE", b"SUBSCRIBED", b""}:
                raise BadCommand("unsupported LIST selection option")
            special_only = b"SPECIAL-USE" in opts
            lsub = b"SUBSCRIBED" in opts
        if r.peek(b'""'):
            r.string()
            ref = ""
        else:
            ref = r.mailbox()
        r.sp()
        pattern = r.list_mailbox()
        if sum(pattern.count(c) for c in "*%") > _MAX_WILDCARDS:
            raise BadCommand(f"at most {_MAX_WILDCARDS} wildcards in a LIST pattern")
        if not lsub and r.take(b" RETURN ("):
            while not r.take(b")"):
                r.take(b" ")
                if r.atom().upper() not in (b"SPECIAL-USE", b"CHILDREN", b"SUBSCRIBED"):
                    raise BadCommand("unsupported LIST return option")
        r.end()
        word = b"LSUB" if lsub and not special_only else b"LIST"
        if pattern == "":
            out.append(b"* " + word + b' (\\Noselect) "/" ""\r\n')
            return word + b" completed."
        full = ref + pattern if ref and not pattern.startswith(SEP) else pattern
        implied = {SEP.join(n.split(SEP)[:d]) for n in self.account.mailboxes for d in range(1, n.count(SEP) + 1)}
        implied -= set(self.account.mailboxes)
        names = sorted({*self.account.mailboxes, *implied}, key=lambda n: (n != "INBOX", n))
        for name in names:
            box = self.account.mailboxes.get(name)
            if not _match(full, name) and not (name == "INBOX" and _match(full.upper(), "INBOX")):
                continue
            if (lsub and (box is None or not box.subscribed)) or (special_only and name not in self.special_use):
                continue
            if word == b"LSUB":
                attrs = []
            elif box is None:
                attrs = ["\\Noselect", "\\HasChildren"]
            else:
                attrs = self._attributes(name)
            out.append(b"* " + word + b" (" + " ".join(attrs).encode() + b') "/" ' + _name(name) + b"\r\n")
        return word + b" completed."

    def lsub(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        return self.list_cmd(r, out, uid, lsub=True)

    def status(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.sp()
        name = r.mailbox()
        r.sp()
        r.expect(b"(")
        items = [r.atom().upper()]
        while r.take(b" "):
            items.append(r.atom().upper())
        r.expect(b")")
        r.end()
        box = self._mailbox(name)
        values = {
            b"MESSAGES": len(box.messages), b"RECENT": sum(1 for m in box.messages if m.recent),
            b"UIDNEXT": box.uidnext, b"UIDVALIDITY": box.uidvalidity,
            b"UNSEEN": sum(1 for m in box.messages if _SEEN not in m.flags),
            b"SIZE": sum(len(m.raw) for m in box.messages),
        }
        if any(i not in values for i in items):
            raise BadCommand("unknown STATUS item")
        pairs = b" ".join(i + b" %d" % values[i] for i in items)
        out.append(b"* STATUS " + _name(box.name) + b" (" + pairs + b")\r\n")
        return b"Status completed."

    def append(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.sp()
        name = r.mailbox()
        r.sp()
        flags: list[str] = []
        when: datetime | None = None
        if r.peek(b"("):
            flags = r.flag_list()
            r.sp()
        if r.peek(b'"'):
            when = r.date_time()
            r.sp()
        data = r.string()
        r.end()
        if any(f.lower() == "\\recent" for f in flags):
            raise BadCommand("\\Recent can't be set")
        box = self.account.get(name)
        if box is None:
            raise _No(f"Mailbox doesn't exist: {name}", "TRYCREATE")
        if len(data) > self.max_append:
            raise _No("Message is too large.", "LIMIT")
        msg = self.store.append(box, data, flags, when)  # our own view learns it too: EXISTS follows
        return b"[APPENDUID %d %d] Append completed." % (box.uidvalidity, msg.uid)

    # ------------------------------------------------------------------ selected state

    def check(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()
        return b"Check completed."

    def close_cmd(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()
        assert self.view is not None
        view = self.view
        if not view.readonly:  # RFC 3501 §6.4.2: silent expunge, not after EXAMINE
            self.store.expunge(view.mailbox, {m.uid for m in view.messages if _DELETED in m.flags}, origin=view)
        self.close()
        return b"Close completed."

    def unselect(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        r.end()
        self.close()
        return b"Unselect completed."

    def expunge(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        seq = None
        if uid:
            r.sp()
            seq = r.seq_set()
        r.end()
        self._require_writable()
        assert self.view is not None
        view = self.view
        targets = [m for m in view.messages if _DELETED in m.flags]
        if seq is not None:
            chosen = {m.uid for _, m in self._numbers(seq, True)}
            targets = [m for m in targets if m.uid in chosen]
        uids = {m.uid for m in targets}
        self.store.expunge(view.mailbox, uids, origin=view)
        view.expunged |= uids
        return b"Expunge completed."

    def search(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        assert self.view is not None
        r.sp()
        if r.take(b"CHARSET "):
            charset = r.astring().decode("ascii", "replace").upper()
            if charset not in _CHARSETS:
                raise _No(f"Unknown charset {charset}", "BADCHARSET")
            r.sp()
        matcher = _SearchParser(r, self.view).keys()
        r.end()
        hits = [(i, m) for i, m in enumerate(self.view.messages, 1) if matcher(i, m)]
        numbers = [m.uid if uid else i for i, m in hits]
        out.append(b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
        return b"Search completed."

    def fetch(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        assert self.view is not None
        r.sp()
        seq = r.seq_set()
        r.sp()
        atts = r.fetch_atts()
        r.end()
        if uid and not any(a.name == "UID" for a in atts):
            atts.insert(0, FetchAtt("UID"))
        chosen = self._numbers(seq, uid)
        view = self.view
        sets_seen = not view.readonly and any(
            (a.section is not None and not a.peek and a.name != "BINARY.SIZE") or a.name in ("RFC822", "RFC822.TEXT")
            for a in atts)
        failed: str | None = None
        for number, msg in chosen:
            items = []
            if sets_seen and _SEEN not in msg.flags and view.mailbox.by_uid(msg.uid) is msg:
                self.store.set_flags(view.mailbox, msg, msg.flags | {_SEEN}, origin=view)
                if not any(a.name == "FLAGS" for a in atts):
                    items.append(b"FLAGS " + flag_list(msg.flags))
            for att in atts:
                try:
                    data = item(msg, att)
                except Undecodable as exc:  # RFC 3516 §4.3; Dovecot still reports the message's UID
                    failed = exc.code
                    continue
                if data is not None:
                    items.append(data)
            out.append(b"* %d FETCH (" % number + b" ".join(items or [b"UID %d" % msg.uid]) + b")\r\n")
        if failed == "UNKNOWN-CTE":
            raise _No("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")
        if failed:
            raise _No("Invalid data in the message's MIME part", "PARSE")
        return b"Fetch completed."

    def store_cmd(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        assert self.view is not None
        r.sp()
        seq = r.seq_set()
        r.sp()
        op = b"="
        if r.take(b"+"):
            op = b"+"
        elif r.take(b"-"):
            op = b"-"
        r.expect(b"FLAGS")
        silent = r.take(b".SILENT")
        r.sp()
        flags = {canonical_flag(f) for f in r.flag_list(bare=True)}
        r.end()
        chosen = self._numbers(seq, uid)
        view = self.view
        if view.readonly:
            return b"Store completed."  # RFC 3501 §6.3.2: no change; Dovecot answers OK
        flags.discard("\\Recent")
        for _, msg in chosen:
            if view.mailbox.by_uid(msg.uid) is not msg:
                continue
            new = msg.flags | flags if op == b"+" else msg.flags - flags if op == b"-" else set(flags)
            self.store.set_flags(view.mailbox, msg, new, origin=view)
        self._updates(out, expunge=False, uid=uid)  # a new keyword: FLAGS/PERMANENTFLAGS first
        if not silent:
            for number, msg in chosen:
                uid_item = b"UID %d " % msg.uid if uid else b""
                out.append(b"* %d FETCH (%sFLAGS %s)\r\n" % (number, uid_item, flag_list(msg.flags)))
        return b"Store completed."

    def _copy(self, r: Reader, out: list[bytes], uid: bool, *, move: bool) -> bytes:
        assert self.view is not None
        r.sp()
        seq = r.seq_set()
        r.sp()
        name = r.mailbox()
        r.end()
        chosen = self._numbers(seq, uid)
        target = self.account.get(name)
        if target is None:
            raise _No(f"Mailbox doesn't exist: {name}", "TRYCREATE")
        if move:
            self._require_writable()
        if not chosen:
            return b"No messages found." if uid else (b"Move completed." if move else b"Copy completed.")
        view = self.view
        source, dest = [], []
        for _, msg in chosen:
            new = self.store.append(target, msg.raw, msg.flags, msg.internal_date)
            source.append(msg.uid)
            dest.append(new.uid)
        code = b"COPYUID %d %s %s" % (target.uidvalidity, _uid_set(source), _uid_set(dest))
        if not move:
            return b"[" + code + b"] Copy completed."
        out.append(b"* OK [" + code + b"] Moved UIDs.\r\n")
        self.store.expunge(view.mailbox, set(source), origin=view)
        view.expunged |= set(source)
        self._updates(out, expunge=True, uid=uid)
        return b"Move completed."

    def copy(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        return self._copy(r, out, uid, move=False)

    def move(self, r: Reader, out: list[bytes], uid: bool) -> bytes:
        return self._copy(r, out, uid, move=True)


def _mailbox_flags(box: Mailbox) -> bytes:
    """The FLAGS list: system flags in RFC 3501 §2.3.2 order, then the keywords (as Dovecot lists them)."""
    return b"(" + " ".join(box.flags()).encode("ascii", "replace") + b")"


def _uid_set(uids: list[int]) -> bytes:
    """``1:3,5`` from sorted UIDs (RFC 4315 §3 uid-set)."""
    out: list[bytes] = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u == prev + 1:
            prev = u
            continue
        out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = u
    out.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(out)


# ------------------------------------------------------------------ SEARCH (RFC 3501 §6.4.4)

_Matcher = Callable[[int, Message], bool]


_MAX_SEARCH_DEPTH: Final = 64  # nested NOT / OR / parentheses


class _SearchParser:
    def __init__(self, reader: Reader, view: View) -> None:
        self.r = reader
        self.view = view
        self.depth = 0

    def keys(self) -> _Matcher:
        matchers = [self.key()]
        while self.r.take(b" "):
            matchers.append(self.key())
        return lambda i, m: all(f(i, m) for f in matchers)

    def _string(self) -> str:
        self.r.sp()
        return self.r.astring().decode("utf-8", "replace")

    def key(self) -> _Matcher:
        self.depth += 1
        if self.depth > _MAX_SEARCH_DEPTH:
            raise BadCommand(f"search keys nested deeper than {_MAX_SEARCH_DEPTH}")
        try:
            return self._key()
        finally:
            self.depth -= 1

    def _key(self) -> _Matcher:
        r = self.r
        if r.take(b"("):
            inner = self.keys()
            r.expect(b")")
            return inner
        if r.peek(b"*") or r.data[r.pos:r.pos + 1].isdigit():
            seq = r.seq_set()
            count = len(self.view.messages)
            numbers = seq.resolve(count)
            return lambda i, m: i in numbers
        word = r.atom().upper()
        flags = {b"ANSWERED": "\\Answered", b"DELETED": "\\Deleted", b"DRAFT": "\\Draft", b"FLAGGED": "\\Flagged",
                 b"SEEN": "\\Seen"}
        if word in flags:
            flag = flags[word]
            return lambda i, m: flag in m.flags
        if word.startswith(b"UN") and word[2:] in flags:
            flag = flags[word[2:]]
            return lambda i, m: flag not in m.flags
        if word == b"ALL":
            return lambda i, m: True
        if word in (b"NEW", b"RECENT"):
            return lambda i, m: m.recent and (word == b"RECENT" or _SEEN not in m.flags)
        if word == b"OLD":
            return lambda i, m: not m.recent
        if word in (b"KEYWORD", b"UNKEYWORD"):
            r.sp()
            keyword = canonical_flag(r.flag()).lower()
            want = word == b"KEYWORD"
            return lambda i, m: any(f.lower() == keyword for f in m.flags) == want
        if word == b"NOT":
            r.sp()
            inner = self.key()
            return lambda i, m: not inner(i, m)
        if word == b"OR":
            r.sp()
            left = self.key()
            r.sp()
            right = self.key()
            return lambda i, m: left(i, m) or right(i, m)
        if word in (b"LARGER", b"SMALLER"):
            r.sp()
            size = r.number()
            return (lambda i, m: len(m.raw) > size) if word == b"LARGER" else (lambda i, m: len(m.raw) < size)
        if word == b"UID":
            r.sp()
            seq = r.seq_set()
            top = self.view.messages[-1].uid if self.view.messages else 0
            ranges = [(top if a is None else a, top if b is None else b) for a, b in seq.ranges]
            return lambda i, m: any(min(a, b) <= m.uid <= max(a, b) for a, b in ranges)
        if word in (b"BEFORE", b"ON", b"SINCE", b"SENTBEFORE", b"SENTON", b"SENTSINCE"):
            r.sp()
            day = r.date().date()
            sent = word.startswith(b"SENT")
            tests: dict[bytes, Callable[[date], bool]] = {
                b"BEFORE": lambda d: d < day, b"ON": lambda d: d == day, b"SINCE": lambda d: d >= day}
            test = tests[word[4:] if sent else word]
            if sent:
                return lambda i, m: test(sent_date(m.parsed).date())
            return lambda i, m: test(m.internal_date.date())
        if word in (b"FROM", b"TO", b"CC", b"BCC", b"SUBJECT"):
            needle = self._string().lower()
            header = word.lower()
            return lambda i, m: needle in (decoded_header(m.parsed, header) or "").lower()
        if word == b"HEADER":
            name = self._string().lower().encode()
            needle = self._string().lower()
            return lambda i, m: (value := decoded_header(m.parsed, name)) is not None and needle in value.lower()
        if word in (b"BODY", b"TEXT"):
            needle = self._string().lower()
            whole = word == b"TEXT"
            return lambda i, m: _text_contains(m, needle, headers=whole)
        raise BadCommand(f"unknown search key {word.decode('ascii', 'replace')}")


def _text_contains(msg: Message, needle: str, *, headers: bool) -> bool:
    if headers and needle in msg.parsed.header.decode("utf-8", "replace").lower():
        return True
    found = False

    def leaf(part: object, data: bytes) -> None:
        nonlocal found
        if not found:
            charset = next((v for k, v in getattr(part, "params", []) if k.lower() == b"charset"), b"utf-8")
            try:
                text = data.decode(charset.decode("ascii", "replace"), "replace")
            except LookupError:
                text = data.decode("utf-8", "replace")
            found = needle in text.lower()

    body_text(msg.parsed, leaf)
    return found


_NO_EXPUNGE_UPDATES: Final = frozenset({b"FETCH", b"STORE", b"SEARCH"})  # RFC 3501 §7.4.1

_Handler = Callable[[Session, Reader, list[bytes], bool], bytes]
_HANDLERS: Final[dict[bytes, tuple[str, _Handler]]] = {
    b"CAPABILITY": ("auth", Session.capability_cmd),
    b"NOOP": ("auth", Session.noop),
    b"LOGOUT": ("auth", Session.logout),
    b"IDLE": ("auth", Session.idle),
    b"NAMESPACE": ("auth", Session.namespace),
    b"ENABLE": ("auth", Session.enable),
    b"SELECT": ("auth", Session.select),
    b"EXAMINE": ("auth", Session.examine),
    b"CREATE": ("auth", Session.create),
    b"DELETE": ("auth", Session.delete),
    b"RENAME": ("auth", Session.rename),
    b"SUBSCRIBE": ("auth", Session.subscribe),
    b"UNSUBSCRIBE": ("auth", Session.unsubscribe),
    b"LIST": ("auth", Session.list_cmd),
    b"LSUB": ("auth", Session.lsub),
    b"STATUS": ("auth", Session.status),
    b"APPEND": ("auth", Session.append),
    b"CHECK": ("selected", Session.check),
    b"CLOSE": ("selected", Session.close_cmd),
    b"UNSELECT": ("selected", Session.unselect),
    b"EXPUNGE": ("selected", Session.expunge),
    b"SEARCH": ("selected", Session.search),
    b"FETCH": ("selected", Session.fetch),
    b"STORE": ("selected", Session.store_cmd),
    b"COPY": ("selected", Session.copy),
    b"MOVE": ("selected", Session.move),
    b"UID EXPUNGE": ("selected", Session.expunge),
    b"UID SEARCH": ("selected", Session.search),
    b"UID FETCH": ("selected", Session.fetch),
    b"UID STORE": ("selected", Session.store_cmd),
    b"UID COPY": ("selected", Session.copy),
    b"UID MOVE": ("selected", Session.move),
}
