"""Settings of the client library: trust (TLS + revocation), connection behaviour, retry backoff.

All are frozen dataclasses with keyword-only fields, validated at construction (house rule 4).
Loosening a security default is explicit and named (``revocation="off"``), never implied.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.credentials import ClientCertificate
from mssante.errors import UsageError
from mssante.secret import Secret
from mssante.trust import CABundle, CRLCache, client_ssl_context

from ._limiter import ConnectLimiter

__all__ = ["APP_PLAIN_PASSWORD", "BALKind", "Backoff", "ConnectionSettings", "MailboxOptions", "TrustSettings"]

BALKind = Literal["PER", "ORG", "APP"]

#: The connect limiter of :class:`MailboxOptions` by default: one for the whole process.
SHARED_LIMITER: Final = ConnectLimiter()

#: SASL PLAIN needs a non-empty password (RFC 4616 §2), but for a BAL APP the certificate
#: authenticates and the password is not specified (ANS webinar of 19/01/2024; research note
#: ref2-requirements.md §2.3, open question). This placeholder is sent unless configured.
APP_PLAIN_PASSWORD: Final = "AUTH_CLI"  # noqa: S105 - a documented placeholder, not a secret


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Bounded, jittered exponential backoff (never a tight loop; ref2 §2.4 ``[UNAVAILABLE]``).

    Attributes:
        initial: first delay in seconds.
        maximum: cap of one delay.
        factor: growth per attempt.
        jitter: +/- fraction of random spread applied to each delay.
        attempts: how many retries a *single call* makes before giving up (reconnect loops
            of :meth:`Mailbox.watch` and the supervisor keep going at ``maximum``).

    Raises:
        UsageError: a negative or inconsistent value.
    """

    # At least 1.2 s before the first retry once jittered: an operator answering [UNAVAILABLE]
    # must not see a tight loop (ref2 §2.4; the conformance suite's threshold is 1 s).
    initial: float = 1.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    attempts: int = 3

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1 or not 0 <= self.jitter < 1:
            raise UsageError("Backoff needs 0 < initial <= maximum, factor >= 1 and 0 <= jitter < 1")
        if self.attempts < 0:
            raise UsageError("Backoff.attempts must be >= 0")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt`` (0-based), jittered."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))

    def delays(self) -> Iterator[float]:
        """The ``attempts`` delays of one bounded retry sequence."""
        for attempt in range(self.attempts):
            yield self.delay(attempt)


