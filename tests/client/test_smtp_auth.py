"""SMTP AUTH on aiosmtplib against a real aiosmtpd with STARTTLS and Dovecot's 512-octet AUTH line."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from mssante.client._smtp_auth import auth_error, authenticate, ehlo_after_starttls, starttls
from mssante.errors import (
    AuthError,
    AuthUnavailable,
    CommandFailed,
    LocalProtocolError,
    NotAuthorized,
    RemoteProtocolError,
    StartTLSError,
    TokenRejected,
)
from mssante.secret import Secret
from mssante.trust import client_ssl_context
from mssante.wire.sasl import (
    BearerError,
    Mechanism,
    OAuthBearerClient,
    PlainClient,
    XOAuth2Client,
    check_error_ack,
    parse_oauthbearer,
    parse_xoauth2,
)
from tests.trust._pki import MiniPKI

GOOD = "eyJhbGciOiJSUzI1NiJ9.short.sig"
LONG = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + "A" * 1500 + ".sig"  # a PSC-sized JWT
BAL = "jean.dupont@hopital.mss.test"
APP_BAL = "318751275100020@mss.test"


class DovecotLikeSMTP(SMTP):
    """aiosmtpd with Dovecot submission's limits: AUTH line ≤ 512 octets, long continuations OK."""

    line_length_limit = 8192

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set on the instance: the class-level defaultdict is shared by every aiosmtpd SMTP.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.command_size_limits["AUTH"] = 512


class BearerHandler:
    """XOAUTH2 and OAUTHBEARER, parsed with our own server-side SASL code."""

    def __init__(self) -> None:
        self.tokens = {GOOD, LONG}
        self.reply: str | None = None  # force a reply instead of checking the token
        self.seen: list[tuple[str, bool]] = []  # (mechanism, sent as SASL-IR)
        self.acks: list[bytes] = []

    async def _bearer(self, server: SMTP, args: list[str], mech: Mechanism) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            blob = base64.b64decode(args[1])
        self.seen.append((str(mech), len(args) == 2))
        creds = parse_xoauth2(blob) if mech is Mechanism.XOAUTH2 else parse_oauthbearer(blob)
        if self.reply is not None:
            return AuthResult(success=False, handled=False, message=self.reply)
        if creds.token.reveal() in self.tokens and creds.user == BAL:
            return AuthResult(success=True, auth_data=creds.user)
        # RFC 7628 §3.2.2: the JSON error challenge, then the final failure once acknowledged.
        ack = await server.challenge_auth(BearerError(status="401", schemes="bearer", scope="openid").to_bytes())
        assert isinstance(ack, bytes)
        self.acks.append(ack)
        check_error_ack(mech, ack)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, Mechanism.XOAUTH2)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, Mechanism.OAUTHBEARER)


def _cert_plain_authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    # BAL APP: a verified AUTH_CLI client certificate, then PLAIN with the BAL address as login.
    ssl_object = session.ssl.get("ssl_object") if session.ssl else None
    has_cert = ssl_object is not None and ssl_object.getpeercert(binary_form=True) is not None
    ok = mechanism == "PLAIN" and isinstance(auth_data, LoginPassword) and auth_data.login == APP_BAL.encode()
    return AuthResult(success=has_cert and ok, handled=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> MiniPKI:
    return MiniPKI(Path(tmp_path_factory.mktemp("smtp-pki")), "http://127.0.0.1:9/crl")


@pytest.fixture(scope="module")
def server_ctx(pki: MiniPKI) -> ssl.SSLContext:
    leaf = pki.leaf("smtp.psc.mss.test", dns_names=["smtp.psc.mss.test"])
    chain = pki.dir / "smtp-chain.pem"
    chain.write_bytes(leaf.cert_path.read_bytes() + pki.org.cert_path.read_bytes())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, leaf.key_path)
    ctx.load_verify_locations(pki.bundle())
    ctx.verify_mode = ssl.CERT_OPTIONAL  # asks for a client certificate; PLAIN requires one
    return ctx


@pytest.fixture(scope="module")
def client_ctx(pki: MiniPKI) -> ssl.SSLContext:
    return client_ssl_context(ca_bundle=pki.bundle())


