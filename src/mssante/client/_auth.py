"""The authentication flow of a BAL: which SASL mechanism, and the retry rules of ref2 §2.4.

In one place (house rule 7):

* PER/ORG: a PSC access token from the :class:`~mssante.credentials.TokenSource`, sent with
  SASL XOAUTH2 (ECO.1.2.1). On :class:`TokenRejected`, ``token(fresh=True)`` and retry
  **once**; a second rejection fails clearly (never a third attempt, never a password).
* APP: the ORG AUTH_CLI certificate is in the TLS context; SASL PLAIN with the BAL address as
  authentication id. A rejection is not retried (a new certificate will not appear).
* :class:`NotAuthorized` is never retried.
* :class:`AuthUnavailable` (``[UNAVAILABLE]``, ``454``, PSC unreachable): bounded, jittered
  backoff (:class:`Backoff`), then the error (never a tight loop).
* :class:`PSCError` (``invalid_grant``: the PSC session is over, ECO.1.2.6) goes up untouched.

The rules are keyed on the :class:`~mssante.wire.AuthOutcome` of the error
(:func:`~mssante.wire.outcome_of_error`), the vocabulary the fronts and the judge share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mssante.credentials import ClientCertificate, TokenSource
from mssante.errors import AuthError, TokenRejected, UsageError
from mssante.secret import Secret
from mssante.wire import AuthOutcome, outcome_of_error
from mssante.wire.sasl import ClientMechanism, PlainClient, XOAuth2Client

from ._config import Backoff, BALKind

__all__ = ["BALCredentials", "with_auth_retry"]

T = TypeVar("T")


class BALCredentials:
    """The credentials of one BAL, turned into SASL mechanisms on demand.

    Raises:
        UsageError: the kind and the credentials do not match (PER/ORG need a token source,
            APP a client certificate).
    """

    def __init__(
        self, address: str, kind: BALKind, credentials: TokenSource | ClientCertificate, *, app_password: Secret
    ) -> None:
        """Check that ``kind`` and ``credentials`` match.

        Raises:
            UsageError: a PER/ORG BAL without a token source, or an APP BAL without a certificate.
        """
        if kind not in ("PER", "ORG", "APP"):
            raise UsageError(f"kind must be PER, ORG or APP, not {kind!r}")
        if kind == "APP" and not isinstance(credentials, ClientCertificate):
            raise UsageError("a BAL APP authenticates with a ClientCertificate (ORG AUTH_CLI)")
        if kind != "APP" and (isinstance(credentials, ClientCertificate) or not hasattr(credentials, "token")):
            raise UsageError(f"a BAL {kind} authenticates with a PSC token source (ECO.1.2.1)")
        self.address = address
        self.kind = kind
        self._credentials = credentials
        self._app_password = app_password

    def __repr__(self) -> str:
        return f"BALCredentials({self.address!r}, {self.kind})"

    @property
    def certificate(self) -> ClientCertificate | None:
        """The APP client certificate, or None."""
        return self._credentials if isinstance(self._credentials, ClientCertificate) else None

    @property
    def token_source(self) -> TokenSource | None:
        """The PSC token source, or None for an APP BAL."""
        return None if isinstance(self._credentials, ClientCertificate) else self._credentials

    def author(self) -> str:
        """Who acts, for traces (ECO.4.1.1): the professional's national id when known, else the BAL."""
        national_id = getattr(self._credentials, "national_id", None)
        return national_id if isinstance(national_id, str) and national_id else self.address

    async def mechanism(self, *, fresh: bool = False) -> ClientMechanism:
        """A ready SASL mechanism; ``fresh`` asks the token source for a new token.

        Raises:
            PSCError: the token source has no token (``invalid_grant``: PSC session over).
            AuthUnavailable: PSC is unreachable.
            ConfigError: a misconfigured token source (e.g. an empty environment variable).
        """
        source = self.token_source
        if source is None:
            return PlainClient(self.address, self._app_password)
        return XOAuth2Client(self.address, await source.token(fresh=fresh))


async def with_auth_retry(
    credentials: BALCredentials,
    attempt: Callable[[ClientMechanism], Awaitable[T]],
    *,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``attempt`` (connect + authenticate) under the ref2 §2.4 rules.

    Args:
        credentials: the BAL's credentials.
        attempt: opens a connection and authenticates with the mechanism; it must open a new
            connection on each call (the retry may follow a closed one).
        backoff: delays after ``AuthUnavailable``.
        sleep: injected in tests.

    Returns:
        What ``attempt`` returned.

    Raises:
        TokenRejected: rejected twice (PER/ORG: the second time with a fresh token) or once (APP).
        NotAuthorized: not allowed on this BAL (no retry).
        AuthUnavailable: still unavailable after ``backoff.attempts`` retries.
        PSCError: the token source failed (``invalid_grant``: PSC session over, ECO.1.2.6).
        MssanteError: anything else ``attempt`` raised (transport, trust, protocol).
    """
    fresh = False
    unavailable = 0
    while True:
        try:
            mechanism = await credentials.mechanism(fresh=fresh)
            return await attempt(mechanism)
        except AuthError as exc:
            outcome = outcome_of_error(exc)
            if outcome is AuthOutcome.AUTHENTICATIONFAILED and credentials.token_source is not None:
                if fresh:
                    raise TokenRejected(
                        f"the server rejected a freshly obtained token too ({exc.message}); "
                        "sign in with Pro Santé Connect again",
                        imap_code=exc.imap_code,
                        smtp_code=exc.smtp_code,
                        enhanced_code=exc.enhanced_code,
                        requirement="ref2 §2.4",
                    ) from exc
                fresh = True  # ref2 §2.4: throw the token away, get a new one, retry once
            elif outcome is AuthOutcome.UNAVAILABLE and unavailable < backoff.attempts:
                await sleep(backoff.delay(unavailable))
                unavailable += 1
            else:
                raise  # AUTHORIZATIONFAILED and the rest: never retried
