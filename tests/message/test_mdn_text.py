"""The human parts of an MDN (subject, text) come from the catalogue: French by default, English asked."""

from __future__ import annotations

import pytest

from mssante.message import generate_mdn, parse_message

from .conftest import NOW, PATIENT_ADDRESS, SETTINGS, FakeXDM
from .test_reports import _received


@pytest.mark.parametrize(
    ("disposition", "lang", "subject", "text"),
    [
        ("displayed", "fr", "Accusé de lecture : ", "Le message a été affiché sur le poste du destinataire."),
        ("processed", "fr", "Accusé de traitement : ", "Le message a été traité sans avoir été affiché."),
        ("deleted", "fr", "Avis de suppression : ", "Le message a été supprimé sans avoir été affiché."),
        ("displayed", "en", "Read receipt: ", "The message was displayed on the recipient's computer."),
        ("processed", "en", "Processing notice: ", "The message was processed without being displayed."),
    ],
)
def test_mdn_subject_and_human_part_in_the_language(fake_xdm: FakeXDM, disposition: str, lang: str, subject: str,
                                                      text: str) -> None:
    original = parse_message(_received(fake_xdm))
    mdn = generate_mdn(original, reporter=PATIENT_ADDRESS, settings=SETTINGS, disposition=disposition,  # type: ignore[arg-type]
                       now=NOW, lang=lang)  # type: ignore[arg-type]
    assert str(mdn.message["Subject"]).startswith(subject)
    assert "(processed)" not in str(mdn.message["Subject"])
    human = next(p for p in mdn.message.walk() if p.get_content_type() == "text/plain")
    assert human.get_content().startswith(text)
