"""The client facade (:class:`mssante.client.Mailbox`) against a real Dovecot 2.3 API LPS operator.

The same flows as ``tests/client/test_mailbox_e2e.py`` (which runs against the sandbox's own
fronts), here against a server that shares no code with mssante: the sandbox runs for its mock
PSC (Dovecot introspects the tokens there), its PKI (Dovecot's server certificate, the APP
BAL's ORG AUTH_CLI certificate) and its HTTP server (the CRLs the client must fetch, revocation
required); the IMAP and submission servers are Dovecot's.

* The client connects to the names of the PKI's server certificate (``imap.psc.<domain>``...)
  mapped to 127.0.0.1 with ``ConnectionSettings(resolve=...)``, so the name is verified.
* Dovecot 2.3 counts loopback as secured and would accept AUTH in clear from 127.0.0.1, so
  these tests cannot prove the library's own STARTTLS-before-AUTH rule (the sandbox tests do);
  they do show the TLS sessions are real: the APP BAL only opens with a client certificate
  verified in the handshake.
* This Dovecot has no ``special_use`` mailboxes, so it advertises no SPECIAL-USE capability and
  marks no folder: the library falls back to the conventional names ``Sent`` and ``Trash``.
  The round trip provisions those folders first (over IMAP, with imaplib, as an operator
  would); ``test_send_when_the_sent_folder_does_not_exist`` shows what happens without them.

One sandbox and one Dovecot for the module (start: ~1 s together).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import pytest_asyncio

from mssante.client import (
    BALKind,
    ConnectionSettings,
    Mailbox,
    MailboxOptions,
    MessageSummary,
    TrustSettings,
)
from mssante.credentials import CallbackTokenSource, ClientCertificate
from mssante.discovery import ManualServers
from mssante.errors import TokenRejected
from mssante.message import Draft, Sender
from mssante.sandbox.config import default_config
from mssante.sandbox.pki import IssuedCert
from mssante.sandbox.runner import Sandbox
from mssante.secret import Secret
from mssante.trace import MemorySink
from mssante.trust import CRLCache
from mssante.wire.sasl import SMTP_AUTH_LINE_LIMIT, XOAuth2Client
from tests.interop.dovecot import DovecotServer, skip_unless_dovecot

pytestmark = [
    pytest.mark.dovecot,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(60),
]

CFG = default_config()
DOMAIN = CFG.domain
PER = f"marie.curie@{DOMAIN}"  # held by MARIE
ORG = f"secretariat.cardio@{DOMAIN}"  # held by MARIE (and LOUIS)
APP = f"dpi.hopital@{DOMAIN}"  # structure 1750000001
LAB_APP = f"sil.labo@{DOMAIN}"  # structure 318751275100020
MARIE = "899700000001"
HOSPITAL, LAB = "1750000001", "318751275100020"
PRODUCT = "DEV000001"
#: The names of the sandbox PKI's server certificate, all mapped to Dovecot on loopback.
RESOLVE = {CFG.host_name(p, f): "127.0.0.1" for p in ("imap", "smtp") for f in ("psc", "authcli")}


@dataclass
class Env:
    sb: Sandbox
    dovecot: DovecotServer
    crl_dir: Path

    @property
    def client_id(self) -> str:
        return str(self.sb.info["psc"]["client_id"])

    def servers(self, front: Literal["psc", "authcli"]) -> ManualServers:
        """Dovecot's IMAP and submission ports under the certificate names of ``front``."""
        return ManualServers(imap=(CFG.host_name("imap", front), self.dovecot.imap_port),
                             submission=(CFG.host_name("smtp", front), self.dovecot.submission_port))

    def trust(self) -> TrustSettings:
        # revocation="require" (the default): the CRLs come from the running sandbox's HTTP server.
        return TrustSettings(ca_bundle=Path(self.sb.info["ca_bundle"]), crls=CRLCache(directory=self.crl_dir))

    def options(self, **changes: object) -> MailboxOptions:
        connection = ConnectionSettings(connect_timeout=10, command_timeout=10, resolve=RESOLVE)
        return MailboxOptions(connection=connection, **changes)  # type: ignore[arg-type]

    def per(self, source: CallbackTokenSource, *, address: str = PER, kind: BALKind = "PER",
            traces: MemorySink | None = None) -> Mailbox:
        return Mailbox(address, kind=kind, credentials=source, servers=self.servers("psc"),
                       tls=self.trust(), traces=traces, product_reference=PRODUCT, options=self.options())

    def app(self, *, address: str = APP, traces: MemorySink | None = None, **opts: object) -> Mailbox:
        bal = next(b for b in self.sb.info["bals"] if b["address"] == address)
        cert = ClientCertificate(cert=Path(bal["cert"]), key=Path(bal["key"]))
        return Mailbox(address, kind="APP", credentials=cert, servers=self.servers("authcli"), tls=self.trust(),
                       traces=traces, product_reference=PRODUCT, options=self.options(**opts))


