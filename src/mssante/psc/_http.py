"""The HTTP boundary towards PSC: one httpx2 client, client authentication, error mapping.

Client authentication uses Authlib's client-side encoders (``client_secret_basic``,
``client_secret_post``) through its httpx2 ``Auth`` adapter; ``tls_client_auth`` (RFC 8705
§2.1.1) adds ``client_id`` to the form while the certificate travels in the TLS handshake.

Foreign exceptions are mapped here, ``raise ... from exc``:

* httpx2 timeouts → :class:`~mssante.errors.TimeoutError`; TLS failures → the
  :mod:`mssante.trust` mapping (:class:`~mssante.errors.CertificateError`...); other transport
  failures → :class:`~mssante.errors.ConnectError` / :class:`~mssante.errors.TransportError`;
* HTTP 5xx, or ``temporarily_unavailable`` → :class:`~mssante.errors.AuthUnavailable`;
* an OAuth error body (RFC 6749 §5.2) → :class:`~mssante.errors.PSCError` with ``oauth_error``;
* a success answer that is not a JSON object → :class:`~mssante.errors.RemoteProtocolError`.

Nothing here logs a URL query, a header or a body: only the endpoint name and status.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import Any

import httpx2
from authlib.integrations.httpx_client import OAuth2ClientAuth

from mssante.errors import (
    AuthUnavailable,
    ConnectError,
    MssanteError,
    PSCError,
    RemoteProtocolError,
    TimeoutError,
    TransportError,
    UsageError,
)
from mssante.psc._settings import PSCSettings
from mssante.trust import map_ssl_error

__all__ = ["HTTP", "oauth_error_from"]

log = logging.getLogger("mssante.psc")
_MAX_DESCRIPTION = 200


def _encode_tls_client_auth(client: Any, method: str, uri: str, headers: Any, body: Any) -> tuple[Any, Any, Any]:
    """RFC 8705 §2.1.1: the client is identified by ``client_id`` in the body, proven by its certificate."""
    extra = httpx2.QueryParams({"client_id": client.client_id})
    text = body.decode() if isinstance(body, bytes) else (body or "")
    body = f"{text}&{extra}" if text else str(extra)
    return uri, headers, body


def _clean(text: object) -> str:
    """Shorten a server-supplied string and drop control characters (log/terminal injection)."""
    return "".join(c for c in str(text)[:_MAX_DESCRIPTION] if c.isprintable())


def oauth_error_from(body: Mapping[str, Any], what: str) -> MssanteError:
    """Build our error for an OAuth error answer (RFC 6749 §5.2, CIBA §11).

    Raises:
        Nothing: the error is returned.
    """
    code = _clean(body.get("error", ""))
    description = _clean(body.get("error_description") or "")
    message = f"PSC refused the {what}: {code}" + (f" ({description})" if description else "")
    if code == "temporarily_unavailable":
        return AuthUnavailable(message, imap_code="UNAVAILABLE")
    return PSCError(message, oauth_error=code or None)


def _map_transport(exc: httpx2.TransportError, what: str) -> MssanteError:
    cause: BaseException | None = exc
    while cause is not None:  # the TLS failure, if any, is somewhere down the chain
        if isinstance(cause, ssl.SSLError):
            return map_ssl_error(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx2.TimeoutException):
        return TimeoutError(f"PSC did not answer the {what} in time")
    if isinstance(exc, httpx2.ConnectError):
        return ConnectError(f"cannot connect to PSC for the {what}: {type(exc).__name__}")
    return TransportError(f"the {what} to PSC failed: {type(exc).__name__}")


class HTTP:
    """One httpx2 client for every call to PSC, with the settings' TLS context and timeout."""

    def __init__(self, settings: PSCSettings, *, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        verify: ssl.SSLContext | bool = settings.ssl_context if settings.ssl_context is not None else True
        self.client = httpx2.AsyncClient(
            verify=verify, timeout=settings.timeout, trust_env=settings.trust_env, follow_redirects=False,
            headers={"Accept": "application/json"}, transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    def client_auth(self) -> httpx2.Auth:
        """Return the client authentication for token, introspection, revocation and CIBA requests."""
        s = self.settings
        method: Any = _encode_tls_client_auth if s.auth_method == "tls_client_auth" else s.auth_method
        secret = s.client_secret.reveal() if s.client_secret is not None else None
        auth: httpx2.Auth = OAuth2ClientAuth(client_id=s.client_id, client_secret=secret, auth_method=method)
        return auth

    async def send(self, method: str, url: str, what: str, **kwargs: Any) -> httpx2.Response:
        """Send one request; map transport failures.

        Raises:
            TimeoutError, ConnectError, TransportError: the network failed.
            CertificateError, TrustError: TLS with PSC failed.
            UsageError: the client was closed.
        """
        if self.client.is_closed:
            raise UsageError("this PSCClient is closed")
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx2.TransportError as exc:
            raise _map_transport(exc, what) from exc
        except httpx2.HTTPError as exc:  # e.g. a malformed URL from a discovery document
            raise TransportError(f"the {what} to PSC failed: {type(exc).__name__}") from exc
        log.debug("PSC %s: HTTP %d", what, response.status_code)
        return response

    async def post_form(
        self, url: str, data: Mapping[str, str], what: str, *, authenticate: bool = True
    ) -> httpx2.Response:
        """POST an ``application/x-www-form-urlencoded`` body, with client authentication.

        Raises:
            TimeoutError, ConnectError, TransportError, TrustError: see :meth:`send`.
        """
        auth = self.client_auth() if authenticate else None
        headers = {"Cache-Control": "no-store"}
        return await self.send("POST", url, what, data=dict(data), auth=auth, headers=headers)

    def json(self, response: httpx2.Response, what: str) -> dict[str, Any]:
        """Return the JSON object of a successful answer, or raise the error it carries.

        Raises:
            AuthUnavailable: HTTP 5xx or ``temporarily_unavailable``.
            PSCError: an OAuth error answer, or another HTTP error status.
            RemoteProtocolError: a 2xx answer that is not a JSON object.
        """
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 500:
            if isinstance(body, dict) and body.get("error"):
                error = oauth_error_from(body, what)
                if isinstance(error, AuthUnavailable):
                    raise error
            raise AuthUnavailable(f"PSC answered the {what} with HTTP {response.status_code}",
                                  imap_code="UNAVAILABLE")
        if isinstance(body, dict) and "error" in body and response.status_code >= 400:
            raise oauth_error_from(body, what)
        if response.status_code >= 400:
            raise PSCError(f"PSC answered the {what} with HTTP {response.status_code}")
        if not isinstance(body, dict):
            raise RemoteProtocolError(f"PSC's answer to the {what} is not a JSON object")
        return body
