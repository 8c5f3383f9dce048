"""The X-MSS headers of a new message (Référentiel #2 ECO.2.4.x), for its event: bounded header fields."""

from __future__ import annotations

import email.parser
import email.policy

from mssante.wire.imap import FetchResponse

__all__ = ["X_MSS_FIELDS", "X_MSS_ITEM", "parse_x_mss", "x_mss_of"]

#: ECO.2.4.3 (NIL), ECO.2.4.2 (INS), ECO.2.4.1 (CODECDA), ECO.2.2.8 (MES).
X_MSS_FIELDS = ("X-MSS-NIL", "X-MSS-INS", "X-MSS-CODECDA", "X-MSS-MES")
#: The FETCH item asking for them (``BODY.PEEK``: flags untouched), fetched with each summary on the
#: watch connection: no other command, no other connection.
X_MSS_ITEM = f"BODY.PEEK[HEADER.FIELDS ({' '.join(X_MSS_FIELDS)})]"
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


def x_mss_of(response: FetchResponse) -> dict[str, str]:
    """The X-MSS fields of a FETCH response holding :data:`X_MSS_ITEM` (``{}``: none in the message)."""
    for key, value in response.items:
        if key.startswith("BODY[HEADER.FIELDS") and isinstance(value, bytes):
            return parse_x_mss(value)
    return {}
