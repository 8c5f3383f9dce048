"""Run IMAP command sequences against two servers and compare the answers after normalisation.

Not a test module: ``test_imap_differential.py`` uses it. Three pieces:

* :class:`WireSession`, a blocking line-level IMAP client (stdlib ``socket`` + ``ssl``) that sends
  each command exactly as written and returns every response line of it, literals included;
* :func:`tokenize`, a reader of IMAP response syntax (RFC 3501 §9: atoms, quoted strings,
  literals, NIL, parenthesised lists, ``[...]`` sections inside atoms);
* :func:`normalise`, which turns one command's responses into a comparable value, erasing only
  the differences RFC 3501 / RFC 9051 allow between two correct servers (:data:`ALLOWED`).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["ALLOWED", "Exchange", "WireSession", "normalise", "tokenize"]

#: Every difference the normalisation erases, with the rule that allows it.
ALLOWED: dict[str, str] = {
    "tag": "Tags are the client's choice; responses are compared tag-free (RFC 3501 §2.2.1).",
    "text": "The human-readable text after a status response and its code is free (RFC 3501 §7.1, "
            "resp-text).",
    "capability": "CAPABILITY responses and [CAPABILITY] codes list each server's extensions, which "
                  "legitimately differ (RFC 3501 §7.2.1).",
    "uidvalidity": "UIDVALIDITY is any non-zero value unique to the mailbox's life (RFC 3501 §2.3.1.1); "
                   "so is the UIDVALIDITY inside APPENDUID/COPYUID (RFC 4315 §3).",
    "string-form": "A string may be sent quoted or as a literal; both are the same string "
                   "(RFC 3501 §4.3).",
    "order": "Untagged responses of one command may come in any order, except EXPUNGE, whose "
             "order carries the sequence numbers (RFC 3501 §7.4.1); FETCH data items may come in any "
             "order and one message's items may be split over several FETCH responses "
             "(RFC 3501 §7.4.2).",
    "case": "Atoms such as flag names, response-code names and FETCH item names are "
            "case-insensitive (RFC 3501 §9, note 3).",
    "recent": "Which session gets \\Recent for a new message is up to the server (RFC 3501 "
              "§2.3.2); IMAP4rev2 removed it (RFC 9051 §E.1). \\Recent flags and RECENT counts are "
              "left out.",
    "modseq": "HIGHESTMODSEQ/NOMODSEQ belong to CONDSTORE (RFC 7162), which neither client enables "
              "here; a server may announce it unasked.",
    "uid-base": "UIDs only have to ascend strictly within a UIDVALIDITY (RFC 3501 §2.3.1.1): one server "
                "may number a fresh folder from 1, another from 101. Each server's base, measured once "
                "on a fresh folder, is subtracted from every UID it sends (FETCH UID, UID SEARCH, "
                "UIDNEXT, APPENDUID/COPYUID) and added to the UIDs of UID commands; any other UID "
                "difference remains.",
    "objectid": "MAILBOXID/EMAILID/THREADID belong to OBJECTID (RFC 8474), announced by one server "
                "only; the [MAILBOXID] code on SELECT is left out.",
    "internaldate-zone": "INTERNALDATE is an instant; the zone it is shown in is the server's choice "
                         "(RFC 3501 §2.3.3): dates are compared in UTC.",
    "expunged-updates": "A flag update for a message that the same answer then expunges may be left "
                        "out (RFC 3501 §7: the server sends the state it chooses to report; the "
                        "message is gone). Such FETCH responses are dropped before comparing.",
    "read-only-store": "STORE in a mailbox opened with EXAMINE makes no change (RFC 3501 §6.3.2); the "
                       "answer is not fixed: Dovecot says OK and ignores it, NO [READ-ONLY] "
                       "(RFC 5530 §3) also complies.",
    "no-date-search": "SENTBEFORE/SENTON/SENTSINCE of a message without Date is not specified by "
                      "RFC 3501 §6.4.4 (Dovecot takes it as the epoch).",
    "optional-code": "A NO may carry an RFC 5530 code (NONEXISTENT) or none; clients must work "
                     "without it (RFC 5530 §3: the codes are advisory).",
    "unsolicited-flags": "A server may send FETCH FLAGS for a message at any time (RFC 3501 §7.4.2), "
                         "e.g. for a message it just announced with EXISTS.",
    "lenient-syntax": "Dovecot accepts some commands the RFC 3501 §9 grammar forbids (STORE with no flag "
                      "at all); the sandbox's BAD follows the grammar. Tolerated only as sandbox BAD "
                      "vs Dovecot OK.",
    "invalid-content-type": "RFC 2045 §5.2: a Content-Type without a subtype is taken as text/plain; "
                            "charset=us-ascii, which the sandbox does; Dovecot 2.3 shows an empty type and "
                            "subtype (\"\" \"\") instead. Tolerated only for that part.",
    "invalid-mutf7": "RFC 3501 §5.1.3 does not say how to refuse a mailbox name that is not valid modified "
                     "UTF-7: the sandbox answers BAD (a malformed argument), Dovecot NO. Tolerated only "
                     "as sandbox BAD vs Dovecot NO.",
    "keepalive": "Untagged OK responses without a code during IDLE are keepalives (RFC 2177 §3).",
    "flag-list-order": "FLAGS, PERMANENTFLAGS and a message's flags are sets (RFC 3501 §2.3.2).",
}

_ATOM_END = frozenset(b" ()\r\n")


@dataclass
class Literal:
    """A literal string read from the wire (kept apart so :func:`tokenize` can tell it from an atom)."""

    data: bytes


def tokenize(data: bytes) -> list[Any]:
    """Parse IMAP response syntax into nested lists of atoms (``str``), strings (``bytes``) and ``None``.

    ``data`` is one response with its literals inline (``{n}\\r\\n`` then ``n`` octets). An atom
    keeps any ``[...]`` it contains (``BODY[HEADER.FIELDS (A B)]<0>``).

    Raises:
        ValueError: unbalanced parentheses or a truncated literal/quoted string.
    """
    stack: list[list[Any]] = [[]]
    pos, end = 0, len(data)
    while pos < end:
        c = data[pos]
        if c in b" \r\n":
            pos += 1
        elif c == ord("("):
            stack.append([])
            pos += 1
        elif c == ord(")"):
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' at {pos}")
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif c == ord('"'):
            out = bytearray()
            pos += 1
            while True:
                if pos >= end:
                    raise ValueError("unterminated quoted string")
                ch = data[pos]
                if ch == ord("\\"):
                    out.append(data[pos + 1])
                    pos += 2
                elif ch == ord('"'):
                    pos += 1
                    break
                else:
                    out.append(ch)
                    pos += 1
            stack[-1].append(bytes(out))
        elif c == ord("{") or (c == ord("~") and data[pos + 1:pos + 2] == b"{"):
            match = re.compile(rb"~?\{(\d+)\+?\}\r\n").match(data, pos)
            if match is None:
                raise ValueError(f"bad literal at {pos}")
            size = int(match.group(1))
            start = match.end()
            if start + size > end:
                raise ValueError("truncated literal")
            stack[-1].append(data[start:start + size])
            pos = start + size
        else:
            start = pos
            depth = 0
            while pos < end and (depth or data[pos] not in _ATOM_END):
                if data[pos] == ord("["):
                    depth += 1
                elif data[pos] == ord("]"):
                    depth = max(0, depth - 1)
                pos += 1
            atom = data[start:pos].decode("utf-8", "replace")
            stack[-1].append(None if atom.upper() == "NIL" else atom)
    if len(stack) != 1:
        raise ValueError("unbalanced '('")
    return stack[0]


@dataclass
class Exchange:
    """One command as sent and every line the server answered (a line keeps its literals)."""

    command: bytes
    lines: list[bytes] = field(default_factory=list)


class WireSession:
    """A blocking IMAP client that sends raw command text and collects the raw answers."""

    def __init__(self, host: str, port: int, timeout: float = 20.0) -> None:
        """Connect and read the greeting (kept in :attr:`greeting`).

        Raises:
            OSError: cannot connect.
        """
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=timeout)
        self.host = host
        self._buf = b""
        self._n = 0
        self.greeting = self.read_response()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self._buf += chunk

    def _readline(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def read_response(self) -> bytes:
        """Read one response line with its literals (``{n}`` at the end of a line).

        Raises:
            EOFError: the server closed the connection.
        """
        out = self._readline()
        while True:
            match = re.search(rb"\{(\d+)\+?\}\r\n$", out)
            if match is None:
                return out
            size = int(match.group(1))
            while len(self._buf) < size:
                self._fill()
            out += self._buf[:size]
            self._buf = self._buf[size:]
            out += self._readline()

    def tag(self) -> bytes:
        """A fresh tag (``a1``, ``a2``...)."""
        self._n += 1
        return b"a%d" % self._n

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def command(self, text: bytes, *, literals: Sequence[bytes] = ()) -> Exchange:
        """Send ``tag text`` (``text`` may hold ``{n+}`` LITERAL+ markers followed by ``literals``).

        Each ``%L`` in ``text`` is replaced by ``{len+}\\r\\n`` + the next literal. Returns the
        exchange up to and including the tagged response (or up to a BYE that closes it).

        Raises:
            EOFError: the connection closed without a tagged response and without BYE.
        """
        tag = self.tag()
        parts = text.split(b"%L")
        payload = tag + b" " + parts[0]
        for literal, rest in zip(literals, parts[1:], strict=True):
            payload += b"{%d+}\r\n" % len(literal) + literal + rest
        self.send(payload + b"\r\n")
        exchange = Exchange(text)
        while True:
            try:
                line = self.read_response()
            except EOFError:
                if any(x.startswith(b"* BYE") for x in exchange.lines):
                    return exchange
                raise
            exchange.lines.append(line.replace(tag + b" ", b"TAG ", 1) if line.startswith(tag + b" ") else line)
            if line.startswith(tag + b" "):
                return exchange

    def idle(self, then: Any, *, until: bytes) -> Exchange:
        """``IDLE``; after the continuation call ``then()``; read until a line containing ``until``; DONE.

        Raises:
            EOFError: connection closed.
        """
        tag = self.tag()
        self.send(tag + b" IDLE\r\n")
        exchange = Exchange(b"IDLE")
        while True:  # untagged updates may come before the continuation (RFC 3501 §7, RFC 2177)
            cont = self.read_response()
            exchange.lines.append(cont)
            if cont.startswith(b"+"):
                break
            if cont.startswith(tag + b" "):
                return exchange
        then()
        while True:
            line = self.read_response()
            exchange.lines.append(line)
            if until in line:
                break
        self.send(b"DONE\r\n")
        while True:
            line = self.read_response()
            exchange.lines.append(line.replace(tag + b" ", b"TAG ", 1) if line.startswith(tag + b" ") else line)
            if line.startswith(tag + b" "):
                return exchange

    def starttls(self, ctx: ssl.SSLContext) -> None:
        """STARTTLS and the handshake.

        Raises:
            AssertionError: the server refused STARTTLS.
        """
        answer = self.command(b"STARTTLS")
        assert answer.lines[-1].startswith(b"TAG OK"), answer.lines
        assert not self._buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host)

    def close(self) -> None:
        """Close the socket (no LOGOUT)."""
        with contextlib.suppress(OSError):
            self.sock.close()


# --------------------------------------------------------------------------- normalisation

_STATUS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_CODE = re.compile(rb"^\[([^\]]*(?:\[[^\]]*\][^\]]*)*)\]")
_SET_FLAGS = frozenset({"FLAGS", "PERMANENTFLAGS"})


def _up(value: Any) -> Any:
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, list):
        return [_up(v) for v in value]
    return value


def _flags(values: list[Any]) -> tuple[str, ...]:
    return tuple(sorted({str(v).upper() for v in values if str(v).upper() != "\\RECENT"}))


def _shift(value: Any, offset: int) -> Any:
    """Subtract ``offset`` from every number of a UID or UID set (``101:103,105`` → ``1:3,5``)."""
    if not offset or not isinstance(value, str | bytes):
        return value
    text = value.decode() if isinstance(value, bytes) else value
    return re.sub(r"\d+", lambda m: str(int(m.group(0)) - offset), text)


def _status(kind: str, word: str, rest: bytes, offset: int = 0) -> tuple[Any, ...] | None:
    rest = rest.lstrip(b" ")
    match = _CODE.match(rest)
    if match is None:
        return (kind, word)
    tokens = tokenize(match.group(1))
    name = str(tokens[0]).upper() if tokens else ""
    args = tokens[1:]
    if name == "CAPABILITY":
        return (kind, word)
    if name in {"HIGHESTMODSEQ", "NOMODSEQ", "MAILBOXID"}:
        return None if kind == "*" and word == "OK" else (kind, word)
    if name == "UIDVALIDITY":
        args = ["<uidvalidity>"]
    elif name == "UIDNEXT" and args:
        args = [_shift(args[0], offset)]
    elif name in {"APPENDUID", "COPYUID"} and args:
        args = ["<uidvalidity>", *(_shift(a, offset) for a in args[1:])]
    elif name == "PERMANENTFLAGS" and args and isinstance(args[0], list):
        args = [_flags(args[0])]
    return (kind, word, name, tuple(_freeze(_up(a)) for a in args))


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _utc(value: bytes) -> str:
    try:
        when = datetime.strptime(value.decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return f"<bad INTERNALDATE {value!r}>"
    return when.astimezone(UTC).isoformat()


def _fetch_items(items: list[Any], offset: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in zip(items[::2], items[1::2], strict=False):
        name = str(key)
        # Item names are case-insensitive, section specs too except what the client chose to echo.
        upper = name.upper()
        if upper == "FLAGS" and isinstance(value, list):
            out[upper] = _flags(value)
        elif upper == "UID":
            out[upper] = _shift(value, offset)
        elif upper == "INTERNALDATE" and isinstance(value, bytes):
            out[upper] = _utc(value)
        elif upper.startswith(("BODY[", "BINARY[", "BINARY.SIZE[")):
            # Section names are case-insensitive; their order is the client's and must be kept.
            out[upper] = _freeze(value)
        else:
            out[upper] = _freeze(value)
    return out


def normalise(exchange: Exchange, uid_offset: int = 0) -> dict[str, Any]:
    """The comparable form of one command's answer (see :data:`ALLOWED` for what is erased).

    ``uid_offset`` is the server's UID base (its first UID in a fresh folder, minus 1).

    Raises:
        ValueError: a response line that is not IMAP syntax.
    """
    untagged: list[Any] = []
    expunges: list[str] = []
    fetches: dict[int, dict[str, Any]] = {}
    tagged: Any = None
    continuations = 0
    for raw in exchange.lines:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"+"):
            continuations += 1
            continue
        head, _, rest = line.partition(b" ")
        kind = "TAG" if head == b"TAG" else "*"
        word, _, rest = rest.partition(b" ")
        upper = word.decode("ascii", "replace").upper()
        if upper in _STATUS:
            status = _status(kind, upper, rest, uid_offset)
            if kind == "TAG":
                tagged = status
            elif status is not None and not (exchange.command == b"IDLE" and len(status) == 2 and upper == "OK"):
                untagged.append(status)
            continue
        if upper == "CAPABILITY":
            continue
        tokens = tokenize(rest)
        if upper.isdigit() and tokens:
            what = str(tokens[0]).upper()
            if what == "EXPUNGE":
                expunges.append(upper)
                gone = int(upper)  # expunged-updates: renumber what was reported before it
                fetches = {(n - 1 if n > gone else n): items for n, items in fetches.items() if n != gone}
            elif what == "RECENT":
                continue
            elif what == "FETCH" and len(tokens) > 1 and isinstance(tokens[1], list):
                fetches.setdefault(int(upper), {}).update(_fetch_items(tokens[1], uid_offset))
            else:
                untagged.append((upper, what, *(_freeze(t) for t in tokens[1:])))
            continue
        if upper in _SET_FLAGS and tokens and isinstance(tokens[0], list):
            untagged.append((upper, _flags(tokens[0])))
        elif upper == "SEARCH":
            shift = uid_offset if exchange.command.upper().startswith(b"UID ") else 0
            untagged.append((upper, tuple(sorted(int(t) - shift for t in tokens if str(t).isdigit()))))
        elif upper == "STATUS" and len(tokens) == 2 and isinstance(tokens[1], list):
            pairs = dict(zip((str(k).upper() for k in tokens[1][::2]), tokens[1][1::2], strict=False))
            pairs.pop("RECENT", None)
            if "UIDVALIDITY" in pairs:
                pairs["UIDVALIDITY"] = "<uidvalidity>"
            if "UIDNEXT" in pairs:
                pairs["UIDNEXT"] = _shift(pairs["UIDNEXT"], uid_offset)
            untagged.append((upper, _freeze(tokens[0]), tuple(sorted(pairs.items()))))
        else:
            untagged.append((upper, *(_freeze(t) for t in tokens)))
    return {
        "command": exchange.command.split(b"{")[0].decode("utf-8", "replace"),
        "continuations": continuations,
        "untagged": sorted(untagged, key=repr),
        "expunge": expunges,
        "fetch": {str(seq): dict(sorted(items.items())) for seq, items in sorted(fetches.items())},
        "tagged": tagged,
    }
