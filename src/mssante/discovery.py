"""Find the API LPS servers of a BAL from DNS SRV records (ECO.1.1.9, EX_LPS_0300, RFC 6186).

Each operator publishes, on every mail domain of its white list::

    _submission._tcp SRV 10 100 587 <front smtp psc>       ; BAL PER/ORG (Pro Santé Connect)
    _submission._tcp SRV 20 100 587 <front smtp authcli>   ; BAL APP (AUTH_CLI certificate)
    _imap._tcp       SRV 10 100 143 <front imap psc>
    _imap._tcp       SRV 20 100 143 <front imap authcli>

The priority here encodes the *authentication front*, not a failover order: a PER/ORG BAL uses
the priority-10 records, an APP BAL the priority-20 ones, and one never falls back to the other
(they need different credentials). That mapping is an operator convention, so it is
configurable (:class:`FrontPriorities`). Within the chosen priority, RFC 2782 weighted random
selection orders the candidates.

The selection (:func:`rfc2782_order`, :func:`select_endpoints`) is pure: records and a random
source in, endpoints out. DNS goes through a :class:`Resolver`; :class:`DNSPythonResolver` is
the dnspython adapter, which maps DNS failures to :class:`~mssante.errors.DiscoveryError`.

The TLS reference identifier of an endpoint is the SRV *target* (the front's host name, which
is what operator certificates carry, RFC 6125 §6), never the mail domain. An
:class:`AddressResolver` also gives the targets' addresses (a private DNS then serves both).

Answers are shared (:class:`DNSCache`): a thousand BALs of one domain started at once make one
SRV query per service and one address query per target, not a thousand each, and reuse the
answer for as long as its TTL says (RFC 1035 §3.2.1, RFC 2181 §8).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal, Protocol, TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.rdtypes.IN.SRV
import dns.resolver

from mssante.errors import DiscoveryError, UsageError

__all__ = [
    "AddressResolver",
    "DNSCache",
    "DNSPythonResolver",
    "Endpoint",
    "Front",
    "FrontPriorities",
    "MailServers",
    "ManualServers",
    "RandomSource",
    "Resolver",
    "SRVRecord",
    "Service",
    "discover",
    "rfc2782_order",
    "select_endpoints",
]

#: RFC 2782 / RFC 6186 §3.4: a single record whose target is "." means "service not offered".
NOT_OFFERED: Final = "."


class Service(StrEnum):
    """The two API LPS services (RFC 6186 §3.1, §3.2), both with STARTTLS."""

    IMAP = "imap"
    SUBMISSION = "submission"

    @property
    def srv_label(self) -> str:
        """The SRV owner prefix, e.g. ``_imap._tcp``."""
        return f"_{self.value}._tcp"


class Front(StrEnum):
    """The operator front a BAL must use, by authentication mode (EX_LPS_0300)."""

    PSC = "psc"  # BAL PER/ORG: SASL XOAUTH2 with a Pro Santé Connect token
    AUTH_CLI = "authcli"  # BAL APP: IGC Santé ORG AUTH_CLI client certificate + PLAIN


@dataclass(frozen=True, kw_only=True)
class FrontPriorities:
    """Which SRV priority designates which front. None: plain RFC 2782 over all priorities."""

    psc: int | None = 10
    authcli: int | None = 20

    def of(self, front: Front) -> int | None:
        """The priority of ``front``."""
        return self.psc if front is Front.PSC else self.authcli


@dataclass(frozen=True, kw_only=True)
class SRVRecord:
    """One SRV record (RFC 2782). ``target`` has no final dot; ``"."`` means not offered."""

    priority: int
    weight: int
    port: int
    target: str

    def __post_init__(self) -> None:
        for name in ("priority", "weight", "port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise UsageError(f"SRV {name} out of range: {value}")


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where to connect for one service, and the name the server certificate must carry.

    Attributes:
        service: IMAP or submission.
        host: the host to connect to (the SRV target, or the configured host).
        port: the TCP port (STARTTLS on it).
        priority: the SRV priority, None for a manual endpoint.
        weight: the SRV weight, None for a manual endpoint.
        source: ``"srv"`` or ``"manual"``.
    """

    service: Service
    host: str
    port: int
    priority: int | None = None
    weight: int | None = None
    source: Literal["srv", "manual"] = "srv"

    @property
    def tls_server_name(self) -> str:
        """The RFC 6125 reference identifier: the SRV target / configured host, not the mail domain."""
        return self.host


