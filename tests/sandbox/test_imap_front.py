"""IMAP fronts with real clients over loopback: imaplib, imapclient, curl, openssl s_client.

Happy paths: log in on each front, read a message delivered through ``store.deliver``, see an
IDLE notification, SPECIAL-USE folders, SASL-IR, UIDPLUS, BODYSTRUCTURE.
"""

from __future__ import annotations

import asyncio
import imaplib
import shutil
from typing import Any

import pytest
from imapclient import IMAPClient

from tests.sandbox._imap_support import (
    APP,
    HOST,
    ORG,
    PER,
    IMAPEnv,
    RawIMAP,
    b64,
    imap_env,
    imaplib_psc_login,
    in_thread,
    message,
    pki_world,
    run,
    xoauth2,
)

__all__ = ["imap_env", "pki_world"]


def _read_inbox_imaplib(env: IMAPEnv, token: str) -> tuple[bytes, bytes, list[bytes]]:
    client = imaplib_psc_login(env, PER, token)
    try:
        typ, _ = client.select("INBOX")
        assert typ == "OK"
        typ, data = client.uid("FETCH", "1:*", "(UID BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        first = data[0]
        assert isinstance(first, tuple)
        typ, listing = client.list()
        assert typ == "OK"
        return first[0], first[1], [x for x in listing if isinstance(x, bytes)]
    finally:
        client.logout()


async def test_imaplib_xoauth2_reads_delivered_message_and_special_use(imap_env: IMAPEnv) -> None:
    await imap_env.store.deliver(PER, message("CR hospitalisation"))
    meta, header, listing = await in_thread(_read_inbox_imaplib, imap_env, imap_env.token())
    assert b"BODYSTRUCTURE" in meta and b'"application" "pdf"' in meta.lower()
    assert b"Subject: CR hospitalisation" in header
    flat = b"\n".join(listing)
    assert b'(\\HasNoChildren \\Sent) "/" Sent' in flat
    assert b"\\Drafts" in flat and b"\\Trash" in flat and b"INBOX" in flat
    [record] = await imap_env.records("imap-psc")
    assert record.mechanism == "XOAUTH2" and record.identity == "899700000001" and record.bal == PER
    assert record.starttls_before_auth is True and record.tls_version in ("TLSv1.2", "TLSv1.3")
    assert record.auth_result == "OK" and record.tls_cipher


def _idle_until_exists(env: IMAPEnv, token: str, started: asyncio.Event, loop: asyncio.AbstractEventLoop) -> list[str]:
    client = imaplib_psc_login(env, ORG, token)
    try:
        client.select("INBOX")
        tag = client._new_tag().decode()  # imaplib has no IDLE: speak it on its socket
        client.send(f"{tag} IDLE\r\n".encode())
        cont = client.readline()
        assert cont.startswith(b"+"), cont
        loop.call_soon_threadsafe(started.set)
        seen = client.readline().decode().strip()
        client.send(b"DONE\r\n")
        done = client.readline().decode().strip()
        while not done.startswith(tag):
            done = client.readline().decode().strip()
        return [seen, done]
    finally:
        client.logout()


async def test_idle_sees_exists_after_delivery(imap_env: IMAPEnv) -> None:
    started = asyncio.Event()
    task = asyncio.create_task(
        in_thread(_idle_until_exists, imap_env, imap_env.token("899700000002"), started, asyncio.get_running_loop())
    )
    await asyncio.wait_for(started.wait(), 15)
    await imap_env.store.deliver(ORG, message("Nouveau resultat", to=ORG))
    seen, done = await asyncio.wait_for(task, 15)
    assert seen == "* 1 EXISTS"
    assert done.endswith("OK IDLE completed.")


def _imapclient_session(env: IMAPEnv, token: str) -> dict[str, Any]:
    client = IMAPClient(HOST, port=env.psc_port, ssl=False, timeout=10)
    try:
        client.starttls(env.client_context())
        caps = client.capabilities()
        client.oauthbearer_login(PER, token)
        post = client.capabilities()
        folders = client.list_folders()
        client.select_folder("INBOX")
        uids = client.search(["SUBJECT", "imapclient"])
        fetched = client.fetch(uids, ["BODYSTRUCTURE", "RFC822"])
        append = client.append("Drafts", message("brouillon"))
        client.select_folder("INBOX")
        client.move(uids, "Trash")
        trash = client.select_folder("Trash")
        return {"caps": caps, "post": post, "folders": folders, "fetched": fetched, "append": append, "trash": trash}
    finally:
        client.logout()


async def test_imapclient_oauthbearer_uidplus_move_search(imap_env: IMAPEnv) -> None:
    await imap_env.store.deliver(PER, message("imapclient test"))
    out = await in_thread(_imapclient_session, imap_env, imap_env.token())
    assert b"AUTH=OAUTHBEARER" in out["caps"] and b"SASL-IR" in out["caps"]
    assert b"LOGINDISABLED" in out["caps"] and b"STARTTLS" not in out["caps"]
    for cap in (b"IDLE", b"UIDPLUS", b"MOVE", b"SPECIAL-USE"):
        assert cap in out["post"]
    uses = {name: flags for flags, _, name in out["folders"]}
    assert b"\\Sent" in uses["Sent"] and b"\\Trash" in uses["Trash"]
    fetched = out["fetched"]
    assert isinstance(fetched, dict) and len(fetched) == 1
    [data] = fetched.values()
    assert b"imapclient test" in data[b"RFC822"]
    assert b"APPENDUID" in out["append"]
    assert out["trash"][b"EXISTS"] == 1
    assert [m.uid for m in await imap_env.store.list_messages(PER, "Drafts")]


async def test_sasl_ir_and_list_special_use_selection(imap_env: IMAPEnv) -> None:
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        pre = await raw.command("c0", "CAPABILITY")
        assert "STARTTLS" in pre[0] and "LOGINDISABLED" in pre[0] and "AUTH=" not in pre[0]
        await raw.starttls(imap_env.client_context())
        post = await raw.command("c1", "CAPABILITY")
        assert "SASL-IR" in post[0] and "AUTH=XOAUTH2 AUTH=OAUTHBEARER" in post[0] and "AUTH=PLAIN" not in post[0]
        ok = await raw.command("a1", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, imap_env.token())))
        assert ok[-1].startswith("a1 OK [CAPABILITY") and "SPECIAL-USE" in ok[-1]
        special = await raw.command("l1", 'LIST (SPECIAL-USE) "" "*"')
        assert sorted(line.split()[-1] for line in special[:-1]) == ["Drafts", "Sent", "Trash"]
        ret = await raw.command("l2", 'LIST "" "S*" RETURN (SPECIAL-USE)')
        assert ret[0] == '* LIST (\\HasNoChildren \\Sent) "/" Sent' and ret[-1].startswith("l2 OK")
        bad = await raw.command("l3", 'LIST (RECURSIVEMATCH) "" "*"')
        assert bad[-1].startswith("l3 BAD")
    finally:
        await raw.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_oauth2_bearer_reads_message(imap_env: IMAPEnv) -> None:
    await imap_env.store.deliver(PER, message("curl subject"))
    [stored] = await imap_env.store.list_messages(PER)
    url = f"imap://{HOST}:{imap_env.psc_port}/INBOX;UID={stored.uid}"
    code, out, err = await run(
        "curl", "-sS", "--ssl-reqd", "--cacert", str(imap_env.ca_file), "--user", PER,
        "--oauth2-bearer", imap_env.token(), url,
    )
    assert code == 0, err
    assert "Subject: curl subject" in out
    [record] = await imap_env.records("imap-psc")
    assert record.mechanism == "OAUTHBEARER" and record.auth_result == "OK"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_client_certificate_plain_on_authcli(imap_env: IMAPEnv) -> None:
    await imap_env.store.deliver(APP, message("pour le DPI", to=APP))
    cert = imap_env.world.certs.hospital
    [stored] = await imap_env.store.list_messages(APP)
    url = f"imap://{HOST}:{imap_env.authcli_port}/INBOX;UID={stored.uid}"
    code, out, err = await run(
        "curl", "-sS", "--ssl-reqd", "--cacert", str(imap_env.ca_file), "--cert", str(cert.cert_path),
        "--key", str(cert.key_path), "--login-options", "AUTH=PLAIN", "-u", f"{APP}:x", url,
    )
    assert code == 0, err
    assert "Subject: pour le DPI" in out
    [record] = await imap_env.records("imap-authcli")
    assert record.mechanism == "PLAIN" and record.identity == "1750000001" and record.bal == APP
    assert record.client_cert_subject and "OU=1750000001" in record.client_cert_subject


