"""What differs between the sandbox and a real operator, in one place (shared by the examples).

Every example takes the path of the sandbox's ``sandbox.json`` (``mssante sandbox up`` writes
it in ``.sandbox/``). Against a real MSSanté operator you would change only what this module
returns:

* :func:`trust` — the IGC Santé CA bundle you ship with your software (ECO.1.1.10), instead of
  the sandbox's test PKI; revocation stays on (``revocation="require"``, ECO.1.1.6/7);
* :func:`resolver` — ``None`` (the system's DNS), instead of the sandbox's own DNS server;
* :func:`options` — no ``resolve`` map: the operator's host names are in the public DNS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mssante.client import ConnectionSettings, MailboxOptions, TrustSettings
from mssante.credentials import ClientCertificate
from mssante.discovery import DNSPythonResolver

#: The Convergence product reference of your software (X-MSS-NIL, ECO.2.4.3).
PRODUCT_REFERENCE = "DEV935997"


def sandbox_file() -> Path:
    """The ``sandbox.json`` path given on the command line (default: ``.sandbox/sandbox.json``)."""
    return Path(sys.argv[1] if len(sys.argv) > 1 else ".sandbox/sandbox.json")


def load(path: Path) -> dict[str, Any]:
    """Read the sandbox contract."""
    info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return info


def bal(info: dict[str, Any], kind: str, *, skip: tuple[str, ...] = ("vsm@", "crbio-xdm@")) -> dict[str, Any]:
    """The first test BAL of ``kind`` (PER, ORG or APP), the auto-responders left aside."""
    return next(b for b in info["bals"] if b["kind"] == kind and not b["address"].startswith(skip))


def trust(info: dict[str, Any]) -> TrustSettings:
    """Trust the sandbox's IGC Santé look-alike; the CRLs are fetched over HTTP, fail closed."""
    return TrustSettings(ca_bundle=Path(info["ca_bundle"]))


def resolver(info: dict[str, Any]) -> DNSPythonResolver:
    """The sandbox's DNS, which serves the ``_imap._tcp`` / ``_submission._tcp`` SRV records."""
    return DNSPythonResolver(nameservers=[info["dns"]["host"]], port=info["dns"]["port"])


def options(info: dict[str, Any], **changes: Any) -> MailboxOptions:
    """Connect the fronts' names to 127.0.0.1 (their certificates are still checked by name)."""
    names = [info[proto][front]["host"] for proto in ("imap", "smtp") for front in ("psc", "authcli")]
    connection = ConnectionSettings(connect_timeout=10, command_timeout=20, resolve=dict.fromkeys(names, "127.0.0.1"))
    return MailboxOptions(connection=connection, **changes)


def certificate(entry: dict[str, Any]) -> ClientCertificate:
    """The ORG AUTH_CLI certificate the sandbox issued for a BAL APP."""
    return ClientCertificate(cert=Path(entry["cert"]), key=Path(entry["key"]))
