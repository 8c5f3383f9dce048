"""BAL PER from synchronous code (a desktop UI thread, a legacy application): SyncMailbox.

Run against a running sandbox (``mssante sandbox up``)::

    .venv/bin/python docs/examples/per_sync.py .sandbox/sandbox.json

:class:`~mssante.client.SyncMailbox` runs the async client in a background thread with its own
event loop. A PSC session (:class:`~mssante.psc.PSCSession`) belongs to the event loop that
uses it, so the token source below signs in *inside* that loop, on first use, and forwards
the end of the PSC session to the mailbox (``on_end``, ECO.1.2.6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sandbox_env

from mssante.client import SyncMailbox
from mssante.message import Draft, Sender
from mssante.psc import PSCClient, PSCSession, PSCSettings
from mssante.secret import Secret


class SignInOnFirstUse:
    """A TokenSource that opens the PSC session by CIBA the first time a token is needed."""

    def __init__(self, settings: PSCSettings, national_id: str) -> None:
        self.settings, self.national_id = settings, national_id
        self._psc: PSCClient | None = None
        self._session: PSCSession | None = None
        self._on_end: list[Callable[[Any], None]] = []

    async def token(self, *, fresh: bool = False) -> Secret:
        if self._session is None:  # runs in SyncMailbox's event loop
            self._psc = PSCClient(self.settings)
            request = await self._psc.start_ciba(self.national_id)
            print(f"Validez la demande sur votre e-CPS (code : {request.binding_message})")
            self._session = self._psc.open_session(await self._psc.wait_ciba(request, timeout=60))
            for callback in self._on_end:
                self._session.on_end(lambda _session, cb=callback: cb(self))
        return await self._session.token(fresh=fresh)

    def on_end(self, callback: Callable[[Any], None]) -> None:
        self._on_end.append(callback)


def main() -> None:
    info = sandbox_env.load(sandbox_env.sandbox_file())
    per = sandbox_env.bal(info, "PER")
    source = SignInOnFirstUse(PSCSettings.from_sandbox(info), per["holders"][0])

    with SyncMailbox(per["address"], kind="PER", credentials=source, resolver=sandbox_env.resolver(info),
                     tls=sandbox_env.trust(info), product_reference=sandbox_env.PRODUCT_REFERENCE,
                     options=sandbox_env.options(info, author=per["holders"][0])) as box:
        sent = box.send(Draft(sender=Sender(address=box.address), to=(box.address,), subject="Note à moi-même",
                              text="Rappel : rappeler le laboratoire."))
        print(f"Envoyé : {sent.reply}")
        for summary in box.list("INBOX", unseen_only=True, limit=5):
            message = box.fetch(summary.uid)
            print(f"UID {summary.uid} de {summary.sender} : {summary.subject} ({len(message.raw)} octets)")
            box.flag(summary.uid, seen=True)
        print("Dossiers :", [f.name for f in box.folders()])
    # Leaving the block sends LOGOUT / QUIT and stops the background thread. If the PSC session
    # ends first, on_end has already closed every session (ECO.1.2.6).


if __name__ == "__main__":
    main()
