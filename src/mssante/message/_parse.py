"""Parse a received message into a typed :class:`ParsedMessage`.

Input is untrusted bytes: the size is bounded before parsing, the MIME tree is walked with a
depth and a part-count limit, and every failure of the stdlib parser is mapped to
:class:`~mssante.errors.ContentError` or :class:`~mssante.errors.LimitError`.
"""

from __future__ import annotations

import email.errors
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.feedparser import BytesFeedParser
from email.message import EmailMessage, Message
from typing import Literal

from mssante.errors import ContentError, LimitError, MssanteError, UsageError
from mssante.message import _xdm_bridge
from mssante.message._reports import DSNReport, MDNReport, part_text, read_report
from mssante.message._text import MSG_ID

__all__ = ["MSSHeaders", "ParsedAttachment", "ParsedMessage", "ReadSettings", "SenderKind", "parse_message"]

#: What the stdlib email package raises on some malformed input (header value parsers,
#: charset lookups). Mapped at this boundary, never shown to the caller as such.
#: ``OverflowError``: a Date whose year or hour does not fit a C int (``Date:1 Jan 5 4294967296:0``).
STDLIB_ERRORS = (email.errors.MessageError, ValueError, LookupError, TypeError, AttributeError, OverflowError)

#: Header fields whose value carries RFC 2045 §5.1 / RFC 2183 parameters (RFC 2231 continuations).
_PARAMETERIZED = frozenset({"content-type", "content-disposition"})
#: Header fields the stdlib parses with its RFC 5322 grammar (the rest are unstructured text).
_STRUCTURED = frozenset(getattr(email.policy.default.header_factory, "registry", {})) - {"subject"}
_FEED_CHUNK = 64 * 1024
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')

#: ``patient`` = a Mon espace santé address; ``professional`` = an address in the MSSanté
#: domain; ``external`` = anything else; ``unknown`` = no readable From address.
SenderKind = Literal["professional", "patient", "external", "unknown"]
AttachmentKind = Literal["xdm", "pdf", "other"]


@dataclass(frozen=True, kw_only=True)
class ReadSettings:
    """How received messages are read.

    Attributes:
        patient_domain: the domain of patient (Mon espace santé) addresses,
            ``<INS>@patient.mssante.fr`` (research note §5.4, [C]).
        professional_domain_suffix: MSSanté professional domains end with it.
        codecda_separators: characters accepted between X-MSS-CODECDA values when reading
            (the syntax is unconfirmed, so be tolerant; repeated headers are also accepted).
        max_size: largest message accepted, in bytes (Mon espace santé caps at 25 Mo).
        max_parts: most MIME parts accepted.
        max_depth: deepest multipart nesting accepted.
        inspect_xdm: read the IHE_XDM.ZIP attachment with :mod:`mssante.xdm`.
        max_header_params: most parameters in one Content-Type or Content-Disposition field
            (RFC 2231 continuations count one each). The stdlib parses them in quadratic time
            (4,000 took over 5 s), and real fields carry fewer than ten: a field beyond the cap
            makes the message refused with :class:`~mssante.errors.LimitError`.
        max_encoded_words: most RFC 2047 encoded words in one header field. Each costs about
            50 KiB while decoded (6,000 in a Subject took +296 MiB); beyond the cap the message
            is refused with :class:`~mssante.errors.LimitError`.
        max_structured_header_length: longest structured header field (addresses, dates,
            Content-Type...) parsed. The stdlib grammar is quadratic on some malformed values
            (8 KiB of ``(x)`` comments: 0.8 s; 16 KiB: 3 s); 8 KiB holds about 200 addresses.
            Beyond, the message is refused with :class:`~mssante.errors.LimitError`.
    """

    patient_domain: str = "patient.mssante.fr"
    professional_domain_suffix: str = "mssante.fr"
    codecda_separators: str = ",;"
    max_size: int = 40 * 1024 * 1024
    max_parts: int = 500
    max_depth: int = 16
    inspect_xdm: bool = True
    max_header_params: int = 64
    max_encoded_words: int = 500
    max_structured_header_length: int = 8 * 1024


