"""SRV autoconfiguration: pure RFC 2782 selection, and the dnspython adapter against the sandbox DNS."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import dns.zone
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.discovery import (
    DNSPythonResolver,
    Endpoint,
    Front,
    FrontPriorities,
    ManualServers,
    Service,
    SRVRecord,
    discover,
    rfc2782_order,
    select_endpoints,
)
from mssante.errors import DiscoveryError, UsageError
from mssante.sandbox.dns import DNSResponder, FrontPorts, build_zone

DOMAIN = "mss.sandbox.test"
PORTS = FrontPorts(imap_psc=10143, imap_authcli=10144, smtp_psc=10587, smtp_authcli=10588)


def srv(priority: int, weight: int, target: str, port: int = 143) -> SRVRecord:
    return SRVRecord(priority=priority, weight=weight, port=port, target=target)


class FixedRandom:
    """Returns scripted values, to walk through RFC 2782's selection by hand."""

    def __init__(self, values: Sequence[int]) -> None:
        self.values = list(values)
        self.calls: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.calls.append((a, b))
        return self.values.pop(0)


@pytest.fixture
async def sandbox_dns() -> AsyncIterator[DNSResponder]:
    server = DNSResponder(build_zone(DOMAIN, "127.0.0.1", PORTS))
    await server.start("127.0.0.1", 0)
    yield server
    await server.aclose()


def resolver_for(server: DNSResponder, **kwargs: object) -> DNSPythonResolver:
    return DNSPythonResolver(nameservers=[server.host], port=server.port, lifetime=2, **kwargs)  # type: ignore[arg-type]


# -- against the sandbox's authoritative DNS ----------------------------------------------------


async def test_per_org_bal_gets_the_psc_fronts(sandbox_dns: DNSResponder) -> None:
    servers = await discover(f"jean.dupont@{DOMAIN}", front=Front.PSC, resolver=resolver_for(sandbox_dns))
    assert servers.imap == (
        Endpoint(service=Service.IMAP, host=f"imap.psc.{DOMAIN}", port=10143, priority=10, weight=100),
    )
    assert servers.submission == (
        Endpoint(service=Service.SUBMISSION, host=f"smtp.psc.{DOMAIN}", port=10587, priority=10, weight=100),
    )
    # The certificate is checked against the SRV target, not the mail domain.
    assert servers.imap[0].tls_server_name == f"imap.psc.{DOMAIN}"


async def test_app_bal_gets_the_authcli_fronts_over_tcp_too(sandbox_dns: DNSResponder) -> None:
    servers = await discover(
        f"318751275100020@{DOMAIN.upper()}", front=Front.AUTH_CLI, resolver=resolver_for(sandbox_dns, tcp=True)
    )
    assert [(e.host, e.port, e.priority) for e in servers.imap] == [(f"imap.authcli.{DOMAIN}", 10144, 20)]
    assert [(e.host, e.port, e.priority) for e in servers.submission] == [(f"smtp.authcli.{DOMAIN}", 10588, 20)]


async def test_unknown_domain_is_a_discovery_error(sandbox_dns: DNSResponder) -> None:
    with pytest.raises(DiscoveryError, match="NXDOMAIN") as info:
        await discover(f"x@nowhere.{DOMAIN}", front=Front.PSC, resolver=resolver_for(sandbox_dns))
    assert info.value.fault == "peer"


async def test_domain_without_srv_is_a_discovery_error(sandbox_dns: DNSResponder) -> None:
    # imap.psc.<domain> exists (A record) but has no SRV below it: NXDOMAIN for _imap._tcp.…
    with pytest.raises(DiscoveryError):
        await discover(f"x@imap.psc.{DOMAIN}", front=Front.PSC, resolver=resolver_for(sandbox_dns))
    # A name that exists without SRV data: NODATA.
    with pytest.raises(DiscoveryError, match="no SRV record"):
        await resolver_for(sandbox_dns).resolve_srv(f"imap.psc.{DOMAIN}")


async def test_timeout_is_a_discovery_error() -> None:
    # A UDP socket that never answers.
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        silent = DNSPythonResolver(nameservers=["127.0.0.1"], port=port, lifetime=0.3)
        with pytest.raises(DiscoveryError, match="timeout"):
            await discover(f"x@{DOMAIN}", front=Front.PSC, resolver=silent)
    finally:
        transport.close()


