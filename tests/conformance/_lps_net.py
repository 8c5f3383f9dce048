"""Network pieces of the stdlib test LPS: SRV discovery, IMAP/SMTP over STARTTLS, SASL, PSC tokens.

Only the standard library (imaplib, smtplib, ssl, urllib) plus dnspython for the SRV query.
Errors are mapped to the mssante error tree so the LPS logic can react per RFC 5530 code.
"""

from __future__ import annotations

import base64
import imaplib
import json
import smtplib
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dns.resolver

from mssante.errors import AuthError, AuthUnavailable, ConnectError, NotAuthorized, PSCError, TokenRejected

#: ECO.1.1.3: the four TLS 1.2 suites of the vague 1 list (TLS 1.3 suites are left to OpenSSL).
TLS12_CIPHERS = ":".join((
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA256",
))


@dataclass(frozen=True)
class Endpoint:
    """A front found through SRV: the target name (TLS reference identifier), its address, its port."""

    host: str
    address: str
    port: int


def discover(info: Mapping[str, Any], service: str, priority: int) -> Endpoint:
    """RFC 6186 / EX_LPS_0300: ``_<service>._tcp.<domain>`` SRV of ``priority``, then the target's A record."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [info["dns"]["host"]]
    resolver.port = int(info["dns"]["port"])
    resolver.lifetime = 5.0
    answer = resolver.resolve(f"_{service}._tcp.{info['domain']}", "SRV")
    records = sorted((r for r in answer if r.priority == priority), key=lambda r: -r.weight)
    if not records:
        raise ConnectError(f"no SRV record of priority {priority} for {service}")
    target = records[0].target.to_text().rstrip(".")
    address = resolver.resolve(target, "A")[0].to_text()
    return Endpoint(host=target, address=address, port=int(records[0].port))


class IMAP(imaplib.IMAP4):
    """imaplib connected to an address while keeping the SRV target as the TLS server name."""

    def __init__(self, endpoint: Endpoint, timeout: float = 10.0) -> None:
        self._address = endpoint.address
        super().__init__(endpoint.host, endpoint.port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self._address, self.port), timeout)


class SMTP(smtplib.SMTP):
    """smtplib connected to an address while keeping the SRV target as the TLS server name."""

    def __init__(self, endpoint: Endpoint, timeout: float = 10.0) -> None:
        self._address = endpoint.address
        super().__init__(endpoint.host, endpoint.port, local_hostname="lps.test", timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout)


def auth_error(text: str) -> AuthError:
    """Map an IMAP ``NO [code]`` or SMTP ``5xx/4xx`` answer to our error tree (RFC 5530, RFC 4954 §6)."""
    upper = text.upper()
    if "AUTHORIZATIONFAILED" in upper or "AUTHORIZATION FAILED" in upper:
        return NotAuthorized(text, imap_code="AUTHORIZATIONFAILED")
    if "UNAVAILABLE" in upper or "454" in upper or "TEMPORARY" in upper:
        return AuthUnavailable(text, imap_code="UNAVAILABLE")
    return TokenRejected(text, imap_code="AUTHENTICATIONFAILED")


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial client response (webinar ANS: ``user=<BAL>^Aauth=Bearer <token>^A^A``)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def imap_sasl(imap: imaplib.IMAP4, mechanism: str, payload: str) -> None:
    """AUTHENTICATE; a server error challenge (RFC 7628 §3.2.2) is answered with an empty line."""
    calls = 0

    def respond(_: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return payload.encode() if calls == 1 else b""

    try:
        imap.authenticate(mechanism, respond)
    except imaplib.IMAP4.error as exc:
        raise auth_error(str(exc)) from None


def smtp_sasl(smtp: smtplib.SMTP, mechanism: str, payload: str) -> None:
    """AUTH (RFC 4954 §4): initial response only if the line stays within 512 octets; errors answered empty."""
    calls = 0

    def respond(challenge: bytes | None = None) -> str:
        nonlocal calls
        calls += 1
        return payload if calls == 1 else ""

    fits = len(base64.b64encode(payload.encode())) + len(mechanism) + 7 <= 512
    try:
        smtp.auth(mechanism, respond, initial_response_ok=fits)
    except smtplib.SMTPAuthenticationError as exc:
        raise auth_error(f"{exc.smtp_code} {exc.smtp_error.decode('ascii', 'replace')}") from None


def claims(jwt: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT: only to show who is logged in, never to trust."""
    part = jwt.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


