"""Compose an outgoing MSSanté message per Référentiel socle #2 (ECO.2.x).

:func:`compose_message` takes a :class:`Draft` and :class:`ComposeSettings` and returns a
:class:`ComposedMessage`: an :class:`email.message.EmailMessage`, its bytes, the envelope and
the DSN parameters for the SMTP layer. The MSSanté headers that describe the XDM archive
(``X-MSS-CODECDA``, ``X-MSS-INS``) are computed from the archive bytes, never typed in.
"""

from __future__ import annotations

import email.policy
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

from mssante.errors import ConfigError, ContentError, UsageError
from mssante.message import _xdm_bridge
from mssante.message._dsn import DSNParameters, DSNRequest, dsn_parameters
from mssante.message._naming import XDM_SUBJECT_PREFIX, pdf_filename_problems, xdm_subject
from mssante.message._text import check_address, check_header_value, check_message_id

__all__ = [
    "DEFAULT_CODECDA_SEPARATOR",
    "XDM_FILENAME",
    "Attachment",
    "ComposeSettings",
    "ComposedMessage",
    "Draft",
    "PdfCompanion",
    "Sender",
    "compose_message",
    "new_message_id",
]

#: Separator between X-MSS-CODECDA values. ECO.2.4.1 says the header is "multi-valué"
#: without giving the syntax; a comma (``34112-3,PRESC-BIO``) is what one implementer
#: reports ([B] FORGE-T001) and is **not confirmed** by the Ref #2 text.
DEFAULT_CODECDA_SEPARATOR = ","
#: The XDM attachment name (ITI-32 "ZIP over e-mail"; ``IHE_XDM.zip`` is also seen).
XDM_FILENAME = "IHE_XDM.ZIP"

# Convergence product reference: the example is "DEV935997"; the exact syntax is not
# published, so accept a short token of letters, digits, '.', '_' and '-'.
_PRODUCT_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SEPARATORS = frozenset({",", ";", ", ", "; ", " "})


@dataclass(frozen=True, kw_only=True)
class ComposeSettings:
    """Settings of the software that produces messages.

    Attributes:
        product_reference: the "référence produit" given when the software was declared on
            Convergence; sent as ``X-MSS-NIL`` on every message (ECO.2.4.3). Required.
        codecda_separator: separator between several X-MSS-CODECDA values; default ``","``
            (see :data:`DEFAULT_CODECDA_SEPARATOR`, unconfirmed).

    Raises:
        ConfigError: the product reference or the separator is not valid.
    """

    product_reference: str
    codecda_separator: str = DEFAULT_CODECDA_SEPARATOR

    def __post_init__(self) -> None:
        if not isinstance(self.product_reference, str) or not _PRODUCT_REFERENCE.match(self.product_reference):
            raise ConfigError(
                f"product_reference (X-MSS-NIL) must be the Convergence product reference, "
                f"e.g. 'DEV935997'; got {self.product_reference!r}",
                requirement="ECO.2.4.3",
            )
        if self.codecda_separator not in _SEPARATORS:
            raise ConfigError(
                f"codecda_separator must be one of {sorted(_SEPARATORS)!r}", requirement="ECO.2.4.1"
            )


@dataclass(frozen=True, kw_only=True)
class Sender:
    """The sending BAL: its address and its ECO.2.2.7 display label.

    Build the label with :func:`professional_label` (PER BAL) or :func:`organisation_label`
    (ORG/APP BAL).
    """

    address: str
    label: str | None = None


@dataclass(frozen=True, kw_only=True)
class PdfCompanion:
    """A PDF/A-1 rendering of a CDA document of the archive (ECO.2.1.1, ECO.2.1.5).

    ``filename`` must follow ECO.2.1.6 (build it with :func:`pdf_filename`).
    """

    content: bytes = field(repr=False)
    filename: str


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """Any other attachment."""

    content: bytes = field(repr=False)
    filename: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, kw_only=True)