class Minting(CallbackTokenSource):
    """PSC access tokens minted by the sandbox's mock PSC (Dovecot introspects them there).

    ``bad_first``: the first ``bad_first`` fetches return a token the PSC never issued.
    """

    def __init__(self, env: Env, national_id: str = MARIE, *, bad_first: int = 0) -> None:
        self.issued: list[str] = []

        async def fetch() -> tuple[Secret, float]:
            if len(self.issued) < bad_first:
                token = f"eyJhbGciOiJSUzI1NiJ9.garbage-{len(self.issued)}.garbage"
                self.issued.append(token)
                return Secret(token), 120.0
            answer = env.sb.psc.issue_tokens_for_tests(national_id, env.client_id)
            self.issued.append(answer["access_token"])
            return Secret(answer["access_token"]), float(answer["expires_in"])

        super().__init__(fetch, margin=0.5)
        self.national_id = national_id


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    skip_unless_dovecot()
    state = tmp_path_factory.mktemp("client-dovecot")
    async with Sandbox(CFG, state / "sandbox") as sb:
        psc = sb.info["psc"]
        introspection = psc["issuer"] + "/protocol/openid-connect/token/introspect"
        dovecot = DovecotServer(pki=sb.pki, introspection_url=introspection,
                                client_id=psc["client_id"], client_secret=psc["client_secret"], config=CFG)
        await asyncio.to_thread(dovecot.start)
        try:
            yield Env(sb=sb, dovecot=dovecot, crl_dir=state / "crls")
        finally:
            await asyncio.to_thread(dovecot.stop)


# ----------------------------------------------------------------------------- helpers


def _create_folders(env: Env, login: Callable[[imaplib.IMAP4], object], cert: IssuedCert | None,
                    names: tuple[str, ...]) -> None:
    """CREATE folders with imaplib (no mssante code): what an operator's provisioning does."""
    imap = imaplib.IMAP4(env.dovecot.host, env.dovecot.imap_port, timeout=10)
    try:
        imap.starttls(env.dovecot.client_ssl_context(cert))
        login(imap)
        for name in names:
            typ, data = imap.create(name)
            assert typ == "OK", data
        imap.logout()
    finally:
        if imap.state != "LOGOUT":
            with contextlib.suppress(OSError):
                imap.shutdown()


async def provision(env: Env, *, per: str | None = None, app: str | None = None,
                    names: tuple[str, ...] = ("Sent", "Trash", "Drafts")) -> None:
    if per is not None:
        token = env.sb.psc.issue_tokens_for_tests(MARIE, env.client_id)["access_token"]
        ir = f"user={per}\x01auth=Bearer {token}\x01\x01".encode()
        await asyncio.to_thread(_create_folders, env, lambda i: i.authenticate("XOAUTH2", lambda _: ir), None, names)
    if app is not None:
        cert = env.sb.client_certs[HOSPITAL if app == APP else LAB]
        ir = f"\x00{app}\x00x".encode()
        await asyncio.to_thread(_create_folders, env, lambda i: i.authenticate("PLAIN", lambda _: ir), cert, names)


async def wait_until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {seconds} s")
        await asyncio.sleep(0.02)