@contextlib.asynccontextmanager
async def smtp_server(server_ctx: ssl.SSLContext, handler: object, *, server_class: type[SMTP] | None = None,
                      **kwargs: Any) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    cls = server_class or DovecotLikeSMTP
    server = await loop.create_server(
        lambda: cls(
            handler,
            tls_context=server_ctx,
            require_starttls=True,
            hostname="smtp.psc.mss.test",
            auth_exclude_mechanism=["LOGIN"],
            loop=loop,
            **kwargs,
        ),
        "127.0.0.1",
        0,
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def tls_session(
    port: int, client_ctx: ssl.SSLContext, *, do_starttls: bool = True
) -> AsyncIterator[aiosmtplib.SMTP]:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=5)
    await smtp.connect()
    try:
        if do_starttls:
            await starttls(smtp, tls_context=client_ctx, server_hostname="smtp.psc.mss.test")
        yield smtp
    finally:
        smtp.close()


@pytest.fixture
def handler() -> Iterator[BearerHandler]:
    yield BearerHandler()


async def test_short_token_uses_sasl_ir(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, handler: BearerHandler
) -> None:
    async with smtp_server(server_ctx, handler) as port, tls_session(port, client_ctx) as smtp:
        reply = await authenticate(smtp, XOAuth2Client(BAL, Secret(GOOD)))
    assert reply.code == 235
    assert handler.seen == [("XOAUTH2", True)]


async def test_long_token_goes_after_the_334(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, handler: BearerHandler
) -> None:
    async with smtp_server(server_ctx, handler) as port:
        async with tls_session(port, client_ctx) as smtp:
            reply = await authenticate(smtp, XOAuth2Client(BAL, Secret(LONG)))
        assert reply.code == 235
        assert handler.seen == [("XOAUTH2", False)]
        # Control: aiosmtplib's own XOAUTH2 always sends SASL-IR, which the 512-octet limit refuses.
        async with tls_session(port, client_ctx) as smtp:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
                await smtp.auth_xoauth2(BAL, LONG)
        assert info.value.code == 500 and "too long" in info.value.message


async def test_bad_token_answers_the_json_challenge_with_an_empty_line(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, handler: BearerHandler
) -> None:
    mechanism = XOAuth2Client(BAL, Secret("eyJ.bad.token"))
    async with smtp_server(server_ctx, handler) as port, tls_session(port, client_ctx) as smtp:
        with pytest.raises(TokenRejected) as info:
            await authenticate(smtp, mechanism)
    assert handler.acks == [b""]
    assert (info.value.smtp_code, info.value.enhanced_code) == (535, "5.7.8")
    assert mechanism.error == BearerError(status="401", schemes="bearer", scope="openid")
    assert "eyJ.bad.token" not in str(info.value) + repr(mechanism)


async def test_oauthbearer_failure_is_acknowledged_with_ctrl_a(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, handler: BearerHandler
) -> None:
    async with smtp_server(server_ctx, handler) as port, tls_session(port, client_ctx) as smtp:
        with pytest.raises(TokenRejected):
            await authenticate(smtp, OAuthBearerClient(BAL, Secret("eyJ.bad.token"), host="smtp.psc.mss.test"))
        # A new attempt on the same connection succeeds (RFC 4954: AUTH may be retried).
        await authenticate(smtp, OAuthBearerClient(BAL, Secret(LONG)))
    assert handler.acks == [b"\x01"]
    assert handler.seen == [("OAUTHBEARER", True), ("OAUTHBEARER", False)]


@pytest.mark.parametrize(
    ("reply", "error", "enhanced"),
    [
        ("454 4.7.0 Temporary authentication failure", AuthUnavailable, "4.7.0"),
        ("535 5.7.1 Not authorized on this mailbox", NotAuthorized, "5.7.1"),
        ("535 5.7.8 User is not authorized for this BAL", NotAuthorized, "5.7.8"),
        ("554 5.7.0 Go away", CommandFailed, "5.7.0"),
    ],
)
async def test_refusals_map_to_typed_errors(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    handler: BearerHandler,
    reply: str,
    error: type[AuthError],
    enhanced: str,
) -> None:
    handler.reply = reply
    async with smtp_server(server_ctx, handler) as port, tls_session(port, client_ctx) as smtp:
        with pytest.raises(error) as info:
            await authenticate(smtp, XOAuth2Client(BAL, Secret(GOOD)))
    assert info.value.smtp_code == int(reply[:3])
    assert info.value.enhanced_code == enhanced


