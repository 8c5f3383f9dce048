"""Receive buffer and response framing: octets in, whole responses (lines + literals) out.

RFC 3501 §2.2.2: a server response is one line, or several lines joined by literals
(``{n}`` at the end of a line, then exactly *n* octets, then the line continues). Framing is
done here once, with an offset-based buffer, so a response split at any byte boundary (IDLE
notifications arriving in pieces, imapclient #519) is reassembled before anything parses it,
and no token ever copies the rest of the buffer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Final

from mssante.errors import PeerLimitError

from ._abnf import LITERAL_AT_END
from ._events import LiteralChunk
from ._types import StreamedLiteral

__all__ = ["Frame", "Framer", "ReceiveBuffer"]

# Compact the bytearray only when the consumed prefix is large and at least half of it, so that
# the total copying stays linear in the number of octets received.
_COMPACT_AT: Final = 64 * 1024
# A status response (RFC 3501 §7.1) ends with free text: "{5}" there is text, not a literal.
# Only its optional "[resp-text-code]" may hold a string (e.g. BADCHARSET astrings).
_STATUS: Final = re.compile(rb"(?:\*|[^ ]+) (?:OK|NO|BAD|BYE|PREAUTH)(?= |\Z)(?: (\[))?", re.IGNORECASE)

_FETCH: Final = re.compile(rb"\* [0-9]+ FETCH ", re.IGNORECASE)


class _Rule(enum.Enum):
    ANYWHERE = "anywhere"
    IN_CODE = "in_code"
    NEVER = "never"


class ReceiveBuffer:
    """Bytes received and not yet consumed, read through a start offset (no ``buf = buf[n:]``)."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0
        self._scan = 0  # where the search for the next CRLF resumes

    def __len__(self) -> int:
        return len(self._data) - self._start

    def append(self, data: bytes) -> None:
        """Add received octets at the end."""
        self._data += data

    def take_line(self) -> bytes | None:
        """Remove and return the next line without its CRLF, or ``None`` if no CRLF yet."""
        idx = self._data.find(b"\r\n", max(self._start, self._scan))
        if idx < 0:
            self._scan = max(self._start, len(self._data) - 1)
            return None
        line = self._slice(self._start, idx)
        self._start = self._scan = idx + 2
        self._compact()
        return line

    def take(self, n: int) -> bytes:
        """Remove and return up to ``n`` octets."""
        end = min(self._start + n, len(self._data))
        out = self._slice(self._start, end)
        self._start = self._scan = end
        self._compact()
        return out

    def peek(self, n: int) -> bytes:
        """Return up to ``n`` unconsumed octets without consuming them (for error messages)."""
        return self._slice(self._start, min(self._start + n, len(self._data)))

    def clear(self) -> None:
        """Forget everything buffered."""
        self._data = bytearray()
        self._start = self._scan = 0

    def _slice(self, start: int, end: int) -> bytes:
        with memoryview(self._data) as view:
            return bytes(view[start:end])

    def _compact(self) -> None:
        if self._start == len(self._data):
            # Everything consumed: start afresh (an idle connection keeps no buffer, and a large
            # literal's memory is released at once).
            self._data = bytearray()
            self._start = self._scan = 0
        elif self._start >= _COMPACT_AT and self._start * 2 >= len(self._data):
            del self._data[: self._start]
            self._scan -= self._start
            self._start = 0


@dataclass
class Frame:
    """One complete server response: ``len(literals) == len(lines) - 1``.

    ``lines[i]`` ends with the ``{n}`` announcement of ``literals[i]``.
    """

    lines: list[bytes] = field(default_factory=list)
    literals: list[bytes | StreamedLiteral] = field(default_factory=list)

    def describe(self, limit: int = 120) -> str:
        """The response text with literals elided, truncated: safe for an error message."""
        text = b" ".join(self.lines)
        shown = text[:limit].decode("ascii", "backslashreplace")
        return shown + ("..." if len(text) > limit else "")