def in_idle(user: str) -> bool:
    """True when a Dovecot imap process of ``user`` is in IDLE (its title, verbose_proctitle)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        if "imap" in title and f"[{user} " in title and " IDLE]" in title:
            return True
    return False


def draft(sender: str, to: str, subject: str) -> Draft:
    return Draft(sender=Sender(address=sender), to=(to,), subject=subject, text="Bonjour, voici le compte rendu.")


# ----------------------------------------------------------------------------- the round trip


async def test_per_to_app_round_trip_through_dovecot(env: Env) -> None:
    await provision(env, per=PER, app=APP)
    source = Minting(env)
    per_traces, app_traces = MemorySink(), MemorySink()
    per = env.per(source, traces=per_traces)
    # A long poll interval: the watcher can only see the message in time through IDLE.
    app = env.app(traces=app_traces, poll_interval=60.0)
    async with per, app, asyncio.timeout(45):
        # Folders: Dovecot here marks none (no SPECIAL-USE): the library falls back to the names.
        per_folders = {f.name: f.special_use for f in await per.folders()}
        assert per_folders == {"INBOX": None, "Sent": None, "Trash": None, "Drafts": None}
        async with per.imap_session() as conn:
            assert conn.server_name == CFG.host_name("imap", "psc")
            assert not conn.engine.has("SPECIAL-USE")
            assert conn.engine.has("IDLE") and conn.engine.has("MOVE") and conn.engine.has("UIDPLUS")
        assert await per.special_folder("\\Sent") == "Sent"
        assert {f.name for f in await app.folders()} == {"INBOX", "Sent", "Trash", "Drafts"}
        assert await app.special_folder("\\Trash") == "Trash"

        # watch(): from the next UID on, on its own connection; wait until it has selected INBOX.
        async def first(box: Mailbox) -> MessageSummary:
            async with contextlib.aclosing(box.watch()) as watcher:
                return await anext(watcher)

        watched = asyncio.create_task(first(app))
        await wait_until(lambda: any(r.action == "select" and "(watch)" in r.request for r in app_traces.records))
        await wait_until(lambda: in_idle(APP))  # the watcher's IMAP process says it is in IDLE

        # send: Dovecot submission, XOAUTH2 with a PSC token too long for the AUTH line (RFC 4954 §4)
        relayed_before = len(env.dovecot.sink.messages)
        sent = await per.send(draft(PER, APP, "CR consultation Dovecot"))
        assert sent.accepted == (APP,) and sent.refused == () and sent.reply.startswith("250")
        ir = base64.b64encode(f"user={PER}\x01auth=Bearer {source.issued[0]}\x01\x01".encode())
        assert len(b"AUTH XOAUTH2 " + ir + b"\r\n") > SMTP_AUTH_LINE_LIMIT  # Dovecot: 500 5.5.2 on one line
        relayed = env.dovecot.sink.wait_for(relayed_before + 1)[-1]
        assert relayed.mail_from == PER and relayed.rcpt_tos == [APP]
        assert relayed.delivery[APP].startswith("250")  # LMTP into the APP BAL's Maildir
        assert sent.message_id.encode() in relayed.content

        # Sent copy (APPEND with APPENDUID) on the PER side
        assert sent.sent_folder == "Sent" and sent.sent_uid is not None
        copies = await per.list("Sent")
        assert [(c.uid, c.subject, c.message_id) for c in copies] == [
            (sent.sent_uid, "CR consultation Dovecot", sent.message_id)]
        assert copies[0].seen

        # watch() saw it through IDLE (polling would take 60 s)
        summary = await asyncio.wait_for(watched, 10)
        assert summary.subject == "CR consultation Dovecot" and summary.sender == PER
        assert summary.message_id == sent.message_id

        # list / fetch / flag / move / delete on the APP side (ORG AUTH_CLI certificate + PLAIN)
        listed = await app.list("INBOX", unseen_only=True)
        assert [s.uid for s in listed] == [summary.uid] and not listed[0].seen
        message = await app.fetch(summary.uid)
        assert message.parsed.subject == "CR consultation Dovecot"
        assert message.parsed.mss.nil == PRODUCT
        assert b"compte rendu" in message.raw and message.raw.startswith(b"Return-Path:")  # Dovecot's LMTP header
        assert not (await app.list("INBOX"))[0].seen  # BODY.PEEK[] left \Seen alone
        await app.flag(summary.uid, seen=True, flagged=True)
        assert await app.list("INBOX", unseen_only=True) == []
        flagged = (await app.list("INBOX"))[0]
        assert flagged.seen and "\\Flagged" in flagged.flags
        moved = await app.move(summary.uid, "Drafts")
        assert moved is not None  # COPYUID from Dovecot's MOVE
        assert await app.list("INBOX") == []
        assert [s.uid for s in await app.list("Drafts")] == [moved]
        await app.delete(moved, "Drafts")  # moved to Trash
        assert await app.list("Drafts") == []
        trash = await app.list("Trash")
        assert len(trash) == 1 and trash[0].subject == "CR consultation Dovecot"
        await app.delete(trash[0].uid, "Trash")  # already in Trash: expunged
        assert await app.list("Trash") == []
        assert (await app.status("Trash"))["MESSAGES"] == 0

    # every action traced, by its author; each BAL authenticated (a token was minted, never rejected)
    assert {"authenticate", "send", "append", "list"} <= {r.action for r in per_traces.records}
    app_actions = {r.action for r in app_traces.records}
    assert {"authenticate", "fetch", "flag", "move", "delete", "list", "select"} <= app_actions
    assert all(r.ok for r in [*per_traces.records, *app_traces.records])
    assert {r.author for r in per_traces.records} == {MARIE} and {r.author for r in app_traces.records} == {APP}
    assert len(source.issued) == 1
    # revocation required: the server certificate's CRLs were fetched from the sandbox
    assert any(p.is_file() for p in env.crl_dir.rglob("*"))


# ----------------------------------------------------------------------------- refusals and retry


class RecordingXOAuth2(XOAuth2Client):
    """The library's XOAUTH2 mechanism, remembered so the test can read the JSON challenge it answered."""

    made: ClassVar[list[RecordingXOAuth2]] = []

    def __init__(self, user: str, token: Secret) -> None:
        super().__init__(user, token)
        RecordingXOAuth2.made.append(self)


