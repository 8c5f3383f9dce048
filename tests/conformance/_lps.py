"""A small but *correct* LPS written with imaplib/smtplib and mssante.message, as an LPSDriver.

It stands in for the builtin driver of :mod:`mssante.client` until that exists. Behaviour:

* SRV discovery, priority 10 (PER/ORG) or 20 (APP); STARTTLS with TLS ≥ 1.2 and the allowed
  suites; XOAUTH2 with ``user=<BAL>`` and a PSC token, or an ORG AUTH_CLI certificate + PLAIN;
* AUTHENTICATIONFAILED: fresh token (refresh grant), one retry; AUTHORIZATIONFAILED: stop;
  UNAVAILABLE: retry in the background with an exponential back-off;
* a watcher thread keeps the IMAP session (NOOP), reopens it after BYE or a drop (ECO.1.2.7),
  checks the PSC session (refresh) and closes everything when it ended (ECO.1.2.6);
* sends documents (CR de biologie / VSM in IHE_XDM + PDF), APPENDs them to Sent, reads new
  messages (BODY[]), answers MDN requests, writes mssante.trace JSON Lines without secrets.

Every step is a method, so tests/conformance/_broken.py can break exactly one behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mssante.annuaire import AnnuaireClient
from mssante.cda import generate_cr_bio, generate_vsm, parse_cda_header
from mssante.conformance import LookupRef, Profile, SendRequest
from mssante.conformance._builtin_parts import understood_of
from mssante.errors import AuthUnavailable, MssanteError, NotAuthorized, PSCError, TokenRejected
from mssante.message import (
    ComposedMessage,
    ComposeSettings,
    Draft,
    DSNRequest,
    ParsedMessage,
    PdfCompanion,
    Sender,
    compose_message,
    generate_mdn,
    parse_message,
    pdf_filename,
)
from mssante.pdf import render_cda_pdf
from mssante.trace import JSONLinesSink, make_record
from mssante.xdm import build_archive, read_archive
from tests.conformance._lps_net import (
    IMAP,
    SMTP,
    Endpoint,
    Tokens,
    discover,
    imap_sasl,
    smtp_sasl,
    tls_context,
    xoauth2,
)

MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
               b"trailer<</Root 1 0 R>>\n%%EOF\n")


@dataclass
class LPSConfig:
    """What the test LPS is configured with (by the person installing it, in real life)."""

    info: Mapping[str, Any]
    bal: str
    profile: Profile
    login: Callable[[], Mapping[str, Any]] | None = None
    trace_file: Path | None = None
    product_reference: str = "DEV000042"
    keepalive: float = 0.15
    psc_check: float = 0.5
    backoff: float = 0.4
    backoff_max: float = 0.8
    cert: tuple[str, str] | None = None
    errors: list[str] = field(default_factory=list)


class StdlibLPS:
    """The LPS; its blocking methods run in worker threads (see :class:`StdlibDriver`)."""

    def __init__(self, cfg: LPSConfig) -> None:
        self.cfg = cfg
        self.psc = cfg.profile is Profile.PER_ORG
        self.tokens = Tokens(cfg.info, cfg.login) if self.psc and cfg.login else None
        bal_info = next(b for b in cfg.info["bals"] if b["address"].lower() == cfg.bal.lower())
        self.cert = cfg.cert or ((bal_info["cert"], bal_info["key"]) if bal_info.get("cert") else None)
        self.author = "" if self.psc else str(bal_info.get("structure_id") or "")
        self.sink = JSONLinesSink(cfg.trace_file) if cfg.trace_file else None
        self.lock = threading.RLock()
        self.imap: imaplib.IMAP4 | None = None
        self.want = False
        self.next_try = 0.0
        self.delay = cfg.backoff
        self.pending_mdns: list[ParsedMessage] = []
        self.read_messages: dict[str, ParsedMessage] = {}  # Message-ID -> message read (replies thread on it)
        self.stop = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="test-lps-watcher", daemon=True)
        self.watcher.start()

    # ------------------------------------------------------------------ hooks for variants
    def priority(self) -> int:
        return 10 if self.psc else 20

    def context(self) -> Any:
        return tls_context(self.cfg.info, *(self.cert or (None, None)))

    def imap_starttls(self, imap: imaplib.IMAP4) -> None:
        imap.starttls(ssl_context=self.context())

    def smtp_starttls(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        smtp.starttls(context=self.context())
        smtp.ehlo()

    def imap_auth(self, imap: imaplib.IMAP4, token: str | None) -> None:
        if self.psc:
            imap_sasl(imap, "XOAUTH2", xoauth2(self.cfg.bal, token or ""))
        else:
            imap_sasl(imap, "PLAIN", f"\0{self.cfg.bal}\0")

    def smtp_auth(self, smtp: smtplib.SMTP, token: str | None) -> None:
        if self.psc:
            smtp_sasl(smtp, "XOAUTH2", xoauth2(self.cfg.bal, token or ""))
        else:
            smtp_sasl(smtp, "PLAIN", f"\0{self.cfg.bal}\0")

    def authenticate(self, do: Callable[[str | None], None]) -> None:
        """AUTHENTICATIONFAILED: a fresh token (PSC) and one more try; any other refusal is final."""
        if self.tokens is not None and not self.tokens.logged_in:
            self.tokens.login()  # the professional logs in with PSC when the LPS needs it
        token = self.tokens.current() if self.tokens else None
        try:
            do(token)
        except TokenRejected:
            do(self.tokens.fresh() if self.tokens else None)

    def reconnects(self) -> bool:
        return True

    def on_psc_ended(self) -> None:
        self.close_all()

    def body_item(self) -> str:
        return "(BODY[])"

    def file_in_sent(self, raw: bytes) -> None:
        with self.lock:
            imap = self.imap or self._open()
            imap.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(time.time()), raw)

    def compose(self, request: SendRequest) -> ComposedMessage:
        draft, settings = self.draft(request)
        composed = compose_message(draft, settings=settings)
        self.tamper(composed.message)
        return composed

    def recipient(self, request: SendRequest) -> str:
        """The address to write to: given, built from the patient's INS (ECO.2.2.6), or found in the Annuaire."""
        if request.patient is not None:
            return f"{request.patient.ins}@patient.mssante.fr"
        if request.lookup is not None:
            return self.lookup(request.lookup)
        return request.to

    def lookup(self, ref: LookupRef) -> str:
        """ECO.3.1.4: the practitioner's MSSanté address (BAL PER) from the Annuaire Santé, by RPPS and name."""

        async def search() -> str:
            async with AnnuaireClient.from_sandbox(self.cfg.info, timeout=10) as annuaire:
                page = await annuaire.search_practitioners(identifier=ref.national_id, name=ref.family_name)
            for pro in page.entries:
                for box in pro.mailboxes:
                    if box.kind == "PER":
                        return box.address
            raise MssanteError(f"no BAL PER for {ref.given_name} {ref.family_name} in the Annuaire Santé")

        return asyncio.run(search())

    def tamper(self, message: EmailMessage) -> None:
        """A correct LPS sends what it composed."""

    def draft(self, request: SendRequest) -> tuple[Draft, ComposeSettings]:
        now = datetime.now(UTC).replace(microsecond=0)
        sender = Sender(address=self.cfg.bal, label="Dr_Marie_CURIE" if self.psc else "Hopital test - DPI")
        text = "Bonjour,\n\nVeuillez trouver ci-joint le document. Cordialement — équipe de test.\n"
        settings = ComposeSettings(product_reference=self.cfg.product_reference)
        to = (self.recipient(request),)
        dsn = DSNRequest(notify=("SUCCESS", "FAILURE")) if request.dsn else None
        if request.in_reply_to is not None:
            parent = self.read_messages.get(request.in_reply_to)
            refs = (*(parent.references if parent else ()), request.in_reply_to)
            return Draft(sender=sender, to=to, subject="Re: test de conformité", text=text, dsn=dsn,
                         in_reply_to=request.in_reply_to, references=refs), settings
        if request.document is None:
            return Draft(sender=sender, to=to, subject="Message de test de conformité", text=text,
                         request_mdn=request.request_mdn, dsn=dsn, end_of_exchange=request.end_of_exchange), settings
        cda = (generate_cr_bio if request.document == "crbio" else generate_vsm)(effective_time=now)
        header = parse_cda_header(cda)
        patient = header.patient
        assert patient is not None and header.code is not None
        name = pdf_filename(act_date=now.date(), document_type=header.code.display_name or "Document",
                            family_name=patient.birth_family or "", given_name=patient.first_given or "")
        return Draft(sender=sender, to=to, text=text, xdm_archive=build_archive([cda], now=now),
                     pdfs=(PdfCompanion(content=self.pdf(cda, now), filename=name),),
                     request_mdn=request.request_mdn, dsn=dsn), settings

    def pdf(self, cda: bytes, now: datetime) -> bytes:
        """ECO.2.1.5: the PDF/A-1 rendered from the CDA of the archive."""
        return render_cda_pdf(cda, now=now)

    # ------------------------------------------------------------------ traces (ECO.4.1.x)
    def trace(self, action: Any, request: str, response: str, ok: bool) -> None:
        if self.sink is not None:
            author = self.tokens.identity if self.tokens else self.author
            self.sink.emit(make_record(author=author or "?", bal=self.cfg.bal, action=action, request=request,
                                       response=response or "-", ok=ok))

    # ------------------------------------------------------------------ sessions
    def _open(self) -> imaplib.IMAP4:
        imap = IMAP(self.endpoint_imap())
        try:
            self.imap_starttls(imap)
            self.authenticate(lambda token: self.imap_auth(imap, token))
        except BaseException:
            with contextlib.suppress(Exception):
                imap.shutdown()
            raise
        self.trace("authenticate", "AUTHENTICATE", "OK", True)
        self.imap = imap
        return imap

    def open_session(self, fresh: bool) -> None:
        with self.lock:
            if fresh:
                self._logout()
            self.want = True
            if self.imap is not None:
                return
            try:
                self._open()
                self.delay = self.cfg.backoff
            except AuthUnavailable:
                self.next_try = time.monotonic() + self.delay
                self.delay = min(self.delay * 2, self.cfg.backoff_max)
                raise
            except (TokenRejected, NotAuthorized, PSCError):
                self.want = False
                raise
            except ssl.SSLError:  # the operator's certificate is refused: final, a person must look (ECO.1.1.x)
                self.want = False
                raise

    def _logout(self) -> None:
        imap, self.imap = self.imap, None
        if imap is not None:
            try:
                imap.logout()
            except Exception:
                with contextlib.suppress(Exception):
                    imap.shutdown()
            self.trace("logout", "LOGOUT", "BYE", True)

    def close_all(self) -> None:
        with self.lock:
            self.want = False
            self._logout()

    def _watch(self) -> None:
        last_check = time.monotonic()
        while not self.stop.wait(self.cfg.keepalive):
            try:
                if self.tokens is not None and self.tokens.logged_in and \
                        time.monotonic() - last_check >= self.cfg.psc_check:
                    last_check = time.monotonic()
                    try:
                        self.tokens.check()
                    except PSCError as exc:
                        if exc.oauth_error == "invalid_grant":
                            self.on_psc_ended()
                self._keepalive()
            except Exception as exc:  # a test LPS must not die silently
                self.cfg.errors.append(f"{type(exc).__name__}: {exc}")

    def _keepalive(self) -> None:
        with self.lock:
            if self.imap is not None:
                try:
                    self.imap.noop()
                    return
                except (imaplib.IMAP4.abort, OSError):
                    with contextlib.suppress(Exception):
                        self.imap.shutdown()
                    self.imap = None
                    if not self.reconnects():
                        self.want = False
                        return
            if not self.want or time.monotonic() < self.next_try:
                return
            if self.tokens is not None and not self.tokens.logged_in:
                self.want = False
                return
            try:
                self._open()
                self.delay = self.cfg.backoff
            except AuthUnavailable:
                self.next_try = time.monotonic() + self.delay
                self.delay = min(self.delay * 2, self.cfg.backoff_max)
            except (MssanteError, ssl.SSLError):
                self.want = False

    # ------------------------------------------------------------------ messages
    def submit(self, raw: bytes, sender: str, recipients: tuple[str, ...],
               composed: ComposedMessage | None = None) -> str:
        smtp = SMTP(self.endpoint_smtp())
        try:
            self.smtp_starttls(smtp)
            self.authenticate(lambda token: self.smtp_auth(smtp, token))
            dsn = composed.dsn if composed is not None else None
            if dsn is None:
                smtp.sendmail(sender, list(recipients), raw)
            else:  # RFC 3461: smtplib gives the same RCPT parameters to every recipient
                smtp.sendmail(sender, list(recipients), raw, mail_options=list(dsn.mail_options),
                              rcpt_options=list(dsn.for_recipient(recipients[0])))
            code, text = smtp.noop()
            return f"{code} {text.decode('ascii', 'replace')}"
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
            smtp.close()

    def endpoint_imap(self) -> Endpoint:
        return discover(self.cfg.info, "imap", self.priority())

    def endpoint_smtp(self) -> Endpoint:
        return discover(self.cfg.info, "submission", self.priority())

    def send(self, request: SendRequest) -> None:
        composed = self.compose(request)
        raw, message_id, to = composed.to_bytes(), composed.message_id, composed.recipients
        what = f"MAIL FROM:<{self.cfg.bal}> RCPT TO:<{'>,<'.join(to)}> {message_id}"
        try:
            answer = self.submit(raw, self.cfg.bal, to, composed)
        except (smtplib.SMTPException, OSError, MssanteError) as exc:
            self.trace("send", what, str(exc), False)
            raise
        self.trace("send", what, answer, True)
        self.file_in_sent(raw)
        self.trace("append", f"APPEND Sent {message_id}", "OK", True)

    def read_new(self) -> list[dict[str, Any]]:
        """Read the unseen messages; what was understood of each (patient, documents, subject shown)."""
        understood: list[dict[str, Any]] = []
        with self.lock:
            imap = self.imap or self._open()
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "UNSEEN")
            for uid in data[0].split():
                _, parts = imap.uid("FETCH", uid, self.body_item())
                raw = next((p[1] for p in parts if isinstance(p, tuple)), b"")
                self.trace("fetch", f"UID FETCH {uid.decode()} {self.body_item()}", "OK", True)
                try:
                    parsed = parse_message(raw)
                except MssanteError:
                    continue
                if parsed.message_id:
                    self.read_messages[parsed.message_id] = parsed
                understood.append(self.understand(parsed))
                if parsed.mdn_requested and parsed.report is None:
                    self.pending_mdns.append(parsed)
        return understood

    def understand(self, parsed: ParsedMessage) -> dict[str, Any]:
        """Integrate the documents (ECO.2.1.2: the patient from METADATA.XML) and say what was understood."""
        for part in parsed.xdm_attachments:
            read_archive(part.content)  # "integrate" the document: the archive must be readable
        return understood_of(parsed)

    def delete(self, message_id: str) -> None:
        """Delete one INBOX message: flag it \\Deleted and expunge (traced, ECO.4.1.1)."""
        with self.lock:
            imap = self.imap or self._open()
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "HEADER", "Message-ID", message_id)
            for uid in data[0].split():
                typ, _ = imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
                self.trace("delete", f"UID STORE {uid.decode()} +FLAGS (\\Deleted) {message_id}", typ, typ == "OK")
            typ, _ = imap.expunge()
            self.trace("expunge", "EXPUNGE", typ, typ == "OK")

    def answer_mdns(self) -> None:
        settings = ComposeSettings(product_reference=self.cfg.product_reference)
        while self.pending_mdns:
            original = self.pending_mdns.pop(0)
            mdn = generate_mdn(original, reporter=self.cfg.bal, settings=settings)
            # RFC 8098 §3 prefers a null reverse path; the sandbox (like operators) wants the BAL.
            answer = self.submit(mdn.to_bytes(), self.cfg.bal, mdn.recipients, mdn)
            self.trace("send", f"MDN for {original.message_id}", answer, True)

    def shutdown(self) -> None:
        self.stop.set()
        self.watcher.join(5)
        self.close_all()


class StdlibDriver:
    """The :class:`~mssante.conformance.LPSDriver` face of :class:`StdlibLPS` (actions in threads)."""

    def __init__(self, lps: StdlibLPS) -> None:
        self.lps = lps

    @property
    def name(self) -> str:
        return f"LPS de test stdlib ({type(self.lps).__name__})"

    async def inform(self, text: str) -> None:
        return None

    async def open_session(self, *, fresh: bool = False) -> None:
        await asyncio.to_thread(self.lps.open_session, fresh)

    async def send_message(self, request: SendRequest) -> None:
        await asyncio.to_thread(self.lps.send, request)

    async def read_new_messages(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.lps.read_new)

    async def delete_message(self, message_id: str) -> None:
        await asyncio.to_thread(self.lps.delete, message_id)

    async def answer_mdns(self) -> None:
        await asyncio.to_thread(self.lps.answer_mdns)

    async def close(self) -> None:
        await asyncio.to_thread(self.lps.shutdown)
