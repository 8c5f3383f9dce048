"""Back-channel logout delivery (OpenID Connect Back-Channel Logout 1.0).

When a session ends, every client that took part in it and registered a
``backchannel_logout_uri`` receives a POST ``logout_token=<JWT>`` (§2.5). Failures are
logged (client id and status only) and do not stop the logout: the session is already over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl

import httpx2

from mssante.sandbox.psc.realm import Realm
from mssante.sandbox.psc.store import SSOSession

__all__ = ["send_backchannel_logouts"]

log = logging.getLogger("mssante.sandbox.psc")


async def send_backchannel_logouts(
    realm: Realm, session: SSOSession, *, per_request_timeout: float = 5.0
) -> dict[str, bool]:
    """POST a logout token to each client of ``session`` with a back-channel URI.

    Returns ``{client_id: delivered}``; delivered means the RP answered 200 or 204 (§2.8).
    """
    targets = []
    for client_id in sorted(session.clients):
        client = realm.config.client(client_id)
        if client is not None and client.backchannel_logout_uri:
            targets.append((client_id, client.backchannel_logout_uri))
    if not targets:
        return {}
    # trust_env=False: no proxy from the environment for these loopback calls.
    async with httpx2.AsyncClient(
        timeout=per_request_timeout, trust_env=False, follow_redirects=False, verify=_tls_context()
    ) as http:
        results = await asyncio.gather(*(_post(http, realm, session, cid, uri) for cid, uri in targets))
    return dict(results)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context (system trust store) for all deliveries: building one is slow."""
    return ssl.create_default_context()


async def _post(
    http: httpx2.AsyncClient, realm: Realm, session: SSOSession, client_id: str, uri: str
) -> tuple[str, bool]:
    token = realm.tokens.logout_token(session, client_id)
    try:
        response = await http.post(uri, data={"logout_token": token}, headers={"Cache-Control": "no-store"})
    except httpx2.HTTPError as exc:
        log.warning("back-channel logout to %s failed: %s", client_id, type(exc).__name__)
        return client_id, False
    if response.status_code not in (200, 204):
        log.warning("back-channel logout to %s answered %d", client_id, response.status_code)
        return client_id, False
    return client_id, True
