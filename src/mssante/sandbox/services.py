"""What the sandbox's HTTP faces (webmail, message API, event hub) need from a running sandbox.

:class:`SandboxServices` is the narrow interface they are built on, instead of the whole
:class:`~mssante.sandbox.runner.Sandbox`: its configuration and ``sandbox.json`` description,
its state directory, the session journal, the fronts' fault switches, the automatic responders
and the mailbox store. The runner satisfies it; so does a test's hand-made set of services,
which lets the webmail be served and tested without starting the IMAP/SMTP fronts, the DNS or
the mock PSC.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mssante.sandbox.api.messages import MailboxStore
    from mssante.sandbox.config import SandboxConfig
    from mssante.sandbox.fronts.delivery import Responder
    from mssante.sandbox.fronts.faults import Faults
    from mssante.sandbox.fronts.journal import Journal

__all__ = ["SandboxServices"]


class SandboxServices(Protocol):
    """The services of one sandbox, as its webmail and message API see them."""

    @property
    def config(self) -> SandboxConfig:
        """Professionals, structures, BALs, lifetimes."""
        ...

    @property
    def info(self) -> dict[str, Any]:
        """The ``sandbox.json`` description (ports, URLs, PSC client, BALs)."""
        ...

    @property
    def state_dir(self) -> Path:
        """Where the sandbox keeps its state (reports, PKI, mailboxes)."""
        ...

    @property
    def journal(self) -> Journal:
        """The session journal of the fronts."""
        ...

    @property
    def faults(self) -> Faults:
        """The fronts' fault switches (also the key of the per-sandbox side state)."""
        ...

    @property
    def responders(self) -> Mapping[str, Responder]:
        """The automatic responders, by address."""
        ...

    @property
    def store(self) -> MailboxStore:
        """The mailbox store (raises ``RuntimeError`` before the fronts start)."""
        ...
