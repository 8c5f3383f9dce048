"""Discovery by DNS SRV and trust in the operator (IGC Santé anchors, CRL kept, fail closed).

Run against a running sandbox (``mssante sandbox up``)::

    .venv/bin/python docs/examples/trust_and_discovery.py .sandbox/sandbox.json

1. ``_imap._tcp`` / ``_submission._tcp`` SRV records of the BAL's domain: priority 10 is the
   PSC front (BAL PER/ORG), priority 20 the AUTH_CLI front (BAL APP); never one for the other
   [ECO.1.1.9, EX_LPS_0300]. The certificate is checked against the SRV *target*.
2. The server certificate must chain to the IGC Santé CAs you ship [ECO.1.1.10] and must not be
   revoked [ECO.1.1.6]; the last valid CRL is kept on disk and used when a download fails
   [ECO.1.1.7]; with no valid CRL at all, the connection is refused (fail closed).

A BAL APP is used so that no PSC login is needed; trust works the same for every kind of BAL.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import sandbox_env

from mssante.client import Mailbox, TrustSettings
from mssante.discovery import Front, discover
from mssante.errors import ConnectError, RevocationError
from mssante.trust import CRLCache


async def offline(url: str) -> bytes:
    """A CRL fetcher for a workstation cut off from the IGC Santé publication point."""
    raise ConnectError(f"cannot reach {url}")


async def count_folders(info: dict[str, Any], tls: TrustSettings) -> int:
    app = sandbox_env.bal(info, "APP")
    async with Mailbox(app["address"], kind="APP", credentials=sandbox_env.certificate(app),
                       resolver=sandbox_env.resolver(info), tls=tls, options=sandbox_env.options(info)) as box:
        return len(await box.folders())


async def main() -> None:
    info = sandbox_env.load(sandbox_env.sandbox_file())
    resolver = sandbox_env.resolver(info)  # production: None, the system's resolver

    # 1. Discovery: which front for which kind of BAL.
    for kind, front in (("PER", Front.PSC), ("APP", Front.AUTH_CLI)):
        servers = await discover(sandbox_env.bal(info, kind)["address"], front=front, resolver=resolver)
        for endpoint in (*servers.imap, *servers.submission):
            print(f"BAL {kind}: {endpoint.service.value:10} {endpoint.host}:{endpoint.port} "
                  f"(priorité {endpoint.priority}, certificat attendu pour {endpoint.tls_server_name})")

    # 2. Trust: the CA bundle, and a CRL cache kept on disk between runs (ECO.1.1.7).
    ca_bundle = Path(info["ca_bundle"])  # production: the IGC Santé CA certificates you ship
    crl_dir = Path(tempfile.mkdtemp(prefix="mssante-crl-"))
    online = TrustSettings(ca_bundle=ca_bundle, crls=CRLCache(directory=crl_dir))
    print("En ligne :", await count_folders(info, online), "dossiers; CRL gardées dans", crl_dir)

    # The publication point is unreachable, but the kept CRLs are still valid: the check still runs.
    kept = TrustSettings(ca_bundle=ca_bundle, crls=CRLCache(fetcher=offline, directory=crl_dir))
    print("Hors ligne, CRL gardées :", await count_folders(info, kept), "dossiers")

    # No valid CRL at all: the connection is refused rather than trusted blindly.
    nothing = TrustSettings(ca_bundle=ca_bundle, crls=CRLCache(fetcher=offline))
    try:
        await count_folders(info, nothing)
    except RevocationError as exc:
        print(f"Hors ligne, sans CRL : {type(exc).__name__} ({exc.fault}) — connexion refusée")
    else:
        raise AssertionError("expected RevocationError")


if __name__ == "__main__":
    asyncio.run(main())