class Framer:
    """Cut the received octets into :class:`Frame` objects (and literal chunks when streaming).

    Args:
        max_line_length: longest line accepted, CRLF and literals excluded.
        max_literal_size: largest literal accepted (streamed or not).
        max_literals: most literals in one response.
        max_response_size: most octets held for one response, lines and held literals together
            (streamed literals are not held). Without it, 1,000 literals just under the literal
            limit would all be kept.
        stream_literals_over: literals of FETCH responses larger than this are returned as
            :class:`LiteralChunk` pieces instead of being held; ``None`` never streams.
    """

    def __init__(
        self,
        *,
        max_line_length: int,
        max_literal_size: int,
        max_literals: int,
        stream_literals_over: int | None,
        max_response_size: int | None = None,
    ) -> None:
        self.buffer = ReceiveBuffer()
        self._max_line = max_line_length
        self._max_literal = max_literal_size
        self._max_literals = max_literals
        self._stream_over = stream_literals_over
        self._max_response = max_response_size if max_response_size is not None else max_literal_size + max_line_length
        self._held = 0  # octets held by the current response
        self._frame = Frame()
        self._literal_size: int | None = None  # octets announced by the pending literal
        self._literal_done = 0  # octets of a streamed literal already handed out
        self._rule = _Rule.ANYWHERE  # where this response may announce literals

    def has_partial(self) -> bool:
        """True if a response has started and is not complete."""
        return bool(self._frame.lines) or len(self.buffer) > 0

    def next(self) -> Frame | LiteralChunk | None:
        """Return the next complete frame, a streamed literal chunk, or ``None`` (need data).

        Raises:
            PeerLimitError: a line, a literal or a whole response exceeds its limit (the stream
                cannot be resynced).
            RemoteProtocolError: a line is not terminated by CRLF where required.
        """
        while True:
            if self._literal_size is not None:
                got = self._read_literal(self._literal_size)
                if got is None or isinstance(got, LiteralChunk):
                    return got
                continue
            line = self.buffer.take_line()
            if line is None:
                if len(self.buffer) > self._max_line:
                    raise PeerLimitError(f"IMAP response line longer than {self._max_line} octets")
                return None
            if len(line) > self._max_line:
                raise PeerLimitError(f"IMAP response line longer than {self._max_line} octets")
            if not self._frame.lines:
                self._rule = self._literal_rule(line)
                self._held = 0
            self._hold(len(line))
            self._frame.lines.append(line)
            allowed = self._rule is _Rule.ANYWHERE or (self._rule is _Rule.IN_CODE and b"]" not in line)
            # A literal is announced at the very end of the line: look for it only there.
            match = LITERAL_AT_END.search(line) if allowed and line.endswith(b"}") else None
            if match is None:
                frame, self._frame = self._frame, Frame()
                return frame
            size = int(match.group(2))
            if size > self._max_literal:
                raise PeerLimitError(f"IMAP literal of {size} octets exceeds the limit of {self._max_literal}")
            if len(self._frame.lines) > self._max_literals:
                raise PeerLimitError(f"more than {self._max_literals} literals in one IMAP response")
            if not self._streams(size):
                self._hold(size)  # refused when announced, before its octets are buffered
            self._literal_size = size

    def _hold(self, size: int) -> None:
        self._held += size
        if self._held > self._max_response:
            raise PeerLimitError(f"IMAP response larger than {self._max_response} octets held in memory")

    def _streams(self, size: int) -> bool:
        # Only message data (FETCH, RFC 3501 §7.4.2) is streamed: mailbox names and other
        # strings stay small and are parsed as values.
        streamable = _FETCH.match(self._frame.lines[0]) is not None
        return streamable and self._stream_over is not None and size > self._stream_over

    def _read_literal(self, size: int) -> bytes | LiteralChunk | None:
        if self._streams(size):
            if len(self.buffer) == 0 and self._literal_done < size:
                return None
            data = self.buffer.take(size - self._literal_done)
            offset = self._literal_done
            self._literal_done += len(data)
            if self._literal_done == size:
                self._finish_literal(StreamedLiteral(size=size))
            return LiteralChunk(data=data, offset=offset, total=size)
        if len(self.buffer) < size:
            return None
        data = self.buffer.take(size)
        self._finish_literal(data)
        return data

    def _finish_literal(self, value: bytes | StreamedLiteral) -> None:
        self._frame.literals.append(value)
        self._literal_size = None
        self._literal_done = 0

    @staticmethod
    def _literal_rule(first_line: bytes) -> _Rule:
        # RFC 3501 §7.5: "+" continuation requests carry text or base64, never literals.
        if first_line.startswith(b"+"):
            return _Rule.NEVER
        status = _STATUS.match(first_line)
        if status is None:
            return _Rule.ANYWHERE
        # Status response: only an unclosed "[resp-text-code" may announce a literal.
        return _Rule.IN_CODE if status.group(1) is not None else _Rule.NEVER
