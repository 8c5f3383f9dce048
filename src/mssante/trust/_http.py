"""One bounded HTTP exchange for revocation data (CRLs, OCSP): timeout, status and size checked."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx2

from mssante.errors import TimeoutError, TransportError, UsageError

__all__ = ["bounded_fetch"]


async def bounded_fetch(
    url: str,
    *,
    what: str,
    http_timeout: float,
    max_bytes: int,
    client: httpx2.AsyncClient | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """GET ``url`` (or POST ``content``) and return the body, read in chunks up to ``max_bytes``.

    ``what`` names the exchange in errors ("CRL download", "OCSP request"). ``client`` is used
    when given (its lifetime stays the caller's); otherwise one client is opened for the call.

    Raises:
        UsageError: the URL is not http(s).
        TimeoutError: the server did not answer in time.
        TransportError: connection failure, a non-200 status, or a body over ``max_bytes``.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise UsageError(f"{what}: not an HTTP URL: {url}")
    try:
        if client is not None:
            return await _exchange(client, url, what, http_timeout, max_bytes, content, headers)
        async with httpx2.AsyncClient(timeout=http_timeout, trust_env=False) as own:
            return await _exchange(own, url, what, http_timeout, max_bytes, content, headers)
    except httpx2.TimeoutException as exc:
        raise TimeoutError(f"{what} timed out: {url}") from exc
    except httpx2.HTTPError as exc:
        raise TransportError(f"{what} failed: {url}: {exc}") from exc


async def _exchange(
    client: httpx2.AsyncClient, url: str, what: str, http_timeout: float, max_bytes: int,
    content: bytes | None, headers: Mapping[str, str] | None,
) -> bytes:
    method = "GET" if content is None else "POST"
    async with client.stream(method, url, content=content, headers=headers, timeout=http_timeout) as response:
        if response.status_code != 200:
            raise TransportError(f"{what} failed: {url}: HTTP {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise TransportError(f"{what} from {url} is larger than {max_bytes} bytes")
        return bytes(body)
