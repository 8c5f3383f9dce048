"""IMAP4rev1 client protocol engine that does no I/O (RFC 3501, with RFC 9051 grammar where compatible).

No networking code at all: a driver feeds received octets to
:meth:`ClientConnection.receive_data`, pulls events with :meth:`ClientConnection.next_event`
(until ``NEED_DATA``) and writes what :meth:`ClientConnection.send` and friends return.

A driver loop for one command::

    writer.write(conn.send(UidFetch(uids="1:*", items=("FLAGS",))))
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, Continuation) and event.purpose is ContinuationPurpose.LITERAL:
            writer.write(conn.send_literal())
        elif isinstance(event, Tagged):
            break  # event.ok, event.code, event.text
        else:
            ...  # untagged data for this command, or an unsolicited update
"""

from __future__ import annotations

from ._commands import (
    Append,
    Authenticate,
    Capability,
    Close,
    Command,
    Enable,
    Examine,
    Expunge,
    Id,
    Idle,
    ListMailboxes,
    Login,
    Logout,
    Noop,
    Select,
    StartTLS,
    Status,
    Unselect,
)
from ._connection import ClientConnection
from ._events import (
    NEED_DATA,
    Bye,
    CapabilityResponse,
    ConnectionEnded,
    Continuation,
    ContinuationPurpose,
    EnabledResponse,
    ESearchResponse,
    Event,
    ExistsResponse,
    ExpungeResponse,
    FetchResponse,
    FetchValue,
    FlagsResponse,
    Greeting,
    IdResponse,
    ListResponse,
    LiteralChunk,
    Marker,
    OtherResponse,
    RecentResponse,
    SearchResponse,
    StatusResponse,
    Tagged,
    UntaggedStatus,
    VanishedResponse,
)
from ._parser import parse_uid_set
from ._search import SearchKey
from ._state import ClientState
from ._types import (
    Address,
    AppendUid,
    BodyStructure,
    CopyUid,
    Disposition,
    Envelope,
    MultiPart,
    ResponseCode,
    SinglePart,
    StreamedLiteral,
    UidSet,
    Value,
)
from ._uid_commands import UidCopy, UidExpunge, UidFetch, UidMove, UidSearch, UidStore
from ._utf7 import decode_mutf7, encode_mutf7

__all__ = [
    "NEED_DATA",
    "Address",
    "Append",
    "AppendUid",
    "Authenticate",
    "BodyStructure",
    "Bye",
    "Capability",
    "CapabilityResponse",
    "ClientConnection",
    "ClientState",
    "Close",
    "Command",
    "ConnectionEnded",
    "Continuation",
    "ContinuationPurpose",
    "CopyUid",
    "Disposition",
    "ESearchResponse",
    "Enable",
    "EnabledResponse",
    "Envelope",
    "Event",
    "Examine",
    "ExistsResponse",
    "Expunge",
    "ExpungeResponse",
    "FetchResponse",
    "FetchValue",
    "FlagsResponse",
    "Greeting",
    "Id",
    "IdResponse",
    "Idle",
    "ListMailboxes",
    "ListResponse",
    "LiteralChunk",
    "Login",
    "Logout",
    "Marker",
    "MultiPart",
    "Noop",
    "OtherResponse",
    "RecentResponse",
    "ResponseCode",
    "SearchKey",
    "SearchResponse",
    "Select",
    "SinglePart",
    "StartTLS",
    "Status",
    "StatusResponse",
    "StreamedLiteral",
    "Tagged",
    "UidCopy",
    "UidExpunge",
    "UidFetch",
    "UidMove",
    "UidSearch",
    "UidSet",
    "UidStore",
    "Unselect",
    "UntaggedStatus",
    "Value",
    "VanishedResponse",
    "decode_mutf7",
    "encode_mutf7",
    "parse_uid_set",
]
