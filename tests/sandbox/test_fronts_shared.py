"""Access decisions, fault switches and the session journal shared by the fronts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from mssante.errors import AuthUnavailable, CertificateError, RevocationError, TokenRejected, UsageError
from mssante.sandbox.config import default_config
from mssante.sandbox.fronts.authz import AccessDecider
from mssante.sandbox.fronts.faults import Faults, LiveSession
from mssante.sandbox.fronts.journal import Journal, redact_command
from mssante.secret import Secret

CFG = default_config()
PER = "marie.curie@mss.sandbox.test"
ORG = "secretariat.cardio@mss.sandbox.test"
APP = "dpi.hopital@mss.sandbox.test"
LAB_APP = "sil.labo@mss.sandbox.test"


class Tokens:
    """Token table standing in for PSC: token text -> claims, or an error to raise."""

    def __init__(self) -> None:
        self.table: dict[str, Mapping[str, Any] | Exception] = {
            "marie": {"preferred_username": "899700000001"},
            "louis": {"preferred_username": "899700000002"},
            "expired": TokenRejected("expired"),
            "down": AuthUnavailable("PSC down"),
        }

    async def verify(self, token: str) -> Mapping[str, Any]:
        value = self.table.get(token, TokenRejected("unknown"))
        if isinstance(value, Exception):
            raise value
        return value


@dataclass(frozen=True)
class Ident:
    structure_id: str
    subject: str


class Certs:
    def check(self, der: bytes) -> Ident:
        if der == b"revoked":
            raise RevocationError("revoked")
        if der == b"foreign":
            raise CertificateError("unknown CA")
        ou = der.decode()
        return Ident(structure_id=ou, subject=f"OU={ou},C=FR")


@pytest.fixture
def decider() -> tuple[AccessDecider, Faults]:
    faults = Faults()
    return AccessDecider(CFG, Tokens(), Certs(), faults), faults


async def test_bearer_rules(decider: tuple[AccessDecider, Faults]) -> None:
    d, _ = decider
    assert (await d.bearer("psc", PER, Secret("marie"))).ok
    assert (await d.bearer("psc", ORG, Secret("louis"))).ok
    refused = await d.bearer("psc", PER, Secret("louis"))
    assert refused.code == "AUTHORIZATIONFAILED" and "owner" in refused.reason
    assert (await d.bearer("psc", APP, Secret("marie"))).code == "AUTHORIZATIONFAILED"
    assert (await d.bearer("psc", PER, Secret("expired"))).code == "AUTHENTICATIONFAILED"
    assert (await d.bearer("psc", PER, Secret("down"))).code == "UNAVAILABLE"
    assert (await d.bearer("authcli", PER, Secret("marie"))).code == "AUTHENTICATIONFAILED"
    outcome = await d.bearer("psc", PER, Secret("marie"))
    assert "marie" not in outcome.reason  # the token text never reaches a reason


async def test_certificate_rules(decider: tuple[AccessDecider, Faults]) -> None:
    d, _ = decider
    ok, subject = await d.certificate_plain("authcli", "", APP, b"1750000001")
    assert ok.ok and subject == "OU=1750000001,C=FR"
    assert (await d.certificate_plain("authcli", "", LAB_APP, b"1750000001"))[0].code == "AUTHORIZATIONFAILED"
    assert (await d.certificate_plain("authcli", "", APP, None))[0].code == "AUTHENTICATIONFAILED"
    assert (await d.certificate_plain("authcli", "", APP, b"revoked"))[0].code == "AUTHENTICATIONFAILED"
    assert (await d.certificate_plain("authcli", "", APP, b"foreign"))[0].code == "AUTHENTICATIONFAILED"
    assert (await d.certificate_plain("psc", "", APP, b"1750000001"))[0].code == "AUTHENTICATIONFAILED"
    assert (await d.certificate_plain("authcli", "other@x.test", APP, b"1750000001"))[0].code == "AUTHORIZATIONFAILED"
    assert (await d.certificate_plain("authcli", "", PER, b"1750000001"))[0].code == "AUTHORIZATIONFAILED"


async def test_injected_faults(decider: tuple[AccessDecider, Faults]) -> None:
    d, faults = decider
    faults.fail_next_auth(2, "UNAVAILABLE", bal=PER)
    assert (await d.bearer("psc", ORG, Secret("marie"))).ok  # another BAL is not affected
    assert (await d.bearer("psc", PER, Secret("marie"))).code == "UNAVAILABLE"
    assert (await d.bearer("psc", PER, Secret("marie"))).code == "UNAVAILABLE"
    assert (await d.bearer("psc", PER, Secret("marie"))).ok
    faults.psc_unavailable = True
    assert (await d.bearer("psc", PER, Secret("marie"))).code == "UNAVAILABLE"
    faults.clear()
    assert (await d.bearer("psc", PER, Secret("marie"))).ok
    with pytest.raises(UsageError):
        faults.fail_next_auth(1, "NOPE")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        faults.fail_next_auth(-1)


async def test_end_sessions_reaches_only_that_bal() -> None:
    faults = Faults()
    closed: list[tuple[str, str]] = []

    def closer(name: str) -> Any:
        async def close(mode: Literal["bye", "drop"]) -> None:
            closed.append((name, mode))

        return close

    faults.register(LiveSession(bal=PER, front="imap-psc", close=closer("a")))
    faults.register(LiveSession(bal=PER, front="smtp-psc", close=closer("b")))
    faults.register(LiveSession(bal=APP, front="imap-authcli", close=closer("c")))
    assert await faults.end_sessions(PER.upper(), "drop") == 2
    assert sorted(closed) == [("a", "drop"), ("b", "drop")]
    assert [s.bal for s in faults.sessions()] == [APP]


def test_redaction() -> None:
    line = b"a1 AUTHENTICATE XOAUTH2 dXNlcj1tYXJpZQ==\r\n"
    assert redact_command(line) == "a1 AUTHENTICATE XOAUTH2 <initial-response>"
    assert redact_command("AUTH PLAIN AGFAYg==") == "AUTH PLAIN <initial-response>"
    assert redact_command("a2 LOGIN bob hunter2") == "a2 LOGIN bob <password>"
    assert redact_command("a3 UID FETCH 1:* (FLAGS)") == "a3 UID FETCH 1:* (FLAGS)"
    assert redact_command("MAIL FROM:<a@b.test> SIZE=10") == "MAIL FROM:<a@b.test> SIZE=10"
    assert len(redact_command("x NOOP " + "a" * 1000)) < 300


async def test_journal_query_export_and_live(tmp_path: Path) -> None:
    journal = Journal(max_sessions=3)
    queue = journal.subscribe()
    rec = journal.open(front="imap-psc", protocol="imap", peer="127.0.0.1:5000")
    journal.command(rec, b"a1 AUTHENTICATE XOAUTH2 c2VjcmV0LXRva2Vu", "a1 OK")
    rec.bal, rec.auth_at, rec.starttls_at = PER, 2.0, 1.0
    journal.close(rec)
    assert rec.starttls_before_auth is True
    assert journal.records(bal=PER.upper()) == [rec]
    assert journal.records(front="smtp-psc") == []
    assert (await queue.get()) is rec
    path = tmp_path / "journal.jsonl"
    journal.export_jsonl(path)
    line = json.loads(path.read_text().splitlines()[0])
    assert line["starttls_before_auth"] is True and line["bal"] == PER
    assert "c2VjcmV0LXRva2Vu" not in path.read_text()
    for i in range(5):
        journal.open(front="smtp-psc", protocol="smtp", peer=f"p{i}")
    assert len(journal) == 3  # bounded
