"""Compose and send from the webmail, through the operator's own delivery path.

The form's values become a :class:`mssante.message.Draft`, composed by
:func:`mssante.message.compose_message` (X-MSS-NIL, and X-MSS-CODECDA / X-MSS-INS computed from
an attached ``IHE_XDM.ZIP``; MDN request on demand). The message is then handed to the SMTP
front's :class:`~mssante.sandbox.fronts.smtp_dispatch.Dispatcher` — the code that runs after a
real client's ``DATA``, with the sandbox's responders (the XDM auto-responder) — so local
recipients get it behind a ``Received:`` line, unknown and foreign recipients produce a failure
DSN in the sender's INBOX, exactly as for an LPS. Like a mail client, the webmail then files its
copy in ``Sent``.

Recipients are looked up first in the Annuaire Santé (ECO.3.1.4, SC.MSS/CONF.20): the page's search
(``?annuaire=<text>``) asks the sandbox's mock directory over HTTP with
:class:`mssante.annuaire.AnnuaireClient`, as an LPS would, and lists the professionals and structures found
with their MSSanté BALs; "Ajouter" puts an address in "À". It works without JavaScript (plain GET forms and
links that keep the recipients and subject already chosen).
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Final

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from mssante._i18n import N_, gettext
from mssante.annuaire import AnnuaireClient, Mailbox
from mssante.errors import ContentError, LimitError, MssanteError, UsageError
from mssante.message import (
    XDM_FILENAME,
    Attachment,
    ComposeSettings,
    Draft,
    Sender,
    compose_message,
    organisation_label,
    professional_label,
)
from mssante.sandbox.fronts.smtp_dispatch import Accepted, Dispatcher, new_queue_id
from mssante.sandbox.fronts.smtp_options import SubmissionOptions
from mssante.sandbox.fronts.smtp_params import MailRequest, RcptRequest
from mssante.sandbox.web.context import WebContext
from mssante.sandbox.web.sessions import WebSession

__all__ = ["PRODUCT_REFERENCE", "ComposePages"]

#: X-MSS-NIL of messages written in the webmail (ECO.2.4.3).
PRODUCT_REFERENCE: Final = "MSSANTE-SANDBOX-WEBMAIL"
#: Most attachment bytes per message (the SMTP front's default SIZE is 25 MB).
MAX_ATTACHMENTS: Final = 25 * 1024 * 1024
_SPLIT: Final = re.compile(r"[,;\s]+")
#: Results shown per kind (professionals, structures) for one directory search.
LOOKUP_RESULTS: Final = 10
_IDENTIFIER: Final = re.compile(r"^(\d{11}|[08]\d{9,11}|[0-4][0-9A-Z]{8,16})$")
_KIND_LABELS: Final = {"PER": N_("Personal BAL"), "ORG": N_("Organisational BAL"), "APP": N_("Application BAL"),
                       "CAB": N_("Practice BAL")}
_PROFESSIONS: Final = {"10": N_("Physician"), "21": N_("Pharmacist"), "40": N_("Dental surgeon"), "50": N_("Midwife"),
                       "60": N_("Nurse")}


def _addresses(value: object) -> tuple[str, ...]:
    return tuple(a for a in _SPLIT.split(str(value or "")) if a)


class ComposePages:
    """The compose form and the send action."""

    def __init__(self, ctx: WebContext) -> None:
        """Use ``ctx``."""
        self.ctx = ctx
        self._dispatcher: Dispatcher | None = None

    async def aclose(self) -> None:
        """Cancel the responder answers still running."""
        if self._dispatcher is not None:
            await self._dispatcher.aclose()
            self._dispatcher = None

    def dispatcher(self) -> Dispatcher:
        """The dispatcher shared by every webmail submission (with the sandbox's responders).

        Raises:
            StoreUnavailable: no mailbox store yet.
        """
        if self._dispatcher is None:
            cfg = self.ctx.sandbox.config
            self._dispatcher = Dispatcher(
                hostname=cfg.host_name("smtp", "psc"), domain=cfg.domain, delivery=self.ctx.mail.store,
                responders=self.ctx.sandbox.responders, options=SubmissionOptions())
        return self._dispatcher

    def _sender(self, session: WebSession, address: str) -> Sender:
        cfg = self.ctx.sandbox.config
        bal = cfg.bal(address)
        assert bal is not None
        if bal.kind == "PER":
            pro = cfg.professional(bal.holders[0])
            if pro is not None:
                return Sender(address=bal.address, label=professional_label(
                    given_name=pro.given_name, family_name=pro.family_name, title=pro.civility.capitalize()))
        structure = cfg.structure(bal.structure_id or "")
        return Sender(address=bal.address, label=organisation_label(structure.name if structure else bal.address))

    async def form(self, request: Request) -> Response:
        """``GET /mail/{address}/compose``: the form (``?folder=&uid=`` prefills a reply).

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        address = self.ctx.mail.bal(request.path_params["address"])
        self.ctx.require(request, address)
        values: dict[str, Any] = {"to": "", "cc": "", "subject": "", "text": "", "in_reply_to": "", "references": ""}
        query = request.query_params
        for key in ("to", "cc", "subject"):  # kept across directory searches (GET forms and links)
            values[key] = query.get(key, "")[:2000]
        uid = query.get("uid", "")
        if uid.isdigit():
            original = await self.ctx.mail.get(address, request.query_params.get("folder"), int(uid))
            if original.parsed is not None:
                p = original.parsed
                subject = p.subject or ""
                values.update(
                    to=p.reply_to[0] if p.reply_to else (p.sender or ""),
                    subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
                    in_reply_to=p.message_id or "",
                    references=" ".join([*p.references, *([p.message_id] if p.message_id else [])]),
                )
        lookup = " ".join(query.get("annuaire", "").split())[:100]
        results, lookup_error = await self._lookup(lookup) if lookup else ([], None)
        return self.ctx.render(request, "compose.html", address=address, values=values, error=None,
                               bal=self.ctx.sandbox.config.bal(address), lookup=lookup, results=results,
                               lookup_error=lookup_error)

    async def _lookup(self, text: str) -> tuple[list[dict[str, Any]], str | None]:
        """Search the sandbox's Annuaire Santé for ``text``: an identifier (RPPS, idNatPs, idNatStruct) or a name.

        Returns the rows to show (label, detail, mailboxes) and an error to show, if the directory failed.

        Raises:
            Nothing: a directory failure is the second item.
        """
        rows: list[dict[str, Any]] = []
        by_id = bool(_IDENTIFIER.match(text))
        try:
            async with AnnuaireClient.from_sandbox(self.ctx.sandbox.info, timeout=10) as annuaire:
                pros = await annuaire.search_practitioners(
                    **({"identifier": text} if by_id else {"name": text}), count=LOOKUP_RESULTS)
                orgs = await annuaire.search_organizations(
                    **({"identifier": text} if by_id else {"name": text}), count=LOOKUP_RESULTS)
        except MssanteError as exc:
            return [], gettext("The Annuaire Santé could not be queried: {message}").format(message=exc.message)
        for p in pros.entries:
            jobs = [gettext(_PROFESSIONS[c]) if c in _PROFESSIONS else gettext("Profession {code}").format(code=c)
                    for c in p.professions]
            detail = " — ".join(x for x in (", ".join(jobs), f"RPPS {p.rpps}" if p.rpps else "", ", ".join(p.cities))
                                if x)
            rows.append({"label": f"{p.family_name} {p.given_name}", "detail": detail,
                         "mailboxes": self._boxes(p.mailboxes)})
        for o in orgs.entries:
            detail = " ".join(x for x in (o.postal_code, o.city) if x)
            rows.append({"label": o.name, "detail": detail, "mailboxes": self._boxes(o.mailboxes)})
        return rows, None

    @staticmethod
    def _boxes(boxes: tuple[Mailbox, ...]) -> list[dict[str, str]]:
        return [{"address": b.address, "kind": b.kind or "?", "label": _KIND_LABELS.get(b.kind or "", "")}
                for b in boxes]

    async def send(self, request: Request) -> Response:
        """``POST /mail/{address}/send``: compose, deliver through the dispatcher, file in Sent.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        address = self.ctx.mail.bal(request.path_params["address"])
        session = self.ctx.require(request, address)
        async with request.form(max_files=20, max_part_size=MAX_ATTACHMENTS) as form:
            self.ctx.check_csrf(session, form.get("csrf"))
            values = {k: str(form.get(k) or "") for k in ("to", "cc", "subject", "text", "in_reply_to", "references")}
            archive: bytes | None = None
            attachments: list[Attachment] = []
            total = 0
            for item in form.getlist("attachments"):
                if not isinstance(item, UploadFile) or not item.filename:
                    continue
                content = await item.read()
                total += len(content)
                if item.filename.upper() == XDM_FILENAME and archive is None:
                    archive = content
                else:
                    attachments.append(Attachment(content=content, filename=item.filename,
                                                  content_type=item.content_type or "application/octet-stream"))
            mdn, fin = form.get("mdn") == "on", form.get("fin") == "on"
        if total > MAX_ATTACHMENTS:
            return self._again(request, address, values, gettext("The attachments exceed 25 MB."))
        try:
            composed = compose_message(Draft(
                sender=self._sender(session, address), to=_addresses(values["to"]), cc=_addresses(values["cc"]),
                subject=values["subject"] or None, text=values["text"], xdm_archive=archive,
                attachments=tuple(attachments), request_mdn=mdn, end_of_exchange=fin,
                in_reply_to=values["in_reply_to"] or None, references=tuple(values["references"].split()),
            ), settings=ComposeSettings(product_reference=PRODUCT_REFERENCE))
        except (ContentError, LimitError, UsageError) as exc:
            return self._again(request, address, values,
                               gettext("The message could not be composed: {message}").format(message=exc.message))
        data = composed.to_bytes()
        result = await self._dispatch(composed.envelope_from, composed.recipients, data)
        await self.ctx.mail.store.deliver(address, data, folder="Sent")
        self.ctx.hub.poke()
        return self.ctx.render(request, "sent.html", address=address, result=result, message_id=composed.message_id,
                               bal=self.ctx.sandbox.config.bal(address))

    def _again(self, request: Request, address: str, values: dict[str, str], error: str) -> Response:
        return self.ctx.render(request, "compose.html", 400, address=address, values=values, error=error,
                               bal=self.ctx.sandbox.config.bal(address))

    async def _dispatch(self, sender: str, recipients: tuple[str, ...], data: bytes) -> dict[str, list[str]]:
        dispatcher = self.dispatcher()
        queue_id = new_queue_id()
        when = format_datetime(datetime.now().astimezone())
        received = (f"Received: from webmail by {dispatcher.hostname} (mssante sandbox webmail)\r\n"
                    f"\tid {queue_id}; {when}\r\n")
        accepted = Accepted(queue_id=queue_id, mail=MailRequest(address=sender),
                            recipients=[RcptRequest(address=r) for r in recipients], data=data,
                            received=received.encode())
        return await dispatcher.dispatch(accepted)
