"""The sandbox's JSON API (``/api``), documented by OpenAPI at ``/api/openapi.json``.

* :mod:`.messages` reads the BALs through the mailbox store (parsed, checked, cached);
* :mod:`.events` turns new mail and journal updates into server-sent events;
* :mod:`.routes` holds the handlers, :mod:`.openapi` their description, :mod:`.faults` the
  fault-injection bodies.
"""

from mssante.sandbox.api.events import Event, EventHub
from mssante.sandbox.api.messages import FOLDERS, Mailboxes, NotFound, StoreUnavailable
from mssante.sandbox.api.routes import SandboxAPI

__all__ = ["FOLDERS", "Event", "EventHub", "Mailboxes", "NotFound", "SandboxAPI", "StoreUnavailable"]
