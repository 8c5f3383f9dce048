"""``mssante annuaire search`` lines: French by default, English with --lang en (the directory's data as it is)."""

from __future__ import annotations

from mssante._i18n import use
from mssante.annuaire._fhir import Mailbox, Practitioner
from mssante.cli._annuaire import _practitioner_lines

CURIE = Practitioner(id="1", national_id="810000000001", rpps="10000000001", family_name="CURIE", given_name="Marie",
                     professions=("10", "99"), specialties=(), cities=(),
                     mailboxes=(Mailbox(address="marie.curie@mss.sandbox.test", kind="PER"),
                                Mailbox(address="x@mss.sandbox.test", kind=None)))


def test_practitioner_lines_in_french_then_english() -> None:
    with use("fr"):
        assert _practitioner_lines(CURIE) == [
            "CURIE Marie — RPPS 10000000001 — médecin (10), profession (99) — lieu d'exercice non publié",
            "  BAL personnelle (PER) : marie.curie@mss.sandbox.test",
            "  BAL de type inconnu (?) : x@mss.sandbox.test",
        ]
    with use("en"):
        assert _practitioner_lines(CURIE) == [
            "CURIE Marie — RPPS 10000000001 — physician (10), profession (99) — place of practice not published",
            "  Personal BAL (PER): marie.curie@mss.sandbox.test",
            "  BAL of unknown kind (?): x@mss.sandbox.test",
        ]
