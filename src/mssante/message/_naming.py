"""Names that Ref #2 prescribes: the XDM subject (ECO.2.1.3), the PDF companion file name
(ECO.2.1.6) and the sender display label (ECO.2.2.7).

The exact wording of these rules comes from third-party quotes of Ref #2 v1.0.1 (research
note ``ref2-requirements.md`` §5.2–5.3, tag [B]) and from the ANS IG examples ([A]).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from mssante.cda import nir_key_ok
from mssante.errors import ContentError, UsageError
from mssante.message._text import check_header_value, file_token, format_birth_date, plain_name

__all__ = [
    "PATIENT_DOMAIN",
    "XDM_SUBJECT_PREFIX",
    "SubjectParts",
    "organisation_label",
    "parse_xdm_subject",
    "patient_address",
    "pdf_filename",
    "pdf_filename_problems",
    "professional_label",
    "xdm_subject",
]

#: ECO.2.1.3: the subject of a message carrying an XDM archive starts with this marker.
XDM_SUBJECT_PREFIX = "XDM/1.0/DDM+"
#: ECO.2.1.3 / ECO.2.1.6: labels and types are the code displayName truncated to 40 characters.
LABEL_MAX = 40

_SUBJECT_DATE = re.compile(r"\s(\d{2})/(\d{2})/(\d{4})$")


def _required(value: str, what: str) -> str:
    check_header_value(value, what=what)
    if not value.strip():
        raise UsageError(f"{what} must not be empty")
    return value


def xdm_subject(
    *,
    label: str | None,
    document_count: int = 1,
    family_name: str,
    given_name: str,
    birth_date: date | None = None,
) -> str:
    """Build the ECO.2.1.3 subject ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <JJ/MM/AAAA>``.

    ``label`` is the CDA code displayName (truncated to 40 characters) when there is one
    document; with several documents the label is ``"<N> documents"``. The birth name is
    upper-cased and, like the first name, loses its accents; the date of birth is optional.
    The label keeps its accents, so the subject may need RFC 2047 encoding (done when the
    message is serialised).

    Raises:
        ContentError: a value holds a control character (header injection).
        UsageError: a mandatory field is empty, or ``document_count`` < 1.
    """
    if document_count < 1:
        raise UsageError("an XDM subject needs at least one document")
    if document_count > 1:
        text_label = f"{document_count} documents"
    else:
        if label is None:
            raise UsageError("an XDM subject needs the document label (CDA code displayName)")
        text_label = " ".join(_required(label, "subject label").split())[:LABEL_MAX].rstrip()
    name = plain_name(_required(family_name, "patient family name")).upper()
    first = plain_name(_required(given_name, "patient given name"))
    parts = [f"{XDM_SUBJECT_PREFIX}{text_label}", name, first]
    if birth_date is not None:
        parts.append(format_birth_date(birth_date))
    return " ".join(parts)


@dataclass(frozen=True, kw_only=True)
class SubjectParts:
    """An ECO.2.1.3 subject split into its parts.

    ``rest`` is ``"<libellé> <NOM> <prénom>"``: the label may hold spaces, so it cannot be
    split from the names without knowing the patient (see :func:`parse_xdm_subject`).
    """

    rest: str
    birth_date: date | None


def parse_xdm_subject(subject: str) -> SubjectParts | None:
    """Split an ECO.2.1.3 subject; ``None`` when it does not start with ``XDM/1.0/DDM+``.

    Raises:
        MssanteError: none on purpose.
    """
    if not subject.startswith(XDM_SUBJECT_PREFIX):
        return None
    rest = subject[len(XDM_SUBJECT_PREFIX) :].strip()
    birth: date | None = None
    match = _SUBJECT_DATE.search(" " + rest)
    if match:
        try:
            birth = date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
        except ValueError:
            birth = None
        if birth is not None:
            rest = rest[: match.start()].rstrip() if match.start() > 0 else ""
    return SubjectParts(rest=rest, birth_date=birth)


def pdf_filename(
    *,
    act_date: date,
    document_type: str,
    family_name: str,
    given_name: str,
    record_number: str | None = None,
) -> str:
    """Build the ECO.2.1.6 PDF companion name ``<date>_<type>_<NOM>_<prénom>[_<dossier>].pdf``.

    Normalisation (ECO.2.1.6 as quoted, and the ANS IG example
    ``20220531_CR_d_imagerie_medicale_CORSE_FIGATELLIX.pdf``): the date is ``AAAAMMJJ``; the
    type is the CDA code displayName truncated to 40 characters; accents are removed and
    every run of other characters than letters and digits becomes ``_``; the birth name is
    upper-cased. The record number (numéro de dossier; the prescription number in biology)
    is optional.

    Raises:
        ContentError: a value holds a control character.
        UsageError: a mandatory field is empty once normalised.
    """
    fields = [
        f"{act_date.year:04d}{act_date.month:02d}{act_date.day:02d}",
        file_token(_required(document_type, "document type"), max_length=LABEL_MAX),
        file_token(_required(family_name, "patient family name")).upper(),
        file_token(_required(given_name, "patient given name")),
    ]
    if record_number is not None and record_number.strip():
        fields.append(file_token(check_header_value(record_number, what="record number")))
    if not all(fields):
        raise UsageError("a PDF file-name field is empty once normalised (ECO.2.1.6)", requirement="ECO.2.1.6")
    return "_".join(fields) + ".pdf"


_PDF_NAME = re.compile(r"^(\d{4})(\d{2})(\d{2})_([A-Za-z0-9]+(?:_[A-Za-z0-9]+)+)\.pdf$")


def pdf_filename_problems(
    filename: str,
    *,
    family_name: str | None = None,
    given_name: str | None = None,
    act_dates: tuple[date, ...] = (),
) -> tuple[str, ...]:
    """List why ``filename`` does not follow ECO.2.1.6 (empty when it does).

    The generic shape is always checked (``AAAAMMJJ`` date, ``_``-separated ASCII fields,
    ``.pdf``); with the patient's names the ``_<NOM>_<prénom>`` part is checked too, and with
    the documents' act dates the date must be one of them.

    Raises:
        MssanteError: none on purpose; problems are returned.
    """
    match = _PDF_NAME.match(filename)
    if match is None:
        return (f"{filename!r} is not '<AAAAMMJJ>_<type>_<NOM>_<prenom>[_<dossier>].pdf'",)
    problems: list[str] = []
    try:
        day = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return (f"{filename!r} does not start with a valid AAAAMMJJ date",)
    if act_dates and day not in act_dates:
        problems.append(f"{filename!r}: date {day.isoformat()} is not the act date of a document")
    if family_name and given_name:
        names = f"_{file_token(family_name).upper()}_{file_token(given_name)}"
        fields = "_" + match.group(4)
        if not (fields.endswith(names) or names + "_" in fields):
            problems.append(f"{filename!r} does not carry the patient names '{names[1:]}'")
        elif len(fields.partition(names)[0]) < 2:
            problems.append(f"{filename!r} has no document type before the patient names")
    return tuple(problems)


def professional_label(
    *,
    given_name: str,
    family_name: str,
    title: str | None = None,
    unit: str | None = None,
) -> str:
    """Sender label of a personal (PER) BAL: ``<Titre>_<Prénom>_<NOM>_<Entité fonctionnelle>``.

    ECO.2.2.7 (quoted [B]): fields are separated by ``_``, the family name is upper-case, only
    the first and family names are mandatory.

    Raises:
        ContentError: a value holds a control character.
        UsageError: the first or family name is empty.
    """
    fields = []
    if title and title.strip():
        fields.append(check_header_value(title, what="title").strip())
    fields.append(_required(given_name, "given name").strip())
    fields.append(_required(family_name, "family name").strip().upper())
    if unit and unit.strip():
        fields.append(check_header_value(unit, what="unit").strip())
    return "_".join(fields)


def organisation_label(unit: str) -> str:
    """Sender label of an organisation (ORG) or application (APP) BAL: the functional unit.

    ECO.2.2.7 example: ``Hopital C – Biologie``.

    Raises:
        ContentError: the value holds a control character.
        UsageError: the value is empty.
    """
    return _required(unit, "unit").strip()


#: The domain of Mon espace santé, the patients' MSSanté mailboxes (ECO.2.2.6, ref2 §3.4.2).
PATIENT_DOMAIN = "patient.mssante.fr"


def patient_address(ins: str, *, domain: str = PATIENT_DOMAIN) -> str:
    """The Mon espace santé address of the patient whose qualified INS matricule is ``ins`` (ECO.2.2.6).

    The address is ``<matricule>@patient.mssante.fr``: 15 characters, the 13-character NIR (Corsica
    ``2A``/``2B`` allowed) then its 2-digit key. The key is checked, because a mistyped INS would
    write to another patient; spaces, as INS are often printed, are removed.

    Raises:
        ContentError: ``ins`` is not a 15-character INS matricule, or its NIR key is wrong.
    """
    matricule = ins.replace(" ", "").upper()
    if not nir_key_ok(matricule):
        raise ContentError(f"{ins!r} is not a qualified INS matricule (15 characters, NIR key checked)",
                           requirement="ECO.2.2.6")
    return f"{matricule}@{domain}"

