"""Build an IHE XDM archive (``IHE_XDM.ZIP``, IHE ITI-32) from CDA R2 documents.

Layout (IHE ITI-32 assertions ITI32-003/004/005/007/008, xdm-cda.md §1): ``README.TXT`` and ``INDEX.HTM``
at the root, ``IHE_XDM/SUBSET01/METADATA.XML`` and the documents as ``IHE_XDM/SUBSET01/DOC0001.XML``…
(ISO-9660 level-1 style 8.3 upper-case names). The DocumentEntry metadata is derived from each CDA header
with the CI-SIS mapping (xdm-cda.md §3) and the ANS NOS tables (:mod:`mssante.xdm._vocab`).

The builder is pure: the clock (``now``) and the id source are injected; the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mssante._version import __version__
from mssante.cda import CDAHeader, Code, XMLLimits, format_dtm, hl7_to_utc, parse_cda_header
from mssante.errors import ContentError, UsageError
from mssante.xdm import _hl7
from mssante.xdm._metadata_write import write_metadata
from mssante.xdm._model import Association, DocumentEntry, SubmissionSet, XDMMetadata, XDSAuthor
from mssante.xdm._vocab import CONFIDENTIALITY_NAMES, HAS_MEMBER, class_code_for, format_code_for
from mssante.xdm._zip import write_zip

__all__ = ["DEFAULT_SOURCE_ID", "XDMSender", "build_archive", "document_entry_for"]

#: Default SubmissionSet.sourceId: a fixed ``2.25`` OID (UUID-derived, ITU-T X.667) naming "mssante".
DEFAULT_SOURCE_ID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_DNS, "mssante.xdm.source").int)
SUBSET = "IHE_XDM/SUBSET01"
_MAX_DOCUMENTS = 9999


@dataclass(frozen=True, slots=True)
class XDMSender:
    """Who creates the media, written in ``README.TXT`` (ITI-32 asks for creator contact and application).

    Attributes:
        name: sender person or organisation name.
        address: postal address or MSSanté address.
        application: the sending application (defaults to ``mssante <version>``).
    """

    name: str = "mssante"
    address: str = ""
    application: str = f"mssante {__version__}"


def _utc(ts: str | None) -> str | None:
    return None if ts is None else hl7_to_utc(ts)


def document_entry_for(header: CDAHeader, data: bytes, *, uri: str, entry_uuid: str) -> DocumentEntry:
    """Derive the XDS DocumentEntry of one CDA document (CI-SIS CDA → XDS mapping, xdm-cda.md §3).

    Raises:
        ContentError: the header lacks what the mapping needs (id, code, effectiveTime, patient) or
            carries an impossible date.
    """
    missing = [
        n for n, v in (("id", header.id), ("code", header.code), ("effectiveTime", header.effective_time)) if v is None
    ]
    if header.patient is None or not header.patient.ids:
        missing.append("recordTarget/patientRole/id")
    if missing:
        raise ContentError(f"CDA header lacks {', '.join(missing)}", requirement="CI-SIS Structuration minimale")
    assert header.id is not None and header.patient is not None
    pat = header.patient
    patient_id = pat.ins.as_cx() if pat.ins is not None else _hl7.cx(pat.ids[0], "PI")
    local = [i for i in pat.local_ids if i.extension]
    source_pid = _hl7.cx(local[0], "PI") if local else patient_id
    authors = []
    for a in header.authors:
        person, inst, role, spec = _hl7.author_parts(a)
        authors.append(
            XDSAuthor(
                person=person,
                institutions=(inst,) if inst else (),
                roles=(role,) if role else (),
                specialties=(spec,) if spec else (),
            )
        )
    conf = header.confidentiality
    confidentiality: tuple[Code, ...] = ()
    if conf is not None:
        confidentiality = (
            Code(conf.code, conf.code_system, conf.display_name or CONFIDENTIALITY_NAMES.get(conf.code)),
        )
    fmt, _mapped = format_code_for(header)
    return DocumentEntry(
        entry_uuid=entry_uuid,
        unique_id=header.id.as_uid(),
        patient_id=patient_id,
        source_patient_id=source_pid,
        source_patient_info=_hl7.source_patient_info(pat),
        uri=uri,
        hash=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        size=str(len(data)),
        mime_type="text/xml",
        creation_time=_utc(header.effective_time),
        service_start_time=_utc(header.service_start),
        service_stop_time=_utc(header.service_stop),
        language_code=header.language,
        title=header.title,
        legal_authenticator=_hl7.legal_xcn(header.legal_authenticator),
        class_code=class_code_for(header.code),
        type_code=header.code,
        format_code=fmt,
        confidentiality_codes=confidentiality,
        healthcare_facility_type_code=header.healthcare_facility_type,
        practice_setting_code=header.practice_setting,
        event_codes=tuple(e.code for e in header.service_events if e.code is not None),
        authors=tuple(authors),
    )


def _readme(sender: XDMSender, now: str, names: Sequence[str], headers: Sequence[CDAHeader]) -> bytes:
    lines = [
        "IHE XDM media (IHE ITI-32 Distribute Document Set on Media, ZIP over e-mail)",
        "",
        f"Created by: {sender.name}",
        f"Contact: {sender.address}" if sender.address else "Contact: -",
        f"Application: {sender.application}",
        f"Created (UTC): {now}",
        "",
        "Open the files received by MSSante in your health professional software.",
        "",
        "Content:",
        "  README.TXT",
        "  INDEX.HTM",
        f"  {SUBSET}/METADATA.XML",
    ]
    for name, h in zip(names, headers, strict=True):
        lines.append(f"  {SUBSET}/{name}  {h.title or ''}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _index(sender: XDMSender, names: Sequence[str], headers: Sequence[CDAHeader]) -> bytes:
    items = "".join(
        f'<li><a href="{SUBSET}/{n}">{html.escape(h.title or n)}</a></li>' for n, h in zip(names, headers, strict=True)
    )
    page = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="UTF-8"/><title>IHE XDM</title></head>'
        f"<body><h1>Documents sent by {html.escape(sender.name)}</h1><ul>{items}</ul>"
        '<p><a href="README.TXT">README.TXT</a></p></body></html>\n'
    )
    return page.encode("utf-8")


def _default_ids(seed: bytes) -> Callable[[], uuid.UUID]:
    state = {"n": 0}
    base = uuid.UUID(bytes=hashlib.sha256(seed).digest()[:16])

    def nxt() -> uuid.UUID:
        state["n"] += 1
        return uuid.uuid5(base, str(state["n"]))

    return nxt


def build_archive(
    cda_documents: Sequence[bytes],
    *,
    now: datetime,
    id_source: Callable[[], uuid.UUID] | None = None,
    source_id: str = DEFAULT_SOURCE_ID,
    sender: XDMSender | None = None,
    content_type_code: Code | None = None,
    intended_recipients: Sequence[str] = (),
    xml_limits: XMLLimits | None = None,
    strict: bool = True,
) -> bytes:
    """Build an ``IHE_XDM.ZIP`` (IHE ITI-32) holding ``cda_documents`` with derived ebRIM metadata.

    Args:
        cda_documents: the CDA R2 documents, as bytes (written unchanged: hash and size are of these bytes).
        now: the submission time (timezone-aware); also the ZIP entries' timestamp.
        id_source: returns a fresh UUID per call (entryUUIDs, SubmissionSet uniqueId as ``2.25.<uuid>``).
            Defaults to a deterministic source seeded by the documents and ``now``.
        source_id: the SubmissionSet.sourceId OID of the sending system.
        sender: creator information written in ``README.TXT``.
        content_type_code: SubmissionSet.contentTypeCode (JDV_J03), omitted when None.
        intended_recipients: e-mail addresses written as SubmissionSet.intendedRecipient ``^^Internet^addr``.
        xml_limits: bounds for parsing the CDA documents.
        strict: refuse documents about different patients (ECO.2.1.1). ``False`` exists only to produce
            negative test archives.

    Raises:
        UsageError: no document, more than 9999 documents, or ``now`` is naive.
        LimitError: a document exceeds ``xml_limits``.
        UnsafeContentError: a document has a DOCTYPE/entities.
        ContentError: a document is not a CDA, lacks header elements the mapping needs, or (``strict``) the
            documents concern more than one patient (ECO.2.1.1).
    """
    if not cda_documents:
        raise UsageError("build_archive needs at least one CDA document")
    if len(cda_documents) > _MAX_DOCUMENTS:
        raise UsageError(f"at most {_MAX_DOCUMENTS} documents per archive")
    submission_time = format_dtm(now)
    if id_source is None:
        seed = hashlib.sha256(submission_time.encode())
        for d in cda_documents:
            seed.update(hashlib.sha256(d).digest())
        id_source = _default_ids(seed.digest())
    headers = [
        parse_cda_header(bytes(d), limits=xml_limits, what=f"CDA document #{i + 1}")
        for i, d in enumerate(cda_documents)
    ]
    keys = {h.patient.identity_key() for h in headers if h.patient is not None}
    if strict and len(keys) > 1:
        raise ContentError("the documents concern more than one patient", requirement="ECO.2.1.1")
    names = [f"DOC{i + 1:04d}.XML" for i in range(len(cda_documents))]
    entries = [
        document_entry_for(h, bytes(d), uri=n, entry_uuid=f"urn:uuid:{id_source()}")
        for h, d, n in zip(headers, cda_documents, names, strict=True)
    ]
    ss_uuid = f"urn:uuid:{id_source()}"
    first = headers[0]
    ss_authors: tuple[XDSAuthor, ...] = entries[0].authors[:1]
    if not ss_authors and first.custodian is not None:
        inst = _hl7.xon(first.custodian)
        ss_authors = (XDSAuthor(institutions=(inst,) if inst else ()),)
    ss = SubmissionSet(
        entry_uuid=ss_uuid,
        unique_id="2.25." + str(id_source().int),
        source_id=source_id,
        patient_id=entries[0].patient_id,
        submission_time=submission_time,
        title=first.title if len(headers) == 1 else f"{len(headers)} documents",
        content_type_code=content_type_code,
        authors=ss_authors,
        intended_recipients=tuple(f"^^Internet^{_hl7.esc(a)}" for a in intended_recipients),
    )
    assocs = tuple(
        Association(
            id=f"urn:uuid:{id_source()}",
            association_type=HAS_MEMBER,
            source=ss_uuid,
            target=e.entry_uuid,
            submission_set_status="Original",
        )
        for e in entries
    )
    meta = XDMMetadata(submission_sets=(ss,), document_entries=tuple(entries), associations=assocs)
    snd = sender or XDMSender()
    files = [
        ("README.TXT", _readme(snd, submission_time, names, headers)),
        ("INDEX.HTM", _index(snd, names, headers)),
        (f"{SUBSET}/METADATA.XML", write_metadata(meta)),
        *((f"{SUBSET}/{n}", bytes(d)) for n, d in zip(names, cda_documents, strict=True)),
    ]
    return write_zip(files, when=now.astimezone(UTC))