@dataclass(frozen=True, kw_only=True)
class TrustSettings:
    """How the operator's servers are trusted (ECO.1.1.x).

    Attributes:
        ca_bundle: PEM file of the IGC Santé CAs (ECO.1.1.10: the only trusted authority).
        ssl_context: a context prepared by the caller instead of ``ca_bundle`` (checked by
            :func:`mssante.trust.client_ssl_context`; a BAL APP certificate is loaded into it).
        revocation: ``"require"`` (default): the server certificate's CRL must be available and
            must not list it (ECO.1.1.6, fail closed, ECO.1.1.7); ``"off"`` skips the check
            (not MSSanté-compliant; for servers of other PKIs).
        crls: the CRL cache to use (share one between mailboxes); default: one per mailbox,
            in memory, fetching over HTTP.
        bundle: the CA bundle to rebuild chains for the revocation check; default: read from
            ``ca_bundle``. Required with ``ssl_context`` when revocation is on.

    Raises:
        UsageError: ``ca_bundle`` and ``ssl_context`` both given, or revocation required with
            no way to build the chain.
    """

    ca_bundle: Path | None = None
    ssl_context: ssl.SSLContext | None = None
    revocation: Literal["require", "off"] = "require"
    crls: CRLCache | None = None
    bundle: CABundle | None = None

    def __post_init__(self) -> None:
        if self.ca_bundle is not None and self.ssl_context is not None:
            raise UsageError("give ca_bundle or ssl_context, not both")
        if self.revocation not in ("require", "off"):
            raise UsageError("revocation must be 'require' or 'off'")
        if self.revocation == "require" and self.bundle is None and self.ca_bundle is None:
            raise UsageError(
                "revocation checks need the CA bundle: give ca_bundle, or bundle with ssl_context",
                requirement="ECO.1.1.6",
            )

    def context(self, certificate: ClientCertificate | None = None) -> ssl.SSLContext:
        """Build the client TLS context (TLS ≥ 1.2, ECO.1.1.1), with the APP certificate if given.

        Raises:
            ConfigError: a file cannot be read or holds the wrong thing.
            UsageError: a loosened ``ssl_context``.
        """
        ctx = client_ssl_context(ca_bundle=self.ca_bundle, ssl_context=self.ssl_context)
        if certificate is not None:
            certificate.load_into(ctx)  # PEM or PKCS#12, checked; the key never in clear on disk
        return ctx

    def chain_bundle(self) -> CABundle | None:
        """The bundle used to rebuild the server chain, or None when revocation is off.

        Raises:
            ConfigError: the bundle file cannot be read.
        """
        if self.revocation == "off":
            return None
        if self.bundle is not None:
            return self.bundle
        assert self.ca_bundle is not None  # checked in __post_init__
        return CABundle.from_file(self.ca_bundle)


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """Timeouts and addressing of IMAP and SMTP connections.

    Attributes:
        connect_timeout: TCP connect + greeting + STARTTLS + handshake, in seconds.
        command_timeout: the longest wait for one server answer.
        idle_refresh: IDLE is renewed after this many seconds (RFC 2177 §3: at most 29 min).
        resolve: host name → IP address to connect to, while the certificate is still checked
            against the host name (like curl's ``--resolve``). An override: without it, the
            addresses of SRV targets come from the mailbox's resolver when it offers
            ``resolve_address`` (e.g. :class:`~mssante.discovery.DNSPythonResolver` on a
            private DNS), else from the system resolver.
        stream_over: FETCH literals larger than this are streamed in chunks, not buffered twice.
        max_message_size: largest message fetched or appended (``LimitError`` above).

    Raises:
        UsageError: a non-positive timeout or size.
    """

    connect_timeout: float = 15.0
    command_timeout: float = 60.0
    idle_refresh: float = 29 * 60.0
    resolve: Mapping[str, str] = field(default_factory=dict)
    stream_over: int = 1024 * 1024
    max_message_size: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "command_timeout", "idle_refresh", "stream_over", "max_message_size"):
            if getattr(self, name) <= 0:
                raise UsageError(f"ConnectionSettings.{name} must be > 0")

    def address_of(self, host: str) -> str:
        """The address to open a socket to for ``host`` (the host itself unless mapped)."""
        return self.resolve.get(host.lower().rstrip("."), self.resolve.get(host, host))


@dataclass(frozen=True, kw_only=True)
class MailboxOptions:
    """Behaviour of a :class:`~mssante.client.Mailbox`.

    Attributes:
        connection: timeouts and addressing.
        backoff: retry delays after ``[UNAVAILABLE]`` and between reconnections (ECO.1.2.7).
        operator_saves_sent: the operator files submitted messages in Sent itself; when False
            (default, ref2 §5.8: several operators do not), the client APPENDs a copy.
        poll_interval: seconds between polls when IDLE is not offered or keeps failing.
        idle_failures_before_polling: IDLE refusals tolerated before falling back to polling.
        app_password: the SASL PLAIN password sent by a BAL APP (see :data:`APP_PLAIN_PASSWORD`).
        author: the identity written in traces; default: the token source's ``national_id``
            when it has one, else the BAL address (ECO.4.1.1).
        clock: how the mailbox waits (backoff, polling); tests give a
            :class:`mssante.testing.FakeClock`.
        connect_limiter: paces the connections' handshakes (connect, STARTTLS,
            authentication); default: one :class:`ConnectLimiter` shared by the whole process,
            so that many BALs started at once all connect; None: no pacing.

    Raises:
        UsageError: a non-positive interval.
    """

    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    backoff: Backoff = field(default_factory=Backoff)
    operator_saves_sent: bool = False
    poll_interval: float = 30.0
    idle_failures_before_polling: int = 3
    app_password: Secret = field(default_factory=lambda: Secret(APP_PLAIN_PASSWORD))
    author: str | None = None
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)
    connect_limiter: ConnectLimiter | None = field(default_factory=lambda: SHARED_LIMITER, compare=False)

    def __post_init__(self) -> None:
        if self.poll_interval <= 0:
            raise UsageError("poll_interval must be > 0")
        if self.idle_failures_before_polling < 0:
            raise UsageError("idle_failures_before_polling must be >= 0")
