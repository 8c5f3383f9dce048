"""PIPELINING (RFC 2920) on the sandbox submission fronts: offered after STARTTLS, groups answered in order.

Wire tests with a raw TLS socket (every group in one write), msmtp (which pipelines when
offered; its ``--debug`` transcript shows the group), and the ``[submission]`` setting.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mssante.errors import ConfigError
from mssante.sandbox.config import load_config
from mssante.sandbox.fronts.smtp import Replies, SubmissionOptions
from tests.sandbox._smtp_env import APP, DOMAIN, PER, Env, Material, b64, in_thread, message, start_env, xoauth2

UNKNOWN = f"personne@{DOMAIN}"


class Wire:
    """A blocking SMTP conversation over a raw socket, replies read line by line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)  # one write: the whole group

    def reply(self) -> list[str]:
        lines: list[str] = []
        while True:
            line = self.file.readline().decode("ascii").rstrip("\r\n")
            assert line, "connection closed before a full reply"
            lines.append(line)
            if line[3:4] != "-":
                return lines

    def replies(self, count: int) -> list[str]:
        return [self.reply()[-1] for _ in range(count)]


def _secure(env: Env, material: Material) -> Iterator[Wire]:
    """Greeting, EHLO, STARTTLS, EHLO, AUTH XOAUTH2 (token after 334); yields the TLS wire."""
    raw = socket.create_connection(("127.0.0.1", env.port), timeout=10)
    plain = Wire(raw)
    assert plain.reply()[0].startswith("220")
    plain.send(b"EHLO lps.test\r\n")
    assert "250-PIPELINING" not in plain.reply()  # never in clear (RFC 2920 §3.1: STARTTLS ends a group)
    plain.send(b"STARTTLS\r\n")
    assert plain.reply()[0].startswith("220")
    tls = material.client_context().wrap_socket(raw, server_hostname=f"smtp.psc.{DOMAIN}")
    wire = Wire(tls)
    try:
        wire.send(b"EHLO lps.test\r\n")
        wire.ehlo = wire.reply()  # type: ignore[attr-defined]
        wire.send(b"AUTH XOAUTH2\r\n")
        assert wire.reply()[0].startswith("334")
        wire.send(b64(xoauth2(PER, material.token())).encode() + b"\r\n")
        assert wire.reply()[0].startswith("235")
        yield wire
    finally:
        tls.close()


def _ehlo(env: Env, material: Material) -> list[str]:
    for wire in _secure(env, material):
        return list(wire.ehlo)  # type: ignore[attr-defined]
    raise AssertionError("unreachable")


async def test_pipelining_is_offered_after_starttls_only(psc: Env, material: Material) -> None:
    assert (await in_thread(_ehlo, psc, material))[-2:] == ["250-PIPELINING", "250 HELP"]


async def test_a_pipelined_group_gets_its_replies_in_order(psc: Env, material: Material) -> None:
    def run() -> list[str]:
        got: list[str] = []
        for wire in _secure(psc, material):
            wire.send(f"MAIL FROM:<{PER}>\r\nRCPT TO:<{APP}>\r\nRCPT TO:<{UNKNOWN}>\r\nDATA\r\n".encode())
            got += wire.replies(4)
            wire.send(message(PER, APP, subject="pipelined") + b".\r\n")
            got += wire.replies(1)
            # a group whose every RCPT is refused: DATA gets 554, and the session goes on (RSET, QUIT)
            wire.send(f"MAIL FROM:<{PER}>\r\nRCPT TO:<{UNKNOWN}>\r\nDATA\r\nRSET\r\nNOOP\r\nQUIT\r\n".encode())
            got += wire.replies(6)
        return got

    got = await in_thread(run)
    assert [line[:3] for line in got[:4]] == ["250", "250", "550", "354"]
    assert got[2] == Replies.UNKNOWN_USER
    assert got[4].startswith("250 2.0.0 Ok: queued as ")
    assert got[5:] == ["250 2.1.0 Sender OK", Replies.UNKNOWN_USER, Replies.NO_VALID_RCPT,
                       "250 2.0.0 OK", "250 2.0.0 OK", "221 2.0.0 Bye"]
    stored = await psc.delivery.wait_for(APP)
    assert len(stored) == 1 and b"Subject: pipelined" in stored[0]
    (record,) = psc.records()
    verbs = [c.command.split(":")[0] for c in record.commands]
    assert verbs[verbs.index("MAIL FROM"):] == [
        "MAIL FROM", "RCPT TO", "RCPT TO", "DATA", "MAIL FROM", "RCPT TO", "DATA", "RSET", "NOOP", "QUIT"]


