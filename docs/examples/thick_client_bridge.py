"""A thick client: PSC through the editor's intermediate server (``mssante bridge serve``), never directly.

Start the sandbox and a bridge, register this installation, then run (see the guide, part 3)::

    export BRIDGE_URL=http://127.0.0.1:8470
    export BRIDGE_INSTALLATION_ID=poste-cabinet-01
    export BRIDGE_INSTALLATION_SECRET=...      # printed once by `mssante bridge add-installation`
    .venv/bin/python docs/examples/thick_client_bridge.py .sandbox/sandbox.json

What it shows:

* the workstation holds an installation credential, never PSC's client secret; the
  professional signs in by CIBA through the bridge (a browser login works the same way:
  :meth:`BridgeClient.login_with_browser`);
* :class:`~mssante.bridge.client.BridgeTokenSource` gives the PSC access tokens, in memory only
  [ECO.1.2.5], and listens to the bridge's events;
* a :class:`~mssante.client.SessionSupervisor` watches the BAL, reopens its sessions while the
  PSC session is valid [ECO.1.2.7] and keeps a failing BAL from disturbing the rest [ECO.1.2.3];
* when the PSC session ends (``session_ended``: logout, refresh refused, PSC back-channel
  logout), every IMAP/SMTP session of the BAL is closed at once [ECO.1.2.6].
"""

from __future__ import annotations

import asyncio
import os

import sandbox_env

from mssante.bridge.client import BridgeClient
from mssante.client import Mailbox, MessageSummary, SessionSupervisor, SupervisorEvent, WatchState
from mssante.errors import PSCError
from mssante.message import Draft, Sender


async def main() -> None:
    info = sandbox_env.load(sandbox_env.sandbox_file())
    per = sandbox_env.bal(info, "PER")
    received: asyncio.Queue[str] = asyncio.Queue()

    def on_event(event: SupervisorEvent) -> None:  # show the sessions' life in the UI (never a secret)
        print(f"  [{event.address}] {event.kind} {event.detail}")

    async def on_message(box: Mailbox, summary: MessageSummary) -> None:
        await received.put(summary.subject or "")

    async with BridgeClient(os.environ.get("BRIDGE_URL", "http://127.0.0.1:8470"),
                            os.environ["BRIDGE_INSTALLATION_ID"], os.environ["BRIDGE_INSTALLATION_SECRET"]) as bridge:
        source = await bridge.login_with_ciba(
            per["holders"][0],
            on_binding=lambda code: print(f"Validez la demande sur votre e-CPS (code : {code})"),
            max_wait=60,
        )
        print(f"Session PSC ouverte via le serveur intermédiaire pour {source.subject}")
        box = Mailbox(per["address"], kind="PER", credentials=source, resolver=sandbox_env.resolver(info),
                      tls=sandbox_env.trust(info), product_reference=sandbox_env.PRODUCT_REFERENCE,
                      options=sandbox_env.options(info, author=source.subject))

        async with SessionSupervisor(on_event=on_event) as supervisor:
            newest = await box.list("INBOX", limit=1)  # watch from here: nothing arriving later is missed
            state = WatchState(uidvalidity=newest[0].uidvalidity if newest else None,
                               last_uid=newest[0].uid if newest else 0)
            supervisor.add(box, on_message=on_message, state=state)  # IDLE, reconnects with backoff
            await box.send(Draft(sender=Sender(address=box.address), to=(f"vsm@{info['domain']}",),
                                 subject="Demande de synthèse", text="Bonjour, merci de m'envoyer la VSM."))
            subject = await asyncio.wait_for(received.get(), 30)
            print(f"Nouveau message : {subject}")

            # The professional signs out (or the bridge reports session_ended): every session closes.
            await source.logout()
            await asyncio.wait_for(box.ended.wait(), 5)
            print(f"Statut de la BAL : {supervisor.status(box.address)} ({box.end_reason})")
            try:
                await box.list("INBOX")
            except PSCError as exc:
                print(f"Après la fin de session : {type(exc).__name__} {exc.oauth_error} [{exc.requirement}]")


if __name__ == "__main__":
    asyncio.run(main())
