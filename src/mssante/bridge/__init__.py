"""The PSC bridge: the intermediate server between thick MSSanté clients and Pro Santé Connect.

ANS requires that a thick client never talks to PSC: the client secret stays on a server (the
"serveur intermédiaire", ANS API LPS webinar; psc-igc.md §1.6). This package is that server
(:class:`Bridge`, ``mssante bridge serve``) and its client side (:mod:`mssante.bridge.client`).

Server side: browser (authorization code + PKCE) and CIBA logins, access tokens on demand,
refreshed once across replicas, an SSE stream announcing ``session_ended`` / ``refresh_failed``,
logout and back-channel logout; sessions in SQLite or Redis with refresh tokens AES-GCM
encrypted at rest; access tokens never on disk.
"""

from mssante.bridge._audit import Audit
from mssante.bridge._config import BridgeConfig, RateLimit
from mssante.bridge._core import BridgeCore
from mssante.bridge._crypto import TokenCipher
from mssante.bridge._errors import BridgeError
from mssante.bridge._records import LoginRecord, SessionRecord, SessionStore
from mssante.bridge._server import Bridge, open_store, serve
from mssante.bridge._sqlite import SQLiteStore
from mssante.bridge.client import BridgeClient, BridgeTokenSource, PendingLogin

__all__ = [
    "Audit",
    "Bridge",
    "BridgeClient",
    "BridgeConfig",
    "BridgeCore",
    "BridgeError",
    "BridgeTokenSource",
    "LoginRecord",
    "PendingLogin",
    "RateLimit",
    "SQLiteStore",
    "SessionRecord",
    "SessionStore",
    "TokenCipher",
    "open_store",
    "serve",
]