async def test_refused_zone_is_a_discovery_error(sandbox_dns: DNSResponder) -> None:
    # The sandbox answers REFUSED outside its zone: no server gave an answer.
    with pytest.raises(DiscoveryError, match="no DNS server answered"):
        await discover("x@example.org", front=Front.PSC, resolver=resolver_for(sandbox_dns))


async def test_target_dot_means_not_offered() -> None:
    zone = dns.zone.from_text(
        f"""
@ 60 IN SOA ns.{DOMAIN}. h.{DOMAIN}. 1 3600 600 86400 60
@ 60 IN NS ns.{DOMAIN}.
_imap._tcp 60 IN SRV 0 0 0 .
_submission._tcp 60 IN SRV 10 100 587 smtp.psc.{DOMAIN}.
""",
        origin=DOMAIN + ".",
        relativize=False,
    )
    server = DNSResponder(zone)
    await server.start("127.0.0.1", 0)
    try:
        with pytest.raises(DiscoveryError, match="not offered"):
            await discover(f"x@{DOMAIN}", front=Front.PSC, resolver=resolver_for(server))
        # A manual IMAP server for this BAL: DNS is used only for submission.
        servers = await discover(
            f"X@{DOMAIN}",
            front=Front.PSC,
            resolver=resolver_for(server),
            overrides={f"x@{DOMAIN}": ManualServers(imap=("imap.manual.test", 1143))},
        )
        assert servers.imap == (Endpoint(service=Service.IMAP, host="imap.manual.test", port=1143, source="manual"),)
        assert servers.submission[0].host == f"smtp.psc.{DOMAIN}"
    finally:
        await server.aclose()


async def test_full_manual_override_needs_no_dns() -> None:
    class NoDNS:
        async def resolve_srv(self, name: str) -> list[SRVRecord]:
            raise AssertionError("DNS must not be queried")

    manual = ManualServers(imap=("imap.op.test", 143), submission=("smtp.op.test", 587))
    servers = await discover("a@op.test", front=Front.AUTH_CLI, resolver=NoDNS(), overrides={"a@op.test": manual})
    assert (servers.imap[0].tls_server_name, servers.submission[0].port) == ("imap.op.test", 587)


@pytest.mark.parametrize("address", ["nobody", "@mss.test", "a@", "a@b c"])
async def test_bad_addresses_are_usage_errors(address: str) -> None:
    with pytest.raises(UsageError):
        await discover(address, front=Front.PSC, overrides={})


# -- pure selection -----------------------------------------------------------------------------


def test_front_priority_is_not_a_failover() -> None:
    records = [srv(10, 100, "imap.psc.op.test"), srv(20, 100, "imap.authcli.op.test")]
    rng = random.Random(1)
    assert [e.host for e in select_endpoints(records, service=Service.IMAP, front=Front.PSC, rng=rng)] == [
        "imap.psc.op.test"
    ]
    # Only a PSC front published: an APP BAL gets an error, never the PSC front.
    with pytest.raises(DiscoveryError, match="priority 20"):
        select_endpoints(records[:1], service=Service.IMAP, front=Front.AUTH_CLI, rng=rng)


def test_priority_mapping_is_configurable() -> None:
    records = [srv(0, 0, "imap.op.test"), srv(5, 0, "backup.op.test")]
    with pytest.raises(DiscoveryError):
        select_endpoints(records, service=Service.IMAP, front=Front.PSC, rng=random.Random(0))
    custom = FrontPriorities(psc=5, authcli=0)
    got = select_endpoints(records, service=Service.IMAP, front=Front.PSC, rng=random.Random(0), priorities=custom)
    assert [e.host for e in got] == ["backup.op.test"]
    # None: plain RFC 2782, every record as failover by priority.
    plain = FrontPriorities(psc=None, authcli=None)
    got = select_endpoints(records, service=Service.IMAP, front=Front.PSC, rng=random.Random(0), priorities=plain)
    assert [e.host for e in got] == ["imap.op.test", "backup.op.test"]


def test_rfc2782_weighted_selection_walkthrough() -> None:
    # Weights 0, 60, 40 at one priority: order 0-weight first, running sums 0, 60, 100.
    a, b, c = srv(10, 60, "a"), srv(10, 0, "b"), srv(10, 40, "c")
    rng = FixedRandom([61, 0, 0])
    # 61 -> first running sum >= 61 is c (100); then [b(0), a(60)] with 0 -> b; then a.
    assert rfc2782_order([a, b, c], rng) == [c, b, a]
    assert rng.calls == [(0, 100), (0, 60), (0, 60)]


