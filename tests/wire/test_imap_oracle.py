"""Cross-check ENVELOPE and BODYSTRUCTURE parsing against imapclient.response_parser (an independent oracle)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imapclient.response_parser import parse_fetch_response

from mssante.wire.imap import (
    NEED_DATA,
    Address,
    ClientConnection,
    Envelope,
    FetchResponse,
    Login,
    MultiPart,
    Noop,
    Select,
    SinglePart,
)
from tests._hypothesis import examples

SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ours(response: bytes) -> FetchResponse:
    conn = ClientConnection(tls=True)
    for data in (b"* OK hi\r\n", b"a001 OK\r\n", b"a002 OK\r\n"):
        conn.receive_data(data)
        while conn.next_event() is not NEED_DATA:
            pass
        if data == b"* OK hi\r\n":
            conn.send(Login(username="u", password="p"))
        elif data == b"a001 OK\r\n":
            conn.send(Select(mailbox="INBOX"))
    conn.send(Noop())
    conn.receive_data(response)
    event = conn.next_event()
    assert isinstance(event, FetchResponse)
    return event


def theirs(response: bytes) -> dict[bytes, Any]:
    """imapclient wants imaplib's shape: ``b"12 (..."`` with ``(line, literal)`` tuples."""
    text = re.sub(rb"^\* ([0-9]+) FETCH ", rb"\1 ", response.removesuffix(b"\r\n"))
    parts: list[Any] = []
    while (m := re.search(rb"\{([0-9]+)\}\r\n", text)) is not None:
        size = int(m.group(1))
        parts.append((text[: m.start()] + m.group(0)[:-2], text[m.end() : m.end() + size]))
        text = text[m.end() + size :]
    parts.append(text)
    (result,) = parse_fetch_response(parts, uid_is_key=False).values()
    return result  # type: ignore[no-any-return]