class Draft:
    """What the user wrote; :func:`compose_message` turns it into a message.

    Attributes:
        sender: the sending BAL and its label (ECO.2.2.7).
        to, cc, bcc: recipient addresses (``bcc`` only goes to the envelope).
        subject: the subject; with an XDM archive it is computed per ECO.2.1.3 when ``None``
            and otherwise must start with ``XDM/1.0/DDM+``.
        text: the UTF-8 plain-text body (ECO.2.2.3); ``html`` adds an alternative (ECO.2.2.4).
        xdm_archive: the IHE_XDM.ZIP bytes; X-MSS-CODECDA and X-MSS-INS come from it.
        pdfs: the PDF/A-1 companions of the archive's documents (ECO.2.1.1, ECO.2.1.6).
        attachments: other attachments.
        end_of_exchange: add ``X-MSS-MES: FIN`` (ECO.2.2.8; for Mon espace santé recipients).
        request_mdn: add ``Disposition-Notification-To`` (RFC 8098 §2.1, ECO.2.3.2) with
            ``mdn_to`` or the sender address.
        dsn: ask for delivery status notifications (ECO.2.3.1, RFC 3461).
        in_reply_to, references: threading of a reply (ECO.2.2.2, RFC 5322 §3.6.4).
        reply_to: a ``Reply-To`` address.
        message_id: a fixed Message-ID; generated when ``None`` (ECO.2.2.1).
        expected_codecda, expected_ins: optional assertions of the caller; composing fails if
            they contradict the archive (they are never written as given).
    """

    sender: Sender
    to: tuple[str, ...]
    text: str
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str | None = None
    html: str | None = None
    xdm_archive: bytes | None = field(default=None, repr=False)
    pdfs: tuple[PdfCompanion, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    end_of_exchange: bool = False
    request_mdn: bool = False
    mdn_to: str | None = None
    dsn: DSNRequest | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    reply_to: str | None = None
    message_id: str | None = None
    expected_codecda: tuple[str, ...] | None = None
    expected_ins: Literal["O", "N"] | None = None


@dataclass(frozen=True, kw_only=True)
class ComposedMessage:
    """A composed message and what the SMTP layer needs to send it.

    Attributes:
        message: the message (a mutable stdlib object: do not change it after composing).
        message_id: its Message-ID.
        envelope_from: the ``MAIL FROM`` address (``""`` = null reverse path, for MDNs).
        recipients: the ``RCPT TO`` addresses (To, Cc and Bcc).
        dsn: the RFC 3461 envelope parameters, when a DSN was requested.
        archive: what was read from the XDM archive, when there is one.
    """

    message: EmailMessage = field(repr=False, compare=False)
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    dsn: DSNParameters | None = None
    archive: _xdm_bridge.ArchiveInfo | None = None

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends (``email.policy.SMTP``), ready for ``DATA``.

        Raises:
            MssanteError: none on purpose.
        """
        return self.message.as_bytes(policy=email.policy.SMTP)


def new_message_id(domain: str, *, now: datetime | None = None) -> str:
    """A fresh RFC 5322 §3.6.4 Message-ID on ``domain`` (ECO.2.2.1), random and unique.

    Raises:
        UsageError: ``domain`` is not a valid domain.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return check_message_id(f"<{when:%Y%m%d%H%M%S}.{secrets.token_hex(12)}@{domain}>", what="domain")


def _archive_headers(
    info: _xdm_bridge.ArchiveInfo, draft: Draft, settings: ComposeSettings
) -> tuple[str | None, str | None]:
    """ECO.2.4.1 / ECO.2.4.2: X-MSS-CODECDA and X-MSS-INS only when the archive has CDA."""
    codes = info.cda_codes
    if not codes:
        if draft.expected_codecda or draft.expected_ins:
            raise UsageError(
                "the XDM archive holds no CDA document: X-MSS-CODECDA and X-MSS-INS must not be set",
                requirement="ECO.2.4.1",
            )
        return None, None
    for code in codes:
        check_header_value(code, what="CDA code")
        if settings.codecda_separator.strip() and settings.codecda_separator.strip() in code:
            raise ContentError(f"CDA code {code!r} contains the X-MSS-CODECDA separator", requirement="ECO.2.4.1")
    ins = "O" if info.has_qualified_ins else "N"
    if draft.expected_codecda is not None and set(draft.expected_codecda) != set(codes):
        raise UsageError(
            f"X-MSS-CODECDA {list(draft.expected_codecda)!r} contradicts the archive, which holds {list(codes)!r}",
            requirement="ECO.2.4.1",
        )
    if draft.expected_ins is not None and draft.expected_ins != ins:
        raise UsageError(
            f"X-MSS-INS {draft.expected_ins!r} contradicts the archive (qualified INS: {info.has_qualified_ins})",
            requirement="ECO.2.4.2",
        )
    return settings.codecda_separator.join(codes), ins


def _subject(draft: Draft, info: _xdm_bridge.ArchiveInfo | None) -> str:
    if info is None:
        if draft.subject is None:
            raise UsageError("a subject is required")
        return check_header_value(draft.subject, what="subject")
    if draft.subject is not None:
        check_header_value(draft.subject, what="subject")
        if not draft.subject.startswith(XDM_SUBJECT_PREFIX):
            raise UsageError(
                f"a message with an XDM archive needs a subject starting with {XDM_SUBJECT_PREFIX!r}",
                requirement="ECO.2.1.3",
            )
        return draft.subject
    patient = info.patient
    docs = info.cda_documents or info.documents
    if patient is None or not patient.family_name or not patient.given_name or not docs:
        raise UsageError(
            "cannot build the ECO.2.1.3 subject: the archive has no single named patient; pass a subject",
            requirement="ECO.2.1.3",
        )
    return xdm_subject(
        label=docs[0].display_name or docs[0].title or docs[0].cda_code,
        document_count=len(docs),
        family_name=patient.family_name,
        given_name=patient.given_name,
        birth_date=patient.birth_date,
    )


def _set_text(part: EmailMessage, text: str, subtype: str) -> None:
    # ECO.2.2.3: text parts are UTF-8, declared as such. Quoted-printable keeps the message
    # 7-bit clean for relays without 8BITMIME.
    cte = None if text.isascii() and all(len(line) <= 76 for line in text.splitlines()) else "quoted-printable"
    part.set_content(text, subtype=subtype, charset="utf-8", cte=cte)


def _last_part(msg: EmailMessage) -> EmailMessage:
    parts = msg.get_payload()
    assert isinstance(parts, list)
    part = parts[-1]
    assert isinstance(part, EmailMessage)
    return part


def _attach(msg: EmailMessage, content: bytes, filename: str, content_type: str) -> None:
    check_header_value(filename, what="attachment file name")
    maintype, _, subtype = content_type.partition("/")
    check_header_value(content_type, what="content type")
    if not maintype or not subtype or not re.fullmatch(r"[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+", content_type):
        raise UsageError(f"invalid content type {content_type!r}")
    # The stdlib writes non-ASCII parameters with RFC 2231 (filename*=utf-8''...).
    msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    part = _last_part(msg)
    part.set_param("name", filename)  # legacy readers look at Content-Type name (ANS IG example)
    del part["MIME-Version"]  # only the top level carries it (RFC 2045 §4)


def compose_message(draft: Draft, *, settings: ComposeSettings, now: datetime | None = None) -> ComposedMessage:
    """Build an MSSanté message from a draft (Ref #2 ECO.2.1.x, ECO.2.2.x, ECO.2.3.x, ECO.2.4.x).

    Raises:
        ContentError: a caller value holds a control character (header injection), a PDF is
            not a PDF, or the XDM archive is invalid.
        UnsafeContentError: the XDM archive was refused as dangerous.
        LimitError: the XDM archive exceeds a reader limit.
        UsageError: a missing or malformed value, or a caller assertion (X-MSS-CODECDA,
            X-MSS-INS) that contradicts the archive.
    """
    when = now or datetime.now(UTC)
    if when.tzinfo is None:
        raise UsageError("now must be timezone-aware")
    sender = check_address(draft.sender.address, what="sender address")
    if not draft.to and not draft.cc and not draft.bcc:
        raise UsageError("a message needs at least one recipient")
    to = tuple(check_address(a, what="To address") for a in draft.to)
    cc = tuple(check_address(a, what="Cc address") for a in draft.cc)
    bcc = tuple(check_address(a, what="Bcc address") for a in draft.bcc)
    if draft.pdfs and draft.xdm_archive is None:
        raise UsageError("PDF companions go with an XDM archive (ECO.2.1.1)", requirement="ECO.2.1.1")

    info = _xdm_bridge.inspect_archive(draft.xdm_archive) if draft.xdm_archive is not None else None
    subject = _subject(draft, info)

    message_id = (
        check_message_id(draft.message_id, what="Message-ID")
        if draft.message_id is not None
        else new_message_id(sender.rpartition("@")[2], now=when)
    )

    msg = EmailMessage(policy=email.policy.SMTP)
    label = check_header_value(draft.sender.label, what="sender label") if draft.sender.label else ""
    local, _, domain = sender.rpartition("@")
    msg["From"] = Address(display_name=label, username=local, domain=domain)  # ECO.2.2.7
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if draft.reply_to is not None:
        msg["Reply-To"] = check_address(draft.reply_to, what="Reply-To address")
    msg["Subject"] = subject  # RFC 2047-encoded by the policy when not ASCII
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id  # ECO.2.2.1
    if draft.in_reply_to is not None:  # ECO.2.2.2, RFC 5322 §3.6.4
        parent = check_message_id(draft.in_reply_to, what="In-Reply-To")
        refs = [check_message_id(r, what="References") for r in draft.references]
        if not refs or refs[-1] != parent:
            refs.append(parent)
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join(refs)
    elif draft.references:
        raise UsageError("References without In-Reply-To: give the parent message id", requirement="ECO.2.2.2")
    if draft.request_mdn:  # RFC 8098 §2.1, ECO.2.3.2
        msg["Disposition-Notification-To"] = check_address(draft.mdn_to or sender, what="MDN address")
    elif draft.mdn_to is not None:
        raise UsageError("mdn_to is set but request_mdn is False")

    msg["X-MSS-NIL"] = settings.product_reference  # ECO.2.4.3: on every message
    if info is not None:
        codecda, ins = _archive_headers(info, draft, settings)
        if codecda is not None and ins is not None:
            msg["X-MSS-CODECDA"] = codecda  # ECO.2.4.1
            msg["X-MSS-INS"] = ins  # ECO.2.4.2
    elif draft.expected_codecda or draft.expected_ins:
        raise UsageError("X-MSS-CODECDA / X-MSS-INS need an XDM archive with CDA", requirement="ECO.2.4.1")
    if draft.end_of_exchange:
        msg["X-MSS-MES"] = "FIN"  # ECO.2.2.8

    _set_text(msg, draft.text, "plain")  # ECO.2.2.4: text/plain or multipart/alternative
    if draft.html is not None:
        msg.add_alternative(draft.html, subtype="html", charset="utf-8", cte="quoted-printable")
        del _last_part(msg)["MIME-Version"]
    if draft.xdm_archive is not None:
        _attach(msg, draft.xdm_archive, XDM_FILENAME, "application/zip")  # ECO.2.1.1
    for pdf in draft.pdfs:
        if not pdf.content.startswith(b"%PDF-"):
            raise ContentError(f"{pdf.filename!r} is not a PDF", requirement="ECO.2.1.1")
        patient = info.patient if info else None
        problems = pdf_filename_problems(
            check_header_value(pdf.filename, what="PDF file name"),
            family_name=patient.family_name if patient else None,
            given_name=patient.given_name if patient else None,
            act_dates=tuple(d.act_date for d in (info.documents if info else ()) if d.act_date),
        )
        if problems:
            raise UsageError("; ".join(problems), requirement="ECO.2.1.6")
        _attach(msg, pdf.content, pdf.filename, "application/pdf")
    for extra in draft.attachments:
        _attach(msg, extra.content, extra.filename, extra.content_type)

    recipients = tuple(dict.fromkeys(to + cc + bcc))
    dsn = dsn_parameters(draft.dsn, message_id=message_id, recipients=recipients) if draft.dsn else None
    return ComposedMessage(
        message=msg, message_id=message_id, envelope_from=sender, recipients=recipients, dsn=dsn, archive=info
    )
