"""BAL PER: how the client reacts to the operator's authentication answers and to dropped sessions.

Run against a running sandbox (``mssante sandbox up``)::

    .venv/bin/python docs/examples/per_error_handling.py .sandbox/sandbox.json

The faults are injected through the sandbox's JSON API (``POST /api/faults``), exactly as a CI
test written in any language would do it. The rules shown (research note ref2 §2.4):

* ``[AUTHENTICATIONFAILED]`` once: the client throws the token away, asks the token source for
  a fresh one and retries **once**; twice: :class:`~mssante.errors.TokenRejected`.
* ``[AUTHORIZATIONFAILED]``: :class:`~mssante.errors.NotAuthorized`, never retried.
* ``[UNAVAILABLE]``: bounded, jittered backoff (:class:`~mssante.client.Backoff`), then
  :class:`~mssante.errors.AuthUnavailable` (never a tight loop); the rest of the LPS keeps
  working [ECO.1.2.3].
* A session ended by the operator (``BYE``) is reopened without asking the professional to
  sign in again while the PSC session is valid [ECO.1.2.7].
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import sandbox_env

from mssante.client import Backoff, Mailbox
from mssante.errors import AuthUnavailable, NotAuthorized, TokenRejected
from mssante.psc import PSCClient, PSCSession, PSCSettings
from mssante.trace import MemorySink


async def sign_in(psc: PSCClient, national_id: str) -> PSCSession:
    """CIBA login (see per_send_receive.py)."""
    request = await psc.start_ciba(national_id)
    return psc.open_session(await psc.wait_ciba(request, timeout=60))


class Operator:
    """The sandbox's fault-injection API (``/api/faults``, ``/api/sessions``)."""

    def __init__(self, api_url: str) -> None:
        self.http = httpx2.AsyncClient(base_url=api_url, timeout=10, trust_env=False)

    async def fail_auth(self, count: int, code: str, bal: str) -> None:
        answer = await self.http.post("/faults", json={"fail_auth": {"count": count, "code": code, "bal": bal}})
        answer.raise_for_status()

    async def end_sessions(self, bal: str, mode: str = "bye") -> int:
        answer = await self.http.delete(f"/sessions/{bal}", params={"mode": mode})
        answer.raise_for_status()
        ended: int = answer.json()["ended"]
        return ended

    async def clear(self) -> None:
        (await self.http.delete("/faults")).raise_for_status()


def mailbox(info: dict[str, Any], address: str, session: PSCSession, traces: MemorySink) -> Mailbox:
    """A fresh mailbox, so that each scenario starts by authenticating."""
    return Mailbox(address, kind="PER", credentials=session, resolver=sandbox_env.resolver(info),
                   tls=sandbox_env.trust(info), traces=traces, product_reference=sandbox_env.PRODUCT_REFERENCE,
                   options=sandbox_env.options(info, backoff=Backoff(initial=0.2, maximum=1.0, attempts=3)))


def attempts(traces: MemorySink) -> str:
    """The authentication attempts recorded in the traces (ECO.4.1.x), for the printout."""
    return " ".join("ok" if r.ok else "refusé" for r in traces.records if r.action == "authenticate")


async def main() -> None:
    info = sandbox_env.load(sandbox_env.sandbox_file())
    per = sandbox_env.bal(info, "PER")["address"]
    org = sandbox_env.bal(info, "ORG")
    operator = Operator(info["api_url"])
    try:
        async with PSCClient(PSCSettings.from_sandbox(info)) as psc:
            marie = await sign_in(psc, sandbox_env.bal(info, "PER")["holders"][0])

            # 1. One [AUTHENTICATIONFAILED]: one silent retry with a fresh token, and it works.
            await operator.fail_auth(1, "AUTHENTICATIONFAILED", per)
            traces = MemorySink()
            async with mailbox(info, per, marie, traces) as box:
                await box.list("INBOX", limit=1)
            print("AUTHENTICATIONFAILED x1 ->", attempts(traces))

            # 2. Twice in a row: the fresh token is refused too; stop and ask for a new PSC login.
            await operator.fail_auth(2, "AUTHENTICATIONFAILED", per)
            traces = MemorySink()
            async with mailbox(info, per, marie, traces) as box:
                try:
                    await box.list("INBOX", limit=1)
                except TokenRejected as exc:
                    print("AUTHENTICATIONFAILED x2 ->", attempts(traces), "->", type(exc).__name__, exc.imap_code)
                else:
                    raise AssertionError("expected TokenRejected")

            # 3. [AUTHORIZATIONFAILED]: not retried. Injected here; the real case follows in 6.
            await operator.fail_auth(1, "AUTHORIZATIONFAILED", per)
            traces = MemorySink()
            async with mailbox(info, per, marie, traces) as box:
                try:
                    await box.list("INBOX", limit=1)
                except NotAuthorized as exc:
                    print("AUTHORIZATIONFAILED   ->", attempts(traces), "->", type(exc).__name__, exc.imap_code)
                else:
                    raise AssertionError("expected NotAuthorized")

            # 4. [UNAVAILABLE] twice (PSC introspection down at the operator): backoff, then success.
            await operator.fail_auth(2, "UNAVAILABLE", per)
            traces = MemorySink()
            async with mailbox(info, per, marie, traces) as box:
                await box.list("INBOX", limit=1)
            print("UNAVAILABLE x2        ->", attempts(traces))

            # 5. Still unavailable after the bounded retries: AuthUnavailable, the caller decides.
            await operator.fail_auth(10, "UNAVAILABLE", per)
            traces = MemorySink()
            async with mailbox(info, per, marie, traces) as box:
                try:
                    await box.list("INBOX", limit=1)
                except AuthUnavailable as exc:
                    print("UNAVAILABLE x10       ->", attempts(traces), "->", type(exc).__name__, f"({exc.fault})")
                else:
                    raise AssertionError("expected AuthUnavailable")
            await operator.clear()

            # 6. A real authorisation refusal: Louis PASTEUR holds the ORG BAL, not Marie's PER BAL.
            louis = await sign_in(psc, next(h for h in org["holders"] if h != marie.national_id))
            async with mailbox(info, org["address"], louis, MemorySink()) as box:
                print("Louis -> BAL ORG      ->", len(await box.folders()), "dossiers")
            async with mailbox(info, per, louis, MemorySink()) as box:
                try:
                    await box.list("INBOX")
                except NotAuthorized as exc:
                    print("Louis -> BAL PER      ->", type(exc).__name__, exc.imap_code)
                else:
                    raise AssertionError("expected NotAuthorized")

            # 7. The operator ends the session (BYE): the next call reconnects by itself (ECO.1.2.7).
            traces = MemorySink()
            async with mailbox(info, per, marie, traces) as box:
                await box.list("INBOX", limit=1)
                ended = await operator.end_sessions(per, "bye")
                await asyncio.sleep(0.2)
                await box.list("INBOX", limit=1)
            print(f"BYE ({ended} session)      ->", attempts(traces))
            await psc.logout(marie)
            await psc.logout(louis)
    finally:
        await operator.clear()
        await operator.http.aclose()


if __name__ == "__main__":
    asyncio.run(main())