def _imaplib_cert_login(env: IMAPEnv) -> list[bytes]:
    client = imaplib.IMAP4(HOST, env.authcli_port, timeout=10)
    try:
        client.starttls(env.client_context(env.world.certs.hospital))
        typ, _ = client.login(APP, "ignored")
        assert typ == "OK"
        selected, data = client.select("INBOX")
        assert selected == "OK"
        return [x for x in data if isinstance(x, bytes)]
    finally:
        client.logout()


async def test_imaplib_certificate_then_login_on_authcli(imap_env: IMAPEnv) -> None:
    await imap_env.store.deliver(APP, message("un", to=APP))
    await imap_env.store.deliver(APP, message("deux", to=APP))
    assert await in_thread(_imaplib_cert_login, imap_env) == [b"2"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_s_client_starttls_and_client_cert(imap_env: IMAPEnv) -> None:
    cert = imap_env.world.certs.hospital
    plain = b64(b"\x00" + APP.encode() + b"\x00x")
    script = f"a1 AUTHENTICATE PLAIN {plain}\r\na2 LOGOUT\r\n".encode()
    _code, out, err = await run(
        "openssl", "s_client", "-starttls", "imap", "-connect", f"{HOST}:{imap_env.authcli_port}",
        "-CAfile", str(imap_env.ca_file), "-cert", str(cert.cert_path), "-key", str(cert.key_path),
        "-verify_return_error", "-ign_eof", "-quiet", stdin=script,
    )
    assert "a1 OK [CAPABILITY" in out, (out, err)
    [record] = await imap_env.records("imap-authcli")
    assert record.starttls_before_auth and record.auth_result == "OK"


async def test_shutdown_says_bye(imap_env: IMAPEnv) -> None:
    raw = await RawIMAP.connect(imap_env.psc_port)
    await imap_env.psc_front.aclose()
    assert (await raw.line()).startswith("* BYE [UNAVAILABLE]")
    await raw.close()
