"""METADATA.XML is written straight to text: whatever the values, it reads back through the safe parser."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.cda import Code
from mssante.xdm import XDMMetadata, XDSAuthor, build_archive, read_metadata, write_metadata
from mssante.xdm._metadata_write import _Writer
from tests._hypothesis import examples
from tests.xdm._util import CRBIO_DOC, read_entry

_META = read_metadata(
    read_entry(build_archive([CRBIO_DOC], now=datetime(2024, 3, 1, tzinfo=UTC)), "IHE_XDM/SUBSET01/METADATA.XML")
)
# Any character XML 1.0 can carry, markup characters and attribute-value whitespace included.
_VALUE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff")
    .filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20)
    | st.sampled_from('&<>"\'\t\r\n ]]>'),
    min_size=1,
    max_size=30,
)


def _with(meta: XDMMetadata, title: str, code: str, value: str) -> XDMMetadata:
    de = meta.document_entries[0]
    de = dataclasses.replace(
        de,
        title=title,
        type_code=Code(code, "2.16.840.1.113883.6.1", title),
        legal_authenticator=value,
        source_patient_info=(value, value),
    )
    ss = dataclasses.replace(meta.submission_sets[0], title=title)
    return dataclasses.replace(meta, document_entries=(de,), submission_sets=(ss,))


@settings(max_examples=examples(100))
@given(_VALUE, _VALUE, _VALUE.filter(lambda v: v.strip() == v and "\r" not in v))
def test_written_values_read_back(title: str, code: str, value: str) -> None:
    meta = _with(_META, title, code, value)
    raw = write_metadata(meta)
    back = read_metadata(raw)
    de, ss = back.document_entries[0], back.submission_sets[0]
    # Attribute values (titles, codes) and element text (slot values) come back as written, markup and
    # inner whitespace included; the reader strips the ends (an empty value is None).
    assert de.title == (title.strip() or None) and ss.title == (title.strip() or None)
    assert de.type_code is not None and de.type_code.code == code.strip()
    assert de.legal_authenticator == value
    assert de.source_patient_info == (value, value)
    assert write_metadata(back) == write_metadata(dataclasses.replace(back))


def test_empty_objects_are_written_as_empty_elements() -> None:
    ss = dataclasses.replace(_META.submission_sets[0], authors=())
    assoc = dataclasses.replace(_META.associations[0], submission_set_status=None)
    raw = write_metadata(dataclasses.replace(_META, submission_sets=(ss,), associations=(assoc,)))
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<lcm:SubmitObjectsRequest xmlns:lcm=')
    assert b'\n  <rim:Association id="' in raw and b'targetObject="' in raw
    assoc_xml = raw[raw.index(b"<rim:Association ") :]
    assert assoc_xml[: assoc_xml.index(b">") + 1].endswith(b'" />')
    assert read_metadata(raw).associations[0].submission_set_status is None


@settings(max_examples=examples(100))
@given(st.text(max_size=40), st.sampled_from(["cl", "ei", "as"]), st.integers(1, 40))
def test_the_ids_are_rfc_4122_name_based_uuids(seed: str, kind: str, n: int) -> None:
    # The writer formats the version-5 UUID itself; it must be the one uuid.uuid5 gives.
    w = _Writer(seed)
    ids = [w.next_id(kind) for _ in range(n)]
    assert ids[-1] == f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{seed}#{kind}{n}')}"
    assert len(set(ids)) == n


def test_an_empty_value_is_a_slot_and_no_value_no_slot() -> None:
    blank, empty = XDSAuthor(person=""), XDSAuthor()
    ss = dataclasses.replace(_META.submission_sets[0], authors=(blank, empty))
    assoc = dataclasses.replace(_META.associations[0], submission_set_status="")
    raw = write_metadata(dataclasses.replace(_META, submission_sets=(ss,), associations=(assoc,)))
    assert b'<rim:Slot name="authorPerson">\n     <rim:ValueList>\n      <rim:Value />' in raw
    assert raw.count(b'nodeRepresentation="" />') == 1  # the author without any value: an empty element
    assert b'<rim:Slot name="SubmissionSetStatus">\n    <rim:ValueList>\n     <rim:Value />' in raw
    back = read_metadata(raw)
    assert [a.person for a in back.submission_sets[0].authors] == [None, None]
