"""Credentials for opening a BAL: PSC access tokens (PER/ORG) and ORG AUTH_CLI certificates (APP).

A **token source** gives a fresh PSC access token on demand. Tokens live about two minutes, so
sources cache them in memory only, until shortly before they expire (ECO.1.2.5: an access token
is never written to disk; it is wrapped in :class:`~mssante.secret.Secret` so that it never
shows in a repr or a log). ``token(fresh=True)`` evicts the cached token first: the client
calls it after ``[AUTHENTICATIONFAILED]`` to retry exactly once.

When the PSC session itself is over (refresh refused with ``invalid_grant``, logout), a source
raises :class:`~mssante.errors.PSCError` with ``oauth_error="invalid_grant"``; the session
supervisor then closes every IMAP/SMTP session of that BAL (ECO.1.2.6).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mssante.errors import ConfigError, PSCError
from mssante.secret import Secret

__all__ = [
    "CallbackTokenSource",
    "ClientCertificate",
    "CommandTokenSource",
    "EnvTokenSource",
    "StaticTokenSource",
    "TokenSource",
]


class TokenSource(Protocol):
    """Gives PSC access tokens for one professional's session."""

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return a valid access token; with ``fresh=True``, never the cached one.

        Raises:
            PSCError: no token can be had; ``oauth_error == "invalid_grant"`` means the PSC
                session is over.
            AuthUnavailable: PSC (or the bridge) is temporarily unreachable.
        """
        ...


class StaticTokenSource:
    """A token given once (tests, scripts). It cannot be refreshed."""

    def __init__(self, token: str | Secret) -> None:
        """Wrap ``token``."""
        self._token = token if isinstance(token, Secret) else Secret(token)

    def __repr__(self) -> str:
        return "StaticTokenSource(<token>)"

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return the token (the same one, even when ``fresh``)."""
        return self._token


class EnvTokenSource:
    """Reads the token from an environment variable at each call (``--token-env``)."""

    def __init__(self, variable: str) -> None:
        """Read ``variable``."""
        self.variable = variable

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return the variable's current value.

        Raises:
            ConfigError: the variable is unset or empty.
        """
        value = os.environ.get(self.variable, "").strip()
        if not value:
            raise ConfigError(f"environment variable {self.variable} holds no token")
        return Secret(value)


class CallbackTokenSource:
    """Caches tokens from an async ``fetch()`` returning ``(token, expires_in_seconds)``.

    The cached token is reused until ``margin`` seconds before it expires; concurrent callers
    share one fetch.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str | Secret, float]]],
        *,
        margin: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Fetch with ``fetch``; refresh ``margin`` seconds ahead of expiry."""
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._cached: tuple[Secret, float] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"CallbackTokenSource(cached={self._cached is not None})"

    def evict(self) -> None:
        """Forget the cached token."""
        self._cached = None

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return a cached or newly fetched token.

        Raises:
            PSCError: ``fetch`` failed or returned nothing usable.
        """
        async with self._lock:
            if fresh:
                self._cached = None
            now = self._clock()
            if self._cached is not None and self._cached[1] - self._margin > now:
                return self._cached[0]
            raw, expires_in = await self._fetch()
            secret = raw if isinstance(raw, Secret) else Secret(raw)
            if not secret:
                raise PSCError("the token source returned an empty token")
            self._cached = (secret, now + max(0.0, float(expires_in)))
            return secret


class CommandTokenSource:
    """Runs a command that prints a token on stdout (``--token-command``), like mutt's refresh command.

    The token is cached in memory for ``ttl`` seconds (default 60, PSC tokens live ~120 s).
    """

    def __init__(self, command: str, *, ttl: float = 60.0, timeout: float = 30.0) -> None:
        """Run ``command`` (split like a shell would, not run through a shell)."""
        self._argv = shlex.split(command)
        if not self._argv:
            raise ConfigError("the token command is empty")
        self._timeout = timeout
        self._cache = CallbackTokenSource(self._run, margin=0.0)
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"CommandTokenSource({self._argv[0]!r})"

    async def _run(self) -> tuple[str | Secret, float]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise ConfigError(f"cannot run the token command {self._argv[0]!r}: {exc.strerror}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout)
        except TimeoutError:
            proc.kill()
            raise PSCError(f"the token command did not answer within {self._timeout:g} s") from None
        if proc.returncode != 0:
            detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise PSCError(f"the token command failed (exit {proc.returncode}): {detail[0][:200]}")
        token = out.decode("utf-8", "replace").strip()
        return Secret(token), self._ttl

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return the command's token (cached for ``ttl`` seconds unless ``fresh``).

        Raises:
            ConfigError: the command cannot be run.
            PSCError: the command failed, timed out or printed nothing.
        """
        return await self._cache.token(fresh=fresh)


@dataclass(frozen=True, kw_only=True)
class ClientCertificate:
    """An IGC Santé ORG AUTH_CLI certificate and its key, for a BAL APP (mutual TLS).

    Attributes:
        cert: PEM file with the certificate (and, optionally, its chain).
        key: PEM file with the private key.
        password: the key's password, if it is encrypted.
    """

    cert: Path
    key: Path
    password: Secret | None = None

    def __post_init__(self) -> None:
        for label, path in (("certificate", self.cert), ("key", self.key)):
            if not Path(path).is_file():
                raise ConfigError(f"client {label} file {path} does not exist")
