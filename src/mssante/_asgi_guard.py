"""What every mssante HTTP server (bridge, sandbox) puts in front of its app: bounded request bodies.

:class:`BodyLimit` is a pure ASGI middleware. A request announcing more than its route's limit
(``Content-Length``) is refused 413 before a byte of the body is read; a chunked body is read
up to the limit, then refused 413. A body within the limit is read whole before the app runs
and handed to it at once, so a handler never sees the client vanish halfway through its
body (Starlette's ``ClientDisconnect``): a client that leaves while sending simply gets no
answer. After the body, ``receive`` is the server's again (streams still learn of a disconnect).

A ``multipart/form-data`` body is refused 415 except on the paths that take uploads: a handler
reading a small form with Starlette's ``request.form()`` does not close the temporary files
of a multipart body it did not expect. Where uploads are taken, a multipart body without its
boundary or its close delimiter (RFC 2046 §5.1.1) is refused 400: Starlette's parser leaves the
temporary file of an unfinished part open.

The refusals themselves (JSON for an API, a page for a browser) are the app's: ``refuse``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

__all__ = ["ASGIApp", "BodyLimit", "Refusal"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: ``refuse(scope, status, message)``: the ASGI app answering a refused request.
Refusal = Callable[[Scope, int, str], ASGIApp]


class BodyLimit:
    """ASGI middleware bounding request bodies per path (413 above the limit)."""

    def __init__(self, app: ASGIApp, *, limit: int, refuse: Refusal,
                 overrides: Sequence[tuple[str, int]] = (), uploads: Sequence[str] = ()) -> None:
        """Guard ``app``: ``limit`` bytes by default, ``overrides`` as (path regex, bytes), first match wins.

        ``uploads``: the path regexes where a ``multipart/form-data`` body is accepted.

        Raises:
            re.error: an override or upload path is not a valid regular expression.
        """
        self.app = app
        self.limit = limit
        self.refuse = refuse
        self.overrides = [(re.compile(pattern), size) for pattern, size in overrides]
        self.uploads = [re.compile(pattern) for pattern in uploads]

    def limit_for(self, path: str) -> int:
        """The body limit of ``path``, in bytes."""
        return next((size for pattern, size in self.overrides if pattern.fullmatch(path)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope.

        Raises:
            Whatever the wrapped app raises.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, present = await self._read(scope, receive, send)
        if body is None:
            return
        await self.app(scope, _Replay(body, receive) if present else receive, send)

    async def read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """Read the body of an HTTP request within its path's limit; None once it is refused or its client gone.

        A refusal has been answered (``refuse``) when this returns None. A request without a body
        (no ``Content-Length``, no ``Transfer-Encoding``) returns ``b""`` without calling ``receive``.
        An app serving a request itself (a fast path in front of its router) calls this first.

        Raises:
            Whatever ``receive``, ``send`` or the refusal app raise.
        """
        return (await self._read(scope, receive, send))[0]

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> tuple[bytes | None, bool]:
        """The body (None: refused or gone) and whether the request has one."""
        length: bytes | None = None
        ctype: bytes | None = None
        chunked = False
        for name, value in scope.get("headers", ()):  # the last of each wins
            name = name.lower()
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                ctype = value
        if length is None and not chunked:  # no body (RFC 9112 §6.3)
            return b"", False
        path = scope.get("path", "")
        kind = (ctype or b"").partition(b";")[0].strip().lower()
        if kind.startswith(b"multipart/") and not any(p.fullmatch(path) for p in self.uploads):
            await self.refuse(scope, 415, "multipart bodies are not accepted here")(scope, receive, send)
            return None, True
        limit = self.limit_for(path)
        if length is not None and (not length.isdigit() or int(length) > limit):
            status = 400 if not length.isdigit() else 413  # the server checks the syntax first
            await self.refuse(scope, status, f"the request body exceeds {limit} bytes")(scope, receive, send)
            return None, True
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, True  # gone before its body was complete: nobody to answer
            chunk = message.get("body", b"")
            if not body and not message.get("more_body", False) and len(chunk) <= limit:
                body = chunk  # the whole body in one message (the common case): no copy
                break
            body += chunk
            if len(body) > limit:
                await self.refuse(scope, 413, f"the request body exceeds {limit} bytes")(scope, receive, send)
                return None, True
            if not message.get("more_body", False):
                break
        if kind.startswith(b"multipart/") and not _complete_multipart(ctype or b"", body):
            await self.refuse(scope, 400, "the multipart body lacks its boundary or its end")(scope, receive, send)
            return None, True
        return bytes(body), True


def _complete_multipart(content_type: bytes, body: bytes | bytearray) -> bool:
    """Whether ``body`` has the boundary of ``content_type`` and its close delimiter (RFC 2046 §5.1.1)."""
    match = re.search(rb';\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))', content_type, re.IGNORECASE)
    if match is None:
        return False
    close = b"--" + (match.group(1) or match.group(2)) + b"--"
    return body.startswith(close) or b"\r\n" + close in body


class _Replay:
    """``receive`` giving the buffered body once, then the server's own messages."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self.body: bytes | None = body
        self.receive = receive

    async def __call__(self) -> Message:
        if self.body is None:
            return await self.receive()
        body, self.body = self.body, None
        return {"type": "http.request", "body": body, "more_body": False}
