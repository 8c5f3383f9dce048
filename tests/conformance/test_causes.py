"""Causes named: a case failed by a known client-side protocol mistake names the cause and the fix, in French."""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.conformance import Profile, Status
from mssante.conformance._causes import CAUSES, diagnose
from mssante.sandbox.fronts.journal import CommandRecord, SessionRecord
from mssante.wire import AuthOutcome
from tests.conformance import _broken as b
from tests.conformance._harness import RED, run_suite
from tests.conformance._lps import StdlibLPS

PER, APP = Profile.PER_ORG, Profile.APP

#: (variant, profile, failing case, cause code, words of the fix)
ROWS: list[tuple[type[StdlibLPS], Profile, str, str, str]] = [
    (b.SmtpAuthOneLine, PER, "smtp-starttls", "auth-line-too-long", "attendre la réponse « 334 »"),
    (b.ImapOAuthBearer, PER, "imap-xoauth2", "oauthbearer", "mécanisme XOAUTH2"),
    (b.ImapPlainOnPsc, PER, "imap-xoauth2", "plain-on-psc", "PLAIN est réservé au front AUTH_CLI"),
    (b.SmtpNoClientCert, APP, "smtp-auth-cli", "no-client-certificate", "charger le certificat"),
    (b.RetryLoop, PER, "authenticationfailed", "token-reused", "en obtenir un nouveau"),
    (b.ConnectsByAddress, PER, "srv-front", "no-sni", "nom cible de l'enregistrement SRV"),
    (b.ConnectsByAddress, APP, "srv-front", "no-sni", "nom cible de l'enregistrement SRV"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "profile", "code", "cause", "fix"), ROWS,
                         ids=[f"{r[3]}-{r[1].value}" for r in ROWS])
async def test_the_verdict_names_the_cause_and_the_fix(
    variant: type[StdlibLPS], profile: Profile, code: str, cause: str, fix: str, state_dir: Path, tmp_path: Path
) -> None:
    report, _ = await run_suite(state_dir, tmp_path, profile, variant, cases=(code,), settings=RED)
    (result,) = report.results
    assert result.status is Status.FAIL, result.explanation
    assert result.cause is not None and result.cause.code == cause, result
    assert fix in result.cause.fr and fix in result.explanation
    assert report.to_dict()["results"][0]["cause"]["code"] == cause


@pytest.mark.slow
async def test_the_smtp_reply_itself_says_to_send_the_response_after_334(state_dir: Path, tmp_path: Path) -> None:
    b.SmtpAuthOneLine.replies.clear()
    await run_suite(state_dir, tmp_path, PER, b.SmtpAuthOneLine, cases=("smtp-starttls",), settings=RED)
    assert b.SmtpAuthOneLine.replies
    reply = b.SmtpAuthOneLine.replies[0]
    assert reply.startswith("500 5.5.2 Line too long") and "after 334" in reply and "RFC 4954" in reply


def _session(front: str, command: str, answer: str, outcome: AuthOutcome, *, sid: int = 1,
             cert: str | None = None) -> SessionRecord:
    protocol = front.split("-")[0]
    return SessionRecord(id=sid, front=front, protocol=protocol, peer="127.0.0.1:1", started_at=1.0,
                         client_cert_subject=cert, commands=[CommandRecord(at=2.0 + sid, command=command,
                                                                           result=answer, outcome=outcome)])


def test_a_mistake_the_lps_recovered_from_is_not_the_cause() -> None:
    long_line = _session("smtp-psc", "AUTH XOAUTH2 dXNlcj0...", "500 5.5.2 Line too long", AuthOutcome.TOOBIG)
    assert diagnose([long_line]) is not None and diagnose([long_line]).code == "auth-line-too-long"  # type: ignore[union-attr]
    recovered = _session("smtp-psc", "AUTH XOAUTH2", "235 2.7.0 Authentication successful", AuthOutcome.OK, sid=2)
    assert diagnose([long_line, recovered]) is None
    assert diagnose([_session("imap-psc", "A1 AUTHENTICATE XOAUTH2 <redacted>", "A1 OK", AuthOutcome.OK)]) is None
    assert set(CAUSES) == {"auth-line-too-long", "oauthbearer", "plain-on-psc", "no-client-certificate",
                           "token-reused", "no-sni"}


@pytest.mark.slow
async def test_the_auth_line_limit_is_a_sandbox_setting(state_dir: Path, tmp_path: Path) -> None:
    from mssante.errors import ConfigError
    from mssante.sandbox.config import load_config
    from mssante.sandbox.runner import Sandbox

    assert load_config(None).smtp_auth_line_limit == 512  # RFC 4954 §4, as Dovecot
    toml = tmp_path / "sandbox.toml"
    toml.write_text("smtp_auth_line_limit = 0\n", encoding="utf-8")
    async with Sandbox(load_config(toml), state_dir) as sb:
        assert all(sb.fronts[name].options.auth_line_limit is None  # type: ignore[union-attr]
                   for name in ("smtp_psc", "smtp_authcli"))
    toml.write_text("smtp_auth_line_limit = 8\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="smtp_auth_line_limit"):
        load_config(toml)