@dataclass(frozen=True, kw_only=True)
class ManualServers:
    """A per-BAL manual configuration, used instead of DNS for the services it names."""

    imap: tuple[str, int] | None = None
    submission: tuple[str, int] | None = None

    def endpoint(self, service: Service) -> Endpoint | None:
        """The manual endpoint of ``service``, if configured."""
        hp = self.imap if service is Service.IMAP else self.submission
        return None if hp is None else Endpoint(service=service, host=hp[0], port=hp[1], source="manual")


@dataclass(frozen=True, kw_only=True)
class MailServers:
    """The discovered servers of a BAL: candidates per service, in the order to try them."""

    address: str
    front: Front
    imap: tuple[Endpoint, ...]
    submission: tuple[Endpoint, ...]


class RandomSource(Protocol):
    """The randomness RFC 2782 needs (``random.Random`` and ``random.SystemRandom`` fit)."""

    def randint(self, a: int, b: int) -> int:
        """A uniform integer in ``[a, b]``, both included."""
        ...


# -- pure selection ------------------------------------------------------------------------------


def _weighted(group: list[SRVRecord], rng: RandomSource) -> list[SRVRecord]:
    # RFC 2782 "Usage rules": weight-0 records first, running sums, a uniform number in
    # [0, total], pick the first record whose running sum is >= it; remove it; repeat.
    pending = sorted(group, key=lambda r: r.weight != 0)
    ordered: list[SRVRecord] = []
    while pending:
        total = sum(r.weight for r in pending)
        pick = rng.randint(0, total)
        running = 0
        for index, record in enumerate(pending):
            running += record.weight
            if running >= pick:
                ordered.append(pending.pop(index))
                break
    return ordered