def guard_header(name: str, value: str, settings: ReadSettings) -> None:
    """Refuse a header field that would cost the stdlib parser too much CPU or memory.

    Counting is done on the raw text, before any parsing: the length of structured fields,
    ``;`` outside quoted strings for parameters, ``=?`` for encoded words (an over-estimate,
    never an under-estimate).

    Raises:
        LimitError: a longer structured field, or more parameters or encoded words, than
            ``settings`` allows.
    """
    key = name.lower()
    if key in _PARAMETERIZED and value.count(";") > settings.max_header_params:
        params = _QUOTED.sub("", value).count(";")
        if params > settings.max_header_params:
            raise LimitError(
                f"{name} has {params} parameters, more than the limit of {settings.max_header_params}",
                requirement="RFC 2231 §3",
            )
    words = value.count("=?")
    if words > settings.max_encoded_words:
        raise LimitError(
            f"{name} has {words} encoded words, more than the limit of {settings.max_encoded_words}",
            requirement="RFC 2047 §2",
        )
    if key in _STRUCTURED and len(value) > settings.max_structured_header_length:
        raise LimitError(
            f"{name} is {len(value)} characters long, more than the limit of "
            f"{settings.max_structured_header_length} for a structured field",
            requirement="RFC 5322 §2.2.2",
        )


def parse_header(name: str, value: str, settings: ReadSettings) -> object:
    """Parse one raw header value with the stdlib header registry, within the read limits.

    Raises:
        LimitError: see :func:`guard_header`.
        ValueError: and the rest of ``STDLIB_ERRORS``, when the stdlib cannot parse the value.
    """
    guard_header(name, value, settings)
    return email.policy.default.header_factory(name, value)


class _BoundedPolicy(email.policy.EmailPolicy):
    """``email.policy.default`` that checks each header field against the read limits first."""

    read_settings: ReadSettings = ReadSettings()

    def __init__(self, *, read_settings: ReadSettings) -> None:
        super().__init__(message_factory=EmailMessage)
        object.__setattr__(self, "read_settings", read_settings)  # policies are immutable

    def header_fetch_parse(self, name: str, value: str) -> str:
        if isinstance(value, str) and not hasattr(value, "name"):
            guard_header(name, value, self.read_settings)
        parsed: str = super().header_fetch_parse(name, value)
        return parsed


@dataclass(frozen=True, kw_only=True)
class ParsedAttachment:
    """An attachment of a received message.

    ``kind`` is ``xdm`` for ``IHE_XDM.ZIP`` (any case), ``pdf`` for ``application/pdf`` or a
    ``.pdf`` name, ``other`` otherwise.
    """

    filename: str | None
    content_type: str
    kind: AttachmentKind
    content: bytes = field(repr=False)

    @property
    def size(self) -> int:
        """Decoded size in bytes."""
        return len(self.content)


@dataclass(frozen=True, kw_only=True)
class MSSHeaders:
    """The MSSanté headers of a message (ECO.2.4.1–3, ECO.2.2.8); ``None`` when absent."""

    nil: str | None = None
    codecda: tuple[str, ...] | None = None
    ins: str | None = None
    mes: str | None = None


@dataclass(frozen=True, kw_only=True)
class ParsedMessage:
    """A received message, read.

    Attributes:
        sender, sender_label: the From address and its display label (ECO.2.2.7).
        sender_kind: patient, professional or other (ECO.3.1.1 wants them shown apart).
        mss: the X-MSS headers.
        text, html: the body texts.
        attachments: the attachments (not the body parts, not the parts of a report).
        archive: the IHE_XDM.ZIP content (documents, patient), when it could be read.
        archive_error: why the archive could not be read, when it could not.
        mdn_to: the ``Disposition-Notification-To`` addresses (RFC 8098 §2.1).
        report: the MDN or DSN, when the message is one.
        email: the stdlib message (for advanced use; do not change it).
    """

    message_id: str | None
    subject: str | None
    date: datetime | None
    sender: str | None
    sender_label: str | None
    sender_kind: SenderKind
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    return_path: str | None = None
    mss: MSSHeaders = MSSHeaders()
    text: str | None = field(default=None, repr=False)
    html: str | None = field(default=None, repr=False)
    attachments: tuple[ParsedAttachment, ...] = ()
    archive: _xdm_bridge.ArchiveInfo | None = None
    archive_error: str | None = None
    mdn_to: tuple[str, ...] = ()
    report: MDNReport | DSNReport | None = None
    email: EmailMessage = field(repr=False, compare=False, default_factory=EmailMessage)

    @property
    def mdn_requested(self) -> bool:
        """The sender asked for a disposition notification (RFC 8098 §2.1)."""
        return bool(self.mdn_to)

    @property
    def end_of_exchange(self) -> bool:
        """``X-MSS-MES: FIN``: the sender does not want a reply (ECO.2.2.8)."""
        return (self.mss.mes or "").strip().upper() == "FIN"

    @property
    def xdm_attachments(self) -> tuple[ParsedAttachment, ...]:
        """The IHE_XDM.ZIP attachments (ECO.2.1.1 wants exactly one)."""
        return tuple(a for a in self.attachments if a.kind == "xdm")

    @property
    def pdf_attachments(self) -> tuple[ParsedAttachment, ...]:
        """The PDF attachments."""
        return tuple(a for a in self.attachments if a.kind == "pdf")


