"""MSSanté messages: compose, parse, acknowledge and check (Référentiel socle MSSanté #2).

* :func:`compose_message` builds an outgoing message from a :class:`Draft`: the X-MSS
  headers (ECO.2.4.x) — X-MSS-CODECDA and X-MSS-INS computed from the IHE_XDM.ZIP bytes —,
  the ECO.2.1.3 subject, ECO.2.1.6 PDF names, threading, MDN and DSN requests.
* :func:`parse_message` reads a received message, including MDN (RFC 8098) and DSN
  (RFC 3464) reports, into a :class:`ParsedMessage`.
* :func:`generate_mdn` answers a message that asks for a read receipt (ECO.3.1.6).
* :func:`check_message` lists what breaks a rule, for ``mssante check``.

Only the standard library :mod:`email` package is used; nothing here touches the network.
Every value the caller gives that would go into a header is refused with
:class:`~mssante.errors.ContentError` if it holds a line break or control character.
"""

from mssante.message._check import (
    CheckReport,
    Finding,
    NotAMessage,
    Severity,
    check_message,
    check_parsed,
    not_a_message,
)
from mssante.message._compose import (
    DEFAULT_CODECDA_SEPARATOR,
    XDM_FILENAME,
    Attachment,
    ComposedMessage,
    ComposeSettings,
    Draft,
    PdfCompanion,
    Sender,
    compose_message,
    new_message_id,
)
from mssante.message._dsn import DSNParameters, DSNRequest
from mssante.message._mdn import DispositionType, generate_mdn
from mssante.message._naming import (
    PATIENT_DOMAIN,
    XDM_SUBJECT_PREFIX,
    organisation_label,
    parse_xdm_subject,
    patient_address,
    pdf_filename,
    professional_label,
    xdm_subject,
)
from mssante.message._parse import (
    MSSHeaders,
    ParsedAttachment,
    ParsedMessage,
    ReadSettings,
    SenderKind,
    parse_message,
)
from mssante.message._reports import Disposition, DSNRecipient, DSNReport, MDNReport
from mssante.message._xdm_bridge import ArchiveFinding, ArchiveInfo, DocumentInfo, PatientInfo

__all__ = [
    "DEFAULT_CODECDA_SEPARATOR",
    "PATIENT_DOMAIN",
    "XDM_FILENAME",
    "XDM_SUBJECT_PREFIX",
    "ArchiveFinding",
    "ArchiveInfo",
    "Attachment",
    "CheckReport",
    "ComposeSettings",
    "ComposedMessage",
    "DSNParameters",
    "DSNRecipient",
    "DSNReport",
    "DSNRequest",
    "Disposition",
    "DispositionType",
    "DocumentInfo",
    "Draft",
    "Finding",
    "MDNReport",
    "MSSHeaders",
    "NotAMessage",
    "ParsedAttachment",
    "ParsedMessage",
    "PatientInfo",
    "PdfCompanion",
    "ReadSettings",
    "Sender",
    "SenderKind",
    "Severity",
    "check_message",
    "check_parsed",
    "compose_message",
    "generate_mdn",
    "new_message_id",
    "not_a_message",
    "organisation_label",
    "parse_message",
    "parse_xdm_subject",
    "patient_address",
    "pdf_filename",
    "professional_label",
    "xdm_subject",
]
