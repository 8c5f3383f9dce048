"""Webmail pages to read a BAL: folder lists (live), one message, its XDM documents, downloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mssante import xdm
from mssante.errors import ContentError, LimitError
from mssante.message import ParsedAttachment
from mssante.sandbox.api.events import Event
from mssante.sandbox.api.messages import NotFound, ReadMessage
from mssante.sandbox.api.routes import download_response, sse_response
from mssante.sandbox.web.auth import mailbox_url
from mssante.sandbox.web.cda_view import CDAView, author_label, read_cda
from mssante.sandbox.web.context import WebContext

__all__ = ["ArchiveView", "DocumentView", "MailPages"]

#: Header fields shown in the message's "Tous les en-têtes" table come from the message; these
#: are shown first, in the summary block.
_MAIN_HEADERS = ("From", "To", "Cc", "Date", "Subject", "Message-ID")


@dataclass(frozen=True, kw_only=True)
class DocumentView:
    """One document of an XDM archive as the message page shows it."""

    index: int
    document: xdm.XDMDocument
    cda: CDAView
    authors: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ArchiveView:
    """One IHE_XDM.ZIP attachment: its documents, submission sets and validator findings."""

    attachment_index: int
    filename: str
    documents: tuple[DocumentView, ...] = ()
    submission_sets: tuple[xdm.SubmissionSet, ...] = ()
    findings: tuple[xdm.Finding, ...] = ()
    error: str | None = None


def read_xdm(index: int, attachment: ParsedAttachment) -> ArchiveView:
    """Read an IHE_XDM.ZIP attachment for display; problems go to :attr:`ArchiveView.error`."""
    name = attachment.filename or "IHE_XDM.ZIP"
    try:
        archive = xdm.read_archive(attachment.content)
    except (ContentError, LimitError) as exc:  # UnsafeContentError is a ContentError
        return ArchiveView(attachment_index=index, filename=name, error=exc.message)
    documents = tuple(
        DocumentView(index=i, document=d, cda=read_cda(d.data, d.cda),
                     authors=tuple(author_label(a) for a in (d.cda.authors if d.cda else ())))
        for i, d in enumerate(archive.documents)
    )
    sets = tuple(ss for sub in archive.subsets if sub.metadata for ss in sub.metadata.submission_sets)
    return ArchiveView(attachment_index=index, filename=name, documents=documents, submission_sets=sets,
                       findings=xdm.check_archive(archive))


class MailPages:
    """Folder and message pages of the webmail."""

    def __init__(self, ctx: WebContext) -> None:
        """Use ``ctx``."""
        self.ctx = ctx

    def _address(self, request: Request) -> str:
        address = self.ctx.mail.bal(request.path_params["address"])
        self.ctx.require(request, address)
        return address

    async def _counts(self, address: str) -> dict[str, int]:
        store = self.ctx.mail.store
        return {f: len(await store.list_messages(address, f)) for f in ("INBOX", "Sent", "Drafts", "Trash")}

    async def bal_home(self, request: Request) -> Response:
        """``GET /mail/{address}``: to the INBOX.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        return RedirectResponse(mailbox_url(self._address(request)), 303)

    async def folder(self, request: Request) -> Response:
        """``GET /mail/{address}/{folder}``: the folder page (its list refreshes live).

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        address = self._address(request)
        folder = self.ctx.mail.folder(request.path_params["folder"])
        items = list(reversed(await self.ctx.mail.list(address, folder)))
        return self.ctx.render(request, "folder.html", address=address, folder=folder, items=items,
                               counts=await self._counts(address), bal=self.ctx.sandbox.config.bal(address))

    async def folder_list(self, request: Request) -> Response:
        """``GET /mail/{address}/{folder}/list``: the message table alone (htmx swaps it in).

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        address = self._address(request)
        folder = self.ctx.mail.folder(request.path_params["folder"])
        items = list(reversed(await self.ctx.mail.list(address, folder)))
        return self.ctx.render(request, "_list.html", address=address, folder=folder, items=items,
                               counts=await self._counts(address), fragment=True)

    async def events(self, request: Request) -> Response:
        """``GET /mail/{address}/events``: SSE of this BAL's new and removed messages.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        address = self._address(request).lower()

        def accept(event: Event) -> bool:
            return event.kind in ("message", "expunge") and event.bal == address

        return sse_response(self.ctx.hub, accept)

    async def _message(self, request: Request) -> ReadMessage:
        address = self._address(request)
        return await self.ctx.mail.get(address, request.path_params["folder"], int(request.path_params["uid"]))

    async def message(self, request: Request) -> Response:
        """``GET /mail/{address}/{folder}/{uid}``: one message, with its X-MSS headers, report and XDM.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        msg = await self._message(request)
        archives: list[ArchiveView] = []
        others: list[tuple[int, ParsedAttachment]] = []
        context: dict[str, Any] = {"msg": msg, "parsed": msg.parsed, "address": msg.bal, "folder": msg.folder}
        if msg.parsed is not None:
            for i, att in enumerate(msg.parsed.attachments):
                if att.kind == "xdm":
                    archives.append(read_xdm(i, att))
                others.append((i, att))
            context["headers"] = [(k, v) for k, v in msg.parsed.email.items() if k not in _MAIN_HEADERS]
        return self.ctx.render(request, "read.html", archives=archives, attachments=others,
                               counts=await self._counts(msg.bal), bal=self.ctx.sandbox.config.bal(msg.bal),
                               **context)

    async def attachment(self, request: Request) -> Response:
        """``GET .../{uid}/attachments/{index}``: download one attachment.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        msg = await self._message(request)
        index = int(request.path_params["index"])
        if msg.parsed is None or not 0 <= index < len(msg.parsed.attachments):
            raise NotFound("no such attachment")
        att = msg.parsed.attachments[index]
        return download_response(att.content, att.filename, att.content_type)

    async def document(self, request: Request) -> Response:
        """``GET .../{uid}/xdm/{index}/{doc}``: download one document of an XDM archive.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        msg = await self._message(request)
        index, doc = int(request.path_params["index"]), int(request.path_params["doc"])
        if msg.parsed is None or not 0 <= index < len(msg.parsed.attachments):
            raise NotFound("no such attachment")
        view = read_xdm(index, msg.parsed.attachments[index])
        if not 0 <= doc < len(view.documents) or view.documents[doc].document.data is None:
            raise NotFound("no such document")
        document = view.documents[doc].document
        assert document.data is not None
        name = document.path.rsplit("/", 1)[-1]
        media = document.entry.mime_type if document.entry and document.entry.mime_type else "application/xml"
        return download_response(document.data, name, media)

    async def raw(self, request: Request) -> Response:
        """``GET .../{uid}/raw``: the message as stored, as an ``.eml`` file.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        msg = await self._message(request)
        return download_response(msg.raw, f"message-{msg.uid}.eml", "message/rfc822")
