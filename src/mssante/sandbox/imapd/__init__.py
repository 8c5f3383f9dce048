"""The sandbox's own IMAP engine: mailbox store, command reader, session (no network I/O here).

The IMAP fronts (:mod:`mssante.sandbox.fronts.imap`) read commands from the network, handle
STARTTLS and SASL, and pass the mailbox commands to a :class:`Session` over the shared
:class:`Store`. Messages, flags, UIDs and UIDVALIDITY live in memory and, given a path, in
SQLite so that a restart keeps them.
"""

from mssante.sandbox.imapd._command import BadCommand, Reader
from mssante.sandbox.imapd._session import Answer, Session
from mssante.sandbox.imapd._store import Account, Mailbox, Message, Store, View

__all__ = ["Account", "Answer", "BadCommand", "Mailbox", "Message", "Reader", "Session", "Store", "View"]
