"""Fuzzing: every route of the bridge, the sandbox API, the mock PSC and the webmail, over loopback.

Run: ``.venv/bin/python benchmarks/fuzz_http.py [--seed 13] [--scale 1] [--json report.json]`` (not a test;
loopback only, bounded: about a minute at scale 1, ``--scale`` multiplies the inputs).

The four apps run for real (uvicorn, in a thread of this process: ``tests/http/_servers.py``). Their routes
are listed as a client finds them: the bridge's and the sandbox API's OpenAPI documents, the Starlette routes
of the mock PSC and the webmail. Each input is a seeded mutation of a realistic request of one route
(valid JSON bodies, forms, multipart uploads, query strings, credentials): bytes flipped, inserted
(controls, 0xFF, quotes), cut, repeated, nested, fields duplicated or multiplied, types changed,
content types and credentials swapped. Raw-socket inputs break the HTTP framing itself (bad chunk sizes,
lying Content-Length, both framings, a client leaving mid-body).

A crash is a 5xx other than an injected 503, a hang (no answer within 15 s), a server that stops
answering its health route, a traceback or error in a server log, or an object left to the garbage
collector with an error (an unclosed temporary file). The report gives the inputs tried
per app, each crash with a reproducer, and the RSS of the process (client and servers together): before
the inputs (the baseline, same run), after them, and its peak. Exit status 1 when anything crashed.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import re
import resource
import socket
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.http._logs import LogTrap
from tests.http._servers import APP_BAL, MESSAGE, PER, Endpoint, Servers, fill, path_names

from mssante.sandbox.config import default_config

REQUESTS = 3000  # HTTP requests at scale 1, spread over every route
RAW = 300  # raw-socket exchanges at scale 1
TIMEOUT = 15.0
CLIENT = default_config().clients[0]
HOSTILE = ["", "\x00", "%00", "%ff", "%zz", "..", "../../etc/passwd", "é", '"', "\\", "-1", "1e309", "nan", "*",
           "[]", "{}", "<script>", "\r\n", "A" * 5000, "99999999999999999999999"]


@dataclass
class Seed:
    """A realistic request of one route, before mutation."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    ctype: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    seed: int
    scale: float
    tried: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    raw_tried: int = 0
    skipped: int = 0
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0


# -- seeds ------------------------------------------------------------------------------------------------

