"""The journal keeps the authentication outcome and its detail as separate fields, and reads older journals.

Journals written before :class:`~mssante.wire.AuthOutcome` (a sandbox's persisted
``journal.jsonl`` from an older version) held the outcome as prose (``"BAD: cancelled"``) and
no outcome on the commands: they load, with what can be read turned into outcomes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mssante.conformance._judge import auth_attempts
from mssante.conformance._remote import record_from_dict
from mssante.errors import UsageError
from mssante.sandbox.fronts.journal import Journal, SessionRecord, is_auth_command, outcome_of_result
from mssante.wire import AuthOutcome

A = AuthOutcome


def _legacy(sid: int, protocol: str, auth_result: str | None, commands: list[tuple[str, str]]) -> dict[str, Any]:
    """A journal line as the previous version wrote it (no auth_detail, no command outcome)."""
    return {"id": sid, "front": f"{protocol}-psc", "protocol": protocol, "peer": "127.0.0.1:1", "started_at": 1.0,
            "ended_at": 2.0, "tls_version": "TLSv1.3", "tls_cipher": None, "starttls_at": 1.1, "auth_at": 1.2,
            "credentials_before_tls": False, "mechanism": "XOAUTH2", "identity": None, "bal": "a@b.test",
            "auth_result": auth_result, "client_cert_subject": None, "messages": [], "starttls_before_auth": True,
            "commands": [{"at": 1.0 + i / 10, "command": c, "result": r} for i, (c, r) in enumerate(commands)]}


LEGACY_RESULTS = [
    ("OK", A.OK, None),
    ("AUTHENTICATIONFAILED: token refused: token is expired", A.AUTHENTICATIONFAILED,
     "token refused: token is expired"),
    ("AUTHORIZATIONFAILED: 899700000001 is not the owner of PER BAL", A.AUTHORIZATIONFAILED,
     "899700000001 is not the owner of PER BAL"),
    ("UNAVAILABLE: PSC unavailable (fault injected)", A.UNAVAILABLE, "PSC unavailable (fault injected)"),
    ("UNAVAILABLE", A.UNAVAILABLE, None),  # the SMTP front stored the bare code
    ("PRIVACYREQUIRED", A.PRIVACYREQUIRED, None),
    ("BAD: cancelled", A.CANCELLED, "cancelled"),
    ("BAD: SASL response is not base64", A.MALFORMED, "SASL response is not base64"),
    ("CANNOT: mechanism not offered", A.NOMECHANISM, "mechanism not offered"),
    ("something a later version wrote", None, "something a later version wrote"),
    (None, None, None),
]


@pytest.mark.parametrize(("prose", "outcome", "detail"), LEGACY_RESULTS)
def test_an_older_journal_line_is_read_into_outcome_and_detail(
    prose: str | None, outcome: AuthOutcome | None, detail: str | None
) -> None:
    record = SessionRecord.from_dict(_legacy(1, "imap", prose, []))
    assert record.auth_result is outcome and record.auth_detail == detail


def test_older_commands_get_their_outcome_from_the_recorded_answer() -> None:
    imap = SessionRecord.from_dict(_legacy(1, "imap", "OK", [
        ("a1 STARTTLS", "OK"),
        ("a2 AUTHENTICATE XOAUTH2 <initial-response>", "NO [AUTHENTICATIONFAILED]"),
        ("a3 AUTHENTICATE XOAUTH2", "BAD"),
        ("a4 LOGIN u <password>", "NO [CANNOT]"),
        ("a5 AUTHENTICATE XOAUTH2 <initial-response>", "OK"),
        ("a6 NOOP", "NO [AUTHENTICATIONFAILED] pretend"),  # not an authentication command: no outcome
        ("<tls-handshake>", "OK TLSv1.3"),
    ]))
    assert [c.outcome for c in imap.commands] == [
        None, A.AUTHENTICATIONFAILED, A.MALFORMED, A.NOMECHANISM, A.OK, None, None]
    smtp = SessionRecord.from_dict(_legacy(2, "smtp", "AUTHORIZATIONFAILED", [
        ("EHLO lps.test", "250 HELP"),
        ("AUTH XOAUTH2 <initial-response>", "500 5.5.2 Line too long: send AUTH <mechanism> alone"),
        ("AUTH XOAUTH2", "535 5.7.8 Authorization failed: not allowed on this BAL (AUTHORIZATIONFAILED)"),
        ("AUTH XOAUTH2", "454 4.7.0 Temporary authentication failure"),
        ("AUTH XOAUTH2", ""),  # the client hung up during the exchange
    ]))
    assert [c.outcome for c in smtp.commands] == [None, A.TOOBIG, A.AUTHORIZATIONFAILED, A.UNAVAILABLE, None]
    assert [a.outcome for a in auth_attempts([imap])] == [A.AUTHENTICATIONFAILED, A.MALFORMED, A.NOMECHANISM, A.OK]
    assert [a.outcome for a in auth_attempts([smtp])] == [A.TOOBIG, A.AUTHORIZATIONFAILED, A.UNAVAILABLE, None]


def test_a_persisted_older_journal_loads_and_new_sessions_follow(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    lines = [_legacy(1, "imap", "AUTHENTICATIONFAILED: token refused", [
        ("a1 AUTHENTICATE XOAUTH2", "NO [AUTHENTICATIONFAILED]")]),
        _legacy(2, "smtp", "OK", [("AUTH XOAUTH2", "235 2.7.0 Authentication successful")])]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    journal = Journal()
    journal.persist_to(path)
    old = list(journal)
    assert [(r.id, r.auth_result, r.auth_detail) for r in old] == [
        (1, A.AUTHENTICATIONFAILED, "token refused"), (2, A.OK, None)]
    assert [a.outcome for a in auth_attempts(old)] == [A.AUTHENTICATIONFAILED, A.OK]
    # A new session is written in the new form, next to the old lines, and reads back the same.
    record = journal.open(front="imap-psc", protocol="imap", peer="127.0.0.1:2")
    journal.command(record, "a1 AUTHENTICATE XOAUTH2 dXNlcj0=", "BAD", A.CANCELLED)
    journal.auth(record, A.CANCELLED, "cancelled by the client")
    journal.close(record)
    written = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
    assert written["auth_result"] == "CANCELLED" and written["auth_detail"] == "cancelled by the client"
    assert written["commands"][0] == {"at": written["commands"][0]["at"], "command": "a1 AUTHENTICATE XOAUTH2 "
                                      "<initial-response>", "result": "BAD", "outcome": "CANCELLED"}
    again = Journal()
    again.persist_to(path)
    reread = list(again)[-1]
    assert reread.auth_result is A.CANCELLED and reread.commands[0].outcome is A.CANCELLED
    assert [r.id for r in again] == [1, 2, 3]


def test_new_records_round_trip_and_unknown_outcomes_are_dropped_not_fatal() -> None:
    journal = Journal()
    record = journal.open(front="smtp-psc", protocol="smtp", peer="127.0.0.1:3")
    journal.command(record, "AUTH XOAUTH2", "454 4.7.0 Temporary authentication failure", A.UNAVAILABLE)
    journal.auth(record, A.UNAVAILABLE, "PSC unavailable (fault injected)")
    data = json.loads(Journal.dumps_jsonl([record]))
    back = SessionRecord.from_dict(data)
    assert back.auth_result is A.UNAVAILABLE and back.auth_detail == "PSC unavailable (fault injected)"
    assert back.commands[0].outcome is A.UNAVAILABLE
    assert record_from_dict(data).commands[0].outcome is A.UNAVAILABLE  # the remote sandbox's API, same reading
    data["auth_result"] = "QUANTUMFAILED"
    data["commands"][0]["outcome"] = "QUANTUMFAILED"
    later = SessionRecord.from_dict(data)
    assert later.auth_result is None and later.auth_detail == "PSC unavailable (fault injected)"
    assert later.commands[0].outcome is None and later.commands[0].result.startswith("454")
    with pytest.raises(UsageError):
        record_from_dict({"id": 1})


@pytest.mark.parametrize(("command", "protocol", "expected"), [
    ("a1 AUTHENTICATE PLAIN", "imap", True), ("a1 login u <password>", "imap", True),
    ("AUTH PLAIN", "smtp", True), ("a1 NOOP", "imap", False), ("AUTH", "imap", False), ("", "smtp", False),
])
def test_is_auth_command(command: str, protocol: str, expected: bool) -> None:
    assert is_auth_command(command, protocol) is expected


def test_outcome_of_result() -> None:
    assert outcome_of_result("NO [AUTHORIZATIONFAILED]", "imap") is A.AUTHORIZATIONFAILED
    assert outcome_of_result("BAD [TOOBIG]", "imap") is A.TOOBIG
    assert outcome_of_result("garbage", "imap") is None
    assert outcome_of_result("504 5.5.4 Unrecognized authentication type", "smtp") is A.NOMECHANISM
    assert outcome_of_result("235", "smtp") is A.OK
    assert outcome_of_result("TLS established", "smtp") is None
