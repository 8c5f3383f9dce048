"""The LPS under test, seen by the suite: the :class:`LPSDriver` protocol and its two kinds.

Cases ask the LPS to *act* through a driver, then judge only from what the sandbox saw (the
session journal, the mailboxes). A driver never reports success itself: an action that
"worked" but left no evidence is a failure.

* :class:`ExternalDriver`: any LPS, in any language. Each action prints a French instruction
  ("Envoyez depuis votre LPS un CR de biologie à ...") and returns at once; the case then
  waits, bounded, for the evidence.
* the **builtin** driver: our own client library (:mod:`mssante.client`). It is loaded by
  :func:`load_builtin_driver` from ``mssante.conformance.builtin:create_driver``, a factory
  taking a :class:`DriverSetup` and returning an :class:`LPSDriver`. Until that module exists
  the builtin driver is unavailable (the test suite ships a stdlib-based one).

Contract for implementers. Every method is a coroutine that returns once the action has been
*done* (builtin) or *asked for* (external). Errors of the LPS that the case expects (a refused
authentication, an unavailable service) may be raised as :class:`~mssante.errors.MssanteError`;
the case records them as evidence and judges from the journal anyway. Between actions, a live
driver keeps behaving like the real LPS: it watches its IMAP session, reopens it when the
operator ends it (ECO.1.2.7), refreshes its PSC tokens, and closes every session when the PSC
session ends (ECO.1.2.6).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from mssante.conformance._model import Profile
from mssante.errors import ConfigError

__all__ = [
    "BUILTIN_FACTORY",
    "DocumentKind",
    "DriverSetup",
    "ExternalDriver",
    "LPSDriver",
    "LookupRef",
    "PatientRef",
    "SendRequest",
    "Understood",
    "load_builtin_driver",
]

#: Where the builtin driver factory is looked up ("module:attribute").
BUILTIN_FACTORY = "mssante.conformance.builtin:create_driver"

#: The documents a case may ask the LPS to send in an IHE_XDM archive.
DocumentKind = Literal["crbio", "vsm"]
_DOCUMENT_FR = {"crbio": "un compte rendu de biologie (CR de biologie)", "vsm": "un volet de synthèse médicale (VSM)"}


@dataclass(frozen=True, kw_only=True)
class PatientRef:
    """A patient record of the LPS, to write to the patient's Mon espace santé address (ECO.3.1.5).

    Attributes:
        ins: the qualified INS matricule (15 characters); the address is ``<ins>@patient.mssante.fr``
            (ECO.2.2.6).
        ins_oid: the INS OID.
        family_name, given_name: birth name and first given name.
        birth_date: ``YYYY-MM-DD``.
    """

    ins: str
    ins_oid: str
    family_name: str
    given_name: str
    birth_date: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (``params.patient`` of a ``send`` step)."""
        return {"ins": self.ins, "ins_oid": self.ins_oid, "family_name": self.family_name,
                "given_name": self.given_name, "birth_date": self.birth_date}