def _addresses(msg: Message, settings: ReadSettings, name: str) -> tuple[tuple[str, str], ...]:
    """(display name, addr-spec) pairs of an address header; unreadable entries are dropped."""
    out: list[tuple[str, str]] = []
    for raw in raw_values(msg, name):
        try:
            # Parsed as an address list whatever the name (Disposition-Notification-To is not
            # in the stdlib registry); an unreadable header gives no address.
            header = parse_header("To", raw, settings)
            for address in getattr(header, "addresses", ()):
                if address.username and address.domain:
                    out.append((address.display_name, f"{address.username}@{address.domain}"))
        except STDLIB_ERRORS:
            continue
    return tuple(out)


def raw_values(msg: Message, name: str) -> list[str]:
    """The raw (unparsed, unfolded) values of a header field."""
    key = name.lower()
    return [str(v).replace("\r", "").replace("\n", "") for k, v in msg.raw_items() if k.lower() == key]


def safe_header(msg: Message, name: str) -> str | None:
    """The decoded value of a header field, or its raw value when the stdlib cannot parse it."""
    try:
        value = msg.get(name)
    except STDLIB_ERRORS:
        values = raw_values(msg, name)
        return values[0] if values else None
    return None if value is None else str(value)


def _kind(address: str | None, settings: ReadSettings) -> SenderKind:
    if not address:
        return "unknown"
    domain = address.rpartition("@")[2].lower().rstrip(".")
    if domain == settings.patient_domain.lower():
        return "patient"
    suffix = settings.professional_domain_suffix.lower()
    if domain == suffix or domain.endswith("." + suffix):
        return "professional"
    return "external"


def _header(msg: Message, name: str) -> str | None:
    value = safe_header(msg, name)
    return None if value is None else value.strip()


def _walk(part: Message, settings: ReadSettings, depth: int = 0) -> Iterator[Message]:
    """Leaf parts in order, descending into multipart/* only (not into attached messages)."""
    if depth > settings.max_depth:
        raise LimitError(f"MIME nesting deeper than {settings.max_depth}")
    if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _walk(sub, settings, depth + 1)
    else:
        yield part


def _attachment(part: Message) -> ParsedAttachment:
    filename = part.get_filename()
    ctype = part.get_content_type()
    payload = part.get_payload(decode=True)
    content = payload if isinstance(payload, bytes) else b""
    kind: AttachmentKind = "other"
    if filename and filename.strip().upper() == "IHE_XDM.ZIP":
        kind = "xdm"
    elif ctype == "application/pdf" or (filename or "").lower().endswith(".pdf"):
        kind = "pdf"
    return ParsedAttachment(filename=filename, content_type=ctype, kind=kind, content=content)


def _feed(data: bytes, policy: _BoundedPolicy) -> Message:
    """The stdlib parser fed 64 KiB at a time: the same tree as ``BytesParser.parsebytes``, but
    the whole message is never split into lines at once (a 36 MiB message peaked at 285 MiB of
    Python memory parsed in one piece, 101 MiB fed in chunks)."""
    parser = BytesFeedParser(policy=policy)
    with memoryview(data) as view:
        for start in range(0, len(data), _FEED_CHUNK):
            parser.feed(bytes(view[start : start + _FEED_CHUNK]))
    return parser.close()


