"""The IMAP view of one stored message: MIME tree, ENVELOPE, BODYSTRUCTURE, sections (no I/O).

Everything is computed from the raw octets as a real server does (RFC 3501 §6.4.5, §7.4.2):

* header values are given as their source (RFC 2047 words kept, raw 8-bit kept, folding CRLF
  removed); ENVELOPE's date is the Date header's text; an empty display name is NIL; a group
  gives ``(NIL NIL "name" NIL) ... (NIL NIL NIL NIL)``;
* a part's body ends before the CRLF that precedes the next boundary delimiter (RFC 2046
  §5.1.1: that CRLF belongs to the delimiter); sizes and line counts are those of the body only;
* Content-Type / Content-Disposition parameters are parsed (quoted values unquoted, RFC 2231
  names such as ``filename*`` kept as they are).

Malformed MIME never raises: a missing boundary makes the multipart's parts what can be found,
an unterminated header is all header. Serialised data items are IMAP bytes ready to send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Part", "fetch_section", "header_fields", "parse_message", "quote", "render_body", "render_envelope"]

_MAX_DEPTH: Final = 40  # nesting bound (multipart / message/rfc822) against crafted input
_HEADER_LINE: Final = re.compile(rb"([^\x00-\x20\x7f:]+)[ \t]*:")
_DEFAULT_TYPE: Final = (b"text", b"plain")


def quote(value: bytes | None) -> bytes:
    """An IMAP ``nstring``: NIL, a quoted string, or a literal for 8-bit / CR / LF (RFC 3501 §4.3)."""
    if value is None:
        return b"NIL"
    if any(c > 0x7E or c in (0x0D, 0x0A, 0x00) for c in value):
        return b"{%d}\r\n" % len(value) + value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


@dataclass(eq=False)
class Part:
    """One MIME entity: offsets of its header and body in the raw message, and its children."""

    raw: bytes
    header_start: int
    body_start: int
    end: int
    headers: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)  # (lower name, value, raw lines)
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the encapsulated message of a message/rfc822 part
    ctype: tuple[bytes, bytes] = _DEFAULT_TYPE
    params: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def header(self) -> bytes:
        """The header block, blank line included."""
        return self.raw[self.header_start:self.body_start]

    @property
    def body(self) -> bytes:
        """The body octets."""
        return self.raw[self.body_start:self.end]

    @property
    def multipart(self) -> bool:
        """True for a ``multipart/*`` entity."""
        return self.ctype[0].lower() == b"multipart"

    @property
    def is_message(self) -> bool:
        """True for ``message/rfc822`` (and ``message/global``)."""
        return self.ctype[0].lower() == b"message" and self.ctype[1].lower() in (b"rfc822", b"global")

    def get(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), unfolded, or None."""
        for key, value, _ in self.headers:
            if key == name:
                return value
        return None


def _split_header(raw: bytes, start: int, end: int) -> tuple[list[tuple[bytes, bytes, bytes]], int]:
    """Parse the header block at ``start``; return the fields and where the body starts."""
    fields: list[tuple[bytes, bytes, bytes]] = []
    pos = start
    current: list[bytes] = []

    def flush() -> None:
        if not current:
            return
        lines = b"".join(current)
        match = _HEADER_LINE.match(lines)
        if match is not None:
            value = lines[match.end():].replace(b"\r\n", b"").replace(b"\n", b"").strip(b" \t")
            fields.append((match.group(1).lower(), value, lines))
        current.clear()

    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        line = raw[pos:line_end]
        if line in (b"\r\n", b"\n"):
            flush()
            return fields, line_end
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
        else:
            flush()
            current.append(line)
        pos = line_end
    flush()
    return fields, end


def _params(text: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Split ``value; a=b; c="d"`` into the value and its parameters (RFC 2045 §5.1)."""
    items: list[bytes] = []
    buf = bytearray()
    in_quote = escaped = False
    for c in text:
        ch = bytes((c,))
        if escaped:
            buf += ch
            escaped = False
        elif ch == b"\\" and in_quote:
            buf += ch
            escaped = True
        elif ch == b'"':
            in_quote = not in_quote
            buf += ch
        elif ch == b";" and not in_quote:
            items.append(bytes(buf))
            buf.clear()
        else:
            buf += ch
    items.append(bytes(buf))
    params = []
    for item in items[1:]:
        name, sep, value = item.partition(b"=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            continue
        if value.startswith(b'"') and value.endswith(b'"') and len(value) >= 2:
            value = re.sub(rb"\\(.)", rb"\1", value[1:-1])
        params.append((name, value))
    return items[0].strip(), params


def _find_boundaries(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(content start, content end) of each body part between ``--boundary`` delimiters."""
    delim = b"--" + boundary
    parts: list[tuple[int, int]] = []
    pos = start
    open_at: int | None = None
    while pos < end:
        at = raw.find(delim, pos, end)
        if at < 0:
            break
        if at != start and raw[at - 1:at] != b"\n":
            pos = at + 1
            continue
        line_end = raw.find(b"\n", at, end)
        line_end = end if line_end < 0 else line_end + 1
        after = raw[at + len(delim):line_end].rstrip(b"\r\n")
        closing = after.startswith(b"--")
        if after.strip(b" \t") and not closing:
            pos = at + 1  # "--boundaryX": a longer line, not this delimiter
            continue
        if open_at is not None:
            # RFC 2046 §5.1.1: the CRLF before the delimiter belongs to the delimiter.
            stop = at
            if stop > open_at and raw[stop - 1:stop] == b"\n":
                stop -= 1
                if stop > open_at and raw[stop - 1:stop] == b"\r":
                    stop -= 1
            parts.append((open_at, max(open_at, stop)))
        if closing:
            return parts
        open_at = line_end
        pos = line_end
    if open_at is not None:
        parts.append((open_at, end))
    return parts


def _parse(raw: bytes, start: int, end: int, depth: int, default: tuple[bytes, bytes] = _DEFAULT_TYPE) -> Part:
    headers, body_start = _split_header(raw, start, end)
    part = Part(raw, start, body_start, end, headers)
    ctype_value = part.get(b"content-type")
    if ctype_value is not None:
        value, params = _params(ctype_value)
        main, slash, sub = value.partition(b"/")
        if slash and main.strip() and sub.strip():
            part.ctype, part.params = (main.strip(), sub.strip()), params
            if part.ctype[0].lower() == b"text" and not any(k.lower() == b"charset" for k, _ in params):
                part.params = [*params, (b"charset", b"us-ascii")]  # RFC 2045 §5.2 default
        else:
            part.ctype = _DEFAULT_TYPE
            part.params = [(b"charset", b"us-ascii")]
    else:
        part.ctype = default
        if default == _DEFAULT_TYPE:
            part.params = [(b"charset", b"us-ascii")]
    if depth >= _MAX_DEPTH:
        return part
    if part.multipart:
        boundary = next((v for k, v in part.params if k.lower() == b"boundary"), None)
        child_default = (b"message", b"rfc822") if part.ctype[1].lower() == b"digest" else _DEFAULT_TYPE
        if boundary:
            for child_start, child_end in _find_boundaries(raw, body_start, end, boundary):
                part.children.append(_parse(raw, child_start, child_end, depth + 1, child_default))
    elif part.is_message:
        part.message = _parse(raw, body_start, end, depth + 1)
    return part


def parse_message(raw: bytes) -> Part:
    """The MIME tree of ``raw`` (never raises: odd input gives what can be found)."""
    return _parse(raw, 0, len(raw), 0)


# ------------------------------------------------------------------ ENVELOPE (RFC 3501 §7.4.2)

_SPECIALS: Final = frozenset(b'()<>[]:;@\\,."')
_ATOM_STOP: Final = frozenset(b' \t\r\n"()<>[]:;@\\,')  # "." stays inside atoms (obs-phrase, dot-atom)


def _tokens(value: bytes) -> list[tuple[str, bytes]]:
    """RFC 5322 tokens: ("q", quoted) ("a", atom) ("s", special); comments dropped."""
    out: list[tuple[str, bytes]] = []
    pos, n = 0, len(value)
    while pos < n:
        c = value[pos]
        if c in b" \t\r\n":
            pos += 1
        elif c == ord("("):
            depth = 0
            while pos < n:
                if value[pos] == ord("\\"):
                    pos += 2
                    continue
                if value[pos] == ord("("):
                    depth += 1
                elif value[pos] == ord(")"):
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                pos += 1
        elif c == ord('"'):
            buf = bytearray()
            pos += 1
            while pos < n and value[pos] != ord('"'):
                if value[pos] == ord("\\") and pos + 1 < n:
                    pos += 1
                buf.append(value[pos])
                pos += 1
            pos += 1
            out.append(("q", bytes(buf)))
        elif c in _SPECIALS and c != ord("."):
            out.append(("s", bytes((c,))))
            pos += 1
        else:
            start = pos
            while pos < n and value[pos] not in _ATOM_STOP:
                pos += 1
            out.append(("a", value[start:pos]))
    return out


_Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]


def _mailbox(tokens: list[tuple[str, bytes]]) -> _Address | None:
    """One mailbox from its tokens: ``phrase <local@domain>`` or ``local@domain``."""
    if not tokens:
        return None
    if ("s", b"<") in tokens:
        lt = tokens.index(("s", b"<"))
        phrase = b" ".join(t for _, t in tokens[:lt])
        inner = tokens[lt + 1:]
        if ("s", b">") in inner:
            inner = inner[:inner.index(("s", b">"))]
        if inner and inner[0] == ("s", b"@"):  # obsolete route: @a,@b:local@domain
            colon = next((i for i, t in enumerate(inner) if t == ("s", b":")), None)
            inner = inner[colon + 1:] if colon is not None else inner
        name: bytes | None = phrase or None
    else:
        inner, name = tokens, None
    if ("s", b"@") in inner:
        at = len(inner) - 1 - inner[::-1].index(("s", b"@"))
        local = b"".join(t for _, t in inner[:at])
        host = b"".join(t for _, t in inner[at + 1:])
    else:
        local, host = b"".join(t for _, t in inner), b""
    if not local and not host:
        return None
    return (name, None, local or None, host or None)


def _addresses(value: bytes | None) -> list[_Address] | None:
    if value is None:
        return None
    tokens = _tokens(value)
    out: list[_Address] = []
    current: list[tuple[str, bytes]] = []
    in_group = False
    for kind, tok in tokens:
        if kind == "s" and tok == b":" and not in_group and ("s", b"<") not in current:
            out.append((None, None, b" ".join(t for _, t in current) or None, None))
            current, in_group = [], True
        elif kind == "s" and tok == b";" and in_group:
            address = _mailbox(current)
            if address is not None:
                out.append(address)
            out.append((None, None, None, None))
            current, in_group = [], False
        elif kind == "s" and tok == b",":
            address = _mailbox(current)
            if address is not None:
                out.append(address)
            current = []
        else:
            current.append((kind, tok))
    address = _mailbox(current)
    if address is not None:
        out.append(address)
    if in_group:
        out.append((None, None, None, None))
    return out or None


def _address_list(value: bytes | None) -> bytes:
    addresses = _addresses(value)
    if not addresses:
        return b"NIL"
    return b"(" + b"".join(b"(" + b" ".join(quote(x) for x in a) + b")" for a in addresses) + b")"


def render_envelope(part: Part) -> bytes:
    """The ENVELOPE of a message (RFC 3501 §7.4.2), from its header source."""
    def text(name: bytes) -> bytes:
        value = part.get(name)
        return quote(value if value else None)

    sender = part.get(b"sender") or part.get(b"from")
    reply_to = part.get(b"reply-to") or part.get(b"from")
    return b"(" + b" ".join((
        text(b"date"), text(b"subject"), _address_list(part.get(b"from")), _address_list(sender),
        _address_list(reply_to), _address_list(part.get(b"to")), _address_list(part.get(b"cc")),
        _address_list(part.get(b"bcc")), text(b"in-reply-to"), text(b"message-id"),
    )) + b")"


# ------------------------------------------------------------------ BODYSTRUCTURE (RFC 3501 §7.4.2)

def _plist(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return b"NIL"
    # RFC 2231 parameters (name*, name*0...) come after the plain ones, as Dovecot lists them.
    ordered = sorted(params, key=lambda kv: b"*" in kv[0])
    return b"(" + b" ".join(quote(k) + b" " + quote(v) for k, v in ordered) + b")"


def _lines(body: bytes) -> int:
    return body.count(b"\n")  # an unterminated last line is not counted (as Dovecot)


def _disposition(part: Part) -> bytes:
    value = part.get(b"content-disposition")
    if not value:
        return b"NIL"
    kind, params = _params(value)
    return b"(" + quote(kind) + b" " + _plist(params) + b")"


def _language(part: Part) -> bytes:
    value = part.get(b"content-language")
    if not value:
        return b"NIL"
    langs = [v.strip() for v in value.split(b",") if v.strip()]
    return b"(" + b" ".join(quote(v) for v in langs) + b")" if langs else b"NIL"


def render_body(part: Part, *, extensible: bool) -> bytes:
    """BODYSTRUCTURE (``extensible``) or BODY of ``part`` (RFC 3501 §7.4.2)."""
    if part.multipart:
        children = b"".join(render_body(c, extensible=extensible) for c in part.children)
        if not children:  # a multipart without parts: show an empty text part, as Dovecot does
            children = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0' + (
                b" NIL NIL NIL NIL)" if extensible else b")")
        out = b"(" + children + b" " + quote(part.ctype[1])
        if extensible:
            params = [(k, v) for k, v in part.params]
            out += b" " + _plist(params) + b" " + _disposition(part) + b" " + _language(part) + b" " + quote(
                part.get(b"content-location"))
        return out + b")"
    body = part.body
    encoding = part.get(b"content-transfer-encoding") or b"7bit"
    fields = [quote(part.ctype[0]), quote(part.ctype[1]), _plist(part.params), quote(part.get(b"content-id")),
              quote(part.get(b"content-description")), quote(encoding), b"%d" % len(body)]
    if part.is_message and part.message is not None:
        fields += [render_envelope(part.message), render_body(part.message, extensible=extensible),
                   b"%d" % _lines(body)]
    elif part.ctype[0].lower() == b"text":
        fields.append(b"%d" % _lines(body))
    if extensible:
        fields += [quote(part.get(b"content-md5")), _disposition(part), _language(part),
                   quote(part.get(b"content-location"))]
    return b"(" + b" ".join(fields) + b")"


# ------------------------------------------------------------------ sections (RFC 3501 §6.4.5)

def _child(part: Part, number: int) -> Part | None:
    """Part ``number`` (1-based) inside ``part``; a non-multipart's part 1 is itself."""
    if part.is_message and part.message is not None:
        part = part.message
    if part.multipart:
        return part.children[number - 1] if 0 < number <= len(part.children) else None
    return part if number == 1 else None


def header_fields(header: bytes, names: list[bytes], *, exclude: bool) -> bytes:
    """The header lines whose name is (``exclude``: is not) in ``names``, then the blank line."""
    wanted = {n.lower() for n in names}
    fields, _ = _split_header(header, 0, len(header))
    kept = [lines for name, _, lines in fields if (name in wanted) != exclude]
    return b"".join(kept) + b"\r\n"


def fetch_section(root: Part, path: list[int], text: bytes, names: list[bytes]) -> bytes | None:
    """The octets of section ``path`` + ``text`` (``""``, HEADER, HEADER.FIELDS[.NOT], TEXT, MIME).

    Returns None when the part does not exist (the server answers with an empty string).
    """
    part: Part | None = root
    message: Part | None = root
    for number in path:
        assert part is not None
        if part is root and len(path) > 1 and not (root.multipart or root.is_message):
            return b""  # the body of a single-part message is part 1, and has no part 1.1 (as Dovecot)
        part = _child(part, number)
        if part is None:
            return None
        message = part.message if part.is_message else None
    assert part is not None
    if text == b"":
        return root.raw if not path else part.body
    if text == b"MIME":
        return part.header if path else None
    target = message if path else root
    if target is None:
        return b""
    if text == b"HEADER":
        return target.header
    if text == b"TEXT":
        return target.body
    if text in (b"HEADER.FIELDS", b"HEADER.FIELDS.NOT"):
        return header_fields(target.header, names, exclude=text.endswith(b".NOT"))
    return None
