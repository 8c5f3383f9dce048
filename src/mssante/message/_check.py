"""Check a message against Référentiel socle #2 and the RFCs it builds on (``mssante check``).

Every finding names the rule it enforces (an ECO id of Ref #2 or an RFC section). Rules
whose wording is only known from third-party quotes (research note tag [B]) are checked as
quoted there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from email.message import Message
from typing import Literal

from mssante.errors import ContentError, LimitError
from mssante.message._compose import XDM_FILENAME
from mssante.message._naming import LABEL_MAX, XDM_SUBJECT_PREFIX, parse_xdm_subject, pdf_filename_problems
from mssante.message._parse import (
    STDLIB_ERRORS,
    ParsedMessage,
    ReadSettings,
    parse_header,
    parse_message,
    raw_values,
)
from mssante.message._reports import DSNReport, MDNReport
from mssante.message._text import plain_name

__all__ = ["CheckReport", "Finding", "NotAMessage", "Severity", "check_message", "check_parsed", "not_a_message"]

Severity = Literal["error", "warning", "info"]
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_NIL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_INS_LOCAL = re.compile(r"^\d{15}$")
# Raw header bytes allowed: printable ASCII, HTAB, CRLF line ends, and 8-bit (RFC 6532).
_BAD_HEADER_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")

#: Why some bytes are not an RFC 5322 message at all (see :func:`not_a_message`).
NotAMessage = Literal["empty", "zip", "pdf", "binary", "no_header", "no_message_field"]
# field = field-name ":" ... ; field-name = 1*ftext (%d33-57 / %d59-126), RFC 5322 §3.6.8; obs-optional
# allows WSP before ":" (§4.5). An mbox "From " separator line may come first in .eml exports.
_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")
_MBOX_FROM = re.compile(rb"From [^\r\n]*\r?\n")
_MESSAGE_FIELDS = frozenset(
    {b"from", b"sender", b"date", b"to", b"cc", b"subject", b"message-id", b"mime-version", b"received",
     b"return-path", b"content-type", b"reply-to", b"in-reply-to", b"references"}
)  # fmt: skip
_MAGIC: dict[bytes, NotAMessage] = {b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"%PDF-": "pdf"}
_REFUSALS: dict[NotAMessage, str] = {
    "empty": "empty input: not an RFC 5322 message",
    "zip": "a ZIP archive, not an RFC 5322 message (an IHE_XDM.ZIP is checked with 'mssante xdm validate')",
    "pdf": "a PDF document, not an RFC 5322 message",
    "binary": "binary data (NUL or control octets) where header fields should be: not an RFC 5322 message",
    "no_header": "does not start with a header field 'Name: value': not an RFC 5322 message",
    "no_message_field": "no message header field (From, Date, To, Subject, Message-ID...): not an RFC 5322 message",
}


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem (or remark) about a message.

    Attributes:
        severity: ``error`` (a rule is broken), ``warning`` (likely wrong) or ``info``.
        rule: the rule id, e.g. ``ECO.2.4.1`` or ``RFC 8098 §2.1``.
        message: a one-line explanation.
    """

    severity: Severity
    rule: str
    message: str


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """The findings about one message, errors first."""

    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """No error finding."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The error findings."""
        return tuple(f for f in self.findings if f.severity == "error")

    def rules(self, severity: Severity | None = None) -> frozenset[str]:
        """The rule ids that have a finding (of ``severity``, when given).

        Raises:
            MssanteError: none on purpose.
        """
        return frozenset(f.rule for f in self.findings if severity is None or f.severity == severity)


class _Collector:
    def __init__(self) -> None:
        self.items: list[Finding] = []

    def add(self, severity: Severity, rule: str, message: str) -> None:
        self.items.append(Finding(severity=severity, rule=rule, message=message))


def _header_section(data: bytes) -> bytes:
    match = re.search(rb"\r?\n\r?\n", data)
    return data[: match.start()] if match else data


