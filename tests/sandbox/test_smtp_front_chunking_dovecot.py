"""A BDAT client we did not write: Dovecot 2.3's submission service relaying to the sandbox front.

An APP LPS submits to Dovecot's submission service with smtplib (``DATA``); Dovecot relays to
the sandbox AUTH_CLI front (STARTTLS with the APP certificate, SASL PLAIN) with its own SMTP
client, which sends ``BDAT`` when ``CHUNKING`` is offered. The journal shows Dovecot's
``BDAT`` and the recipient's store has the message octet for octet, dot lines included.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import smtplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mssante.sandbox.config import default_config
from mssante.sandbox.fronts.journal import SessionRecord
from mssante.sandbox.pki import IssuedCert
from mssante.sandbox.runner import Sandbox
from tests.interop.dovecot import DovecotServer, skip_unless_dovecot
from tests.sandbox.test_smtp_front_chunking import _imap_fetch_last

pytestmark = [pytest.mark.dovecot, pytest.mark.slow, pytest.mark.timeout(90)]

CFG = default_config()
DOMAIN = CFG.domain
PER = f"marie.curie@{DOMAIN}"
APP = f"dpi.hopital@{DOMAIN}"


class RelayingDovecot(DovecotServer):
    """Dovecot whose submission service relays to a sandbox front (STARTTLS, client cert, PLAIN)."""

    def __init__(self, *, relay_port: int, relay_user: str, relay_cert: IssuedCert, relay_ca: Path,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.relay_port, self.relay_user, self.relay_cert, self.relay_ca = relay_port, relay_user, relay_cert, relay_ca

    def _write_files(self) -> None:
        super()._write_files()
        tls = self.work_dir / "etc" / "tls"
        for src, name in ((self.relay_cert.cert_path, "relay.pem"), (self.relay_cert.key_path, "relay.key"),
                          (self.relay_ca, "relay-ca.pem")):
            shutil.copyfile(src, tls / name)
            os.chmod(tls / name, 0o600)
        self._chown_tree()
        conf = self.config_path.read_text(encoding="utf-8")
        conf = re.sub(r"(?m)^submission_relay_port = \d+$", f"submission_relay_port = {self.relay_port}", conf)
        conf = conf.replace("submission_relay_ssl = no\n", (
            "submission_relay_ssl = starttls\n"
            "submission_relay_ssl_verify = no\n"  # relayed to 127.0.0.1: the certificate names a host
            f"submission_relay_user = {self.relay_user}\n"
            "submission_relay_password = ignored\n"
            f"ssl_client_ca_file = {tls / 'relay-ca.pem'}\n"
            f"ssl_client_cert = <{tls / 'relay.pem'}\n"
            f"ssl_client_key = <{tls / 'relay.key'}\n"))
        self.config_path.write_text(conf, encoding="utf-8")


@dataclass
class World:
    sb: Sandbox
    dovecot: RelayingDovecot
    cert: IssuedCert


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    skip_unless_dovecot()
    async with Sandbox(CFG, tmp_path / "sandbox") as sb:
        psc = sb.info["psc"]
        cert = sb.client_certs[CFG.structures[0].national_id]
        dovecot = RelayingDovecot(
            relay_port=sb.info["smtp"]["authcli"]["port"], relay_user=APP, relay_cert=cert,
            relay_ca=Path(sb.info["ca_bundle"]), pki=sb.pki,
            introspection_url=psc["issuer"] + "/protocol/openid-connect/token/introspect",
            client_id=psc["client_id"], client_secret=psc["client_secret"], config=CFG)
        await asyncio.to_thread(dovecot.start)
        try:
            yield World(sb=sb, dovecot=dovecot, cert=cert)
        finally:
            await asyncio.to_thread(dovecot.stop)


def _submit_to_dovecot(world: World, data: bytes) -> None:
    ctx = ssl.create_default_context(cafile=world.sb.info["ca_bundle"])
    ctx.check_hostname = False  # connected by IP
    ctx.load_cert_chain(world.cert.cert_path, world.cert.key_path)
    with smtplib.SMTP("127.0.0.1", world.dovecot.submission_port, timeout=20) as smtp:
        smtp.starttls(context=ctx)
        smtp.ehlo()
        smtp.auth("PLAIN", lambda challenge=None: f"\0{APP}\0ignored", initial_response_ok=True)
        smtp.sendmail(APP, [PER], data)


async def test_dovecot_relays_with_bdat_and_the_message_arrives_intact(world: World) -> None:
    data = (f"From: <{APP}>\r\nTo: <{PER}>\r\nSubject: relais Dovecot\r\nMessage-ID: <relay-1@lps.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            ".ligne qui commence par un point\r\n..deux points\r\n.\r\nfin.\r\n").encode()
    await asyncio.to_thread(_submit_to_dovecot, world, data)
    journal = world.sb.journal

    def relayed() -> SessionRecord | None:
        return next((r for r in journal if r.front == "smtp-authcli" and r.messages), None)

    record = await journal.wait_for(relayed, timeout=20)
    commands = [c.command for c in record.commands]
    assert any(c.startswith("BDAT ") for c in commands), commands  # Dovecot's client chose BDAT
    assert not any(c == "DATA" for c in commands)
    (entry,) = record.messages
    assert entry["via"] == "BDAT" and entry["delivered"] == [PER] and record.bal == APP
    assert entry["headers"]["Subject"] == ["relais Dovecot"]
    stored = await asyncio.to_thread(_imap_fetch_last, world.sb)  # read back with imaplib
    assert stored.endswith(data)  # after the Received: lines (Dovecot's and the front's)
