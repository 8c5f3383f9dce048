"""``check_message`` and the ``mssante check`` command: every broken rule is flagged."""

from __future__ import annotations

import email.policy
import json
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from mssante.cli._check import check as check_command
from mssante.errors import LimitError
from mssante.message import Draft, ReadSettings, check_message, compose_message

from .conftest import ARCHIVE_BROKEN, ARCHIVE_TWO_PATIENTS, NOW, PRO_ADDRESS, SENDER, SETTINGS, FakeXDM, xdm_draft

DATA = Path(__file__).parent / "data"


def _good(**changes: object) -> EmailMessage:
    return compose_message(xdm_draft(**changes), settings=SETTINGS, now=NOW).message


def _raw(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=email.policy.SMTP)


def _replace_header(name: str, value: str) -> Callable[[EmailMessage], None]:
    def edit(msg: EmailMessage) -> None:
        msg.replace_header(name, value)

    return edit


def _rename_pdf(msg: EmailMessage) -> None:
    for part in msg.iter_attachments():
        if part.get_content_type() == "application/pdf":
            part.replace_header("Content-Disposition", 'attachment; filename="compte-rendu.pdf"')
            part.set_param("name", "compte-rendu.pdf")


def _drop_pdf(msg: EmailMessage) -> None:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    msg.set_payload([p for p in payload if p.get_content_type() != "application/pdf"])


def test_composed_message_is_clean(fake_xdm: FakeXDM) -> None:
    report = check_message(_raw(_good(request_mdn=True, html="<p>x</p>")))
    assert report.ok, report.findings
    assert report.findings == ()


@pytest.mark.parametrize(
    ("edit", "rule", "needle"),
    [
        (lambda m: m.__delitem__("X-MSS-NIL"), "ECO.2.4.3", "X-MSS-NIL"),
        (_replace_header("X-MSS-CODECDA", "34112-3"), "ECO.2.4.1", "does not match the archive"),
        (lambda m: m.__delitem__("X-MSS-CODECDA"), "ECO.2.4.1", "missing"),
        (_replace_header("X-MSS-INS", "N"), "ECO.2.4.2", "archive says O"),
        (_replace_header("X-MSS-INS", "oui"), "ECO.2.4.2", "O or N"),
        (_replace_header("Subject", "Résultats de biologie"), "ECO.2.1.3", "does not start with"),
        (_replace_header("Subject", "XDM/1.0/DDM+CR MARTIN Paul"), "ECO.2.1.3", "patient"),
        (_replace_header("Subject", "XDM/1.0/DDM+CR PAT-TROIS Helene 01/01/1980"), "ECO.2.1.3", "birth date"),
        (_rename_pdf, "ECO.2.1.6", "compte-rendu.pdf"),
        (_drop_pdf, "ECO.2.1.1", "no PDF"),
        (lambda m: m.__delitem__("Message-ID"), "ECO.2.2.1", "Message-ID"),
        (lambda m: m.__delitem__("Date"), "RFC 5322 §3.6.1", "Date"),
        (_replace_header("X-MSS-MES", "STOP"), "ECO.2.2.8", "FIN"),
        (_replace_header("From", "jean.dupont@hopital-test.mssante.fr"), "ECO.2.2.7", "label"),
        (_replace_header("Disposition-Notification-To", "not an address"), "RFC 8098 §2.1", "no valid address"),
    ],
)
def test_each_broken_rule_is_flagged(
    fake_xdm: FakeXDM, edit: Callable[[EmailMessage], None], rule: str, needle: str
) -> None:
    msg = _good(end_of_exchange=True, request_mdn=True)
    edit(msg)
    report = check_message(_raw(msg))
    hits = [f for f in report.findings if f.rule == rule]
    assert hits, report.findings
    assert any(needle in f.message for f in hits), hits


def test_deliberately_broken_message_lists_all_rules(fake_xdm: FakeXDM) -> None:
    msg = _good()
    del msg["X-MSS-NIL"]
    msg.replace_header("X-MSS-CODECDA", "11502-2,34112-3")
    msg.replace_header("Subject", "Vos résultats")
    _rename_pdf(msg)
    report = check_message(_raw(msg))
    assert not report.ok
    assert {"ECO.2.4.3", "ECO.2.4.1", "ECO.2.1.3", "ECO.2.1.6"} <= report.rules("error")


def test_codecda_and_ins_without_cda_are_flagged(fake_xdm: FakeXDM) -> None:
    msg = compose_message(Draft(sender=SENDER, to=(PRO_ADDRESS,), subject="s", text="t"), settings=SETTINGS).message
    msg["X-MSS-CODECDA"] = "11502-2"
    msg["X-MSS-INS"] = "O"
    assert {"ECO.2.4.1", "ECO.2.4.2"} <= check_message(_raw(msg)).rules("error")