def _check_raw(data: bytes, out: _Collector) -> None:
    """RFC 5322 §2.2: no bare CR/LF nor control characters in header fields (injection)."""
    bad = _BAD_HEADER_BYTE.search(_header_section(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    if bad:
        char = bad.group(0)
        out.add("error", "RFC 5322 §2.2", f"header section holds control character {char!r} (header injection?)")


def _check_decoded_headers(msg: Message, settings: ReadSettings, out: _Collector) -> None:
    """RFC 2047 §5: an encoded word must not smuggle line breaks or controls into a header."""
    for name, raw in msg.raw_items():
        try:
            unfolded = re.sub(r"\r?\n(?=[ \t])", "", str(raw)).rstrip("\r\n")  # RFC 5322 §2.2.3
            value = str(parse_header(name, unfolded, settings))
        except LimitError as exc:
            out.add("error", exc.requirement or "RFC 5322 §3.6", f"{name} not decoded: {exc.message}")
            continue
        except STDLIB_ERRORS:
            out.add("warning", "RFC 5322 §3.6", f"{name} cannot be parsed")
            continue
        if any(c != "\t" and unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
            out.add("error", "RFC 2047 §5", f"{name} decodes to a control character (header injection)")


def _check_body(msg: Message, out: _Collector) -> None:
    top = msg.get_content_type()
    body = msg
    if top == "multipart/mixed":
        parts = msg.get_payload()
        body = parts[0] if isinstance(parts, list) and parts and isinstance(parts[0], Message) else msg
    if body.get_content_type() not in ("text/plain", "multipart/alternative"):
        out.add("error", "ECO.2.2.4", f"body is {body.get_content_type()}, not text/plain or multipart/alternative")
    texts = [body] if body.get_content_maintype() == "text" else [
        p for p in (body.get_payload() if isinstance(body.get_payload(), list) else []) if isinstance(p, Message)
    ]
    for part in texts:
        if part.get_content_maintype() != "text":
            continue
        charset = (part.get_content_charset() or "").lower()
        if charset in ("utf-8", "utf8"):
            continue
        severity: Severity = "warning" if charset in ("", "us-ascii") else "error"
        shown = charset or "none (us-ascii)"
        out.add(severity, "ECO.2.2.3", f"{part.get_content_type()} part declares charset {shown}, not UTF-8")


def _check_mss(p: ParsedMessage, out: _Collector) -> None:
    nil = p.mss.nil
    if not nil and isinstance(p.report, DSNReport):
        pass  # a DSN is written by an MTA, not by the LPS: ECO.2.4.3 does not apply
    elif not nil:
        # ECO.2.4.3 covers every message an LPS sends; an MDN may come from a mail server.
        severity: Severity = "warning" if isinstance(p.report, MDNReport) else "error"
        out.add(severity, "ECO.2.4.3", "X-MSS-NIL (product reference) is missing")
    elif not _NIL.match(nil):
        out.add("warning", "ECO.2.4.3", f"X-MSS-NIL {nil!r} does not look like a product reference")
    if p.mss.mes is not None and p.mss.mes.strip() != "FIN":
        out.add("error", "ECO.2.2.8", f"X-MSS-MES must be 'FIN', not {p.mss.mes!r}")


def _check_archive_headers(p: ParsedMessage, out: _Collector) -> None:
    """ECO.2.4.1 / ECO.2.4.2: X-MSS-CODECDA and X-MSS-INS present iff CDA in IHE_XDM, and consistent."""
    codecda, ins = p.mss.codecda, p.mss.ins
    if p.xdm_attachments and p.archive is None:
        if codecda is None or ins is None:
            out.add("error", "ECO.2.4.1", "IHE_XDM.ZIP attached but X-MSS-CODECDA or X-MSS-INS is missing")
        out.add("info", "ECO.2.4.1", "archive unreadable: X-MSS-CODECDA/X-MSS-INS not compared with it")
        return
    codes = p.archive.cda_codes if p.archive else ()
    if not codes:
        if codecda is not None:
            out.add("error", "ECO.2.4.1", "X-MSS-CODECDA is set but no CDA document is attached in an IHE_XDM archive")
        if ins is not None:
            out.add("error", "ECO.2.4.2", "X-MSS-INS is set but no CDA document is attached in an IHE_XDM archive")
        return
    assert p.archive is not None
    if codecda is None:
        out.add("error", "ECO.2.4.1", f"X-MSS-CODECDA is missing (archive codes: {', '.join(codes)})")
    elif set(codecda) != set(codes):
        out.add(
            "error",
            "ECO.2.4.1",
            f"X-MSS-CODECDA {', '.join(codecda) or '(empty)'} does not match the archive codes {', '.join(codes)}",
        )
    expected = "O" if p.archive.has_qualified_ins else "N"
    if ins is None:
        out.add("error", "ECO.2.4.2", f"X-MSS-INS is missing (expected {expected})")
    elif ins not in ("O", "N"):
        out.add("error", "ECO.2.4.2", f"X-MSS-INS must be O or N, not {ins!r}")
    elif ins != expected:
        out.add("error", "ECO.2.4.2", f"X-MSS-INS is {ins} but the archive says {expected}")


def _check_documents(p: ParsedMessage, out: _Collector, validate_xdm: bool) -> None:
    xdm = p.xdm_attachments
    subject = p.subject or ""
    if not xdm:
        if subject.startswith(XDM_SUBJECT_PREFIX):
            out.add("warning", "ECO.2.1.3", f"subject starts with {XDM_SUBJECT_PREFIX!r}, no {XDM_FILENAME} attached")
        return
    if len(xdm) > 1:
        out.add("error", "ECO.2.1.1", f"{len(xdm)} IHE_XDM.ZIP attachments; a message carries one archive")
    if p.archive_error:
        out.add("error", "ECO.2.1.1", f"IHE_XDM.ZIP cannot be read: {p.archive_error}")
    archive = p.archive
    if validate_xdm and archive is not None:
        for f in archive.findings:
            out.add(f.severity, f.rule, f"IHE_XDM.ZIP: {f.message}")
    patient = archive.patient if archive else None
    docs = archive.cda_documents if archive else ()
    if archive is not None and docs and patient is None:
        out.add("error", "ECO.2.1.1", "the archive does not concern one single patient")
    # ECO.2.1.3: subject
    parts = parse_xdm_subject(subject)
    if parts is None:
        out.add("error", "ECO.2.1.3", f"subject {subject!r} does not start with {XDM_SUBJECT_PREFIX!r}")
    elif patient and patient.family_name and patient.given_name:
        names = f"{plain_name(patient.family_name).upper()} {plain_name(patient.given_name)}"
        if not parts.rest.endswith(" " + names):
            out.add("error", "ECO.2.1.3", f"subject does not end with the patient '<NOM> <prenom>' {names!r}")
        else:
            label = parts.rest[: -len(names) - 1].strip()
            expected = " ".join((docs[0].display_name or "").split())[:LABEL_MAX].rstrip() if docs else ""
            if len(docs) > 1 and label != f"{len(docs)} documents":
                out.add("warning", "ECO.2.1.3", f"subject label {label!r} should be '{len(docs)} documents'")
            elif len(docs) == 1 and expected and label != expected:
                out.add("warning", "ECO.2.1.3", f"subject label {label!r} is not the document displayName")
            elif not label:
                out.add("error", "ECO.2.1.3", "subject has no label before the patient names")
        if parts.birth_date and patient.birth_date and parts.birth_date != patient.birth_date:
            out.add("error", "ECO.2.1.3", "subject birth date differs from the patient's")
    # ECO.2.1.1 / ECO.2.1.6: PDF companions
    pdfs = p.pdf_attachments
    if not pdfs:
        out.add("error", "ECO.2.1.1", "no PDF/A-1 companion of the archive documents is attached")
    elif docs and len(pdfs) < len(docs):
        out.add("warning", "ECO.2.1.1", f"{len(pdfs)} PDF for {len(docs)} CDA documents")
    act_dates = tuple(d.act_date for d in docs if d.act_date)
    for pdf in pdfs:
        if not pdf.content.startswith(b"%PDF-"):
            out.add("error", "ECO.2.1.1", f"{pdf.filename!r} is not a PDF")
        problems = pdf_filename_problems(
            pdf.filename or "",
            family_name=patient.family_name if patient else None,
            given_name=patient.given_name if patient else None,
            act_dates=act_dates,
        )
        for problem in problems:
            out.add("error", "ECO.2.1.6", problem)


def _check_recipients(p: ParsedMessage, settings: ReadSettings, out: _Collector) -> None:
    patients = [a for a in (*p.to, *p.cc) if a.rpartition("@")[2].lower() == settings.patient_domain.lower()]
    for address in patients:
        if not _INS_LOCAL.match(address.rpartition("@")[0]):
            out.add("warning", "ECO.2.2.6", f"patient address {address!r} is not built from an INS (15 digits)")
    if p.mss.mes is not None and not patients:
        out.add("info", "ECO.2.2.8", "X-MSS-MES is meant for messages to patients (Mon espace santé)")


def _check_mdn_request(p: ParsedMessage, out: _Collector) -> None:
    """RFC 8098 §2.1 sanity of Disposition-Notification-To."""
    raw = raw_values(p.email, "Disposition-Notification-To")
    if not raw:
        return
    if not p.mdn_to:
        out.add("error", "RFC 8098 §2.1", "Disposition-Notification-To holds no valid address")
        return
    if len(raw) > 1 or len(set(p.mdn_to)) > 1:
        out.add("warning", "RFC 8098 §2.1", "MDN requested to several addresses")
    if p.report is not None:
        out.add("warning", "RFC 8098 §2.1", "a report asks for an MDN; none will be sent")
    if p.return_path and p.return_path.lower() not in {a.lower() for a in p.mdn_to}:
        out.add("warning", "RFC 8098 §2.1", "Return-Path differs from Disposition-Notification-To: no automatic MDN")
    if p.sender and p.sender.lower() not in {a.lower() for a in p.mdn_to}:
        out.add("info", "ECO.2.3.2", "MDN requested to another address than the sender's")


def _check_report(p: ParsedMessage, out: _Collector) -> None:
    report = p.report
    if isinstance(report, MDNReport):
        if report.final_recipient is None:
            out.add("error", "RFC 8098 §3.1", "MDN without Final-Recipient")
        if report.disposition is None:
            out.add("error", "RFC 8098 §3.2.6", "MDN without a valid Disposition")
        if report.original_message_id is None:
            out.add("warning", "RFC 8098 §3.2.5", "MDN without Original-Message-ID")
    elif isinstance(report, DSNReport):
        if report.reporting_mta is None:
            out.add("error", "RFC 3464 §2.2", "DSN without Reporting-MTA")
        if not report.recipients:
            out.add("error", "RFC 3464 §2.3", "DSN without per-recipient fields")
        for r in report.recipients:
            if r.final_recipient is None or r.action is None or r.status is None:
                out.add("error", "RFC 3464 §2.3", "DSN recipient block without Final-Recipient, Action or Status")


def check_parsed(p: ParsedMessage, *, settings: ReadSettings | None = None, validate_xdm: bool = True) -> CheckReport:
    """Check an already parsed message (see :func:`check_message`).

    Raises:
        MssanteError: none on purpose; every problem becomes a :class:`Finding`.
    """
    settings = settings or ReadSettings()
    out = _Collector()
    msg = p.email
    _check_decoded_headers(msg, settings, out)
    for name, rule in (("From", "RFC 5322 §3.6.2"), ("Date", "RFC 5322 §3.6.1")):
        if not raw_values(msg, name):
            out.add("error", rule, f"{name} is missing")
    if p.sender is None and raw_values(msg, "From"):
        out.add("error", "RFC 5322 §3.6.2", "From holds no valid address")
    if p.message_id is None:
        out.add("error", "ECO.2.2.1", "Message-ID is missing or not an RFC 5322 msg-id")
    if p.date is None and raw_values(msg, "Date"):
        out.add("error", "RFC 5322 §3.3", "Date is not an RFC 5322 date")
    _check_mss(p, out)
    if p.report is not None:
        _check_report(p, out)
    else:
        if p.sender is not None and not p.sender_label:
            out.add("warning", "ECO.2.2.7", "From has no display label (Intitule_BAL)")
        if not raw_values(msg, "References") and p.in_reply_to is not None:
            out.add("warning", "ECO.2.2.2", "In-Reply-To without References")
        _check_body(msg, out)
        _check_archive_headers(p, out)
        _check_documents(p, out, validate_xdm)
        _check_recipients(p, settings, out)
    _check_mdn_request(p, out)
    for part in msg.walk():
        for defect in part.defects:
            out.add("warning", "RFC 5322", f"parser defect: {type(defect).__name__}")
    ordered = sorted(out.items, key=lambda f: _SEVERITY_ORDER[f.severity])
    return CheckReport(findings=tuple(dict.fromkeys(ordered)))


def not_a_message(data: bytes) -> NotAMessage | None:
    """Why ``data`` is not an RFC 5322 message at all, or ``None`` when it may be one.

    A message starts with header fields (RFC 5322 §2.1, §2.2) and one of them at least is a
    message field (From, Date, Subject...): empty input, a ZIP, a PDF, binary data, markdown or
    plain text are refused before any rule is checked.

    Raises:
        MssanteError: none on purpose.
    """
    if not data.strip():
        return "empty"
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            return kind
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM written by some editors before the first field
    mbox = _MBOX_FROM.match(data)
    head = data[mbox.end() :] if mbox else data
    section = _header_section(head[: 256 * 1024])
    if b"\x00" in section or re.search(rb"[\x01-\x08\x0e-\x1f]", section[:4096]):
        return "binary"
    lines = section.replace(b"\r\n", b"\n").split(b"\n")
    if _FIELD.match(lines[0]) is None:
        return "no_header"
    names = {line.split(b":", 1)[0].strip().lower() for line in lines if _FIELD.match(line)}
    if not names & _MESSAGE_FIELDS:
        return "no_message_field"
    return None


def check_message(data: bytes, *, settings: ReadSettings | None = None, validate_xdm: bool = True) -> CheckReport:
    """Check a raw message (what ``mssante check MESSAGE.eml`` runs).

    An unreadable message gives an error finding, not an exception; input that is not a
    message at all (:func:`not_a_message`) gives that one finding (rule RFC 5322 §2.1).

    Raises:
        LimitError: the message is larger than the read limits (size, parts, nesting, header
            parameters or encoded words read while parsing).
        UsageError: ``data`` is not bytes.
    """
    out = _Collector()
    limit = (settings or ReadSettings()).max_size
    if isinstance(data, bytes | bytearray) and len(data) > limit:
        raise LimitError(f"message of {len(data)} bytes is larger than the limit of {limit}")
    refusal = not_a_message(bytes(data)) if isinstance(data, bytes | bytearray) else None
    if refusal is not None:
        out.add("error", "RFC 5322 §2.1", _REFUSALS[refusal])
        return CheckReport(findings=tuple(out.items))
    _check_raw(bytes(data) if isinstance(data, bytes | bytearray) else b"", out)
    try:
        parsed = parse_message(data, settings=settings)
    except ContentError as exc:
        out.add("error", "RFC 5322", f"message cannot be parsed: {exc.message}")
        return CheckReport(findings=tuple(out.items))
    try:
        report = check_parsed(parsed, settings=settings, validate_xdm=validate_xdm)
    except STDLIB_ERRORS as exc:  # a malformed structure the stdlib chokes on while checking
        out.add("error", "RFC 5322", f"message cannot be checked: malformed ({type(exc).__name__})")
        return CheckReport(findings=tuple(out.items))
    merged = sorted((*out.items, *report.findings), key=lambda f: _SEVERITY_ORDER[f.severity])
    return CheckReport(findings=tuple(merged))