def lower(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.lower()
    if isinstance(value, (tuple, list)):
        return tuple(lower(v) for v in value)
    return value


def flat_params(params: tuple[tuple[str, bytes], ...]) -> Any:
    return tuple(x for key, val in params for x in (key.encode(), val)) or None


def check_envelope(mine: Envelope, other: Any) -> None:
    assert mine.subject == other.subject
    assert mine.message_id == other.message_id and mine.in_reply_to == other.in_reply_to
    for field in ("from_", "sender", "reply_to", "to", "cc", "bcc"):
        mine_list: tuple[Address, ...] = getattr(mine, field)
        other_list = getattr(other, field) or ()
        assert [(a.name, a.route, a.mailbox, a.host) for a in mine_list] == [
            (a.name, a.route, a.mailbox, a.host) for a in other_list
        ], field


def check_extensions(mine: SinglePart | MultiPart, first: Any, ext: tuple[Any, ...]) -> None:
    """``ext`` = the fields present: md5 (single part) or params (multipart), dsp, lang, loc, more."""
    padded = (*ext, None, None, None, None)
    assert lower(first) == lower(padded[0])
    dsp = padded[1]
    got = mine.disposition
    expected = None if dsp is None else lower((dsp[0], dsp[1] if len(dsp) > 1 else None))
    assert (None if got is None else lower((got.type.encode(), flat_params(got.params)))) == expected
    lang = padded[2]
    assert mine.language == (None if lang is None else (lang,) if isinstance(lang, bytes) else tuple(lang))
    assert mine.location == padded[3]
    assert lower(mine.extension) == lower(tuple(ext[4:]))


def check_body(mine: SinglePart | MultiPart | None, other: Any) -> None:
    assert mine is not None
    if isinstance(mine, MultiPart):
        # imapclient wraps the top level in BodyData ([parts], subtype, ...); nested ones are raw tuples.
        if isinstance(other[0], list):
            parts, (subtype, *ext) = other[0], other[1:]
        else:
            count = next(i for i, x in enumerate(other) if not isinstance(x, tuple))
            parts, (subtype, *ext) = other[:count], other[count:]
        assert len(parts) == len(mine.parts)
        for mine_part, other_part in zip(mine.parts, parts, strict=True):
            check_body(mine_part, other_part)
        assert mine.subtype == subtype.decode().lower()
        check_extensions(mine, flat_params(mine.params), tuple(ext))
        return
    assert not isinstance(other[0], (list, tuple))
    fields = list(other)
    assert (mine.type, mine.subtype) == (fields[0].decode().lower(), fields[1].decode().lower())
    assert lower(flat_params(mine.params)) == lower(fields[2])
    assert (mine.id, mine.description) == (fields[3], fields[4])
    assert mine.encoding == fields[5].decode().lower() and mine.size == fields[6]
    rest = fields[7:]
    if mine.envelope is not None:
        assert mine.lines == rest[2]
        check_body(mine.body, rest[1])
        rest = rest[3:]
    elif mine.type == "text":
        assert mine.lines == rest[0]
        rest = rest[1:]
    check_extensions(mine, mine.md5, tuple(rest))


CORPUS = [
    # RFC 3501 §7.4.2 / §8 examples
    b'* 12 FETCH (BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92))\r\n',
    b'* 12 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
    b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" '
    b'"Compiler diff" "BASE64" 4554 73) "MIXED"))\r\n',
    # Dovecot-like: lower case, extension data everywhere
    b'* 1 FETCH (UID 1 BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 120 4 '
    b"NIL NIL NIL NIL)"
    b'("application" "pdf" ("name" "=?utf-8?q?r=C3=A9sultat.pdf?=") NIL NIL "base64" 4096 NIL '
    b'("attachment" ("filename" "r.pdf")) NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL))\r\n',
    # message/rfc822 inside, with an envelope
    b'* 2 FETCH (BODYSTRUCTURE ("message" "rfc822" NIL NIL NIL "7bit" 500 ("Mon, 1 Jan 2024 00:00:00 +0000" "inner" '
    b'(("A" NIL "a" "x.fr")) NIL NIL (("B" NIL "b" "y.fr")) NIL NIL NIL "<m@x>") '
    b'("text" "plain" NIL NIL NIL "7bit" 10 1 NIL NIL NIL NIL) 12 NIL NIL NIL NIL))\r\n',
    # Gmail-like single part with language list and location
    b'* 3 FETCH (BODYSTRUCTURE ("TEXT" "HTML" ("CHARSET" "UTF-8") NIL NIL "BASE64" 300 5 "abc" '
    b'("INLINE" NIL) ("FR" "EN") "http://x/y"))\r\n',
    # ENVELOPE with literal subject, group syntax, RFC 2047
    b'* 4 FETCH (ENVELOPE ("Tue, 2 Jan 2024 10:00:00 +0100" {12}\r\nsub "ject" \\ '
    b'(("=?utf-8?B?w6k=?=" NIL "x" "y.fr")) '
    b'((NIL NIL "undisclosed" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL "<parent@x>" "<m@x>"))\r\n',
]


@pytest.mark.parametrize("response", CORPUS)
def test_corpus_against_imapclient(response: bytes) -> None:
    mine = ours(response)
    other = theirs(response)
    if mine.envelope is not None:
        check_envelope(mine.envelope, other[b"ENVELOPE"])
    if mine.bodystructure is not None:
        check_body(mine.bodystructure, other[b"BODYSTRUCTURE"])
    assert mine.envelope is not None or mine.bodystructure is not None


# -- generated structures -------------------------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from('abcXYZ 09-=?_."\\<>@'), max_size=12)


def quoted(value: str) -> bytes:
    return b'"' + value.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


NSTRING = st.one_of(st.just(b"NIL"), TEXT.map(quoted))
TOKEN = st.sampled_from([b'"text"', b'"APPLICATION"', b'"image"', b'"x-foo"'])
SUBTYPE = st.sampled_from([b'"plain"', b'"PDF"', b'"png"', b'"mixed"', b'"related"'])
PARAMS = st.one_of(
    st.just(b"NIL"),
    st.lists(st.tuples(st.sampled_from([b'"charset"', b'"name"']), TEXT.map(quoted)), min_size=1, max_size=2).map(
        lambda kv: b"(" + b" ".join(k + b" " + v for k, v in kv) + b")"
    ),
)
DISPOSITION = st.one_of(st.just(b"NIL"), st.tuples(st.sampled_from([b'"inline"', b'"attachment"']), PARAMS).map(
    lambda t: b"(" + t[0] + b" " + t[1] + b")"
))  # fmt: skip
LANGUAGE = st.one_of(st.just(b"NIL"), TEXT.map(quoted), st.lists(TEXT.map(quoted), min_size=1, max_size=2).map(
    lambda xs: b"(" + b" ".join(xs) + b")"
))  # fmt: skip
ADDRESS = st.tuples(NSTRING, NSTRING, NSTRING, NSTRING).map(lambda t: b"(" + b" ".join(t) + b")")
ADDRESSES = st.one_of(
    st.just(b"NIL"), st.lists(ADDRESS, min_size=1, max_size=3).map(lambda xs: b"(" + b"".join(xs) + b")")
)
ENVELOPE = st.tuples(NSTRING, NSTRING, *[ADDRESSES] * 6, NSTRING, NSTRING).map(lambda t: b"(" + b" ".join(t) + b")")


def extension(n: int, multipart: bool = False) -> st.SearchStrategy[bytes]:
    # body-ext-1part = md5 [dsp [lang [loc]]];  body-ext-mpart = params [dsp [lang [loc]]]
    fields = ([DISPOSITION, LANGUAGE, NSTRING] if multipart else [NSTRING, DISPOSITION, LANGUAGE, NSTRING])[:n]
    return st.tuples(*fields).map(lambda t: b"".join(b" " + x for x in t)) if fields else st.just(b"")


@st.composite
def single_part(draw: st.DrawFn) -> bytes:
    media = draw(TOKEN)
    fields = b" ".join([media, draw(SUBTYPE), draw(PARAMS), draw(NSTRING), draw(NSTRING), b'"base64"'])
    fields += b" %d" % draw(st.integers(0, 10**9))
    if media == b'"text"':
        fields += b" %d" % draw(st.integers(0, 10**6))
    return b"(" + fields + draw(st.integers(0, 4).flatmap(extension)) + b")"


@st.composite
def body(draw: st.DrawFn, depth: int = 0) -> bytes:
    if depth >= 3 or draw(st.booleans()):
        return draw(single_part())
    kind = draw(st.sampled_from(["multipart", "message"]))
    if kind == "message":
        inner = draw(body(depth + 1))
        head = b'"message" "rfc822" NIL NIL NIL "7bit" %d ' % draw(st.integers(0, 9999))
        return b"(" + head + draw(ENVELOPE) + b" " + inner + b" %d" % draw(st.integers(0, 99)) + b")"
    parts = draw(st.lists(body(depth + 1), min_size=1, max_size=3))
    ext = draw(st.integers(0, 4))
    tail = (b" " + draw(PARAMS) + draw(extension(ext - 1, multipart=True))) if ext else b""
    return b"(" + b"".join(parts) + b" " + draw(SUBTYPE) + tail + b")"


@SETTINGS
@given(body())
def test_generated_bodystructures_agree_with_imapclient(structure: bytes) -> None:
    response = b"* 7 FETCH (UID 3 BODYSTRUCTURE " + structure + b")\r\n"
    check_body(ours(response).bodystructure, theirs(response)[b"BODYSTRUCTURE"])


@SETTINGS
@given(ENVELOPE)
def test_generated_envelopes_agree_with_imapclient(envelope: bytes) -> None:
    response = b"* 7 FETCH (ENVELOPE " + envelope + b")\r\n"
    mine = ours(response).envelope
    assert mine is not None
    check_envelope(mine, theirs(response)[b"ENVELOPE"])
