"""CDA header extraction on the ANS samples, INS rules and HL7 time conversion."""

from __future__ import annotations

import pytest

from mssante.cda import INS, Patient, hl7_to_utc, nir_key_ok, parse_cda_header
from mssante.errors import ContentError
from tests.xdm._util import CRBIO, VSM, needs_samples

pytestmark = needs_samples


def test_cr_bio_header() -> None:
    h = parse_cda_header(CRBIO.read_bytes())
    assert h.id is not None and h.id.as_uid() == "1.2.250.1.213.1.1.1.55.2021.6.1"
    assert h.code is not None and (h.code.code, h.code.code_system) == ("11502-2", "2.16.840.1.113883.6.1")
    assert h.title == "Compte rendu d'examens biologiques"
    assert h.effective_time == "20210104160527+0100"
    assert h.confidentiality is not None and h.confidentiality.code == "N"
    assert h.language == "fr-FR"
    assert h.set_id is not None and h.set_id.root == "1.2.250.1.213.1.1.1.55.2021.6"
    assert h.version_number == "1"
    pat = h.patient
    assert pat is not None and pat.ins == INS("279035121518989", "1.2.250.1.213.1.4.10")
    assert pat.ins.kind == "INS-NIR-TEST" and pat.ins.is_test
    assert (pat.birth_family, pat.first_given, pat.birth_time, pat.gender) == (
        "PAT-TROIS",
        "DOMINIQUE",
        "19790328",
        "F",
    )
    assert pat.given_names == "DOMINIQUE MARIE-LOUISE"
    assert [i.extension for i in pat.local_ids] == ["1234567890121"]
    assert h.has_qualified_ins
    assert len(h.authors) == 1
    a = h.authors[0]
    assert a.id is not None and a.id.extension == "801234534765"
    assert a.person is not None and a.person.family == "CAMPARINI"
    assert a.specialty is not None and a.specialty.code == "G15_10/SM03"
    assert a.organization is not None and a.organization.name == "Laboratoire des charmes"
    assert h.custodian is not None and h.custodian.id is not None and h.custodian.id.extension == "1120459876"
    assert (h.service_start, h.service_stop) == ("20210104092200+0100", "20210104160500+0100")
    assert h.healthcare_facility_type is not None and h.healthcare_facility_type.code == "SA25"
    # practiceSettingCode comes from the serviceEvent performer's organisation (AMBULATOIRE), not from the
    # legal authenticator's (ETABLISSEMENT).
    assert h.practice_setting is not None and h.practice_setting.code == "AMBULATOIRE"


def test_vsm_header() -> None:
    h = parse_cda_header(VSM.read_bytes())
    assert h.code is not None and (h.code.code, h.code.code_system) == ("SYNTH", "1.2.250.1.213.1.1.4.12")
    assert h.authors[0].function is not None and h.authors[0].function.code == "PCP"
    assert h.service_start == "20200312111700+0100" and h.service_stop is None
    assert h.healthcare_facility_type is not None and h.healthcare_facility_type.code == "SA04"
    assert h.practice_setting is not None and h.practice_setting.code == "ETABLISSEMENT"
    assert h.has_qualified_ins


@pytest.mark.parametrize(
    "missing",
    ["birth_family", "first_given", "birth_time", "gender"],
)
def test_qualified_ins_needs_all_four_traits(missing: str) -> None:
    full = {"birth_family": "X", "first_given": "Y", "birth_time": "20000101", "gender": "M"}
    ins = INS("279035121518989", "1.2.250.1.213.1.4.10")
    assert Patient(ins=ins, **full).has_qualified_ins  # type: ignore[arg-type]
    full[missing] = ""
    assert not Patient(ins=ins, **full).has_qualified_ins  # type: ignore[arg-type]
    assert not Patient(ins=None, birth_family="X", first_given="Y", birth_time="2000", gender="M").has_qualified_ins
    assert not Patient(
        ins=INS("12", "1.2.250.1.213.1.4.8"), birth_family="X", first_given="Y", birth_time="2000", gender="M"
    ).has_qualified_ins


def test_ins_without_extension_is_not_an_ins() -> None:
    doc = CRBIO.read_bytes().replace(
        b'<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>',
        b'<id root="1.2.250.1.213.1.4.10" nullFlavor="UNK"/>',
    )
    h = parse_cda_header(doc)
    assert h.patient is not None and h.patient.ins is None and not h.has_qualified_ins


def test_nir_key() -> None:
    assert nir_key_ok("279035121518989")
    assert not nir_key_ok("279035121518988")
    assert not nir_key_ok("27903512151898")
    # Corsica: 2A -> 19, 2B -> 18 before the mod-97 computation.
    body = "185072A123456"
    key = 97 - int(body.replace("2A", "19")) % 97
    assert nir_key_ok(f"{body}{key:02d}")


@pytest.mark.parametrize(
    ("ts", "utc"),
    [
        ("20210104160527+0100", "20210104150527"),
        ("20210104092200+0100", "20210104082200"),
        ("20200101003000+0200", "20191231223000"),  # crosses midnight and the year
        ("202101040735+0100", "202101040635"),  # minute precision kept
        ("20210104235959-0500", "20210105045959"),
        ("20210104160527.123+0100", "20210104150527"),
        ("20210104", "20210104"),  # date only: never shifted
        ("20210104160527", "20210104160527"),  # no offset: unknown zone, unchanged
    ],
)
def test_hl7_to_utc(ts: str, utc: str) -> None:
    assert hl7_to_utc(ts) == utc


@pytest.mark.parametrize("ts", ["", "2021-01-04", "20211304", "20210104250000+0100", "20210104+9999", "x" * 50])
def test_hl7_to_utc_rejects(ts: str) -> None:
    with pytest.raises(ContentError):
        hl7_to_utc(ts)