async def test_plain_with_client_certificate_for_bal_app(
    pki: MiniPKI, server_ctx: ssl.SSLContext, handler: BearerHandler
) -> None:
    app = pki.leaf("BAL APP AUTH_CLI", dns_names=[], client=True)
    with_cert = client_ssl_context(ca_bundle=pki.bundle(), client_cert=app.cert_path, client_key=app.key_path)
    without_cert = client_ssl_context(ca_bundle=pki.bundle())
    plain = PlainClient(APP_BAL, Secret("unused-by-operator"))
    async with smtp_server(server_ctx, handler, authenticator=_cert_plain_authenticator) as port:
        async with tls_session(port, with_cert) as smtp:
            assert (await authenticate(smtp, plain)).code == 235
        async with tls_session(port, without_cert) as smtp:
            with pytest.raises(TokenRejected):
                await authenticate(smtp, plain)


async def test_no_tls_means_nothing_is_sent() -> None:
    """A plaintext server that offers AUTH: the client must refuse before writing any AUTH line."""
    received = bytearray()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b"220 plain.example ESMTP\r\n")
        while line := await reader.readline():
            received.extend(line)
            if line.upper().startswith(b"EHLO"):
                writer.write(b"250-plain.example\r\n250 AUTH XOAUTH2 PLAIN\r\n")
            else:
                writer.write(b"235 2.7.0 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with tls_session(port, ssl.create_default_context(), do_starttls=False) as smtp:
            await smtp.ehlo()
            with pytest.raises(LocalProtocolError) as info:
                await authenticate(smtp, XOAuth2Client(BAL, Secret(GOOD)))
            with pytest.raises(LocalProtocolError):
                await ehlo_after_starttls(smtp)
            # STARTTLS not offered by this server: refused with a StartTLSError.
            with pytest.raises(StartTLSError):
                await starttls(smtp, tls_context=ssl.create_default_context(), server_hostname="plain.example")
    finally:
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        server.close()
        await server.wait_closed()
    assert info.value.requirement == "ECO.1.2.1"
    assert b"AUTH" not in bytes(received).upper()
    assert GOOD.encode() not in bytes(received)


async def test_server_certificate_for_another_host_is_refused_at_starttls(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, handler: BearerHandler
) -> None:
    from mssante.errors import CertificateError

    async with smtp_server(server_ctx, handler) as port:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=5)
        await smtp.connect()
        try:
            with pytest.raises(CertificateError, match="Hostname mismatch"):
                await starttls(smtp, tls_context=client_ctx, server_hostname="mss.test")
        finally:
            smtp.close()


async def test_mechanism_not_offered(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    async with smtp_server(server_ctx, object()) as port, tls_session(port, client_ctx) as smtp:
        with pytest.raises(AuthError, match="does not offer SASL XOAUTH2"):
            await authenticate(smtp, XOAuth2Client(BAL, Secret(GOOD)))


async def test_unexpected_challenge_is_cancelled(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    class Chatty:
        async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
            if await server.challenge_auth(b"not json") is MISSING:  # the client sent "*"
                return AuthResult(success=False, handled=True)
            return AuthResult(success=False, handled=False, message="535 5.7.8 no")

    async with smtp_server(server_ctx, Chatty()) as port, tls_session(port, client_ctx) as smtp:
        with pytest.raises(RemoteProtocolError):
            await authenticate(smtp, XOAuth2Client(BAL, Secret(GOOD)))
        assert (await smtp.noop()).code == 250  # the exchange was cancelled with "*": the session goes on


def test_auth_error_mapping() -> None:
    assert isinstance(auth_error(530, "5.7.0 Must issue a STARTTLS command first"), StartTLSError)
    assert isinstance(auth_error(538, "5.7.11 Encryption required"), StartTLSError)
    assert isinstance(auth_error(535, "Authentication failed"), TokenRejected)
    assert auth_error(535, "Authentication failed").enhanced_code is None
    # RFC 4954 §6 refusals without an RFC 5530 outcome of their own are still authentication errors ...
    err = auth_error(501, "5.5.2 Can't decode base64")
    assert type(err) is AuthError and err.smtp_code == 501 and err.enhanced_code == "5.5.2"
    assert type(auth_error(504, "5.5.4 Unrecognized authentication type")) is AuthError
    # ... and a reply outside RFC 4954 §6 is a plain refused command.
    assert type(auth_error(554, "5.7.0 Go away")) is CommandFailed
