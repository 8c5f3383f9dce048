"""Watch many BALs with a fleet of worker processes coordinated through Redis.

* The desired set of BALs lives in Redis (:class:`FleetStore`), each with a credential
  *reference* (:class:`BALSpec`), never a secret.
* :class:`Worker` claims BALs with leases (SET NX PX + fencing token), watches each with
  :meth:`mssante.client.Mailbox.watch`, and publishes every new message once on a Redis Stream,
  the checkpoint moved atomically with the XADD.
* The LPS reads the stream with :class:`EventReader` (consumer groups, XREADGROUP/XACK).

Needs the ``fleet`` extra (``pip install 'mssante[fleet]'``). See ``docs/fleet.md``.
"""

from ._connect import Connector, MailboxConnector
from ._http import WorkerCollector, serve_http
from ._model import BALSpec, FleetEvent, Keys, message_fields
from ._reader import EventReader
from ._store import Checkpoint, FleetStore, Lease, Published
from ._worker import Worker, WorkerSettings

__all__ = [
    "BALSpec",
    "Checkpoint",
    "Connector",
    "EventReader",
    "FleetEvent",
    "FleetStore",
    "Keys",
    "Lease",
    "MailboxConnector",
    "Published",
    "Worker",
    "WorkerCollector",
    "WorkerSettings",
    "message_fields",
    "serve_http",
]
