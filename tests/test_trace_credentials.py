"""Traces never hold credentials; token sources cache in memory and refresh ahead of expiry."""

from __future__ import annotations

import base64
import json
import logging
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.credentials import (
    CallbackTokenSource,
    ClientCertificate,
    CommandTokenSource,
    EnvTokenSource,
    StaticTokenSource,
)
from mssante.errors import ConfigError, PSCError
from mssante.secret import Secret
from mssante.trace import JSONLinesSink, LoggingSink, MemorySink, make_record, redact


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# A JWT-shaped string made at run time (no token-looking literal is ever committed).
JWT = ".".join(
    (_b64url(b'{"alg":"RS256","typ":"JWT"}'), _b64url(b'{"sub":"f:1234567890"}'), _b64url(b"signature-signature"))
)


@pytest.mark.parametrize(
    "line",
    [
        f"a1 AUTHENTICATE XOAUTH2 {JWT}",
        "AUTH XOAUTH2 dXNlcj1tYXJpZUBleGFtcGxlLnRlc3QBYXV0aD1CZWFyZXIgZXlKaGJHY2lPaUpTVXpJMU5pSjk=",
        f"Authorization: Bearer {JWT}",
        f"token={JWT}&x=1",
        "a2 LOGIN marie s3cr3t-password",
    ],
)
def test_redact_removes_credentials(line: str) -> None:
    out = redact(line)
    assert JWT not in out
    assert "s3cr3t" not in out
    assert "dXNlcj1" not in out


def test_redact_keeps_ordinary_lines_and_bounds_size() -> None:
    assert redact("a3 UID FETCH 1:4 (FLAGS ENVELOPE)") == "a3 UID FETCH 1:4 (FLAGS ENVELOPE)"
    assert len(redact("x" * 10_000)) <= 501


@given(st.text(max_size=300))
def test_redact_never_leaves_an_embedded_jwt(prefix: str) -> None:
    assert JWT not in redact(prefix + " " + JWT + " ")


def test_record_has_local_time_and_sinks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    record = make_record(
        author="899700000001", bal="marie@x.test", action="send",
        request=f"AUTH XOAUTH2 {JWT}", response="235 2.7.0 ok", ok=True,
    )
    assert record.at[-6] in "+-"  # an ISO time with the workstation's UTC offset
    memory = MemorySink()
    memory.emit(record)
    path = tmp_path / "traces.jsonl"
    JSONLinesSink(path).emit(record)
    with caplog.at_level(logging.INFO, logger="mssante.trace"):
        LoggingSink().emit(record)
    assert memory.records[0] is record
    data = json.loads(path.read_text())
    assert data["action"] == "send" and data["author"] == "899700000001"
    assert path.stat().st_mode & 0o077 == 0
    assert JWT not in path.read_text() and JWT not in caplog.text


async def test_callback_source_caches_and_refreshes_ahead() -> None:
    now = [1000.0]
    calls: list[int] = []

    async def fetch() -> tuple[str, float]:
        calls.append(1)
        return f"token-{len(calls)}", 120.0

    source = CallbackTokenSource(fetch, margin=20, clock=lambda: now[0])
    assert (await source.token()).reveal() == "token-1"
    now[0] += 90
    assert (await source.token()).reveal() == "token-1"
    now[0] += 15  # 105 s: inside the 20 s margin, refresh ahead of expiry
    assert (await source.token()).reveal() == "token-2"
    assert (await source.token(fresh=True)).reveal() == "token-3"
    assert "token" not in repr(source).replace("TokenSource", "")


async def test_static_and_env_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    static = StaticTokenSource("abc")
    assert (await static.token(fresh=True)).reveal() == "abc"
    assert "abc" not in repr(static)
    monkeypatch.setenv("MSS_TEST_TOKEN", " tok ")
    assert (await EnvTokenSource("MSS_TEST_TOKEN").token()).reveal() == "tok"
    monkeypatch.delenv("MSS_TEST_TOKEN")
    with pytest.raises(ConfigError):
        await EnvTokenSource("MSS_TEST_TOKEN").token()


async def test_command_source() -> None:
    good = CommandTokenSource(f"{sys.executable} -c \"print('from-command')\"")
    assert (await good.token()).reveal() == "from-command"
    bad = CommandTokenSource(f"{sys.executable} -c \"import sys; sys.exit('no session')\"")
    with pytest.raises(PSCError, match="no session"):
        await bad.token()
    with pytest.raises(ConfigError):
        await CommandTokenSource("/nonexistent/token-helper").token()


def test_client_certificate_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ClientCertificate(cert=tmp_path / "a.pem", key=tmp_path / "a.key")
    (tmp_path / "a.pem").write_text("x")
    (tmp_path / "a.key").write_text("x")
    cred = ClientCertificate(cert=tmp_path / "a.pem", key=tmp_path / "a.key", password=Secret("pw"))
    assert "pw" not in repr(cred)


def test_redact_keeps_a_described_authentication() -> None:
    line = "AUTHENTICATE XOAUTH2 (imap imap.psc.mss.sandbox.test:1143)"
    assert redact(line) == line
    assert redact("AUTH PLAIN =") == "AUTH PLAIN <redacted>"
