"""Catalogue invariants and the pure journal/trace judgements."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from mssante.conformance import Profile, catalogue, select_cases
from mssante.conformance._cases_traces import trace_problems
from mssante.conformance._judge import auth_attempts, body_fetches, cert_ou, cipher_allowed
from mssante.errors import UsageError
from mssante.sandbox.fronts.journal import CommandRecord, SessionRecord
from mssante.wire import AuthOutcome

REQUIREMENT = re.compile(r"^(ECO\.\d\.\d\.\d+|SC\.MSS/CONF\.\d\d|MSS/va1\.\d\d|EX_LPS_\d{4}|RFC \d+ §[\d.]+)$")


@pytest.mark.parametrize(("profile", "minimum", "prefix"),
                         [(Profile.PER_ORG, 18, "PERORG-"), (Profile.APP, 16, "APP-")])
def test_catalogue_size_ids_and_requirements(profile: Profile, minimum: int, prefix: str) -> None:
    cases = catalogue(profile)
    assert len(cases) >= minimum
    assert [c.id for c in cases] == [f"{prefix}{i:02d}" for i in range(1, len(cases) + 1)]
    assert len({c.code for c in cases}) == len(cases)
    for case in cases:
        assert case.profile is profile
        assert all(REQUIREMENT.match(r) for r in case.requirements), case.requirements
        assert case.title_fr[0].isupper()


def test_per_org_specific_cases() -> None:
    codes = [c.code for c in catalogue(Profile.PER_ORG)]
    # psc-logout ends the PSC session, so it runs after the cases that reuse the LPS's session; the
    # cases appended later (ids kept) follow it: the server certificate ones (no authentication
    # expected) and the CRL outage (the LPS logs in to PSC again), then the writing cases of issue 16.
    at = codes.index("psc-logout")
    after = codes[at + 1:at + 7]
    assert "crl-outage" in after and all(code.startswith("server-cert-") for code in after if code != "crl-outage")
    assert {"imap-xoauth2", "smtp-xoauth2", "mdn-return", "token-lifetimes"} <= set(codes)
    app = {c.code for c in catalogue(Profile.APP)}
    assert {"imap-auth-cli", "smtp-auth-cli", "cert-structure", "mdn-return"} <= app
    assert not app & {"imap-xoauth2", "psc-logout", "token-lifetimes"}
    writing = {"message-id", "reply-threading", "sender-label", "dsn-request", "patient-address", "x-mss-mes",
               "annuaire-lookup"}
    assert writing <= set(codes) and writing <= app


def test_select_cases_by_id_or_code() -> None:
    picked = select_cases(Profile.APP, ["app-05", "traces"])
    assert [c.code for c in picked] == ["srv-front", "traces"]
    with pytest.raises(UsageError):
        select_cases(Profile.APP, ["PERORG-01"])


def test_attempts_and_fetches_from_commands() -> None:
    record = SessionRecord(id=1, front="imap-psc", protocol="imap", peer="127.0.0.1:1", started_at=0.0, commands=[
        CommandRecord(at=1.0, command="a1 STARTTLS", result="OK Begin TLS"),
        CommandRecord(at=2.0, command="a2 AUTHENTICATE XOAUTH2", result="NO [AUTHENTICATIONFAILED] x",
                      outcome=AuthOutcome.AUTHENTICATIONFAILED),
        CommandRecord(at=3.0, command="a3 AUTHENTICATE XOAUTH2 <initial-response>", result="OK done",
                      outcome=AuthOutcome.OK),
        # The verdict reads the recorded outcome, never the text: a misleading answer changes nothing.
        CommandRecord(at=3.5, command="a3b LOGIN u <password>", result="NO [AUTHORIZATIONFAILED] OK",
                      outcome=AuthOutcome.NOMECHANISM),
        CommandRecord(at=4.0, command="a4 UID FETCH 3 (BODY.PEEK[HEADER])", result="OK"),
        CommandRecord(at=5.0, command="a5 UID FETCH 3 (BODY[])", result="OK"),
        CommandRecord(at=6.0, command="a6 FETCH 1 (RFC822.SIZE)", result="OK"),
    ])
    assert [a.outcome for a in auth_attempts([record])] == [
        AuthOutcome.AUTHENTICATIONFAILED, AuthOutcome.OK, AuthOutcome.NOMECHANISM]
    assert body_fetches(record, since=0.0) == ["a5 UID FETCH 3 (BODY[])"]
    assert body_fetches(record, since=5.5) == []


def test_cipher_policy_and_ou() -> None:
    assert cipher_allowed("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    assert not cipher_allowed("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305")
    assert not cipher_allowed("TLSv1.1", "ECDHE-RSA-AES128-SHA")
    assert cipher_allowed("TLSv1.3", "TLS_AES_256_GCM_SHA384")
    assert cert_ou("CN=LPS,OU=1750000001,O=CH TEST\\, Paris,C=FR") == "1750000001"
    assert cert_ou(None) is None


def test_trace_problems() -> None:
    now = datetime.now().astimezone()
    good = {"at": now.isoformat(), "author": "899700000001", "bal": "a@b.fr", "action": "send",
            "request": "MAIL FROM:<a@b.fr>", "response": "250 2.0.0 Ok", "ok": True}
    leak = dict(good, request="AUTHENTICATE XOAUTH2 user=a@b.fr\x01auth=Bearer eyJhbGciOi.eyJzdWIiOiI.sig")
    old = dict(good, at=(now - timedelta(hours=1)).isoformat(), author="")
    naive = dict(good, at=now.replace(tzinfo=None).isoformat())
    lines = [json.dumps(x) for x in (good, leak, old, naive, dict(good, author=""))] + ["{not json"]
    records, problems = trace_problems(lines, since=now.timestamp() - 60)
    assert len(records) == 3  # good, leak, empty author: the old one is before the run, the naive one unreadable
    assert any("JWT" in p for p in problems)
    assert any("author" in p for p in problems)
    assert any("décalage" in p for p in problems)
    assert any("pas un objet JSON" in p for p in problems)


def test_message_id_syntax() -> None:
    from mssante.conformance._cases_writing import MSG_ID

    for good in ("<20261206.abc@mss.sandbox.test>", "<a.b-c@[127.0.0.1]>", "<x+y@h>"):
        assert MSG_ID.match(good), good
    for bad in ("20261206.abc@mss.sandbox.test", "<abc>", "<a b@c>", "<a@b", "<.a@b>", "<a..b@c>", ""):
        assert not MSG_ID.match(bad), bad


def test_sessions_without_a_trace_of_the_bal() -> None:
    from mssante.conformance._cases_traces import untraced_sessions

    bal = "a@b.fr"
    s1 = SessionRecord(id=1, front="imap-psc", protocol="imap", peer="p", started_at=1000.0, ended_at=1010.0)
    s2 = SessionRecord(id=2, front="smtp-psc", protocol="smtp", peer="p", started_at=2000.0, ended_at=2001.0)
    s3 = SessionRecord(id=3, front="imap-psc", protocol="imap", peer="p", started_at=3000.0)  # still open

    def at(t: float, **more: object) -> dict[str, object]:
        return {"at": datetime.fromtimestamp(t).astimezone().isoformat(), "bal": bal, "ok": True, **more}

    records = [at(1004.0), at(2003.0), at(2500.0, bal="other@b.fr"), at(3100.0, ok=None)]
    # s1 traced inside, s2 within the clock tolerance, s3 only by a record without a result
    assert [s.id for s in untraced_sessions([s1, s2, s3], records, bal.upper(), now=3200.0)] == [3]
    assert [s.id for s in untraced_sessions([s1], [at(1020.0)], bal, now=3200.0)] == [1]
