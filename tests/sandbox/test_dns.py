"""The sandbox DNS answers the EX_LPS_0300 SRV records, read with a real dnspython resolver; it
journals every query (name, type, source, transport, answer code) and answers repeated questions
from its cache with each query's own id."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from mssante.sandbox.dns import DNSQuery, DNSResponder, FrontPorts, answer, build_zone

DOMAIN = "mss.sandbox.test"
PORTS = FrontPorts(imap_psc=10143, imap_authcli=10144, smtp_psc=10587, smtp_authcli=10588)


@pytest.fixture
async def responder() -> AsyncIterator[DNSResponder]:
    server = DNSResponder(build_zone(DOMAIN, "127.0.0.1", PORTS))
    await server.start("127.0.0.1", 0)
    yield server
    await server.aclose()


def _resolver(server: DNSResponder) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 3
    return resolver


async def test_srv_records_of_ex_lps_0300(responder: DNSResponder) -> None:
    resolver = _resolver(responder)
    for service, psc_port, cli_port, proto in (
        ("_imap._tcp", 10143, 10144, "imap"),
        ("_submission._tcp", 10587, 10588, "smtp"),
    ):
        ans = await resolver.resolve(f"{service}.{DOMAIN}", "SRV")
        got = sorted((r.priority, r.weight, r.port, r.target.to_text()) for r in ans)
        assert got == [
            (10, 100, psc_port, f"{proto}.psc.{DOMAIN}."),
            (20, 100, cli_port, f"{proto}.authcli.{DOMAIN}."),
        ]
        assert ans.response.flags & dns.flags.AA
        # RFC 2782 ordering: priority 10 (PSC front) comes first.
        assert ans.rrset is not None
        assert ans.rrset.processing_order()[0].priority == 10


async def test_a_records_over_udp_and_tcp(responder: DNSResponder) -> None:
    resolver = _resolver(responder)
    for host in ("imap.psc", "imap.authcli", "smtp.psc", "smtp.authcli"):
        ans = await resolver.resolve(f"{host}.{DOMAIN}", "A")
        assert [r.address for r in ans] == ["127.0.0.1"]
        tcp = await resolver.resolve(f"{host}.{DOMAIN}", "A", tcp=True)
        assert [r.address for r in tcp] == ["127.0.0.1"]


async def test_unknown_name_is_nxdomain(responder: DNSResponder) -> None:
    resolver = _resolver(responder)
    with pytest.raises(dns.resolver.NXDOMAIN):
        await resolver.resolve(f"nothing.{DOMAIN}", "A")
    # An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
    with pytest.raises(dns.resolver.NoAnswer):
        await resolver.resolve(f"_tcp.{DOMAIN}", "A")
    # A known name without that type: NODATA.
    with pytest.raises(dns.resolver.NoAnswer):
        await resolver.resolve(f"imap.psc.{DOMAIN}", "AAAA")


async def test_outside_zone_is_refused(responder: DNSResponder) -> None:
    query = dns.message.make_query("example.org.", "A")
    response = await dns.asyncquery.udp(query, responder.host, port=responder.port, timeout=3)
    assert response.rcode() == dns.rcode.REFUSED


def test_srv_answer_carries_target_addresses() -> None:
    zone = build_zone(DOMAIN, "127.0.0.1", PORTS)
    wire = answer(zone, dns.message.make_query(f"_imap._tcp.{DOMAIN}.", "SRV").to_wire())
    assert wire is not None
    response = dns.message.from_wire(wire)
    targets = {rrset.name.to_text() for rrset in response.additional}
    assert targets == {f"imap.psc.{DOMAIN}.", f"imap.authcli.{DOMAIN}."}


def test_garbage_gets_formerr_or_nothing() -> None:
    zone = build_zone(DOMAIN, "127.0.0.1", PORTS)
    assert answer(zone, b"\x00") is None
    reply = answer(zone, b"\x12\x34" + b"\xff" * 20)
    assert reply is not None
    (qid, flags) = struct.unpack("!HH", reply[:4])
    assert qid == 0x1234 and flags & 0x000F == dns.rcode.FORMERR


async def test_garbage_does_not_stop_the_server(responder: DNSResponder) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.sendto(b"\x00\x01garbage", (responder.host, responder.port))
    finally:
        sock.close()
    # The responder reads its socket in order: the garbage datagram is handled before the query.
    ans = await _resolver(responder).resolve(f"smtp.psc.{DOMAIN}", "A")
    assert ans.rrset is not None


# -- the query journal (ECO.1.1.9 judged from it) and the answer cache --------------------------------


async def test_every_query_is_journaled(responder: DNSResponder) -> None:
    t0 = time.time()
    resolver = _resolver(responder)
    await resolver.resolve(f"_imap._tcp.{DOMAIN}", "SRV")
    await resolver.resolve(f"IMAP.PSC.{DOMAIN}", "A", tcp=True)
    with pytest.raises(dns.resolver.NXDOMAIN):
        await resolver.resolve(f"nothing.{DOMAIN}", "AAAA")
    queries = responder.queries.since(t0)
    assert [(q.name, q.type, q.transport, q.rcode) for q in queries] == [
        (f"_imap._tcp.{DOMAIN}", "SRV", "udp", "NOERROR"),
        (f"imap.psc.{DOMAIN}", "A", "tcp", "NOERROR"),
        (f"nothing.{DOMAIN}", "AAAA", "udp", "NXDOMAIN"),
    ]
    assert all(q.source.startswith("127.0.0.1:") and q.at >= t0 for q in queries)
    assert responder.queries.since(time.time() + 1) == []
    assert DNSQuery.from_json(queries[0].to_json()) == queries[0]


async def test_cached_answers_keep_each_query_id_and_follow_the_zone(responder: DNSResponder) -> None:
    for query_id in (1, 2, 0xBEEF):
        query = dns.message.make_query(f"_submission._tcp.{DOMAIN}", "SRV")
        query.id = query_id
        reply = await dns.asyncquery.udp(query, responder.host, port=responder.port, timeout=3)
        assert reply.id == query_id and [r.port for r in reply.answer[0]] in ([10587, 10588], [10588, 10587])
    responder.zone = build_zone(DOMAIN, "127.0.0.1", FrontPorts(imap_psc=1, imap_authcli=2, smtp_psc=3,
                                                                smtp_authcli=4))
    query = dns.message.make_query(f"_submission._tcp.{DOMAIN}", "SRV")
    reply = await dns.asyncquery.udp(query, responder.host, port=responder.port, timeout=3)
    assert sorted(r.port for r in reply.answer[0]) == [3, 4]


async def test_a_burst_that_fits_the_default_receive_buffer_is_answered_in_full(responder: DNSResponder) -> None:
    """100 queries sent at once from one socket (the 1,000-query burst is measured in benchmarks/bench_dns.py)."""
    wires = []
    for i in range(100):
        query = dns.message.make_query(f"_imap._tcp.{DOMAIN}", "SRV")
        query.id = i
        wires.append(query.to_wire())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        for wire in wires:
            sock.sendto(wire, (responder.host, responder.port))
        seen: set[int] = set()

        async def collect() -> None:
            while len(seen) < len(wires):
                data = await loop.sock_recv(sock, 4096)
                seen.add(dns.message.from_wire(data).id)

        await asyncio.wait_for(collect(), 10)
    finally:
        sock.close()
    assert seen == set(range(100))
    assert len(responder.queries.since(0)) == 100
