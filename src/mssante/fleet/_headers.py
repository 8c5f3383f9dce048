"""The X-MSS headers of a new message (Référentiel #2 ECO.2.4.x), for its event: one bounded header fetch."""

from __future__ import annotations

import email.parser
import email.policy

from mssante.client import IMAPConnection, Mailbox
from mssante.wire.imap import FetchResponse, UidFetch

__all__ = ["X_MSS_FIELDS", "x_mss_headers"]

#: ECO.2.4.3 (NIL), ECO.2.4.2 (INS), ECO.2.4.1 (CODECDA), ECO.2.2.8 (MES).
X_MSS_FIELDS = ("X-MSS-NIL", "X-MSS-INS", "X-MSS-CODECDA", "X-MSS-MES")
_ITEM = f"BODY.PEEK[HEADER.FIELDS ({' '.join(X_MSS_FIELDS)})]"
_MAX = 16 * 1024  # header fields only: anything longer is cut, never buffered whole


def parse_x_mss(block: bytes) -> dict[str, str]:
    """The X-MSS fields of a header block; repeated fields (CODECDA) joined with ``", "``.
    """
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(block[:_MAX])
    out = {}
    for name in X_MSS_FIELDS:
        values = [str(v).strip() for v in headers.get_all(name) or ()]
        if values:
            out[name] = ", ".join(values)
    return out


async def x_mss_headers(box: Mailbox, folder: str, uid: int) -> dict[str, str]:
    """Fetch only the X-MSS header fields of message ``uid`` (``BODY.PEEK``: flags untouched).

    Uses the mailbox's command connection (the watch keeps its own).

    Raises:
        CommandFailed, TransportError, AuthError, PSCError: the fetch failed (see ``Mailbox.imap_call``).
    """

    async def run(conn: IMAPConnection) -> dict[str, str]:
        await conn.select(folder, readonly=True)
        _, events = await conn.command(UidFetch(uids=uid, items=("UID", _ITEM)))
        for event in events:
            if isinstance(event, FetchResponse) and event.uid == uid:
                for key, value in event.items:
                    if key.startswith("BODY[HEADER.FIELDS") and isinstance(value, bytes):
                        return parse_x_mss(value)
        return {}

    return await box.imap_call("fetch", f"UID FETCH {uid} (X-MSS header fields) in {folder}", run)
