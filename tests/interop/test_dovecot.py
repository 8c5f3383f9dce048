"""The Dovecot fixture, proved with clients that share no code with mssante: imaplib and smtplib.

One Dovecot per module (start ~1 s): the mock PSC under uvicorn in a thread answers its
introspection requests; the sandbox test PKI provides the server and client certificates.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.message
import imaplib
import json
import os
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from mssante.client._imap_results import imap_auth_error
from mssante.client._smtp_auth import auth_error
from mssante.errors import AuthError, TokenRejected
from mssante.sandbox.config import default_config
from mssante.sandbox.pki import IssuedCert, TestPKI
from mssante.sandbox.psc import MockPSC
from mssante.wire import AuthOutcome, outcome_from_imap, outcome_from_smtp, outcome_of_error
from mssante.wire.imap import Authenticate, ClientConnection, Tagged
from tests.interop.dovecot import DovecotServer, skip_unless_dovecot

pytestmark = pytest.mark.dovecot

CFG = default_config()
DOMAIN = CFG.domain
PER = f"marie.curie@{DOMAIN}"  # held by MARIE
ORG = f"secretariat.cardio@{DOMAIN}"  # held by MARIE and LOUIS
APP = f"dpi.hopital@{DOMAIN}"  # structure 1750000001
LAB_APP = f"sil.labo@{DOMAIN}"  # structure 318751275100020
MARIE, LOUIS = "899700000001", "899700000002"
CLIENT = CFG.clients[0]
REALM = "/auth/realms/esante-wallet"


class Clock:
    """Real time plus an offset: tests expire tokens by moving it forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Env:
    dovecot: DovecotServer
    psc: MockPSC
    clock: Clock
    certs: dict[str, IssuedCert]  # "hospital", "lab", and TestPKI.issue_negative_certs' keys

    def token(self, national_id: str = MARIE) -> str:
        return str(self.psc.issue_tokens_for_tests(national_id, CLIENT.client_id)["access_token"])

    def imap(self, cert: IssuedCert | None = None) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.dovecot.host, self.dovecot.imap_port, timeout=10)
        try:
            imap.starttls(self.dovecot.client_ssl_context(cert))
        except BaseException:
            with contextlib.suppress(OSError):
                imap.shutdown()
            raise
        return imap

    def smtp(self, cert: IssuedCert | None = None) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.dovecot.host, self.dovecot.submission_port, local_hostname="lps.test", timeout=10)
        try:
            smtp.starttls(context=self.dovecot.client_ssl_context(cert))
            smtp.ehlo("lps.test")
        except BaseException:
            smtp.close()
            raise
        return smtp


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    skip_unless_dovecot()
    state = tmp_path_factory.mktemp("dovecot-env")
    pki = TestPKI.load_or_create(state / "pki", server_names=CFG.server_names, crl_base_url="http://127.0.0.1:9")
    hospital, lab = (CFG.structure(s) for s in ("1750000001", "318751275100020"))
    assert hospital is not None and lab is not None
    certs = {
        "hospital": pki.issue_client_cert(hospital, "LPS DPI HOPITAL"),
        "lab": pki.issue_client_cert(lab, "LPS SIL LABO"),
    }
    # expired, foreign, impostor, no_clientauth, revoked (revoked before Dovecot starts, so the
    # CRL copied into ssl_ca lists it); all with the hospital's OU, so only the defect differs.
    certs.update(pki.issue_negative_certs(hospital))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    issuer = f"http://127.0.0.1:{sock.getsockname()[1]}{REALM}"
    clock = Clock()
    psc = MockPSC(CFG, issuer=issuer, state_dir=state / "psc", clock=clock)
    server = uvicorn.Server(uvicorn.Config(psc.app, log_level="warning", lifespan="off", ws="none", http="h11"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    dovecot = DovecotServer(pki=pki, introspection_url=f"{issuer}/protocol/openid-connect/token/introspect",
                            client_id=CLIENT.client_id, client_secret=CLIENT.client_secret, config=CFG,
                            # set to keep config, log and Maildirs for inspection (short path under /tmp)
                            work_dir=Path(os.environ["MSSANTE_DOVECOT_WORK_DIR"])
                            if os.environ.get("MSSANTE_DOVECOT_WORK_DIR") else None)
    try:
        dovecot.start()
        yield Env(dovecot=dovecot, psc=psc, clock=clock, certs=certs)
    finally:
        dovecot.stop()
        server.should_exit = True
        thread.join(10)
        sock.close()


def xoauth2(user: str, token: str) -> bytes:
    # Google's XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str) -> bytes:
    # RFC 7628 §3.1: gs2 header "n,a=<authzid>," then kvpairs separated by ^A
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode()


class Conversation:
    """An imaplib authobject: the initial response, then an empty answer to an error challenge."""

    def __init__(self, initial: bytes) -> None:
        self.initial = initial
        self.challenges: list[bytes] = []

    def __call__(self, challenge: bytes) -> bytes:
        self.challenges.append(challenge)
        # imaplib does not use SASL-IR: Dovecot first sends an empty "+ ", then (on failure)
        # the RFC 7628 §3.2.2 JSON error, which the client must answer with an empty response.
        return self.initial if len(self.challenges) == 1 else b""


#: Where a peer's refusal of the TLS session can surface on a stdlib client (see imap_auth).
TLS_REFUSALS = (ssl.SSLError, ConnectionError, imaplib.IMAP4.abort, smtplib.SMTPServerDisconnected)


def imap_auth(env: Env, mech: str, initial: bytes, cert: IssuedCert | None = None) -> tuple[str, Conversation]:
    """Authenticate and SELECT INBOX; return ("OK" or the refusal text, the conversation)."""
    conv = Conversation(initial)
    # Under TLS 1.3 the server checks the client certificate after the client's side of the
    # handshake has ended (RFC 8446 §4.4.2), so its refusal reaches the client wherever the client
    # next touches the socket: in the handshake itself, on the CAPABILITY read that imaplib sends
    # right after STARTTLS, or on the first write or read of AUTHENTICATE (EOF, SSLEOFError, reset).
    try:
        imap = env.imap(cert)
    except TLS_REFUSALS as exc:
        return f"TLS handshake refused: {exc}", conv
    try:
        typ, _ = imap.authenticate(mech, conv)
        imap.select("INBOX")
        imap.logout()
        return typ, conv
    except TLS_REFUSALS as exc:
        return f"TLS handshake refused: {exc}", conv
    except imaplib.IMAP4.error as exc:
        return str(exc), conv
    finally:
        if imap.state != "LOGOUT":
            with contextlib.suppress(OSError):
                imap.shutdown()


# ----------------------------------------------------------------------------- IMAP, PSC tokens


def test_imap_xoauth2_per_bal(env: Env) -> None:
    typ, conv = imap_auth(env, "XOAUTH2", xoauth2(PER, env.token(MARIE)))
    assert typ == "OK"
    assert conv.challenges == [b""]


def test_imap_xoauth2_with_a_client_certificate_too(env: Env) -> None:
    # auth_ssl_username_from_cert renames the login to the certificate's OU; the holder map is
    # keyed on %{orig_user} (the XOAUTH2 user=) and renames it back to the BAL.
    typ, _ = imap_auth(env, "XOAUTH2", xoauth2(PER, env.token(MARIE)), env.certs["hospital"])
    assert typ == "OK"


def test_imap_oauthbearer_org_bal_by_second_holder(env: Env) -> None:
    typ, _ = imap_auth(env, "OAUTHBEARER", oauthbearer(ORG, env.token(LOUIS)))
    assert typ == "OK"


@pytest.mark.parametrize("case", ["garbage", "expired", "not_holder", "app_bal", "unknown_bal"])
def test_imap_xoauth2_refused_after_json_challenge(env: Env, case: str) -> None:
    user, token = PER, env.token(MARIE)
    if case == "garbage":
        token = "eyJhbGciOiJub25lIn0.garbage.garbage"
    elif case == "expired":
        env.clock.offset += CFG.lifetimes.access_token + 5  # the mock's introspection sees it expired
    elif case == "not_holder":
        token = env.token(LOUIS)  # Louis holds the ORG BAL, not Marie's PER BAL
    elif case == "app_bal":
        user = APP  # APP BALs are opened with a certificate only
    elif case == "unknown_bal":
        user = f"nobody@{DOMAIN}"
    try:
        result, conv = imap_auth(env, "XOAUTH2", xoauth2(user, token))
    finally:
        env.clock.offset = 0.0
    assert "AUTHENTICATIONFAILED" in result
    assert len(conv.challenges) == 2
    assert json.loads(conv.challenges[1]) == {"status": "401", "schemes": "bearer", "scope": "mail"}


# ----------------------------------------------------------------------------- IMAP, APP certificate


def plain(user: str) -> bytes:
    return f"\x00{user}\x00ignored".encode()  # RFC 4616: authzid NUL authcid NUL passwd


def test_imap_app_bal_certificate_and_plain(env: Env) -> None:
    typ, _ = imap_auth(env, "PLAIN", plain(APP), env.certs["hospital"])
    assert typ == "OK"
    typ, _ = imap_auth(env, "PLAIN", plain(LAB_APP), env.certs["lab"])
    assert typ == "OK"


@pytest.mark.parametrize(("bal", "cert", "refusal"), [
    (APP, None, "AUTHENTICATIONFAILED"),  # no client certificate
    (APP, "revoked", "AUTHENTICATIONFAILED"),  # listed in the ORG CA's CRL
    (APP, "expired", "AUTHENTICATIONFAILED"),
    (APP, "foreign", "AUTHENTICATIONFAILED"),  # from a CA in no bundle
    # A CA with the ORG CA's name but another key: OpenSSL's signature check fails hard
    # ("wrong signature length") and Dovecot aborts the handshake instead of flagging the cert.
    (APP, "impostor", "TLS handshake refused"),
    (APP, "no_clientauth", "AUTHENTICATIONFAILED"),  # ORG SIGN profile: EKU emailProtection only
    (APP, "lab", "AUTHENTICATIONFAILED"),  # a valid certificate of another structure (OU)
    (PER, "hospital", "AUTHENTICATIONFAILED"),  # a PER BAL is not opened with a certificate
])
def test_imap_app_bal_refusals(env: Env, bal: str, cert: str | None, refusal: str) -> None:
    result, _ = imap_auth(env, "PLAIN", plain(bal), env.certs[cert] if cert else None)
    assert refusal in result


# ----------------------------------------------------------------------------- submission


def sasl_reply(initial: bytes) -> Callable[..., str]:
    """An smtplib authobject: ``initial`` (as text) first, then "" to an error challenge."""
    calls: list[bytes | None] = []

    def answer(challenge: bytes | None = None) -> str:
        calls.append(challenge)
        return initial.decode() if len(calls) == 1 else ""

    return answer


def wait_for_mail(path: Path, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted((path / "new").glob("*")) if (path / "new").exists() else []
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no message in {path}/new after {timeout} s")


def test_submission_xoauth2_delivers_to_maildir_readable_over_imap(env: Env) -> None:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ORG, PER, "interop dovecot"
    msg.set_content("Bonjour Marie\n")
    before = len(env.dovecot.sink.messages)
    with env.smtp() as smtp:
        assert "XOAUTH2" in smtp.esmtp_features["auth"]
        # No SASL-IR: the token is longer than Dovecot's 512-octet AUTH line (see below).
        code, _ = smtp.auth("XOAUTH2", sasl_reply(xoauth2(ORG, env.token(LOUIS))), initial_response_ok=False)
        assert code == 235
        assert smtp.send_message(msg) == {}
    relayed = env.dovecot.sink.wait_for(before + 1)[-1]
    assert relayed.rcpt_tos == [PER]
    assert relayed.delivery[PER].startswith("250")
    wait_for_mail(env.dovecot.maildir(PER))

    imap = env.imap()
    assert imap.authenticate("XOAUTH2", Conversation(xoauth2(PER, env.token(MARIE))))[0] == "OK"
    imap.select("INBOX")
    typ, data = imap.search(None, 'SUBJECT "interop dovecot"')
    assert typ == "OK" and data[0]
    typ, fetched = imap.fetch(data[0].split()[-1], "(RFC822)")
    assert typ == "OK"
    part = fetched[0]
    assert isinstance(part, tuple) and b"Bonjour Marie" in part[1]
    imap.logout()


def test_submission_unknown_local_recipient_is_refused(env: Env) -> None:
    with env.smtp() as smtp:
        smtp.auth("XOAUTH2", sasl_reply(xoauth2(PER, env.token(MARIE))), initial_response_ok=False)
        with pytest.raises(smtplib.SMTPDataError) as err:
            smtp.sendmail(PER, [f"nobody@{DOMAIN}"], b"Subject: x\r\n\r\nx\r\n")
    assert err.value.smtp_code == 550  # Dovecot LMTP: user doesn't exist, passed back by submission


def test_submission_auth_line_limit(env: Env) -> None:
    token = env.token(MARIE)
    initial = base64.b64encode(xoauth2(PER, token)).decode()
    assert len("AUTH XOAUTH2 " + initial) > 512
    with env.smtp() as smtp:
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + initial)  # SASL-IR (RFC 4954 §4) on one line
    assert (code, text[:5]) == (500, b"5.5.2")
    with env.smtp() as smtp:
        code, text = smtp.docmd("AUTH", "XOAUTH2")
        assert code == 334
        code, text = smtp.docmd(initial)  # the same token after 334 is fine
    assert code == 235


def test_submission_xoauth2_refused_after_json_challenge(env: Env) -> None:
    with env.smtp() as smtp:
        code, challenge = smtp.docmd("AUTH", "XOAUTH2")
        assert code == 334
        code, challenge = smtp.docmd(base64.b64encode(xoauth2(PER, "not-a-token")).decode())
        assert code == 334
        assert json.loads(base64.b64decode(challenge))["status"] == "401"
        code, text = smtp.docmd("")
    assert (code, text[:5]) == (535, b"5.7.8")


def test_submission_app_bal_certificate_and_plain(env: Env) -> None:
    with env.smtp(env.certs["hospital"]) as smtp:
        code, _ = smtp.auth("PLAIN", sasl_reply(plain(APP)))
        assert code == 235
    with env.smtp() as smtp, pytest.raises(smtplib.SMTPAuthenticationError) as err:
        smtp.auth("PLAIN", sasl_reply(plain(APP)))
    assert err.value.smtp_code == 535


# ----------------------------------------------------------------------------- our outcome vocabulary


def _imap_tagged(env: Env, command: bytes, answers: tuple[bytes, ...] = (), cert: IssuedCert | None = None) -> bytes:
    """Send one raw AUTHENTICATE after STARTTLS, answer each ``+`` with ``answers``; Dovecot's tagged line."""
    imap = env.imap(cert)
    try:
        imap.send(b"x1 " + command + b"\r\n")
        pending = list(answers)
        while True:
            line = imap.readline()
            if line.startswith(b"+"):
                imap.send((pending.pop(0) if pending else b"*") + b"\r\n")
            elif line.startswith(b"x1 "):
                return line
    finally:
        with contextlib.suppress(OSError):
            imap.shutdown()


def _client_reads(line: bytes) -> tuple[AuthOutcome | None, type[Exception]]:
    """What our client makes of a tagged AUTHENTICATE answer: its engine parses it, then the mapping."""
    conn = ClientConnection(tls=True)
    conn.receive_data(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n")
    conn.next_event()
    conn.send(Authenticate(mechanism="XOAUTH2", initial_response=b"x"))
    conn.receive_data(b"a001 " + line.split(b" ", 1)[1])
    tagged = conn.next_event()
    assert isinstance(tagged, Tagged), tagged
    error = imap_auth_error(tagged)
    assert outcome_of_error(error) is outcome_from_imap(tagged.status, tagged.code.name if tagged.code else None) or (
        type(error) is AuthError)
    return outcome_from_imap(tagged.status, tagged.code.name if tagged.code else None), type(error)


def test_dovecot_imap_refusals_read_as_our_outcomes(env: Env) -> None:
    b64 = base64.b64encode
    bad_token = _imap_tagged(env, b"AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, "not-a-token")), (b"",))
    assert _client_reads(bad_token) == (AuthOutcome.AUTHENTICATIONFAILED, TokenRejected), bad_token
    cancelled = _imap_tagged(env, b"AUTHENTICATE XOAUTH2", (b"*",))
    assert _client_reads(cancelled) == (AuthOutcome.MALFORMED, AuthError), cancelled  # IMAP's one BAD
    no_cert = _imap_tagged(env, b"AUTHENTICATE PLAIN " + b64(plain(APP)))
    assert _client_reads(no_cert) == (AuthOutcome.AUTHENTICATIONFAILED, TokenRejected), no_cert
    ok = _imap_tagged(env, b"AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, env.token(MARIE))))
    assert _client_reads(ok)[0] is AuthOutcome.OK, ok


def test_dovecot_submission_refusals_read_as_our_outcomes(env: Env) -> None:
    initial = base64.b64encode(xoauth2(PER, env.token(MARIE))).decode()
    with env.smtp() as smtp:
        too_long = smtp.docmd("AUTH", "XOAUTH2 " + initial)  # over the 512-octet line (RFC 4954 §4)
        cancelled = (smtp.docmd("AUTH", "XOAUTH2"), smtp.docmd("*"))[1]
        smtp.docmd("AUTH", "XOAUTH2")
        smtp.docmd(base64.b64encode(xoauth2(PER, "not-a-token")).decode())
        refused = smtp.docmd("")
        unknown = smtp.docmd("AUTH", "CRAM-MD5")
    for (code, text), outcome in [(too_long, AuthOutcome.TOOBIG), (refused, AuthOutcome.AUTHENTICATIONFAILED)]:
        assert outcome_from_smtp(code, text.decode()) is outcome, (code, text)
        assert outcome_of_error(auth_error(code, text.decode())) is outcome
    assert type(auth_error(*refused[:1], refused[1].decode())) is TokenRejected
    assert outcome_from_smtp(cancelled[0], cancelled[1].decode()) in (AuthOutcome.CANCELLED, AuthOutcome.MALFORMED), (
        cancelled)
    assert outcome_from_smtp(unknown[0], unknown[1].decode()) is AuthOutcome.NOMECHANISM, unknown


# ----------------------------------------------------------------------------- Dovecot's own semantics


def test_loopback_client_counts_as_secured(env: Env) -> None:
    """Dovecot 2.3 treats remote IP == local IP as "secured" (login-common/client-common.c).

    So ``ssl = required`` does not make it refuse AUTH before STARTTLS from 127.0.0.1: a client
    library's own "STARTTLS before AUTH" rule cannot be proved against this fixture.
    """
    with smtplib.SMTP(env.dovecot.host, env.dovecot.submission_port, local_hostname="lps.test", timeout=10) as smtp:
        smtp.ehlo("lps.test")
        assert "starttls" in smtp.esmtp_features
        assert "XOAUTH2" in smtp.esmtp_features.get("auth", "")  # offered in clear on loopback


def test_revocation_after_start_needs_reload(env: Env) -> None:
    lab = CFG.structure("318751275100020")
    assert lab is not None
    pki = env.dovecot.pki
    cert = pki.issue_client_cert(lab, "LPS SIL LABO REVOQUE")
    assert imap_auth(env, "PLAIN", plain(LAB_APP), cert)[0] == "OK"
    pki.revoke(cert.cert_path, reason="keyCompromise")
    # Dovecot read ssl_ca (CAs + CRLs) at start: the new CRL counts after a reload only.
    assert imap_auth(env, "PLAIN", plain(LAB_APP), cert)[0] == "OK"
    env.dovecot.reload()
    assert "AUTHENTICATIONFAILED" in imap_auth(env, "PLAIN", plain(LAB_APP), cert)[0]
    assert imap_auth(env, "PLAIN", plain(LAB_APP), env.certs["lab"])[0] == "OK"