def seeds_for(endpoint: Endpoint, live: Servers, csrf: str) -> list[Seed]:
    """Realistic requests of ``endpoint`` (what an LPS, a browser or PSC would send)."""
    values = {"address": PER, "bal": PER, "uid": "1", "index": "0", "doc": "0", "folder": "INBOX",
              "session_id": live.session_id, "login_id": "x", "path": "app.css"}
    path = endpoint.path
    for name, _ in path_names(endpoint.path):
        path = fill(path, name, quote(values.get(name, "1"), safe="@"))
    basic = httpx2.BasicAuth(*live.installation)._auth_header
    bridge = {"Authorization": basic, "X-Session-Secret": live.session_secret}
    web = {"Cookie": live.webmail_cookie, "X-CSRF-Token": csrf}
    out = [Seed(m, path, headers=bridge if endpoint.app == "bridge" else web) for m in endpoint.methods]
    jsn, form = "application/json", "application/x-www-form-urlencoded"
    client_auth = {"Authorization": httpx2.BasicAuth(CLIENT.client_id, CLIENT.client_secret)._auth_header}
    p = endpoint.path
    if p == "/logins":
        out += [Seed("POST", p, body=b'{"method": "browser"}', ctype=jsn, headers=bridge),
                Seed("POST", p, body=json.dumps({"method": "ciba", "national_id": "899700000001",
                                                 "binding_message": "42", "channel": "CARD"}).encode(),
                     ctype=jsn, headers=bridge)]
    elif p.endswith("/token") and endpoint.app == "bridge":
        out.append(Seed("POST", path, body=b'{"fresh": true}', ctype=jsn, headers=bridge))
    elif p == "/logins/{login_id}":
        out.append(Seed("GET", path, query=[("wait", "0")], headers=bridge))
    elif p == "/callback":
        out.append(Seed("GET", p, query=[("state", "s" * 43), ("code", "c"), ("iss", "http://127.0.0.1/")]))
    elif p == "/backchannel-logout":
        out.append(Seed("POST", p, body=b"logout_token=eyJhbGciOiJSUzI1NiJ9.e30.c2ln", ctype=form))
    elif p == "/api/faults":
        out.append(Seed("POST", p, body=b'{"delay": 0, "fail_auth": {"count": 0}, "bad_server_certificate": null}',
                        ctype=jsn))
    elif p == "/api/bals/{address}/messages":
        out.append(Seed("POST", path, query=[("folder", "INBOX")], body=MESSAGE, ctype="message/rfc822"))
    elif p in ("/api/journal", "/journal"):
        out.append(Seed("GET", p, query=[("bal", PER), ("since", "2025-01-31T10:00:00+00:00"), ("front", "imap")],
                        headers=web))
    elif p == "/api/events":
        out.append(Seed("GET", p, query=[("bal", PER), ("kinds", "message,journal")]))
    elif p == "/api/sessions/{bal}":
        out.append(Seed("DELETE", fill(p, "bal", "*"), query=[("mode", "bye")]))
    elif p == "/login/app":
        out.append(Seed("POST", p, body=urlencode({"bal": APP_BAL}).encode(), ctype=form))
    elif p == "/mail/{address}/send":
        boundary = "fuzzboundary"
        fields = {"csrf": csrf, "to": PER, "subject": "Résultat", "text": "Bonjour"}
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                 for k, v in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; filename="cr.txt"\r\n'
                     "Content-Type: text/plain\r\n\r\ncompte rendu\r\n")
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        out.append(Seed("POST", fill(p, "address", APP_BAL), body=body,
                        ctype=f"multipart/form-data; boundary={boundary}", headers=web))
    elif endpoint.app == "psc":
        oauth = [("client_id", CLIENT.client_id), ("redirect_uri", "http://127.0.0.1:8765/callback"),
                 ("scope", "openid scope_all"), ("response_type", "code"), ("state", "st"), ("nonce", "n"),
                 ("code_challenge", "A" * 43),
                 ("code_challenge_method", "S256")]
        if p.endswith("/auth"):
            login = [*oauth, ("national_id", "899700000001"), ("auth_mode", "CARD"), ("action", "login")]
            out += [Seed("GET", p, query=oauth), Seed("POST", p, body=urlencode(login).encode(), ctype=form)]
        elif p.endswith("/token"):
            out += [Seed("POST", p, body=urlencode([
                ("grant_type", g), ("refresh_token", "r"), ("code", "c"), ("redirect_uri", "http://127.0.0.1/callback"),
                ("code_verifier", "v" * 43), ("auth_req_id", "x")]).encode(), ctype=form, headers=client_auth)
                    for g in ("authorization_code", "refresh_token", "urn:openid:params:grant-type:ciba")]
        elif p.endswith(("/introspect", "/revoke")):
            out.append(Seed("POST", p, body=b"token=abc&token_type_hint=access_token", ctype=form,
                            headers=client_auth))
        elif p.endswith("/ext/ciba/auth"):
            out.append(Seed("POST", p, body=urlencode([("scope", "openid scope_all"), ("login_hint", "899700000001"),
                                                       ("binding_message", "42"), ("acr_values", "eidas1")]).encode(),
                            ctype=form, headers=client_auth))
        elif p.endswith("/userinfo"):
            out.append(Seed("GET", p, headers={"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}))
        elif p.endswith("/logout"):
            out.append(Seed("GET", p, query=[("id_token_hint", "a.b.c"), ("post_logout_redirect_uri", "http://x/"),
                                              ("state", "s")]))
    return out


# -- mutation ---------------------------------------------------------------------------------------------

def mutate_bytes(rng: random.Random, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice([0, 1, 2, 3, 4, 5, 5, 6, 7])  # a cut body (a client gone) twice as often
        at = rng.randint(0, len(data))
        if op == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at:at] = rng.choice([b"\x00", b"\xff", b'"', b"\\", b"%", b"%00", b"&", b"=", b"\r\n", b"{", b"["])
        elif op == 2:
            del data[at:at + rng.randint(1, 64)]
        elif op == 3 and data:
            piece = data[at:at + rng.randint(1, 16)] or b"a"
            data[at:at] = piece * rng.choice([2, 100, 5000])
        elif op == 4:
            depth = rng.choice([10, 1100, 5000, 50_000])
            data = bytearray(b"[" * depth + bytes(data) + b"]" * depth)
        elif op == 5:
            data = data[:at]
        elif op == 6:
            data += b"&" + b"&".join(b"f%d=%d" % (i, i) for i in range(rng.choice([10, 1001, 3000])))
        else:
            data += rng.randbytes(rng.randint(1, 32))
    return bytes(data)


def mutate_json(rng: random.Random, body: bytes) -> bytes:
    try:
        data = json.loads(body)
    except ValueError:
        return mutate_bytes(rng, body)
    if isinstance(data, dict) and data:
        key = rng.choice(sorted(data))
        data[key] = rng.choice([None, True, 1, -1, 1e308, "", "x" * 20000, [], {}, [data.copy()], rng.choice(HOSTILE)])
    return json.dumps(data).encode()


def mutate(rng: random.Random, seed: Seed, endpoint: Endpoint) -> tuple[str, str, dict[str, str], bytes]:
    method, path, query = seed.method, seed.path, list(seed.query)
    headers, body, ctype = dict(seed.headers), seed.body, seed.ctype
    for _ in range(rng.randint(1, 3)):
        op = 0 if body and rng.random() < 0.4 else rng.randrange(7)  # bodies are where parsers live
        if op == 0 and body:
            body = mutate_json(rng, body) if ctype == "application/json" else mutate_bytes(rng, body)
        elif op == 1:
            query.append((rng.choice(["folder", "since", "wait", "state", "mode", "kinds", "format", "bal",
                                      "response_type", "client_id", "redirect_uri", "code"]), rng.choice(HOSTILE)))
        elif op == 2 and path_names(endpoint.path):
            name, _ = rng.choice(path_names(endpoint.path))
            path = fill(endpoint.path, name, quote(rng.choice(HOSTILE).encode("utf-8", "surrogatepass"), safe=""))
            for other, _ in path_names(path):
                path = fill(path, other, "1")
        elif op == 3:
            ctype = rng.choice([None, "application/json", "application/x-www-form-urlencoded", "multipart/form-data",
                                "multipart/form-data; boundary=", "text/plain", "message/rfc822", "a/b; c=\"",
                                "application/json; charset=utf-32"])
        elif op == 4:
            key = rng.choice(["Authorization", "X-Session-Secret", "Cookie", "X-CSRF-Token", "Accept", "Range"])
            headers[key] = rng.choice(["", "Basic", "Basic !!!", "Bearer", "Bearer a.b.c", "x" * 8000,
                                       "Basic " + "A" * 400, "MSS_WEBMAIL=" + "x" * 100]).strip()
            if not headers[key]:
                del headers[key]
        elif op == 5:
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
        else:
            query = [(k, mutate_bytes(rng, v.encode()).decode("latin-1")) for k, v in query] or [("q", "\x00")]
    if ctype is not None:
        headers["Content-Type"] = ctype
    url = path + ("?" + urlencode(query, encoding="latin-1", errors="replace") if query else "")
    return method, url, headers, body


# -- raw HTTP framing -------------------------------------------------------------------------------------

def raw_request(rng: random.Random, path: str) -> tuple[bytes, bool]:
    """A request whose framing is broken; second value: the client leaves without reading (no answer due)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    kind = rng.randrange(6)
    if kind == 0:
        return (head + "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nzz\r\n\r\n").encode(), False
    if kind == 1:
        return (head + "Content-Length: 100\r\n\r\n{\"a\": 1").encode(), True  # leaves mid-body
    if kind == 2:
        return (head + "Content-Length: 2\r\n\r\n{}{}{}").encode(), False
    if kind == 3:
        return (head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode(), False
    if kind == 4:
        return (head + "Content-Length: -1\r\n\r\n").encode(), False
    return (head + "Transfer-Encoding: chunked\r\n\r\n" + "1\r\na\r\n" * rng.randint(1, 50)).encode(), True


def raw_exchange(port: int, data: bytes, leave: bool) -> bytes | None:
    """Send ``data``; return the status line (None when the client left, or the server said nothing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        if leave:
            return None
        try:
            return sock.recv(100).split(b"\r\n", 1)[0]
        except TimeoutError:
            return b"HANG"


# -- the campaign -----------------------------------------------------------------------------------------

def rss_mib() -> float:
    """The process's resident memory now (Linux ``/proc``; the peak where it is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def healthy(live: Servers) -> bool:
    try:
        with httpx2.Client(trust_env=False, timeout=5) as http:
            return all(http.get(url).status_code == 200 for url in (
                live.bridge_url + "/health", live.sandbox_url + "/api/health",
                live.sandbox_url + live.psc_prefix + "/.well-known/openid-configuration"))
    except httpx2.HTTPError:
        return False


#: Exceptions ignored in ``__del__`` (a temporary file left open...), collected by ``sys.unraisablehook``.
UNRAISABLE: list[str] = []


def record(report: Report, trap: LogTrap, app: str, what: dict[str, Any], problem: str | None) -> None:
    gc.collect(0)  # a young object leaked by this input is finalized (and reported) now, not later
    failures = trap.failures() + [f"unraisable: {u}" for u in UNRAISABLE]
    trap.records.clear()
    UNRAISABLE.clear()
    if problem or failures:
        report.crashes.append({"app": app, **what, "problem": problem or "log", "log": failures[:3]})


def campaign(live: Servers, trap: LogTrap, seed: int, scale: float) -> Report:
    rng = random.Random(seed)
    report = Report(seed=seed, scale=scale, rss_before_mib=rss_mib())
    with httpx2.Client(base_url=live.sandbox_url, trust_env=False, timeout=10,
                       headers={"Cookie": live.webmail_cookie}) as web:
        match = re.search(r'name="csrf" value="([^"]+)"', web.get(f"/mail/{APP_BAL}/compose").text)
        csrf = match.group(1) if match else ""
    plan = [(e, s) for app in ("bridge", "api", "psc", "webmail") for e in live.endpoints[app]
            for s in seeds_for(e, live, csrf)]
    weighted = [item for item in plan for _ in range(3 if item[1].body else 1)]  # bodies are where parsers live
    total = int(REQUESTS * scale)
    started = time.monotonic()
    clients = {app: httpx2.Client(base_url=live.bridge_url if app == "bridge" else live.sandbox_url,
                                  trust_env=False, timeout=TIMEOUT) for app in ("bridge", "api", "psc", "webmail")}
    try:
        for n in range(total):
            endpoint, seed_request = plan[n] if n < len(plan) else rng.choice(weighted)
            method, url, headers, body = (seed_request.method, seed_request.path, dict(seed_request.headers),
                                          seed_request.body) if n < len(plan) else mutate(rng, seed_request, endpoint)
            if n < len(plan):  # every seed once, unmutated, first
                url += "?" + urlencode(seed_request.query) if seed_request.query else ""
                if seed_request.ctype:
                    headers["Content-Type"] = seed_request.ctype
            what = {"method": method, "url": url[:300], "headers": sorted(headers),
                    "body": body[:200].decode("latin-1")}
            report.tried[endpoint.app] += 1
            problem = None
            try:
                with clients[endpoint.app].stream(method, url, headers=headers, content=body or None) as response:
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        response.read()
                    report.statuses[f"{response.status_code // 100}xx"] += 1
                    if response.status_code >= 500 and response.status_code != 503:
                        problem = f"HTTP {response.status_code}"
            except (httpx2.InvalidURL, httpx2.LocalProtocolError):
                report.tried[endpoint.app] -= 1  # our client would not send it (URL too long, bad header)
                report.skipped += 1
                continue
            except httpx2.TimeoutException:
                problem = "hang"
            except httpx2.HTTPError as exc:
                problem = f"transport {type(exc).__name__}: {exc}"
            record(report, trap, endpoint.app, what, problem)
            if n % 200 == 199 and not healthy(live):
                report.crashes.append({"app": "all", "problem": "stopped serving", "after": n + 1})
                break
        ports = {int(live.bridge_url.rsplit(":", 1)[1]): ["/logins", "/backchannel-logout"],
                 int(live.sandbox_url.rsplit(":", 1)[1]): ["/api/faults", f"/api/bals/{PER}/messages", "/login/app",
                                                          live.psc_prefix + "/protocol/openid-connect/token"]}
        for _ in range(int(RAW * scale)):
            port = rng.choice(sorted(ports))
            data, leave = raw_request(rng, rng.choice(ports[port]))
            status = raw_exchange(port, data, leave)
            report.raw_tried += 1
            if not live.wait_idle():  # the handlers of a client that left are done: their logs are in
                report.crashes.append({"app": "raw", "problem": "hang", "request": data[:200].decode("latin-1")})
            problem = "hang" if status == b"HANG" else ("HTTP 5xx" if status and status[9:10] == b"5" else None)
            record(report, trap, "raw", {"request": data[:200].decode("latin-1")}, problem)
        # The last clients to leave mid-body: wait until every server has finished with them, then read the logs.
        if not live.wait_idle():
            report.crashes.append({"app": "all", "problem": "requests still running after the raw exchanges"})
        record(report, trap, "raw", {"request": "(after the raw exchanges)"}, None)
        if not healthy(live):
            report.crashes.append({"app": "all", "problem": "stopped serving", "after": "raw exchanges"})
    finally:
        for client in clients.values():
            client.close()
    report.seconds = round(time.monotonic() - started, 1)
    report.peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report.rss_after_mib = rss_mib()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of inputs (default 1)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    args = parser.parse_args()
    warnings.simplefilter("error", ResourceWarning)
    sys.unraisablehook = lambda unraisable: UNRAISABLE.append(repr(unraisable.exc_value)[:200])
    with tempfile.TemporaryDirectory() as tmp, LogTrap() as trap, Servers(Path(tmp)) as live:
        with httpx2.Client(base_url=live.sandbox_url, trust_env=False) as http:
            answer = http.post("/login/app", data={"bal": APP_BAL})
            live.webmail_cookie = f"MSS_WEBMAIL={answer.cookies['MSS_WEBMAIL']}"
        for handler in logging.getLogger("uvicorn").handlers:  # uvicorn's console: one line per bad request
            if handler is not trap:
                handler.setLevel(logging.ERROR)
        trap.records.clear()
        report = campaign(live, trap, args.seed, args.scale)
    routes = {app: len(e) for app, e in live.endpoints.items()}
    summary = {"seed": report.seed, "scale": report.scale, "routes": routes, "inputs": dict(report.tried),
               "raw_exchanges": report.raw_tried,
               "skipped": report.skipped, "statuses": dict(report.statuses), "crashes": len(report.crashes),
               "seconds": report.seconds, "rss_before_mib": report.rss_before_mib,
               "rss_after_mib": report.rss_after_mib, "peak_rss_mib": report.peak_rss_mib}
    print(json.dumps(summary, indent=2))
    for crash in report.crashes[:20]:
        print("CRASH", json.dumps(crash, ensure_ascii=False)[:800])
    if args.json:
        args.json.write_text(json.dumps({**summary, "crash_list": report.crashes}, indent=2, ensure_ascii=False))
    return 1 if report.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
