"""The builtin LPS of the conformance suite: :mod:`mssante.client` behind the :class:`LPSDriver` protocol.

:func:`create_driver` is the factory :func:`mssante.conformance.load_builtin_driver` looks up
(``mssante conformance run --client builtin``). The driver is a thin LPS built only on the
public client library; everything the suite judges comes from the library's own behaviour:

* **discovery**: :class:`~mssante.discovery.DNSPythonResolver` on the sandbox DNS, so the
  SRV records choose the front (priority 10 PSC for PER/ORG, 20 AUTH_CLI for APP), and the
  same resolver gives the SRV targets' addresses (the certificate is checked against the
  target name);
* **trust**: :class:`~mssante.client.TrustSettings` with the sandbox's IGC Santé CA bundle and
  revocation required (CRLs downloaded from the certificates' distribution points, one
  :class:`~mssante.trust.CRLCache` for the whole run);
* **credentials**: a :class:`~mssante.psc.PSCSession` (the professional's PSC login through
  :attr:`DriverSetup.login`, or CIBA on the sandbox's PSC) for PER/ORG; the structure's ORG
  AUTH_CLI :class:`~mssante.credentials.ClientCertificate` for APP;
* **sessions**: one :class:`~mssante.client.Mailbox` at a time under a
  :class:`~mssante.client.SessionSupervisor`, whose watch keeps an IMAP session open (IDLE),
  reopens it after ``BYE`` or a drop (ECO.1.2.7) and stops on what a reconnection cannot fix;
  the retry rules of ``AUTHENTICATIONFAILED`` / ``AUTHORIZATIONFAILED`` / ``UNAVAILABLE`` and
  the closing of every session when the PSC session ends (ECO.1.2.6) are the library's; the
  supervisor's ``psc_check`` (every :attr:`DriverTuning.psc_check` seconds) reveals the end of
  a PSC session when no back-channel logout reaches the LPS and the IMAP session is idle;
* **messages**: :class:`~mssante.message.Draft` composed by :meth:`Mailbox.send` (X-MSS
  headers, XDM subject, PDF companion rendered by :func:`mssante.pdf.render_cda_pdf`), the
  Sent copy APPENDed by the mailbox, MDNs from :func:`mssante.message.generate_mdn`; replies
  threaded on the message read (ECO.2.2.2), DSN requests (ECO.2.3.1), patients written to at
  ``<INS>@patient.mssante.fr`` (ECO.2.2.6), recipients found with
  :class:`~mssante.annuaire.AnnuaireClient` (ECO.3.1.4);
* **traces**: :class:`~mssante.trace.JSONLinesSink` on :attr:`DriverSetup.trace_file`.

The driver adds no glue of its own: only its timing (:class:`DriverTuning`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mssante._version import __version__
from mssante.client import (
    Backoff,
    BALKind,
    ConnectionSettings,
    Mailbox,
    MailboxOptions,
    SessionSupervisor,
    SupervisorEvent,
    TrustSettings,
)
from mssante.conformance import DriverSetup, LPSDriver, Profile, SendRequest
from mssante.conformance._builtin_parts import (
    bal_entry,
    compose_draft,
    lookup_address,
    psc_login,
    sender_of,
    understood_of,
)
from mssante.credentials import ClientCertificate
from mssante.discovery import DNSPythonResolver
from mssante.errors import ConfigError, ConnectError, MssanteError, UsageError
from mssante.message import ComposeSettings, Draft, DSNRequest, ParsedMessage, generate_mdn, patient_address
from mssante.psc import PSCClient, PSCSession, PSCSettings
from mssante.trace import JSONLinesSink, TraceSink
from mssante.trust import CRLCache

__all__ = ["ClientDriver", "DriverTuning", "create_driver"]

_Outcome = tuple[Literal["connected", "retrying", "failed"], BaseException | None, str]


@dataclass(frozen=True, kw_only=True)
class DriverTuning:
    """Timing of the builtin LPS. Defaults suit a run at ``--time-scale 1``; tests shorten them.

    Attributes:
        backoff: the mailboxes' retry delays (``[UNAVAILABLE]``, reconnections). The default
            keeps retries more than one second apart, the suite's threshold for a tight loop.
        psc_check: seconds between two checks that the PSC access token is current (PER/ORG).
        open_timeout: how long :meth:`ClientDriver.open_session` waits for a first outcome.
        login_timeout: how long a CIBA login may take when no ``login`` is given.
        poll_interval: IMAP polling interval when IDLE is not available.
        connect_timeout: TCP connect + STARTTLS + handshake bound, in seconds.
        command_timeout: the longest wait for one IMAP/SMTP answer.

    Raises:
        UsageError: a non-positive duration.
    """

    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.5, maximum=30.0, jitter=0.2, attempts=3))
    psc_check: float = 5.0
    open_timeout: float = 60.0
    login_timeout: float = 180.0
    poll_interval: float = 30.0
    connect_timeout: float = 15.0
    command_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("psc_check", "open_timeout", "login_timeout", "poll_interval", "connect_timeout",
                     "command_timeout"):
            if getattr(self, name) <= 0:
                raise UsageError(f"DriverTuning.{name} must be > 0")


def create_driver(setup: DriverSetup, *, tuning: DriverTuning | None = None) -> LPSDriver:
    """Build the builtin LPS for ``setup`` (the factory behind ``--client builtin``).

    Nothing is connected yet: the first :meth:`ClientDriver.open_session` logs in and connects.

    Raises:
        ConfigError: ``setup.info`` lacks what the driver needs (the BAL, the CA bundle, the
            DNS, PSC for a PER/ORG BAL, the certificate of a BAL APP).
        UsageError: the BAL's kind does not match ``setup.profile``.
    """
    return ClientDriver(setup, tuning or DriverTuning())


class ClientDriver:
    """The builtin LPS: :mod:`mssante.client` driven by the conformance suite (see the module doc).

    Raises:
        ConfigError: ``setup.info`` lacks what the driver needs.
        UsageError: the BAL's kind does not match ``setup.profile``.
    """

    def __init__(self, setup: DriverSetup, tuning: DriverTuning) -> None:
        """Read the sandbox description; connect nothing yet.

        Raises:
            ConfigError: ``setup.info`` lacks the BAL, the CA bundle, the DNS, PSC or the certificate.
            UsageError: the BAL's kind does not match ``setup.profile``.
        """
        info = setup.info
        entry = bal_entry(info, setup.bal)
        kind = str(entry.get("kind", ""))
        if kind not in ("PER", "ORG", "APP"):
            raise ConfigError(f"{setup.bal}: unknown BAL kind {kind!r}")
        if (kind == "APP") != (setup.profile is Profile.APP):
            raise UsageError(f"{setup.bal} is a BAL {kind}; profile {setup.profile.value} does not test it")
        try:
            ca_bundle = Path(str(info["ca_bundle"]))
            self._resolver = DNSPythonResolver(nameservers=[str(info["dns"]["host"])], port=int(info["dns"]["port"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"sandbox.json lacks the CA bundle or the DNS: {exc}") from exc
        self._setup = setup
        self._tuning = tuning
        self._kind: BALKind = "APP" if kind == "APP" else "PER" if kind == "PER" else "ORG"
        self._entry = entry
        self._certificate: ClientCertificate | None = None
        self._psc: PSCClient | None = None
        if self._kind == "APP":
            if not entry.get("cert") or not entry.get("key"):
                raise ConfigError(f"{setup.bal}: the sandbox gives no ORG AUTH_CLI certificate for this BAL APP")
            self._certificate = ClientCertificate(cert=Path(str(entry["cert"])), key=Path(str(entry["key"])))
        else:
            self._psc = PSCClient(PSCSettings.from_sandbox(info))
        self._trust = TrustSettings(ca_bundle=ca_bundle, crls=CRLCache())
        self._traces: TraceSink | None = JSONLinesSink(setup.trace_file) if setup.trace_file is not None else None
        self._session: PSCSession | None = None
        self._box: Mailbox | None = None
        self._supervisor = SessionSupervisor(on_event=self._on_event, backoff=tuning.backoff,
                                             psc_check=tuning.psc_check)
        self._started = False
        self._opening: asyncio.Future[_Outcome] | None = None
        self._lock = asyncio.Lock()
        self._pending_mdns: list[ParsedMessage] = []
        self._read: dict[str, ParsedMessage] = {}  # Message-ID -> message read (replies thread on it)
        self._closed = False

    # -- LPSDriver ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``mssante.client <version>``."""
        return f"mssante.client {__version__} (Mailbox + SessionSupervisor)"

    async def inform(self, text: str) -> None:
        """Nothing to show: the builtin LPS runs unattended."""
        return None

    async def open_session(self, *, fresh: bool = False) -> None:
        """Have a watched IMAP session on the BAL; ``fresh`` closes the mailbox and opens a new one.

        Logs in to PSC first when the professional's session is absent or over (PER/ORG).

        Raises:
            TokenRejected, NotAuthorized: authentication refused (after the library's retry rule).
            PSCError: the PSC login failed, or the PSC session is over.
            ConnectError: not connected within the first attempts (the mailbox keeps retrying
                with backoff), or no outcome within :attr:`DriverTuning.open_timeout`.
            MssanteError: discovery, trust or transport failures.
        """
        async with self._lock:
            if fresh:
                await self._close_mailbox()
            if self._usable():
                return
            kind, error, detail = await self._open()
        if kind == "connected":
            return
        if isinstance(error, MssanteError):
            raise error
        if kind == "retrying":
            raise ConnectError(f"the IMAP session of {self._setup.bal} is not open yet ({detail}); "
                               "the mailbox keeps retrying with backoff")
        raise ConnectError(f"the IMAP session of {self._setup.bal} could not be opened ({detail})")

    async def send_message(self, request: SendRequest) -> None:
        """Compose and send one message with :meth:`Mailbox.send` (which files it in Sent).

        Raises:
            ContentError: the document cannot be generated or composed.
            CommandFailed, LimitError: the submission or the APPEND was refused.
            TokenRejected, NotAuthorized, AuthUnavailable, PSCError: authentication failures.
            MssanteError: discovery, trust or transport failures.
        """
        box = await self._mailbox()
        await box.send(await self._draft(request))

    async def read_new_messages(self) -> list[dict[str, Any]]:
        """Fetch (``BODY[]``, marking them read) the unseen INBOX messages, integrating their documents.

        Messages asking for a read receipt are kept for :meth:`answer_mdns`. Returns what was
        understood of each message: the patient of its documents (``METADATA.XML``, ECO.2.1.2),
        their CDA codes and the subject as shown (ECO.3.1.3).

        Raises:
            CommandFailed: the INBOX cannot be read.
            ContentError: a message cannot be parsed at all.
            MssanteError: authentication, trust or transport failures.
        """
        box = await self._mailbox()
        understood: list[dict[str, Any]] = []
        for summary in await box.list("INBOX", unseen_only=True):
            received = await box.fetch(summary.uid, mark_seen=True)
            parsed = received.parsed  # documents integrated: parsed.archive (or parsed.archive_error)
            if parsed.message_id:
                self._read[parsed.message_id] = parsed
            understood.append(understood_of(parsed))
            if parsed.mdn_requested and parsed.report is None:
                self._pending_mdns.append(parsed)
        return understood

    async def delete_message(self, message_id: str) -> None:
        """Delete the INBOX message with this Message-ID (moved to Trash by :meth:`Mailbox.delete`, traced).

        Raises:
            CommandFailed: refused.
            MssanteError: authentication, trust or transport failures.
        """
        box = await self._mailbox()
        for summary in await box.list("INBOX"):
            if summary.message_id == message_id:
                await box.delete(summary.uid)

    async def answer_mdns(self) -> None:
        """Send the read receipts asked by the messages read (``displayed``, RFC 8098).

        Raises:
            ContentError: an MDN cannot be composed.
            CommandFailed: the submission was refused.
            MssanteError: authentication, trust or transport failures.
        """
        if not self._pending_mdns:
            return
        box = await self._mailbox()
        settings = ComposeSettings(product_reference=self._setup.product_reference)
        while self._pending_mdns:
            original = self._pending_mdns[0]
            await box.send(generate_mdn(original, reporter=self._setup.bal, settings=settings))
            self._pending_mdns.pop(0)

    async def close(self) -> None:
        """LOGOUT / QUIT every session, stop the watch and the PSC check, close the PSC client."""
        self._closed = True
        self._box = None
        await self._supervisor.aclose()
        if self._psc is not None:
            await self._psc.aclose()

    # -- sessions -------------------------------------------------------------------------------
    def _usable(self) -> bool:
        box = self._box
        if box is None or box.closed:
            return False
        try:
            return self._supervisor.status(box.address) == "running"
        except UsageError:
            return False

    async def _mailbox(self) -> Mailbox:
        """The open mailbox, opened (and watched) first if needed."""
        async with self._lock:
            if not self._usable():
                kind, error, detail = await self._open()
                if kind == "failed":
                    raise error if isinstance(error, MssanteError) else ConnectError(detail)
            assert self._box is not None
            return self._box

    async def _close_mailbox(self) -> None:
        box, self._box = self._box, None
        if box is not None:
            with contextlib.suppress(UsageError):
                await self._supervisor.remove(box.address)

    async def _open(self) -> _Outcome:
        """Create a mailbox, hand it to the supervisor and wait for the watch's first outcome."""
        if self._closed:
            raise UsageError("the builtin driver is closed")
        await self._close_mailbox()
        credentials: PSCSession | ClientCertificate
        if self._certificate is not None:
            credentials = self._certificate
        else:
            credentials = await self._psc_session()
        t = self._tuning
        options = MailboxOptions(
            connection=ConnectionSettings(connect_timeout=t.connect_timeout, command_timeout=t.command_timeout),
            backoff=t.backoff, poll_interval=t.poll_interval)
        box = Mailbox(self._setup.bal, kind=self._kind, credentials=credentials, resolver=self._resolver,
                      tls=self._trust, traces=self._traces, product_reference=self._setup.product_reference,
                      options=options)
        opening: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._opening = opening
        self._box = box
        if not self._started:
            self._started = True
            await self._supervisor.start()
        self._supervisor.add(box)
        try:
            return await asyncio.wait_for(asyncio.shield(opening), self._tuning.open_timeout)
        except TimeoutError:
            return ("retrying", None, f"no answer within {self._tuning.open_timeout:g} s")
        finally:
            self._opening = None

    def _on_event(self, event: SupervisorEvent) -> None:
        """Supervisor events: the first outcome of an opening (connected, retrying, failed)."""
        opening = self._opening
        if opening is None or opening.done() or event.address.lower() != self._setup.bal.lower():
            return
        if event.kind == "connected" and event.detail.startswith("imap"):
            opening.set_result(("connected", None, event.detail))
        elif event.kind == "disconnected":
            opening.set_result(("retrying", event.error, event.detail))
        elif event.kind in ("failed", "ended", "stopped"):
            opening.set_result(("failed", event.error, event.detail))

    # -- PSC ------------------------------------------------------------------------------------
    async def _psc_session(self) -> PSCSession:
        """The professional's PSC session, logging in when there is none (or it ended)."""
        if self._session is not None and not self._session.ended.is_set():
            return self._session
        psc = self._psc
        assert psc is not None
        tokens = await psc_login(psc, bal=self._setup.bal, entry=self._entry, login=self._setup.login,
                                 login_timeout=self._tuning.login_timeout)
        self._session = psc.open_session(tokens)
        return self._session

    # -- messages -------------------------------------------------------------------------------
    async def _draft(self, request: SendRequest) -> Draft:
        sender = sender_of(self._kind, self._setup.bal, self._entry, self._setup.info)
        if request.patient is not None:
            to = patient_address(request.patient.ins)
        elif request.lookup is not None:
            to = await lookup_address(self._setup.info, request.lookup.national_id, request.lookup.family_name)
        else:
            to = request.to
        draft = compose_draft(sender, to, request.document, request_mdn=request.request_mdn)
        parent = self._read.get(request.in_reply_to) if request.in_reply_to else None
        return replace(
            draft, end_of_exchange=request.end_of_exchange,
            dsn=DSNRequest(notify=("SUCCESS", "FAILURE")) if request.dsn else None,
            in_reply_to=request.in_reply_to,
            references=(*(parent.references if parent else ()), request.in_reply_to) if request.in_reply_to else (),
            subject=f"Re: {parent.subject or ''}".strip() if request.in_reply_to and parent else draft.subject)