class Tokens:
    """PSC tokens kept in memory only (ECO.1.2.5), refreshed with the refresh token."""

    def __init__(self, info: Mapping[str, Any], login: Callable[[], Mapping[str, Any]]) -> None:
        psc = info["psc"]
        self._endpoint = psc["issuer"] + "/protocol/openid-connect/token"
        self._client = (psc["client_id"], psc["client_secret"])
        self._login = login
        self._lock = threading.Lock()
        self.access: str | None = None
        self.refresh_token: str | None = None
        self.expires = 0.0
        self.identity = ""

    @property
    def logged_in(self) -> bool:
        return self.refresh_token is not None

    def _set(self, data: Mapping[str, Any]) -> None:
        self.access = str(data["access_token"])
        self.refresh_token = str(data["refresh_token"])
        self.expires = time.time() + float(data.get("expires_in", 60))
        self.identity = str(claims(self.access).get("preferred_username", ""))

    def login(self) -> None:
        """The professional logs in with PSC (the test harness mints the token set)."""
        with self._lock:
            self._set(self._login())

    def current(self) -> str:
        """A usable access token, refreshed when less than half of its life is left."""
        with self._lock:
            if self.access is None:
                raise TokenRejected("not logged in to Pro Santé Connect")
            if time.time() > self.expires - 1.0:
                self._refresh()
            assert self.access is not None
            return self.access

    def fresh(self) -> str:
        """Drop the current access token and get a new one (after AUTHENTICATIONFAILED)."""
        with self._lock:
            self.access = None
            self._refresh()
            assert self.access is not None
            return self.access

    def check(self) -> None:
        """Refresh now: fails with ``invalid_grant`` once the PSC session has ended (ECO.1.2.6)."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        if self.refresh_token is None:
            raise PSCError("not logged in", oauth_error="invalid_grant")
        body = urllib.parse.urlencode({
            "grant_type": "refresh_token", "refresh_token": self.refresh_token,
            "client_id": self._client[0], "client_secret": self._client[1],
        }).encode()
        request = urllib.request.Request(self._endpoint, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                self._set(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            error = json.loads(exc.read() or b"{}").get("error", "")
            if error == "invalid_grant":
                self.access = self.refresh_token = None
            raise PSCError(f"refresh refused: {error}", oauth_error=error) from None
        except OSError as exc:
            raise PSCError(f"PSC unreachable: {exc}", oauth_error="temporarily_unavailable") from None


#: ECO.1.1.7: the last CRL downloaded from each URL, used when the download fails. OpenSSL
#: refuses it once past its nextUpdate, so an unreachable CRL ends in a refusal (fail closed).
_CRLS: dict[str, str] = {}
_CRLS_LOCK = threading.Lock()


def _crl_pems(info: Mapping[str, Any]) -> list[str]:
    out = []
    for url in info.get("crl_urls", ()):
        pem_url = url.removesuffix(".crl") + ".pem"  # the sandbox serves every CRL in DER and PEM
        try:
            with urllib.request.urlopen(pem_url, timeout=5) as response:
                text = response.read().decode("ascii")
            with _CRLS_LOCK:
                _CRLS[pem_url] = text
        except (OSError, UnicodeDecodeError):
            with _CRLS_LOCK:
                text = _CRLS.get(pem_url, "")
        if text:
            out.append(text)
    return out


def tls_context(info: Mapping[str, Any], cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """TLS ≥ 1.2 (ECO.1.1.1), allowed suites (ECO.1.1.3), sandbox IGC roots, optional client certificate.

    The server certificate is checked by OpenSSL in the handshake: chain to the sandbox IGC
    Santé roots only (ECO.1.1.10), validity dates (ECO.1.1.5), host name (RFC 6125), and
    revocation against the CRLs of the whole chain, fetched for each new context (ECO.1.1.6;
    no usable CRL: refused, ECO.1.1.7).
    """
    ctx = ssl.create_default_context(cafile=info["ca_bundle"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    pems = _crl_pems(info)
    if pems:  # none: the handshake fails for want of a CRL
        with tempfile.NamedTemporaryFile("w", suffix=".pem", encoding="ascii") as crls:
            crls.write("".join(pems))
            crls.flush()
            ctx.load_verify_locations(cafile=crls.name)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx
