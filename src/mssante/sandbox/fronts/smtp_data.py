"""Reading the DATA payload of a submission (RFC 5321 §4.1.1.4, §4.5.2)."""

from __future__ import annotations

import asyncio

from mssante.sandbox.fronts.smtp_options import Replies, SubmissionOptions

__all__ = ["read_data"]


async def read_data(reader: asyncio.StreamReader, options: SubmissionOptions) -> tuple[bytes, str | None]:
    """Read a DATA payload up to the lone dot, undoing dot-stuffing (RFC 5321 §4.5.2).

    Returns the message, or an empty message and the reply refusing it: too big (RFC 1870 §6.2)
    or a line longer than ``options.max_line_length`` (RFC 5321 §4.5.3.1.6). The whole payload
    is read either way, so the session stays in step with the client.

    Raises:
        asyncio.IncompleteReadError: the client closed the connection mid-message.
    """
    chunks: list[bytes] = []
    size, too_big, too_long, partial = 0, False, False, False
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
            continued = partial
            partial = False
        except asyncio.LimitOverrunError as exc:
            line = await reader.read(exc.consumed)
            continued, partial, too_long = partial, True, True
        if not continued and line == b".\r\n":
            break
        if not continued and line.startswith(b"."):
            line = line[1:]
        size += len(line)
        too_big = too_big or size > options.max_size
        if options.max_line_length is not None and len(line) > options.max_line_length:
            too_long = True
        if not (too_big or too_long):
            chunks.append(line)
        else:
            chunks.clear()
    if too_big:
        return b"", Replies.TOO_BIG  # RFC 1870 §6.2
    if too_long:
        return b"", f"{Replies.LINE_TOO_LONG} (RFC 5321 section 4.5.3.1.6)"
    return b"".join(chunks), None
