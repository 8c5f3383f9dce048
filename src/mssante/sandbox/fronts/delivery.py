"""The seam between the submission front and the mailbox store.

The SMTP front accepts a message and hands it to a :class:`MailDelivery` for every local
recipient; the IMAP front's store implements it, so a message sent from one test BAL lands in
another's INBOX and shows up through IDLE. Automatic responders (the XDM auto-responder of the
ANS webinar, MDN robots...) plug in as :class:`Responder` callables keyed by address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MailDelivery", "OutgoingMessage", "Responder"]


class MailDelivery(Protocol):
    """Where accepted messages go."""

    def has_mailbox(self, address: str) -> bool:
        """True when ``address`` is a BAL of this operator (case-insensitive)."""
        ...

    async def deliver(self, address: str, message: bytes, *, folder: str = "INBOX") -> None:
        """Store ``message`` in ``folder`` of BAL ``address``; IDLE sessions are notified.

        Raises:
            UsageError: ``address`` is not a BAL of this operator.
        """
        ...


@dataclass(frozen=True, kw_only=True)
class OutgoingMessage:
    """A message produced by a responder, submitted back through the operator."""

    sender: str
    recipients: Sequence[str]
    data: bytes


#: An automatic responder: given the envelope sender, the responder's own address and the
#: received message, returns the messages to send (usually one reply). Exceptions are logged
#: and swallowed by the front: a broken responder never loses the received message.
Responder = Callable[[str, str, bytes], Awaitable[Sequence[OutgoingMessage]]]