def test_rfc2782_distribution_follows_weights() -> None:
    records = [srv(10, 75, "heavy"), srv(10, 25, "light"), srv(20, 100, "later")]
    rng = random.Random(42)
    firsts = Counter(rfc2782_order(records, rng)[0].target for _ in range(4000))
    assert firsts["later"] == 0
    assert 0.70 < firsts["heavy"] / 4000 < 0.80


@given(
    records=st.lists(
        st.builds(
            SRVRecord,
            priority=st.integers(0, 3),
            weight=st.integers(0, 5),
            port=st.integers(1, 65535),
            target=st.sampled_from(["a", "b", "c", "d"]),
        ),
        max_size=8,
    ),
    seed=st.integers(0, 2**32),
)
def test_rfc2782_order_is_a_priority_sorted_permutation(records: list[SRVRecord], seed: int) -> None:
    ordered = rfc2782_order(records, random.Random(seed))
    assert Counter(map(repr, ordered)) == Counter(map(repr, records))
    assert [r.priority for r in ordered] == sorted(r.priority for r in records)


def test_srv_record_ranges() -> None:
    with pytest.raises(UsageError):
        SRVRecord(priority=0, weight=0, port=70000, target="x")


# -- shared answers (DNSCache) ------------------------------------------------------------------


async def test_concurrent_lookups_share_one_query_and_the_answer_lives_its_ttl() -> None:
    from mssante.discovery import DNSCache
    from mssante.testing import FakeClock

    clock = FakeClock(start=0.0)
    cache = DNSCache(clock=clock)
    asked = 0
    gate = asyncio.Event()

    async def query() -> tuple[str, float]:
        nonlocal asked
        asked += 1
        await gate.wait()
        return f"answer {asked}", 60.0

    waiters = [asyncio.create_task(cache.get("q", query)) for _ in range(1000)]
    await asyncio.sleep(0)
    gate.set()
    assert set(await asyncio.gather(*waiters)) == {"answer 1"} and asked == 1
    await clock.advance(59.9)
    assert await cache.get("q", query) == "answer 1"
    await clock.advance(0.2)  # the TTL has run out: asked again
    assert await cache.get("q", query) == "answer 2" and cache.queries == 2


async def test_a_failure_reaches_every_waiter_and_is_not_kept() -> None:
    from mssante.discovery import DNSCache

    cache = DNSCache()
    calls = 0
    gate = asyncio.Event()

    async def failing() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise DiscoveryError("x: DNS timeout")

    waiters = [asyncio.create_task(cache.get("q", failing)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, DiscoveryError) for r in results) and calls == 1

    async def working() -> tuple[str, float]:
        return "ok", 0.0  # TTL 0: shared while in flight, never kept

    assert await cache.get("q", working) == "ok"
    with pytest.raises(DiscoveryError):
        await cache.get("q", failing)


async def test_a_cancelled_query_does_not_cancel_the_others_waiting() -> None:
    from mssante.discovery import DNSCache

    cache = DNSCache()
    started = asyncio.Event()

    async def slow() -> tuple[str, float]:
        started.set()
        await asyncio.Event().wait()
        return "never", 1.0

    owner = asyncio.create_task(cache.get("q", slow))
    await started.wait()
    other = asyncio.create_task(cache.get("q", slow))
    await asyncio.sleep(0)
    owner.cancel()
    with pytest.raises(DiscoveryError, match="abandoned"):
        await other
    assert owner.cancelled()


async def test_the_resolver_asks_the_dns_once_for_many_mailboxes(sandbox_dns: DNSResponder) -> None:
    resolver = resolver_for(sandbox_dns)
    found = await asyncio.gather(*(discover(f"app{i}@{DOMAIN}", front=Front.AUTH_CLI, resolver=resolver)
                                   for i in range(200)))
    assert len({s.imap for s in found}) == 1
    addresses = await asyncio.gather(*(resolver.resolve_address(f"imap.authcli.{DOMAIN}") for _ in range(50)))
    assert addresses[0] == ["127.0.0.1"] and len({tuple(a) for a in addresses}) == 1
    assert resolver._cache.queries == 4  # SRV imap, SRV submission, A, AAAA (none: kept for the SOA minimum)


async def test_resolvers_on_given_servers_do_not_share_answers(sandbox_dns: DNSResponder) -> None:
    from mssante.discovery import SHARED_DNS_CACHE

    a, b = resolver_for(sandbox_dns), resolver_for(sandbox_dns)
    assert a._cache is not b._cache and a._cache is not SHARED_DNS_CACHE