async def test_rejected_token_retried_once_with_a_fresh_token_then_token_rejected(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dovecot answers a token it cannot introspect with the RFC 7628 JSON challenge, then NO / 535."""
    monkeypatch.setattr("mssante.client._auth.XOAuth2Client", RecordingXOAuth2)
    RecordingXOAuth2.made.clear()
    source = Minting(env, bad_first=10)  # every fetch returns a token the PSC never issued
    traces = MemorySink()
    async with env.per(source, traces=traces) as per:
        with pytest.raises(TokenRejected) as imap_err:
            await per.folders()
        assert imap_err.value.imap_code == "AUTHENTICATIONFAILED"
        assert "freshly obtained token" in str(imap_err.value)
        assert len(source.issued) == 2  # the token, then exactly one fresh token
        assert [r.ok for r in traces.records if r.action == "authenticate"] == [False, False]

        with pytest.raises(TokenRejected) as smtp_err:
            await per.send(draft(PER, APP, "never sent"))
        assert (smtp_err.value.smtp_code, smtp_err.value.enhanced_code) == (535, "5.7.8")
        # the cached (second) token, then exactly one fresh token
        assert len(source.issued) == 3
        assert [r.ok for r in traces.records if r.action == "authenticate"] == [False] * 4
        assert not any(r.action == "send" and r.ok for r in traces.records)
    # each of the 4 attempts got Dovecot's JSON error challenge and acknowledged it (empty response)
    errors = [m.error for m in RecordingXOAuth2.made]
    assert len(errors) == 4
    assert all(e is not None and (e.status, e.schemes, e.scope) == ("401", "bearer", "mail") for e in errors)


async def test_stale_token_replaced_by_one_fresh_token(env: Env) -> None:
    source = Minting(env, bad_first=1)  # a cached token the server no longer accepts, then a valid one
    async with env.per(source) as per:
        assert "INBOX" in {f.name for f in await per.folders()}
    assert len(source.issued) == 2


# ----------------------------------------------------------------------------- no Sent folder


async def test_send_when_the_sent_folder_does_not_exist(env: Env) -> None:
    """A Dovecot without ``special_use`` mailboxes and without a ``Sent`` folder (ORG BAL, not provisioned).

    The message IS submitted and delivered; the Sent copy then fails (APPEND ``NO [TRYCREATE]``).
    ``send()`` must not raise (a caller retrying would send twice): the result says the message
    was accepted and why the copy failed.
    """
    source = Minting(env)
    traces = MemorySink()
    relayed_before = len(env.dovecot.sink.messages)
    async with env.per(source, address=ORG, kind="ORG", traces=traces) as org, env.app(address=LAB_APP) as lab:
        assert {f.name for f in await org.folders()} == {"INBOX"}
        result = await org.send(draft(ORG, LAB_APP, "sans dossier Sent"))
        assert result.accepted == (LAB_APP,) and result.sent_folder is None
        assert result.sent_error is not None and "TRYCREATE" in result.sent_error
        relayed = env.dovecot.sink.wait_for(relayed_before + 1)[-1]
        assert relayed.rcpt_tos == [LAB_APP] and relayed.delivery[LAB_APP].startswith("250")
        assert [s.subject for s in await lab.list("INBOX")] == ["sans dossier Sent"]
    assert [(r.action, r.ok) for r in traces.records if r.action in ("send", "append")] == [
        ("send", True), ("append", False)]