def _parse(data: bytes, settings: ReadSettings) -> ParsedMessage:
    parsed = _feed(data, _BoundedPolicy(read_settings=settings))
    assert isinstance(parsed, EmailMessage)
    msg = parsed
    leaves = []
    for index, leaf in enumerate(_walk(msg, settings)):
        if index >= settings.max_parts:
            raise LimitError(f"more than {settings.max_parts} MIME parts")
        leaves.append(leaf)

    report = read_report(msg)
    text_part = msg.get_body(preferencelist=("plain",)) if report is None else None
    html_part = msg.get_body(preferencelist=("html",)) if report is None else None
    attachments: tuple[ParsedAttachment, ...] = ()
    if report is None:
        attachments = tuple(
            _attachment(p)
            for p in leaves
            if p is not text_part
            and p is not html_part
            and (p.get_content_disposition() == "attachment" or p.get_filename() or p.get_content_maintype() != "text")
        )

    archive: _xdm_bridge.ArchiveInfo | None = None
    archive_error: str | None = None
    xdm = [a for a in attachments if a.kind == "xdm"]
    if xdm and settings.inspect_xdm:
        try:
            archive = _xdm_bridge.inspect_archive(xdm[0].content)
        except MssanteError as exc:
            archive_error = str(exc)

    codecda: tuple[str, ...] | None = None
    values = raw_values(msg, "X-MSS-CODECDA")
    if values:
        table = str.maketrans({c: "," for c in settings.codecda_separators})
        codecda = tuple(v.strip() for raw in values for v in raw.translate(table).split(",") if v.strip())
    from_ = _addresses(msg, settings, "From")
    sender_label, sender = from_[0] if from_ else (None, None)
    try:
        date = getattr(msg.get("Date"), "datetime", None)
    except STDLIB_ERRORS:
        date = None
    message_id = MSG_ID.search(_header(msg, "Message-ID") or "")
    in_reply_to = MSG_ID.search(_header(msg, "In-Reply-To") or "")
    return_path = _header(msg, "Return-Path")
    return ParsedMessage(
        message_id=message_id.group(0) if message_id else None,
        subject=_header(msg, "Subject"),
        date=date if isinstance(date, datetime) else None,
        sender=sender,
        sender_label=sender_label or None,
        sender_kind=_kind(sender, settings),
        to=tuple(a for _, a in _addresses(msg, settings, "To")),
        cc=tuple(a for _, a in _addresses(msg, settings, "Cc")),
        reply_to=tuple(a for _, a in _addresses(msg, settings, "Reply-To")),
        in_reply_to=in_reply_to.group(0) if in_reply_to else None,
        references=tuple(MSG_ID.findall(_header(msg, "References") or "")),
        return_path=return_path.strip("<> ") if return_path else None,
        mss=MSSHeaders(
            nil=_header(msg, "X-MSS-NIL"),
            codecda=codecda,
            ins=_header(msg, "X-MSS-INS"),
            mes=_header(msg, "X-MSS-MES"),
        ),
        text=part_text(text_part) if text_part is not None else None,
        html=part_text(html_part) if html_part is not None else None,
        attachments=attachments,
        archive=archive,
        archive_error=archive_error,
        mdn_to=tuple(a for _, a in _addresses(msg, settings, "Disposition-Notification-To")),
        report=report,
        email=msg,
    )


def parse_message(data: bytes, *, settings: ReadSettings | None = None) -> ParsedMessage:
    """Parse a received RFC 5322 message (untrusted bytes) into a :class:`ParsedMessage`.

    A broken IHE_XDM.ZIP attachment does not make parsing fail: it is reported in
    :attr:`ParsedMessage.archive_error`.

    Raises:
        UsageError: ``data`` is not bytes.
        LimitError: the message is larger than ``settings.max_size``, has too many parts or
            too deep a MIME structure, or a header field holds more parameters or encoded
            words than ``settings`` allows.
        ContentError: the message cannot be read at all.
    """
    settings = settings or ReadSettings()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UsageError("parse_message takes bytes")
    if len(data) > settings.max_size:
        raise LimitError(f"message of {len(data)} bytes is larger than the limit of {settings.max_size}")
    try:
        return _parse(bytes(data), settings)
    except MssanteError:
        raise
    except RecursionError as exc:
        raise LimitError("MIME structure too deep") from exc
    except STDLIB_ERRORS as exc:
        # The stdlib parser is lenient but some malformed inputs still raise from deep inside
        # it (header value parsers, charset lookups); they all mean "unreadable message".
        raise ContentError(f"malformed message ({type(exc).__name__}: {exc})") from exc
