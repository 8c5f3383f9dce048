"""The fleet connector's certificate layout: a PKCS#12 per structure, an encrypted PEM key, their passwords."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mssante.errors import ConfigError
from mssante.fleet import FleetStore, MailboxConnector, Worker
from mssante.fleet._connect import certificate_of, password_env
from tests.client.test_mailbox_support import options, resolver, running_sandbox, trust
from tests.client.test_pkcs12 import PASSWORD, WINDOWS, export_p12
from tests.fleet._support import APPS, STRUCTURE, Events, app, fleet_config, raw
from tests.fleet.test_worker import QUICK, running

pytestmark = pytest.mark.slow


def _secret_file(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)


def _encrypted_pem(certs: Path, ref: str, cert: Path, key: Path, password: str) -> None:
    """``<ref>.pem``, ``<ref>.key`` encrypted with ``password``, and ``<ref>.password``."""
    clear = serialization.load_pem_private_key(key.read_bytes(), None)
    (certs / f"{ref}.pem").write_bytes(cert.read_bytes())
    (certs / f"{ref}.key").write_bytes(clear.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode())))
    _secret_file(certs / f"{ref}.password", password + "\n")


async def test_a_worker_watches_bals_whose_structures_have_a_p12_or_an_encrypted_key(
        tmp_path: Path, store: FleetStore, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(90):
        bal = next(b for b in sb.info["bals"] if b["structure_id"] == STRUCTURE and b["cert"])
        certs = tmp_path / "certs"
        certs.mkdir()
        # a Windows export with its password file (CRLF, as Notepad writes it), only the .pfx: no .pem, no .key
        export_p12(certs / "clinique.pfx", Path(bal["cert"]), Path(bal["key"]), PASSWORD, extra=WINDOWS)
        _secret_file(certs / "clinique.password", PASSWORD + "\r\n")
        # a .p12 whose password is in the environment
        export_p12(certs / "labo-2.p12", Path(bal["cert"]), Path(bal["key"]), "autre-secret")
        monkeypatch.setenv(password_env("labo-2"), "autre-secret")
        assert password_env("labo-2") == "MSSANTE_CERT_PASSWORD_LABO_2"
        _encrypted_pem(certs, "cabinet", Path(bal["cert"]), Path(bal["key"]), "cle-pem")
        # a password file others can read: refused, that BAL only
        export_p12(certs / "ouvert.p12", Path(bal["cert"]), Path(bal["key"]), PASSWORD)
        _secret_file(certs / "ouvert.password", PASSWORD, 0o644)
        refs = dict(zip(APPS, ("clinique", "labo-2", "cabinet", "ouvert"), strict=True))
        for address, ref in refs.items():
            await store.add(app(address, ref=ref))
        connector = MailboxConnector(tls=trust(sb), certificates=certs, resolver=resolver(sb), options=options(sb))
        events = Events(store)
        async with running(Worker(store, connector, settings=QUICK)):
            seen = await events.until(lambda seen: any(e.kind == "bal-error" for e in seen))
            [error] = [e for e in seen if e.kind == "bal-error"]
            assert error.bal == APPS[3] and "ouvert.password must not be readable by group or others" in \
                error.fields["reason"]
            assert PASSWORD not in error.fields["reason"]
            for address in APPS[:3]:
                await sb.store.deliver(address, raw(address, refs[address]))
            await events.until(lambda seen: len(events.messages()) == 3)
        assert sorted(events.messages()) == sorted((a, refs[a]) for a in APPS[:3])


def test_the_layout_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "s.p12").write_bytes(b"x")
    (tmp_path / "s.pfx").write_bytes(b"x")
    (tmp_path / "t.pfx").write_bytes(b"x")
    (tmp_path / "u.pem").write_bytes(b"x")
    (tmp_path / "u.key").write_bytes(b"x")
    first = certificate_of(tmp_path, "s")
    assert first.pkcs12 and first.cert.name == "s.p12" and first.password is None
    assert certificate_of(tmp_path, "t").cert.name == "t.pfx"
    pem = certificate_of(tmp_path, "u")
    assert not pem.pkcs12 and (pem.cert.name, pem.key.name) == ("u.pem", "u.key")
    with pytest.raises(ConfigError, match=r"v\.pem does not exist \(nor v\.p12 or v\.pfx\)"):
        certificate_of(tmp_path, "v")
    _secret_file(tmp_path / "u.password", "pw", 0o640)
    with pytest.raises(ConfigError, match=r"u\.password must not be readable by group or others \(chmod 600\)"):
        certificate_of(tmp_path, "u")