def test_archive_problems(fake_xdm: FakeXDM) -> None:
    two = _good(xdm_archive=ARCHIVE_TWO_PATIENTS, subject="XDM/1.0/DDM+2 documents PAT-TROIS Helene", pdfs=())
    report = check_message(_raw(two))
    assert any(f.rule == "ECO.2.1.1" and "single patient" in f.message for f in report.errors)
    broken = _good()
    for part in broken.iter_attachments():
        if part.get_filename() == "IHE_XDM.ZIP":
            part.set_content(ARCHIVE_BROKEN, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    report = check_message(_raw(broken))
    assert any(f.rule == "ECO.2.1.1" and "cannot be read" in f.message for f in report.errors)


def test_body_charset_and_type(fake_xdm: FakeXDM) -> None:
    raw = (
        b"From: Dr_X <x@a.mssante.fr>\r\nTo: y@b.mssante.fr\r\nDate: Thu, 02 May 2024 09:30:00 +0000\r\n"
        b"Message-ID: <1@a.mssante.fr>\r\nSubject: s\r\nX-MSS-NIL: DEV1\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=iso-8859-1\r\n\r\n<p>caf\xe9</p>\r\n"
    )
    report = check_message(raw)
    assert {"ECO.2.2.3", "ECO.2.2.4"} <= report.rules("error")


def test_encoded_word_header_injection_is_flagged(fake_xdm: FakeXDM) -> None:
    raw = (
        b"From: Dr_X <x@a.mssante.fr>\r\nDate: Thu, 02 May 2024 09:30:00 +0000\r\nMessage-ID: <1@a.mssante.fr>\r\n"
        b"Subject: =?utf-8?q?hello=0D=0ABcc=3A_victim=40example=2Eorg?=\r\nX-MSS-NIL: DEV1\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
    )
    assert "RFC 2047 §5" in check_message(raw).rules("error")
    bare_cr = raw.replace(b"Subject: =?utf-8?q?hello=0D=0ABcc=3A_victim=40example=2Eorg?=", b"Subject: a\rBcc: v@e.org")
    assert "RFC 5322 §2.2" in check_message(bare_cr).rules("error")


def test_patient_address_and_mes(fake_xdm: FakeXDM) -> None:
    msg = compose_message(
        Draft(sender=SENDER, to=("dupont@patient.mssante.fr",), subject="s", text="t"), settings=SETTINGS
    ).message
    assert "ECO.2.2.6" in check_message(_raw(msg)).rules("warning")
    msg = compose_message(
        Draft(sender=SENDER, to=(PRO_ADDRESS,), subject="s", text="t", end_of_exchange=True), settings=SETTINGS
    ).message
    assert "ECO.2.2.8" in check_message(_raw(msg)).rules("info")


def test_reports_are_checked_as_reports() -> None:
    bounce = check_message((DATA / "postfix-bounce.eml").read_bytes())
    assert "ECO.2.4.1" not in bounce.rules() and "ECO.2.2.4" not in bounce.rules()
    assert bounce.ok, bounce.findings  # an MTA-written DSN owes no X-MSS-NIL (ECO.2.4.3 is for the LPS)
    dovecot = check_message((DATA / "dovecot-rejected-mdn.eml").read_bytes())
    assert dovecot.ok and "ECO.2.4.3" in dovecot.rules("warning")
    broken = (DATA / "dovecot-rejected-mdn.eml").read_bytes().replace(b"Disposition: automatic", b"X-Gone: automatic")
    assert "RFC 8098 §3.2.6" in check_message(broken).rules("error")


def test_unparsable_and_oversized_input() -> None:
    assert check_message(b"").ok is False
    with pytest.raises(LimitError):
        check_message(b"x" * 2048, settings=ReadSettings(max_size=1024))


# ------------------------------------------------------------------ CLI


def test_cli_clean_message_exits_0(fake_xdm: FakeXDM, tmp_path: Path) -> None:
    path = tmp_path / "ok.eml"
    path.write_bytes(_raw(_good()))
    result = CliRunner().invoke(check_command, [str(path)])
    assert result.exit_code == 0, result.output
    assert "aucun constat" in result.output


def test_cli_broken_message_table_and_json(fake_xdm: FakeXDM, tmp_path: Path) -> None:
    msg = _good()
    del msg["X-MSS-NIL"]
    msg.replace_header("X-MSS-CODECDA", "34112-3")
    path = tmp_path / "broken.eml"
    path.write_bytes(_raw(msg))
    result = CliRunner().invoke(check_command, [str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].split() == ["GRAVITÉ", "RÈGLE", "MESSAGE"]
    assert any(line.startswith("ERREUR") and "ECO.2.4.3" in line for line in lines)
    assert any("ECO.2.4.1" in line and "34112-3" in line for line in lines)
    assert " erreurs, " in lines[-1] and "(s)" not in lines[-1]

    result = CliRunner().invoke(check_command, [str(path), "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["ok"] is False
    assert {"severity": "error", "rule": "ECO.2.4.3", "message": "X-MSS-NIL (product reference) is missing"} in payload[
        "findings"
    ]


def test_cli_reads_stdin_and_rejects_missing_file(fake_xdm: FakeXDM) -> None:
    result = CliRunner().invoke(check_command, ["-"], input=_raw(_good()))
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(check_command, ["/nonexistent/message.eml"])
    assert result.exit_code == 2
