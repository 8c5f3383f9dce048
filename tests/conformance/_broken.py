"""Deliberately broken variants of the stdlib test LPS: each breaks one rule, and only that one."""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from mssante.cda import SamplePatient, generate_vsm
from mssante.conformance import LookupRef, SendRequest
from mssante.errors import AuthUnavailable, NotAuthorized, TokenRejected
from mssante.message import ComposedMessage, ComposeSettings, Draft, ParsedMessage
from mssante.pdf import render_cda_pdf
from mssante.trace import make_record
from tests.conformance._lps import MINIMAL_PDF, LPSConfig, StdlibLPS
from tests.conformance._lps_net import TLS12_CIPHERS, auth_error, imap_sasl, smtp_sasl, xoauth2


class NoImapStartTLS(StdlibLPS):
    """Authenticates over IMAP in clear (ECO.1.0.2)."""

    def imap_starttls(self, imap: Any) -> None:
        return None


class NoSmtpStartTLS(StdlibLPS):
    """Tries SMTP AUTH without STARTTLS (ECO.1.0.1)."""

    def smtp_starttls(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()

    def smtp_auth(self, smtp: smtplib.SMTP, token: str | None) -> None:
        code, text = smtp.docmd("AUTH", "XOAUTH2" if self.psc else "PLAIN")
        if code != 235:
            raise auth_error(f"{code} {text.decode()}")


class OldTLS(StdlibLPS):
    """Offers TLS 1.1 at most (ECO.1.1.1)."""

    def context(self) -> Any:
        ctx = super().context()
        with warnings.catch_warnings():  # the old versions are deprecated in ssl, rightly
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        return ctx


class NoCertCheck(StdlibLPS):
    """Trusts any server certificate: no chain, expiry, revocation or host name check (ECO.1.1.5-10)."""

    def context(self) -> Any:
        ctx = super().context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _crls_reachable(info: Any) -> bool:
    for url in info.get("crl_urls", ()):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except OSError:
            return False
    return True


class FailOpenWithoutCRL(StdlibLPS):
    """Skips the revocation check when the CRL cannot be downloaded (ECO.1.1.7: fail open)."""

    def context(self) -> Any:
        ctx = super().context()
        if not _crls_reachable(self.cfg.info):
            ctx.verify_flags &= ~ssl.VERIFY_CRL_CHECK_CHAIN
        return ctx


class KeepsNoCRL(StdlibLPS):
    """Keeps no CRL: when the download fails it has none, so every handshake fails (ECO.1.1.7)."""

    def context(self) -> Any:
        if _crls_reachable(self.cfg.info):
            return super().context()
        ctx = ssl.create_default_context(cafile=self.cfg.info["ca_bundle"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(TLS12_CIPHERS)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        if self.cert:
            ctx.load_cert_chain(*self.cert)
        return ctx


class WeakCipher(StdlibLPS):
    """TLS 1.2 with ChaCha20, not in the allowed list (ECO.1.1.3)."""

    def context(self) -> Any:
        ctx = super().context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305")
        return ctx


class WrongPriority(StdlibLPS):
    """Takes the other SRV priority, i.e. the other front (ECO.1.1.9)."""

    def priority(self) -> int:
        return 20 if self.psc else 10


class ImapPlainOnPsc(StdlibLPS):
    """Sends the PSC token with SASL PLAIN instead of XOAUTH2 (ECO.1.2.1)."""

    def imap_auth(self, imap: Any, token: str | None) -> None:
        imap_sasl(imap, "PLAIN", f"\0{self.cfg.bal}\0{token}")


class SmtpUserIsNationalId(StdlibLPS):
    """Puts the professional's national id in XOAUTH2 user= instead of the BAL (ECO.1.2.1)."""

    def smtp_auth(self, smtp: smtplib.SMTP, token: str | None) -> None:
        assert self.tokens is not None
        smtp_sasl(smtp, "XOAUTH2", xoauth2(self.tokens.identity, token or ""))


class ImapLogin(StdlibLPS):
    """BAL APP: IMAP LOGIN instead of AUTHENTICATE PLAIN (SC.MSS/CONF.12)."""

    def imap_auth(self, imap: Any, token: str | None) -> None:
        try:
            imap.login(self.cfg.bal, "unused")
        except imap.error as exc:
            raise auth_error(str(exc)) from None


class SmtpNoClientCert(StdlibLPS):
    """BAL APP: no client certificate on the SMTP connection (SC.MSS/CONF.12)."""

    def smtp_starttls(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        smtp.starttls(context=replace_cert(self, None))
        smtp.ehlo()


def replace_cert(lps: StdlibLPS, cert: tuple[str, str] | None) -> ssl.SSLContext:
    from tests.conformance._lps_net import tls_context

    return tls_context(lps.cfg.info, *(cert or (None, None)))


def other_structure_cert(cfg: LPSConfig) -> LPSConfig:
    """The certificate of another structure's APP BAL."""
    mine = next(b for b in cfg.info["bals"] if b["address"] == cfg.bal)
    other = next(b for b in cfg.info["bals"] if b.get("cert") and b["structure_id"] != mine["structure_id"])
    return replace(cfg, cert=(other["cert"], other["key"]))


class OtherStructureCert(StdlibLPS):
    """BAL APP: presents the ORG AUTH_CLI certificate of another structure."""

    def __init__(self, cfg: LPSConfig) -> None:
        super().__init__(other_structure_cert(cfg))


class SmtpAuthInClear(StdlibLPS):
    """Sends its SASL initial response before STARTTLS, then goes on with TLS (ECO.1.2.1)."""

    def smtp_starttls(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        secret = xoauth2(self.cfg.bal, self.tokens.current()) if self.tokens else f"\0{self.cfg.bal}\0"
        smtp.docmd("AUTH", ("XOAUTH2 " if self.psc else "PLAIN ") + base64.b64encode(secret.encode()).decode())
        super().smtp_starttls(smtp)


class RetryLoop(StdlibLPS):
    """After AUTHENTICATIONFAILED, tries again and again with the same token."""

    def authenticate(self, do: Callable[[str | None], None]) -> None:
        if self.tokens is not None and not self.tokens.logged_in:
            self.tokens.login()
        token = self.tokens.current() if self.tokens else None
        for _ in range(6):
            try:
                do(token)
                return
            except TokenRejected:
                time.sleep(0.02)
        raise TokenRejected("gave up")


class RetryAfterAuthz(StdlibLPS):
    """Tries again after AUTHORIZATIONFAILED."""

    def authenticate(self, do: Callable[[str | None], None]) -> None:
        for _ in range(3):
            try:
                super().authenticate(do)
                return
            except NotAuthorized:
                time.sleep(0.05)
        raise NotAuthorized("gave up")


class TightLoop(StdlibLPS):
    """After UNAVAILABLE, reconnects at once, in a loop (ECO.1.2.3)."""

    def open_session(self, fresh: bool) -> None:
        for _ in range(40):
            try:
                super().open_session(fresh)
                return
            except AuthUnavailable:
                fresh = False
                time.sleep(0.01)
        raise AuthUnavailable("gave up")


class NoReconnect(StdlibLPS):
    """Does not reopen its IMAP session after the operator ended it (ECO.1.2.7)."""

    def reconnects(self) -> bool:
        return False


class NoNil(StdlibLPS):
    """Sends without X-MSS-NIL (ECO.2.4.3)."""

    def tamper(self, message: EmailMessage) -> None:
        del message["X-MSS-NIL"]


class WrongCodeCDA(StdlibLPS):
    """X-MSS-CODECDA that is not the code of the CDA in the archive (ECO.2.4.1)."""

    def tamper(self, message: EmailMessage) -> None:
        if message["X-MSS-CODECDA"] is not None:
            message.replace_header("X-MSS-CODECDA", "99999-9")


class WrongINS(StdlibLPS):
    """X-MSS-INS that contradicts the archive (ECO.2.4.2)."""

    def tamper(self, message: EmailMessage) -> None:
        value = message["X-MSS-INS"]
        if value is not None:
            message.replace_header("X-MSS-INS", "N" if str(value) == "O" else "O")


class PlainSubject(StdlibLPS):
    """A document message whose subject ignores ECO.2.1.3."""

    def tamper(self, message: EmailMessage) -> None:
        if str(message["Subject"]).startswith("XDM/1.0/DDM+"):
            message.replace_header("Subject", "Résultats de biologie")


class NoPdf(StdlibLPS):
    """Sends the IHE_XDM archive without its PDF companion (ECO.2.1.1)."""

    def draft(self, request: SendRequest) -> tuple[Draft, ComposeSettings]:
        draft, settings = super().draft(request)
        return replace(draft, pdfs=()), settings


class Latin1Body(StdlibLPS):
    """Writes the text part in ISO-8859-1 (ECO.2.2.3)."""

    def tamper(self, message: EmailMessage) -> None:
        part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        assert isinstance(part, EmailMessage)
        part.set_content("Bonjour, résultats ci-joints. Cordialement.\n", charset="iso-8859-1", cte="8bit")


class NoMdnRequest(StdlibLPS):
    """Cannot ask for a read receipt (ECO.2.3.2)."""

    def draft(self, request: SendRequest) -> tuple[Draft, ComposeSettings]:
        return super().draft(replace(request, request_mdn=False))


class NoMdn(StdlibLPS):
    """Never answers read-receipt requests (ECO.3.1.6)."""

    def answer_mdns(self) -> None:
        self.pending_mdns.clear()


class HeadersOnlyReader(StdlibLPS):
    """Only fetches headers: the document is never downloaded."""

    def body_item(self) -> str:
        return "(BODY.PEEK[HEADER])"


class NoSentCopy(StdlibLPS):
    """Does not file sent messages in Sent."""

    def file_in_sent(self, raw: bytes) -> None:
        return None


class BadTraces(StdlibLPS):
    """Traces the raw SASL exchange (token included) and no author (ECO.4.1.2, ECO.1.2.5)."""

    def trace(self, action: Any, request: str, response: str, ok: bool) -> None:
        if self.cfg.trace_file is None:
            return
        token = self.tokens.access if self.tokens else ""
        line = {"at": datetime.now().astimezone().isoformat(), "author": "", "bal": self.cfg.bal,
                "action": action, "request": f"AUTHENTICATE XOAUTH2 {xoauth2(self.cfg.bal, token or '')}",
                "response": response, "ok": ok}
        with self.cfg.trace_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


class IgnoresPscLogout(StdlibLPS):
    """Keeps its sessions open after the PSC session ended (ECO.1.2.6)."""

    def on_psc_ended(self) -> None:
        return None


class NoTraceFile(StdlibLPS):
    """Writes no trace at all: the trace file is never created (ECO.4.1.1)."""

    def __init__(self, cfg: LPSConfig) -> None:
        super().__init__(replace(cfg, trace_file=None))


class EmptyTraceFile(StdlibLPS):
    """Creates its trace file and writes nothing in it (ECO.4.1.1)."""

    def __init__(self, cfg: LPSConfig) -> None:
        if cfg.trace_file is not None:
            cfg.trace_file.touch()
        super().__init__(replace(cfg, trace_file=None))


class SmtpAuthOneLine(StdlibLPS):
    """Sends ``AUTH XOAUTH2 <initial response>`` on one line, over 512 octets (as Jakarta Mail did; RFC 4954 §4)."""

    replies: list[str] = []  # noqa: RUF012 - the sandbox's answers, read by the test

    def smtp_auth(self, smtp: smtplib.SMTP, token: str | None) -> None:
        payload = base64.b64encode(xoauth2(self.cfg.bal, token or "").encode()).decode()
        code, text = smtp.docmd("AUTH", f"XOAUTH2 {payload}")
        SmtpAuthOneLine.replies.append(f"{code} {text.decode()}")
        if code != 235:
            raise auth_error(f"{code} {text.decode()}")


class ImapOAuthBearer(StdlibLPS):
    """IMAP AUTHENTICATE OAUTHBEARER (RFC 7628) where the API LPS expects XOAUTH2."""

    def imap_auth(self, imap: Any, token: str | None) -> None:
        imap_sasl(imap, "OAUTHBEARER", f"n,a={self.cfg.bal},\x01auth=Bearer {token}\x01\x01")


class ConnectsByAddress(StdlibLPS):
    """Opens TLS to the SRV target's IP address (no SNI) and checks the certificate for that address."""

    def imap_starttls(self, imap: Any) -> None:
        imap.host = imap._address  # imaplib: server_hostname = host; an IP literal sends no SNI
        super().imap_starttls(imap)

    def smtp_starttls(self, smtp: smtplib.SMTP) -> None:
        smtp._host = smtp._address  # type: ignore[attr-defined]  # smtplib: server_hostname = _host
        super().smtp_starttls(smtp)


class WrongNil(StdlibLPS):
    """X-MSS-NIL of the right shape, but not the product reference declared to the suite (ECO.2.4.3)."""

    def tamper(self, message: EmailMessage) -> None:
        message.replace_header("X-MSS-NIL", "NOT-A-CONVERGENCE-NIL")


class BadMessageId(StdlibLPS):
    """A Message-ID without angle brackets nor domain (ECO.2.2.1, RFC 5322 §3.6.4)."""

    def tamper(self, message: EmailMessage) -> None:
        message.replace_header("Message-ID", f"{time.time_ns()}")


class NoThreading(StdlibLPS):
    """Replies without In-Reply-To nor References (ECO.2.2.2)."""

    def tamper(self, message: EmailMessage) -> None:
        del message["In-Reply-To"]
        del message["References"]


class MdnWithoutThreading(StdlibLPS):
    """Read receipts without In-Reply-To nor References (ECO.2.2.2 on MDNs)."""

    def submit(self, raw: bytes, sender: str, recipients: tuple[str, ...],
               composed: ComposedMessage | None = None) -> str:
        if composed is not None and composed.message.get_content_type() == "multipart/report":
            del composed.message["In-Reply-To"]
            del composed.message["References"]
            raw = composed.to_bytes()
        return super().submit(raw, sender, recipients, composed)


class NoSenderLabel(StdlibLPS):
    """From carries the bare address, no label (ECO.2.2.7)."""

    def tamper(self, message: EmailMessage) -> None:
        message.replace_header("From", self.cfg.bal)


class NoDsn(StdlibLPS):
    """Cannot ask for a delivery status notification (ECO.2.3.1)."""

    def draft(self, request: SendRequest) -> tuple[Draft, ComposeSettings]:
        return super().draft(replace(request, dsn=False))


class PatientAddressFromName(StdlibLPS):
    """Writes to the patient at an address made of the name, not the INS (ECO.2.2.6)."""

    def recipient(self, request: SendRequest) -> str:
        if request.patient is not None:
            return f"{request.patient.family_name.lower()}@patient.mssante.fr"
        return super().recipient(request)


class NoEndOfExchange(StdlibLPS):
    """Cannot set X-MSS-MES: FIN on a message to a patient (ECO.2.2.8)."""

    def draft(self, request: SendRequest) -> tuple[Draft, ComposeSettings]:
        return super().draft(replace(request, end_of_exchange=False))


class NoAnnuaireLookup(StdlibLPS):
    """Writes to an address it already knows, without searching the Annuaire Santé (ECO.3.1.4)."""

    def lookup(self, ref: LookupRef) -> str:
        return next(str(b["address"]) for b in self.cfg.info["bals"] if ref.national_id in b.get("holders", ()))


class LoginAgain(StdlibLPS):
    """Renews its PSC tokens by asking the professional to log in again, never with the refresh token."""

    def __init__(self, cfg: LPSConfig) -> None:
        super().__init__(cfg)
        if self.tokens is not None:
            tokens = self.tokens

            def login_again() -> None:
                tokens._set(tokens._login())

            tokens._refresh = login_again  # type: ignore[method-assign]


class NotPdfA(StdlibLPS):
    """Joins a bare PDF 1.4 (no XMP PDF/A identification, no output intent) instead of a PDF/A-1 (ECO.2.1.1)."""

    def pdf(self, cda: bytes, now: datetime) -> bytes:
        return MINIMAL_PDF


class PdfOfAnotherPatient(StdlibLPS):
    """Joins the PDF of another patient's document, not the one rendered from the archive's CDA (ECO.2.1.5)."""

    def pdf(self, cda: bytes, now: datetime) -> bytes:
        other = SamplePatient(ins="180012B12345678", birth_family="DURAND", given_names="PAUL")
        return render_cda_pdf(generate_vsm(effective_time=now, patient=other), now=now)


class MisreadPatient(StdlibLPS):
    """Reads the message but attaches the documents to a patient without the archive's INS (ECO.2.1.2)."""

    def understand(self, parsed: ParsedMessage) -> dict[str, Any]:
        out = super().understand(parsed)
        if isinstance(out.get("patient"), dict):
            out["patient"] = dict(out["patient"], ins=None)
        return out


class ShowsXdmPrefix(StdlibLPS):
    """Shows the raw subject, XDM/1.0/DDM+ prefix included (ECO.3.1.3)."""

    def understand(self, parsed: ParsedMessage) -> dict[str, Any]:
        return dict(super().understand(parsed), subject_shown=parsed.subject or "")


class SilentReader(StdlibLPS):
    """Reads its messages but never says what it understood of them."""

    def read_new(self) -> list[dict[str, Any]]:
        super().read_new()
        return []


class TracesNoDelete(StdlibLPS):
    """Traces everything but deletions (the ANS FAQ names sending and deleting as the minimum; ECO.4.1.1)."""

    def trace(self, action: Any, request: str, response: str, ok: bool) -> None:
        if action not in ("delete", "expunge"):
            super().trace(action, request, response, ok)


class TracesOtherBal(StdlibLPS):
    """Traces under a local account name instead of the BAL: no trace matches the operator's sessions."""

    def trace(self, action: Any, request: str, response: str, ok: bool) -> None:
        if self.sink is not None:
            self.sink.emit(make_record(author="poste-12", bal="compte-local", action=action, request=request,
                                       response=response or "-", ok=ok))


class NoPatientKind(StdlibLPS):
    """Shows every message as a professional's, a patient's included (ECO.3.1.1)."""

    def understand(self, parsed: ParsedMessage) -> dict[str, Any]:
        return dict(super().understand(parsed), sender_kind="professional")
