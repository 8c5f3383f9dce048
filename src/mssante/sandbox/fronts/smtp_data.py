"""Reading a submitted message: the DATA payload (RFC 5321 §4.1.1.4) and BDAT chunks (RFC 3030).

Both paths feed the same :class:`BodyLimits`, so a message is held to the same size
(RFC 1870 §6) and line length (RFC 5321 §4.5.3.1.6) checks whichever verb carried it. Neither
ever holds more than ``max_size`` octets: past a limit the octets are read and dropped, so the
session stays in step with the client (RFC 1870 §6.2, RFC 3030 §2).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from mssante.sandbox.fronts.smtp_options import Replies, SubmissionOptions

__all__ = ["BodyLimits", "ChunkRequest", "ChunkedBody", "parse_bdat", "read_chunk", "read_data"]

#: Octets read from the socket at a time inside a chunk.
_PIECE: Final = 64 * 1024
_MAX_DIGITS: Final = 20


class BodyLimits:
    """Size and line-length checks of a message body fed in pieces of any size.

    Lines end at CRLF; a CRLF split across two pieces is seen. A bare CR or LF does not end a
    line (RFC 5321 §2.3.8: they are not line ends), as in DATA.
    """

    def __init__(self, options: SubmissionOptions) -> None:
        """Check against ``options.max_size`` and ``options.max_line_length``."""
        self._max_size = options.max_size
        self._max_line = options.max_line_length
        self.size = 0
        self.too_big = False
        self.too_long = False
        self._run = 0  # octets of the current line so far
        self._cr = False  # the last octet fed was a CR

    def would_exceed(self, octets: int) -> bool:
        """Whether ``octets`` more would pass the size limit (RFC 1870 §6.2)."""
        return self.size + octets > self._max_size

    def feed(self, data: bytes) -> None:
        """Account for ``data``, the next octets of the body."""
        if not data:
            return
        self.size += len(data)
        self.too_big = self.too_big or self.size > self._max_size
        if self._max_line is None:
            return
        start = 0
        if self._cr and data[:1] == b"\n":
            self._end_line(self._run + 1)
            start = 1
        at = data.find(b"\r\n", start)
        while at >= 0:
            self._end_line(self._run + at + 2 - start)
            start = at + 2
            at = data.find(b"\r\n", start)
        self._run += len(data) - start
        self._cr = data[-1:] == b"\r"
        if self._run > self._max_line:
            self.too_long = True

    def _end_line(self, length: int) -> None:
        self._run = 0
        if self._max_line is not None and length > self._max_line:
            self.too_long = True

    @property
    def problem(self) -> str | None:
        """The reply refusing the body so far, or None."""
        if self.too_big:
            return Replies.TOO_BIG  # RFC 1870 §6.2
        if self.too_long:
            return f"{Replies.LINE_TOO_LONG} (RFC 5321 section 4.5.3.1.6)"
        return None


async def read_data(reader: asyncio.StreamReader, options: SubmissionOptions) -> tuple[bytes, str | None]:
    """Read a DATA payload up to the lone dot, undoing dot-stuffing (RFC 5321 §4.5.2).

    Returns the message, or an empty message and the reply refusing it: too big (RFC 1870 §6.2)
    or a line longer than ``options.max_line_length`` (RFC 5321 §4.5.3.1.6), or longer than the
    64 KiB read buffer. The whole payload is read either way, so the session stays in step with
    the client.

    Raises:
        asyncio.IncompleteReadError: the client closed the connection mid-message.
    """
    chunks: list[bytes] = []
    limits = BodyLimits(options)
    partial = False
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
            continued = partial
            partial = False
        except asyncio.LimitOverrunError as exc:
            line = await reader.read(exc.consumed)
            continued, partial, limits.too_long = partial, True, True
        if not continued and line == b".\r\n":
            break
        if not continued and line.startswith(b"."):
            line = line[1:]
        limits.feed(line)
        if limits.problem is None:
            chunks.append(line)
        else:
            chunks.clear()
    problem = limits.problem
    return (b"", problem) if problem is not None else (b"".join(chunks), None)


@dataclass
class ChunkRequest:
    """A parsed ``BDAT <size> [LAST]`` (RFC 3030 §2) and how many of its octets were read."""

    size: int
    last: bool
    received: int = 0


def parse_bdat(arg: str | None) -> ChunkRequest | None:
    """Parse the argument of ``BDAT``; None when malformed (RFC 3030 §2: ``1*DIGIT [SP "LAST"]``)."""
    words = (arg or "").split(" ")
    if not 1 <= len(words) <= 2 or not words[0].isascii() or not words[0].isdigit() or len(words[0]) > _MAX_DIGITS:
        return None
    if len(words) == 2 and words[1].upper() != "LAST":
        return None
    return ChunkRequest(size=int(words[0]), last=len(words) == 2)


class ChunkedBody:
    """The message of a BDAT transaction as its chunks arrive; nothing kept once refused."""

    def __init__(self, options: SubmissionOptions) -> None:
        """An empty body checked against ``options``."""
        self.limits = BodyLimits(options)
        self._parts: list[bytes] = []

    def add(self, piece: bytes) -> None:
        """Append ``piece``; past a limit everything held is dropped."""
        self.limits.feed(piece)
        if self.limits.problem is None:
            self._parts.append(piece)
        else:
            self._parts.clear()

    def data(self) -> bytes:
        """The message as received, octet for octet (no dot-stuffing, no line-end change)."""
        return b"".join(self._parts)


async def read_chunk(reader: asyncio.StreamReader, request: ChunkRequest, body: ChunkedBody | None) -> None:
    """Read the octets of a chunk into ``body``, or drop them (``body`` None).

    Read as they come, at most 64 KiB at a time: a chunk is never buffered whole beyond what
    ``body`` keeps. ``request.received`` counts the octets read so far (for the journal when
    the connection is lost mid-chunk).

    Raises:
        asyncio.IncompleteReadError: the client closed the connection mid-chunk.
    """
    while request.received < request.size:
        piece = await reader.read(min(request.size - request.received, _PIECE))
        if not piece:
            raise asyncio.IncompleteReadError(b"", request.size - request.received)
        request.received += len(piece)
        if body is not None:
            body.add(piece)
