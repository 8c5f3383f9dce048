"""A worker's health and Prometheus metrics endpoint (``GET /healthz``, ``GET /metrics``), on asyncio.

Deliberately tiny: two read-only paths, the request line and headers bounded (8 KiB each, 50
headers), one request per connection. Nothing secret is exposed: counts, lag, BALs held.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._worker import Worker

__all__ = ["WorkerCollector", "serve_http"]

_MAX_LINE = 8192
_MAX_HEADERS = 50


#: The kinds of stop a worker reports (:meth:`Worker._end`), exported even at 0 so that rates can be taken.
STOP_KINDS = ("psc-session-ended", "bal-error")


class WorkerCollector(Collector):
    """The worker's figures as Prometheus metrics (read at each scrape)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        """Yield the metrics."""
        w, f = self.worker, self.worker.figures
        labels = ["worker"]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            metric = GaugeMetricFamily(f"mssante_fleet_{name}", doc, labels=labels)
            metric.add_metric([w.id], value)
            return metric

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            metric = CounterMetricFamily(f"mssante_fleet_{name}", doc, labels=labels)
            metric.add_metric([w.id], value)
            return metric

        yield gauge("bals", "BALs watched by this worker.", len(w.watches))
        yield gauge("capacity", "The most BALs this worker watches.", w.settings.capacity)
        yield gauge("workers_alive", "Live workers seen at the last tick.", w.alive_workers)
        yield gauge("lag_seconds", "From arrival at the server to publication, last message.", f.lag_ms / 1000)
        yield gauge("healthy", "1 when leases are being renewed.", 1.0 if w.healthy() else 0.0)
        yield counter("published", "Message events published.", f.published)
        yield counter("duplicates", "Messages already published (refused by the checkpoint).", f.duplicates)
        yield counter("stale", "Publications refused for a stale fencing token.", f.stale)
        yield counter("bal_failures", "BALs stopped by an error (bal-error events).", f.failures)
        yield counter("redis_errors", "Redis calls that failed and were retried.", f.redis_errors)
        yield counter("takeovers", "BALs taken over from another worker.", f.takeovers)
        yield counter("connects", "IMAP connections granted by the connect limiter.", w.limiter.granted)
        yield counter("handovers_out", "BALs handed over to another worker (make-before-break).", f.handovers_out)
        yield counter("handovers_in", "BALs taken from another worker by handover.", f.handovers_in)
        yield gauge("connecting", "BALs claimed or being taken whose IMAP session is not up yet.",
                    w.connecting_count)
        yield counter("heap_trims", "Times the C heap was given back to the system after a burst of handshakes.",
                      f.heap_trims)
        yield counter("catch_up_waits", "Catch-ups that waited for one of the worker's catch-up slots.",
                      f.catch_up_waits)
        yield counter("operator_waits", "Waits for the operator's fleet-wide connection bucket.", f.operator_waits)
        yield counter("reconnects", "Watch reconnections by this worker (BALs held now and before).", w.reconnects)
        stops = CounterMetricFamily("mssante_fleet_stops", "BAL watches stopped, by event kind (not taken again).",
                                    labels=["worker", "kind"])
        for kind in sorted({*STOP_KINDS, *f.stops}):
            stops.add_metric([w.id, kind], f.stops.get(kind, 0))
        yield stops


async def serve_http(worker: Worker, host: str, port: int) -> asyncio.Server:
    """Serve ``/healthz`` (200, or 503 when Redis has not been reached for two lease TTLs) and ``/metrics``.

    Raises:
        OSError: the address cannot be bound.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = await reader.readuntil(b"\n")
                for _ in range(_MAX_HEADERS):
                    if (await reader.readuntil(b"\n")) in (b"\r\n", b"\n"):
                        break
            parts = line.decode("latin-1").split()
            path = parts[1] if len(parts) == 3 and parts[0] == "GET" else None
            if path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(registry)
            elif path == "/healthz":
                ok = worker.healthy()
                status = "200 OK" if ok else "503 Service Unavailable"
                ctype = "text/plain; charset=utf-8"
                body = b"ok\n" if ok else b"leases not renewed (Redis unreachable or not started)\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain; charset=utf-8", b"not found\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=_MAX_LINE)
