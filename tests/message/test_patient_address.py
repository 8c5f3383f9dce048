"""``patient_address``: the Mon espace santé address built from a qualified INS (ECO.2.2.6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.errors import ContentError
from mssante.message import PATIENT_DOMAIN, patient_address


def test_the_ans_example() -> None:
    # The ANS implementation guides' example patient (key 89 = 97 - 2790351215189 mod 97).
    assert patient_address("279035121518989") == "279035121518989@patient.mssante.fr"
    assert PATIENT_DOMAIN == "patient.mssante.fr"


def test_printed_forms_and_corsica() -> None:
    assert patient_address("2 79 03 51 215 189 89") == "279035121518989@patient.mssante.fr"
    body = "1850520123456"  # born in Corse-du-Sud: department 2A, key computed on 19 instead of 2A
    corsican = "18505" + "2A" + body[7:]
    key = 97 - int(corsican.replace("2A", "19")) % 97
    assert patient_address(f"{corsican.lower()}{key:02d}") == f"{corsican}{key:02d}@patient.mssante.fr"


@pytest.mark.parametrize("bad", ["279035121518988", "27903512151898", "2790351215189890", "27903512151898A",
                                 "", "279035121518989@patient.mssante.fr", "3790351215189xx"])
def test_a_mistyped_ins_is_refused(bad: str) -> None:
    with pytest.raises(ContentError) as caught:
        patient_address(bad)
    assert caught.value.requirement == "ECO.2.2.6"


@given(st.from_regex(r"\A[12][0-9]{12}\Z"), st.integers(min_value=0, max_value=99))
def test_only_the_right_key_gives_an_address(body: str, key: int) -> None:
    right = 97 - int(body) % 97
    ins = f"{body}{key:02d}"
    if key == right:
        assert patient_address(ins) == f"{ins}@{PATIENT_DOMAIN}"
    else:
        with pytest.raises(ContentError):
            patient_address(ins)