def rfc2782_order(records: Iterable[SRVRecord], rng: RandomSource) -> list[SRVRecord]:
    """Order records as RFC 2782 says: by ascending priority, weighted random within a priority."""
    by_priority: dict[int, list[SRVRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    return [r for priority in sorted(by_priority) for r in _weighted(by_priority[priority], rng)]


def select_endpoints(
    records: Sequence[SRVRecord],
    *,
    service: Service,
    front: Front,
    rng: RandomSource,
    priorities: FrontPriorities = FrontPriorities(),
    domain: str = "",
) -> tuple[Endpoint, ...]:
    """Choose the endpoints of ``front`` among ``records``, in the order to try them.

    Raises:
        DiscoveryError: the service is not offered (target ``.``), or no record has the
            front's priority (no fallback to the other front, EX_LPS_0300).
    """
    where = f"{service.srv_label}.{domain}" if domain else service.srv_label
    usable = [r for r in records if r.target not in (NOT_OFFERED, "")]
    if records and not usable:
        raise DiscoveryError(f"{where}: service not offered (SRV target '.')", requirement="RFC 2782")
    wanted = priorities.of(front)
    if wanted is not None:
        usable = [r for r in usable if r.priority == wanted]
    if not usable:
        detail = f" with priority {wanted} ({front.value} front)" if wanted is not None else ""
        raise DiscoveryError(f"{where}: no SRV record{detail}", requirement="ECO.1.1.9")
    return tuple(
        Endpoint(service=service, host=r.target.lower(), port=r.port, priority=r.priority, weight=r.weight)
        for r in rfc2782_order(usable, rng)
    )


# -- resolvers -----------------------------------------------------------------------------------


class Resolver(Protocol):
    """Looks up SRV records.

    Optional: ``resolve_address(host)`` (:class:`AddressResolver`), asked by a mailbox for the
    SRV targets' addresses; without it (older resolvers), the system resolver gives them.
    """

    async def resolve_srv(self, name: str) -> Sequence[SRVRecord]:
        """Return the SRV records of ``name`` (possibly empty).

        Raises:
            DiscoveryError: the name does not exist, has no SRV record, or DNS failed.
        """
        ...


class AddressResolver(Resolver, Protocol):
    """A :class:`Resolver` that also looks up host addresses (the SRV targets')."""

    async def resolve_address(self, host: str) -> Sequence[str]:
        """Return the addresses of ``host``: its A records, then its AAAA records.

        Raises:
            DiscoveryError: the host does not exist, has no address, or DNS failed.
        """
        ...


T = TypeVar("T")


class DNSCache:
    """DNS answers shared by every lookup of the same question, kept for their TTL.

    Concurrent lookups of one question wait for a single query (per event loop); its answer is
    then reused until its TTL runs out (capped by ``max_ttl``). Failures are not kept: the next
    lookup asks again. Bounded: the least recently used answers go beyond ``max_entries``. Usable
    from several event loops and threads (a :class:`~mssante.client.SyncMailbox` runs its own).

    Args:
        clock: monotonic seconds (tests give a fake one).
        max_ttl: the longest an answer is kept, whatever its TTL.
        max_entries: answers kept at most.

    Raises:
        UsageError: a negative ``max_ttl`` or ``max_entries`` below 1.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_ttl: float = 3600.0,
                 max_entries: int = 4096) -> None:
        if max_ttl < 0 or max_entries < 1:
            raise UsageError("DNSCache needs max_ttl >= 0 and max_entries >= 1")
        self._clock = clock
        self._max_ttl = max_ttl
        self._max_entries = max_entries
        self._answers: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()  # the answers are shared between threads; in-flight queries are per loop
        self._pending: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}
        self.queries = 0  # questions actually sent (the others were shared or cached)

    def clear(self) -> None:
        """Forget every answer (queries in flight finish and are kept)."""
        with self._lock:
            self._answers.clear()

    async def get(self, key: Hashable, query: Callable[[], Awaitable[tuple[T, float]]]) -> T:
        """The answer to ``key``: cached, the one in flight, or ``query()`` (answer, TTL in seconds).

        Raises:
            What ``query`` raised (every waiter of that query gets it).
        """
        now = self._clock()
        with self._lock:
            hit = self._answers.get(key)
            if hit is not None:
                if hit[0] > now:
                    self._answers.move_to_end(key)
                    return hit[1]  # type: ignore[no-any-return]
                del self._answers[key]
        flight = (id(asyncio.get_running_loop()), key)
        pending = self._pending.get(flight)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[flight] = future
        self.queries += 1
        try:
            value, ttl = await query()
        except BaseException as exc:
            # The others waiting must not see our cancellation as theirs.
            shared = DiscoveryError("the DNS query was abandoned") if isinstance(exc, asyncio.CancelledError) else exc
            future.set_exception(shared)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        else:
            future.set_result(value)
            ttl = min(max(ttl, 0.0), self._max_ttl)
            if ttl > 0:
                with self._lock:
                    self._answers[key] = (self._clock() + ttl, value)
                    while len(self._answers) > self._max_entries:
                        self._answers.popitem(last=False)
            return value
        finally:
            del self._pending[flight]


#: The cache every :class:`DNSPythonResolver` on the system's DNS configuration shares.
SHARED_DNS_CACHE: Final = DNSCache()


class DNSPythonResolver:
    """The :class:`Resolver` over ``dns.asyncresolver`` (system configuration, or given servers)."""

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        lifetime: float = 5.0,
        tcp: bool = False,
        cache: DNSCache | None = None,
    ) -> None:
        """Use the system's resolvers, or ``nameservers`` on ``port`` (tests: the sandbox DNS).

        Args:
            nameservers: the DNS servers to ask; None: the system's configuration.
            port: their port.
            lifetime: seconds one lookup may take, retries included.
            tcp: ask over TCP.
            cache: where answers are shared (by server, port and question) for their TTL.
                Default: with the system's configuration, one cache for the whole process
                (:data:`SHARED_DNS_CACHE`); with given ``nameservers`` (a private or test DNS
                whose answers may change under you), a cache of this resolver's own: share
                the resolver between mailboxes. ``DNSCache(max_ttl=0)`` keeps nothing and only
                shares the queries in flight.

        Raises:
            DiscoveryError: no system resolver configuration could be read.
        """
        try:
            self._resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"cannot read the system DNS configuration: {exc}") from exc
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        self._resolver.lifetime = lifetime
        self._tcp = tcp
        self._cache = cache if cache is not None else SHARED_DNS_CACHE if nameservers is None else DNSCache()
        self._where = (tuple(str(n) for n in self._resolver.nameservers), self._resolver.port, tcp)

    async def _ask(self, name: str, rdtype: str, parse: Callable[[dns.resolver.Answer], T], empty: T | None) -> T:
        async def query() -> tuple[T, float]:
            try:
                answer = await self._resolver.resolve(name, rdtype, tcp=self._tcp, search=False)
            except dns.resolver.NoAnswer as exc:
                if empty is None:
                    raise
                return empty, _negative_ttl(exc)  # NODATA is kept too (RFC 2308 §5)
            ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
            return parse(answer), ttl

        return await self._cache.get((self._where, name.lower().rstrip("."), rdtype), query)

    async def resolve_address(self, host: str) -> list[str]:
        """Query ``host`` A, then AAAA: the IPv4 addresses first, then the IPv6 ones.

        Raises:
            DiscoveryError: NXDOMAIN, neither A nor AAAA record, timeout, or no server answered.
        """
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                found.extend(await self._ask(host, rdtype, lambda a: tuple(rdata.to_text() for rdata in a), ()))
            except dns.exception.DNSException as exc:
                if found:  # the A records are enough; an AAAA failure must not hide them
                    break
                raise _dns_failure(host, rdtype, exc) from exc
        if not found:
            raise DiscoveryError(f"{host}: no address (neither A nor AAAA record)")
        return found

    async def resolve_srv(self, name: str) -> list[SRVRecord]:
        """Query ``name`` SRV, mapping DNS failures at this boundary.

        Raises:
            DiscoveryError: NXDOMAIN, no SRV record (NODATA), timeout, or no server answered.
        """
        try:
            return list(await self._ask(name, "SRV", _srv_records, None))
        except dns.exception.DNSException as exc:
            raise _dns_failure(name, "SRV", exc) from exc


def _negative_ttl(exc: dns.resolver.NoAnswer) -> float:
    # RFC 2308 §5: a negative answer is kept for the SOA's MINIMUM, at most the SOA's own TTL.
    try:
        response = exc.response()  # type: ignore[no-untyped-call]
    except Exception:  # dnspython without the response: do not keep it
        return 0.0
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return float(min(rrset.ttl, min(getattr(r, "minimum", 0) for r in rrset)))
    return 0.0


def _srv_records(answer: dns.resolver.Answer) -> tuple[SRVRecord, ...]:
    return tuple(
        SRVRecord(priority=rdata.priority, weight=rdata.weight, port=rdata.port,
                  target=rdata.target.to_text(omit_final_dot=True))
        for rdata in answer
        if isinstance(rdata, dns.rdtypes.IN.SRV.SRV)
    )


def _dns_failure(name: str, rdtype: str, exc: dns.exception.DNSException) -> DiscoveryError:
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DiscoveryError(f"{name}: no such domain (NXDOMAIN)", requirement="ECO.1.1.9")
    if isinstance(exc, dns.resolver.NoAnswer):
        return DiscoveryError(f"{name}: no {rdtype} record", requirement="ECO.1.1.9")
    if isinstance(exc, dns.exception.Timeout):
        return DiscoveryError(f"{name}: DNS timeout")
    if isinstance(exc, dns.resolver.NoNameservers):
        return DiscoveryError(f"{name}: no DNS server answered (SERVFAIL or refused)")
    return DiscoveryError(f"{name}: DNS failure: {exc}")


def _domain_of(address: str) -> str:
    local, at, domain = address.rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not at or not local or not domain or any(c.isspace() for c in domain):
        raise UsageError(f"not a mail address: {address!r}")
    try:
        # IDNA: dnspython turns a U-label domain into its A-label form.
        return dns.name.from_text(domain).to_text(omit_final_dot=True)
    except dns.exception.DNSException as exc:
        raise UsageError(f"not a valid mail domain: {domain!r}") from exc


async def discover(
    address: str,
    *,
    front: Front,
    resolver: Resolver | None = None,
    priorities: FrontPriorities = FrontPriorities(),
    overrides: Mapping[str, ManualServers] | None = None,
    rng: RandomSource | None = None,
) -> MailServers:
    """Find the IMAP and submission servers of the BAL ``address`` (ECO.1.1.9).

    A manual configuration for this BAL (``overrides``, keyed by address, case-insensitive)
    wins for the services it names; the others come from DNS SRV on the address's domain.

    Args:
        address: the BAL address.
        front: :attr:`Front.PSC` for BAL PER/ORG, :attr:`Front.AUTH_CLI` for BAL APP.
        resolver: the SRV resolver (default: the system's, through dnspython).
        priorities: the priority → front convention (EX_LPS_0300: 10 and 20).
        overrides: per-BAL manual servers.
        rng: RFC 2782 randomness (default: ``random.SystemRandom``).

    Returns:
        The candidates per service, in the order to try them.

    Raises:
        UsageError: ``address`` is not a mail address.
        DiscoveryError: no usable SRV record for a service (none, NXDOMAIN, not offered,
            no record for this front, DNS timeout or failure).
    """
    domain = _domain_of(address)
    manual = {k.lower(): v for k, v in (overrides or {}).items()}.get(address.lower())
    rng = rng if rng is not None else random.SystemRandom()
    found: dict[Service, tuple[Endpoint, ...]] = {}
    for service in Service:
        endpoint = manual.endpoint(service) if manual is not None else None
        if endpoint is not None:
            found[service] = (endpoint,)
            continue
        if resolver is None:
            resolver = DNSPythonResolver()
        records = await resolver.resolve_srv(f"{service.srv_label}.{domain}")
        found[service] = select_endpoints(
            records, service=service, front=front, rng=rng, priorities=priorities, domain=domain
        )
    return MailServers(address=address, front=front, imap=found[Service.IMAP], submission=found[Service.SUBMISSION])
