"""The CDA generator: deterministic, parseable, qualified INS, the expected codes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from mssante.cda import SampleAuthor, SamplePatient, generate_cr_bio, generate_vsm, parse_cda_header
from mssante.errors import UsageError

PARIS = timezone(timedelta(hours=2))
WHEN = datetime(2024, 6, 3, 9, 15, tzinfo=PARIS)


def test_cr_bio() -> None:
    doc = generate_cr_bio(effective_time=WHEN)
    assert doc == generate_cr_bio(effective_time=WHEN)  # deterministic
    h = parse_cda_header(doc)
    assert h.code is not None and (h.code.code, h.code.code_system) == ("11502-2", "2.16.840.1.113883.6.1")
    assert {t.root for t in h.template_ids} >= {"1.3.6.1.4.1.19376.1.3.3", "1.2.250.1.213.1.1.1.55"}
    assert h.has_qualified_ins and h.patient is not None and h.patient.ins is not None
    assert h.patient.ins.oid == "1.2.250.1.213.1.4.10"
    assert h.effective_time == "20240603091500+0200"
    assert h.custodian is not None and h.legal_authenticator is not None and h.service_events
    assert h.practice_setting is not None and h.healthcare_facility_type is not None


def test_vsm_and_custom_patient_escaping() -> None:
    pat = SamplePatient(
        ins="185057800608436",
        birth_family="D'ARC & <FILS>",
        given_names="JEANNE",
        gender="F",
        birth_date=date(1985, 5, 1),
        ipp=None,
    )
    doc = generate_vsm(effective_time=WHEN, patient=pat, author=SampleAuthor(family="O'HARA"))
    h = parse_cda_header(doc)
    assert h.code is not None and h.code.code == "60591-5"
    assert h.patient is not None and h.patient.birth_family == "D'ARC & <FILS>"
    assert h.patient.local_ids == ()
    assert h.id is not None and h.id.root.startswith("2.25.")
    other = generate_vsm(effective_time=WHEN + timedelta(seconds=1), patient=pat)
    assert parse_cda_header(other).id != h.id


def test_naive_time_refused() -> None:
    with pytest.raises(UsageError):
        generate_cr_bio(effective_time=datetime(2024, 1, 1))
    assert generate_vsm(effective_time=datetime(2024, 1, 1, tzinfo=UTC))