async def test_commands_pipelined_behind_starttls_in_clear_are_discarded(psc: Env, material: Material) -> None:
    """Plaintext sent behind STARTTLS must not be read as if it came over TLS (RFC 3207 §4.2, CVE-2011-0411)."""
    def run() -> list[str]:
        raw = socket.create_connection(("127.0.0.1", psc.port), timeout=10)
        plain = Wire(raw)
        plain.reply()
        plain.send(b"EHLO lps.test\r\n")
        plain.reply()
        plain.send(f"STARTTLS\r\nMAIL FROM:<{PER}>\r\n".encode())
        assert plain.reply()[0].startswith("220")
        tls = material.client_context().wrap_socket(raw, server_hostname=f"smtp.psc.{DOMAIN}")
        try:
            wire = Wire(tls)
            wire.send(b"NOOP\r\n")
            return wire.replies(1)
        finally:
            tls.close()

    assert await in_thread(run) == ["250 2.0.0 OK"]  # the NOOP's answer, not one for the injected MAIL
    (record,) = psc.records()
    assert not any(c.command.startswith("MAIL") for c in record.commands)


async def test_data_without_any_rcpt_is_out_of_sequence(psc: Env, material: Material) -> None:
    def run() -> list[str]:
        for wire in _secure(psc, material):
            wire.send(f"MAIL FROM:<{PER}>\r\nDATA\r\n".encode())
            return wire.replies(2)
        raise AssertionError("unreachable")

    assert await in_thread(run) == ["250 2.1.0 Sender OK", Replies.NEED_RCPT]  # RFC 5321 §3.3: 503


async def test_pipelining_off_is_not_offered(material: Material) -> None:
    env = await start_env(material, "psc", options=SubmissionOptions(pipelining=False))
    try:
        assert "250-PIPELINING" not in await in_thread(_ehlo, env, material)
    finally:
        await env.front.aclose()


def test_the_submission_table_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    assert load_config(None).submission.pipelining is True
    path.write_text("[submission]\npipelining = false\n")
    assert load_config(path).submission.pipelining is False
    path.write_text('[submission]\npipelining = "yes"\n')
    with pytest.raises(ConfigError, match="pipelining"):
        load_config(path)
    path.write_text("[submission]\npipelin = true\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(path)


@pytest.mark.slow
async def test_msmtp_pipelines_through_the_front(authcli: Env, material: Material, tmp_path: Path) -> None:
    msmtp = shutil.which("msmtp")
    if msmtp is None:
        pytest.skip("msmtp is not installed (apt-get install -y msmtp)")
    from tests.sandbox.test_smtp_front_clients import _msmtprc, _run

    cert = material.app_cert
    rc = _msmtprc(tmp_path, material, authcli.port, [
        f"from {APP}", "auth plain", f"user {APP}", "password ignored",
        f"tls_cert_file {cert.cert_path}", f"tls_key_file {cert.key_path}",
    ])
    code, out = await _run(msmtp, "--debug", "-C", str(rc), "-a", "test", PER, UNKNOWN,
                           stdin=message(APP, PER, subject="msmtp pipelined"))
    assert code != 0 and "550 5.1.1" in out, out  # msmtp refuses to send when one recipient is refused
    lines = [line for line in out.splitlines() if line.startswith(("--> ", "<-- "))]
    sent = [i for i, line in enumerate(lines) if line.startswith(("--> MAIL FROM", "--> RCPT TO", "--> DATA"))]
    first_reply = next(i for i, line in enumerate(lines) if line.startswith("<-- 250 2.1.0"))
    assert len(sent) == 4 and max(sent) < first_reply, lines  # the whole group went before the first reply

    code, out = await _run(msmtp, "-C", str(rc), "-a", "test", PER, stdin=message(APP, PER, subject="msmtp ok"))
    assert code == 0, out
    assert b"Subject: msmtp ok" in (await authcli.delivery.wait_for(PER))[0]