@dataclass(frozen=True, kw_only=True)
class LookupRef:
    """A professional the LPS must find in the Annuaire Santé before writing (ECO.3.1.4).

    Attributes:
        family_name, given_name: as the user would type them.
        national_id: the RPPS (national id) that tells homonyms apart.
    """

    family_name: str
    given_name: str
    national_id: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (``params.lookup`` of a ``send`` step)."""
        return {"family_name": self.family_name, "given_name": self.given_name, "national_id": self.national_id}


@dataclass(frozen=True, kw_only=True)
class SendRequest:
    """A message the LPS is asked to send.

    Attributes:
        to: the recipient BAL (empty when the LPS finds the address itself: ``patient``, ``lookup``).
        document: ``None`` for a plain text message, else the kind of CDA document to send in
            an ``IHE_XDM.ZIP`` archive with its PDF companion (ECO.2.1.1).
        request_mdn: ask the recipient for a read receipt (ECO.2.3.2).
        dsn: ask for delivery status notifications, success and failure (ECO.2.3.1, RFC 3461).
        end_of_exchange: ``X-MSS-MES: FIN``, the patient may not answer (ECO.2.2.8).
        patient: write to this patient, at the address built from the INS (ECO.2.2.6, ECO.3.1.5).
        lookup: write to this professional, found in the Annuaire Santé (ECO.3.1.4).
        in_reply_to: reply to the received message with this Message-ID (ECO.2.2.2).
    """

    to: str = ""
    document: DocumentKind | None = None
    request_mdn: bool = False
    dsn: bool = False
    end_of_exchange: bool = False
    patient: PatientRef | None = None
    lookup: LookupRef | None = None
    in_reply_to: str | None = None


#: What an LPS understood of one message it read (``read`` step acknowledgement, ``understood``):
#: ``message_id``, ``patient`` (``ins``, ``family_name``, ``given_name``), ``documents`` (CDA codes),
#: ``subject_shown`` (the subject as displayed, ECO.3.1.3), ``sender_kind`` (``patient`` or
#: ``professional``..., ECO.3.1.1). See ``ack_body`` in conformance-events.schema.json.
Understood = Mapping[str, Any]


@runtime_checkable
class LPSDriver(Protocol):
    """The LPS under test. Keep it minimal: five actions and a way to tell the operator."""

    @property
    def name(self) -> str:
        """A short description for the report (``LPS externe``, ``mssante.client 0.3``...)."""
        ...

    async def inform(self, text: str) -> None:
        """Show ``text`` (French) to whoever runs the LPS; a no-op for automated drivers."""
        ...

    async def open_session(self, *, fresh: bool = False) -> None:
        """Log in if needed and have an authenticated IMAP session on the BAL, kept alive.

        ``fresh``: close the current IMAP session first and open a new one (a reconnection,
        not a new PSC login).

        Raises:
            MssanteError: the LPS could not open the session (cases may expect it).
        """
        ...

    async def send_message(self, request: SendRequest) -> None:
        """Send one message from the BAL, and file it in the Sent folder as the LPS does.

        Raises:
            MssanteError: the LPS could not send it.
        """
        ...

    async def read_new_messages(self) -> Sequence[Understood] | None:
        """Fetch and read (body included) the new messages of the INBOX, integrating documents.

        Returns what the LPS understood of each message read (:data:`Understood`), or None when
        it reports it elsewhere (an external LPS acknowledges the ``read`` step with it).

        Raises:
            MssanteError: the LPS could not read them.
        """
        ...

    async def delete_message(self, message_id: str) -> None:
        """Delete the INBOX message with this Message-ID (flag ``\\Deleted`` and expunge, or move to Trash).

        Raises:
            MssanteError: the LPS could not delete it.
        """
        ...

    async def answer_mdns(self) -> None:
        """Send the read receipts (MDN, RFC 8098) asked by the messages read (ECO.3.1.6).

        Raises:
            MssanteError: the LPS could not send them.
        """
        ...

    async def close(self) -> None:
        """End every session (IMAP LOGOUT, SMTP QUIT) and stop background work."""
        ...


@dataclass(frozen=True, kw_only=True)
class DriverSetup:
    """What a builtin driver factory receives.

    Attributes:
        info: the sandbox's ``sandbox.json`` (fronts, DNS, CA bundle, PSC, BAL certificates).
        bal: the BAL under test.
        profile: PER/ORG (PSC) or APP (certificate).
        product_reference: the X-MSS-NIL to send (ECO.2.4.3).
        login: for PER/ORG with a sandbox of this process, a coroutine function performing the
            professional's PSC login and returning the token endpoint JSON (it stands in for the
            CPS/e-CPS step); await it in the job's event loop (from a worker thread, use
            ``asyncio.run_coroutine_threadsafe``). None for APP, or when the sandbox runs in
            another process: the driver then logs in through the sandbox's PSC itself (CIBA).
        trace_file: where to write the functional traces (ECO.4.1.x), if any.
    """

    info: Mapping[str, Any]
    bal: str
    profile: Profile
    product_reference: str = "MSSANTE-CONFORMANCE"
    login: Callable[[], Awaitable[Mapping[str, Any]]] | None = field(default=None, repr=False)
    trace_file: Path | None = None


def load_builtin_driver(setup: DriverSetup) -> LPSDriver:
    """Create the builtin driver (:mod:`mssante.client`) through :data:`BUILTIN_FACTORY`.

    Raises:
        ConfigError: the client library does not provide the factory yet, or it returned
            something that is not an :class:`LPSDriver`.
    """
    module_name, attr = BUILTIN_FACTORY.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the builtin client driver is not available yet ({module_name} cannot be imported); "
            "use --client external"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{BUILTIN_FACTORY} is not a callable factory")
    driver = factory(setup)
    if not isinstance(driver, LPSDriver):
        raise ConfigError(f"{BUILTIN_FACTORY} did not return an LPSDriver")
    return driver


#: The kinds of step an LPS harness is asked to do (``action`` of a ``step`` event).
StepAction = Literal["open-session", "reconnect", "send", "read", "reply-mdn", "delete", "close", "wait"]
#: Announces a step to an LPS harness: (action, structured parameters, French text); see RunEvents.step.
Announce = Callable[[StepAction, Mapping[str, Any], str], Awaitable[object]]


class ExternalDriver:
    """Any LPS: prints instructions in French and lets the cases wait for evidence.

    With ``announce`` (the ``--events`` stream), every instruction is also a structured step
    for a harness: action, BAL, recipients, document kind, MDN wanted (see
    :class:`~mssante.conformance._events.RunEvents`).
    """

    def __init__(self, *, bal: str, profile: Profile, echo: Callable[[str], None] = print,
                 announce: Announce | None = None) -> None:
        """Address the person running the LPS through ``echo`` (``click.echo`` in the CLI)."""
        self._bal = bal
        self._profile = profile
        self._echo = echo
        self._announce = announce

    @property
    def name(self) -> str:
        """``LPS externe``."""
        return "LPS externe"

    async def _say(self, action: StepAction, params: Mapping[str, Any], text: str) -> None:
        self._echo(f"  ➜ {text}")
        if self._announce is not None:
            await self._announce(action, {"bal": self._bal, **params}, text)

    async def inform(self, text: str) -> None:
        """Print ``text``."""
        self._echo(text)

    async def open_session(self, *, fresh: bool = False) -> None:
        """Ask for a (re)connection of the BAL.

        Raises:
            OSError: the events file cannot be written.
        """
        psc = self._profile is Profile.PER_ORG
        how = "avec Pro Santé Connect (CPS ou e-CPS)" if psc else "avec le certificat ORG AUTH_CLI de la structure"
        auth = {"auth": "psc" if psc else "certificate"}
        if fresh:
            await self._say("reconnect", auth, f"Fermez la messagerie de votre LPS pour la BAL {self._bal}, puis "
                                               f"rouvrez-la {how}.")
        else:
            await self._say("open-session", auth,
                            f"Vérifiez que votre LPS est connecté à la BAL {self._bal} {how}, messagerie ouverte.")

    async def send_message(self, request: SendRequest) -> None:
        """Ask for a message to be sent.

        Raises:
            OSError: the events file cannot be written.
        """
        what = "un message texte simple" if request.document is None else _DOCUMENT_FR[request.document]
        extra = ", en demandant un accusé de lecture" if request.request_mdn else ""
        params: dict[str, Any] = {"to": [request.to] if request.to else [], "document": request.document,
                                  "mdn": request.request_mdn, "dsn": None}
        target = request.to
        if request.dsn:
            params["dsn"] = {"notify": ["SUCCESS", "FAILURE"], "ret": "HDRS"}
            extra += ", en demandant un avis de remise (DSN : NOTIFY=SUCCESS,FAILURE)"
        if request.end_of_exchange:
            params["end_of_exchange"] = True
            extra += ", sans réponse possible du patient (X-MSS-MES: FIN)"
        if request.patient is not None:
            p = request.patient
            params["patient"] = p.to_dict()
            target = (f"la patiente ou le patient {p.family_name} {p.given_name} (INS {p.ins}, né(e) le "
                      f"{p.birth_date}), depuis son dossier, à son adresse Mon espace santé")
        if request.lookup is not None:
            q = request.lookup
            params["lookup"] = q.to_dict()
            target = (f"{q.given_name} {q.family_name} (RPPS {q.national_id}), adresse MSSanté cherchée dans "
                      "l'Annuaire Santé")
        if request.in_reply_to is not None:
            params["reply_to"] = request.in_reply_to
            what = f"une réponse au message {request.in_reply_to}"
        await self._say("send", params, f"Envoyez depuis votre LPS (BAL {self._bal}) {what} à {target}{extra}.")

    async def read_new_messages(self) -> Sequence[Understood] | None:
        """Ask for the new messages to be opened; what the LPS understood comes with its acknowledgement.

        Raises:
            OSError: the events file cannot be written.
        """
        await self._say("read", {"folder": "INBOX"},
                        f"Ouvrez et lisez dans votre LPS les nouveaux messages de la BAL {self._bal}.")
        return None

    async def delete_message(self, message_id: str) -> None:
        """Ask for one message to be deleted.

        Raises:
            OSError: the events file cannot be written.
        """
        await self._say("delete", {"folder": "INBOX", "message_id": message_id},
                        f"Supprimez dans votre LPS le message {message_id} de la BAL {self._bal}.")

    async def answer_mdns(self) -> None:
        """Ask for the requested read receipts to be sent.

        Raises:
            OSError: the events file cannot be written.
        """
        await self._say("reply-mdn", {}, "Acceptez l'envoi de l'accusé de lecture demandé par le message ouvert.")

    async def close(self) -> None:
        """Tell the person the run is over."""
        self._echo("Campagne terminée : vous pouvez fermer la messagerie de votre LPS.")
