"""The DSN's human part: French by default (UTF-8 text, RFC 2047 subject), English asked; the machine part unchanged."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mssante.message import parse_message
from mssante.sandbox.fronts.dsn import RecipientReport, build_dsn

ARRIVAL = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
REPORTS = (
    RecipientReport(final_recipient="nobody@mss.sandbox.test", action="failed", status="5.1.1",
                    original_recipient="rfc822;nobody@mss.sandbox.test", diagnostic="550 5.1.1 user unknown"),
    RecipientReport(final_recipient="dpi.hopital@mss.sandbox.test", action="delivered", status="2.0.0"),
)
ORIGINAL = b"From: <marie.curie@mss.sandbox.test>\r\nSubject: CR\r\nMessage-ID: <a@b>\r\n\r\ncorps\r\n"


def _dsn(**kwargs: object) -> bytes:
    return build_dsn(reporting_mta="smtp.psc.mss.sandbox.test", postmaster="MAILER-DAEMON@mss.sandbox.test",
                     recipient="marie.curie@mss.sandbox.test", reports=REPORTS, original=ORIGINAL, arrival=ARRIVAL,
                     envid="env-1", **kwargs)  # type: ignore[arg-type]


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _machine_part(raw: bytes) -> str:
    status = list(_parse(raw).iter_parts())[1].as_string()
    return re.sub(r"Last-Attempt-Date: .*", "", status)  # the only line that depends on the clock


def test_french_by_default_encoded_for_7bit_transport() -> None:
    raw = _dsn()
    assert raw.isascii()  # RFC 2047 subject and name, quoted-printable text
    assert re.search(rb"^Subject: =\?utf-8\?", raw, re.MULTILINE)
    dsn = _parse(raw)
    assert dsn["Subject"] == "Message non remis, retourné à l'expéditeur"
    assert dsn["From"].addresses[0].display_name == "Système de remise du courrier"
    human = next(dsn.iter_parts())
    assert human.get_content_type() == "text/plain" and human.get_content_charset() == "utf-8"
    text = human.get_content()
    assert text.startswith("Ceci est le système de messagerie du serveur smtp.psc.mss.sandbox.test.")
    assert "Votre message n'a pas pu être remis à un ou plusieurs destinataires." in text
    assert "<nobody@mss.sandbox.test> : adresse inconnue : aucune BAL ne porte ce nom dans ce domaine" in text
    assert "    réponse du serveur : 550 5.1.1 user unknown" in text
    assert "<dpi.hopital@mss.sandbox.test> : remis dans la boîte du destinataire" in text


def test_a_success_report_in_french() -> None:
    raw = build_dsn(reporting_mta="smtp.x.test", postmaster="MAILER-DAEMON@x.test", recipient="a@x.test",
                    reports=REPORTS[1:], original=ORIGINAL, arrival=ARRIVAL)
    dsn = _parse(raw)
    assert dsn["Subject"] == "Rapport de remise : message remis"
    assert "Votre message a été remis aux destinataires suivants." in next(dsn.iter_parts()).get_content()


def test_english_when_asked() -> None:
    dsn = _parse(_dsn(lang="en"))
    assert dsn["Subject"] == "Undelivered Mail Returned to Sender"
    assert str(dsn["From"]) == "Mail Delivery System <MAILER-DAEMON@mss.sandbox.test>"
    text = next(dsn.iter_parts()).get_content()
    assert "<nobody@mss.sandbox.test>: unknown address: no BAL has this name in this domain" in text
    assert "    server reply: 550 5.1.1 user unknown" in text


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_machine_part_does_not_change_with_the_language(lang: str) -> None:
    status = _machine_part(_dsn(lang=lang))
    assert status == _machine_part(_dsn(lang="en"))
    assert "Reporting-MTA: dns; smtp.psc.mss.sandbox.test" in status and "Original-Envelope-Id: env-1" in status
    assert "Final-Recipient: rfc822; nobody@mss.sandbox.test" in status and "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1 user unknown" in status and "Action: delivered" in status


def test_our_reader_reads_the_french_report() -> None:
    parsed = parse_message(_dsn())
    report = parsed.report
    assert report is not None and report.human_text is not None
    assert "adresse inconnue" in report.human_text
    assert [r.final_recipient for r in report.recipients] == ["nobody@mss.sandbox.test", "dpi.hopital@mss.sandbox.test"]
