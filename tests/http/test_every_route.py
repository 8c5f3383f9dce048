"""Every route of the four HTTP apps answers hostile input with a 4xx and a JSON or HTML error, never a 500.

Hypothesis posts nested, oversized, malformed and mistyped bodies (JSON, forms, multipart, raw
bytes), hostile path parameters, query strings and headers to every route listed in the
bridge's and the sandbox API's OpenAPI documents, and to every Starlette route of the mock PSC
and the webmail, on real uvicorn servers over loopback. After each request the servers' logs
must hold no traceback and no error.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.bridge._app import MAX_BODY as BRIDGE_MAX_BODY
from mssante.sandbox.api.routes import MAX_UPLOAD
from mssante.sandbox.psc.web import MAX_BODY as PSC_MAX_BODY
from tests._hypothesis import examples
from tests.http._logs import LogTrap
from tests.http._servers import APP_BAL, PER, Endpoint, Servers, fill, path_names

pytestmark = pytest.mark.timeout(300)
#: Examples per route (derandomized: the same inputs on every run).
EXAMPLES = examples(15)

HOSTILE = ["", "\x00", "%00", "..", "../../etc/passwd", "a" * 3000, "é", '"', "\\", "-1", "0", "1",
           "99999999999999999999999", "1e309", "nan", "*", "[]", "{}", "<script>", "\r\nX: y", "\udcff"]
KEYS = ["folder", "since", "bal", "front", "kinds", "format", "mode", "wait", "state", "code", "iss", "error",
        "response_type", "client_id", "redirect_uri", "scope", "nonce", "code_challenge", "code_challenge_method",
        "grant_type", "refresh_token", "token", "token_type_hint", "login_hint", "binding_message", "prompt",
        "id_token_hint", "post_logout_redirect_uri", "national_id", "auth_mode", "action", "csrf", "to", "subject",
        "text", "logout_token", "method", "fresh", "channel", "delay", "psc_unavailable", "fail_auth", "uid", "doc"]

text = st.text(max_size=60)
values = st.one_of(st.sampled_from(HOSTILE), text, st.integers().map(str))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text,
                         st.sampled_from(HOSTILE))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(text, inner, max_size=4)),
                           max_leaves=12)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    kind = draw(st.sampled_from(["none", "nested", "json", "mistyped", "form", "many", "multipart", "raw", "big"]))
    if kind == "none":
        return b"", None
    if kind == "nested":
        depth = draw(st.sampled_from([2, 900, 1500, 5000, 100_000]))  # Python's recursion limit is 1000
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        return opener * depth + (b"1" if opener != b"[" else b"") + closer * depth, "application/json"
    if kind == "json":
        return draw(st.binary(max_size=200)), "application/json"
    if kind == "mistyped":
        data = draw(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5) | json_values)
        return json.dumps(data).encode(), "application/json"
    if kind == "form":
        fields = draw(st.lists(st.tuples(st.sampled_from(KEYS) | text, values), max_size=8))
        return urlencode(fields).encode("utf-8", "surrogatepass"), "application/x-www-form-urlencoded"
    if kind == "many":
        return b"&".join(b"f%d=1" % i for i in range(draw(st.integers(900, 1200)))), \
            "application/x-www-form-urlencoded"
    if kind == "multipart":
        boundary = draw(st.sampled_from(["", "b", "x" * 100, '"q"']))
        ctype = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
        parts = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.binary(max_size=100), st.booleans()), max_size=4))
        body = b"".join(b'--b\r\nContent-Disposition: form-data; name="%s"%s\r\n\r\n%s\r\n'
                        % (n.encode(), b'; filename="f.bin"' if f else b"", v) for n, v, f in parts) + b"--b--\r\n"
        return draw(st.sampled_from([body, body[: len(body) // 2], b"--b\r\n\r\n"])), ctype
    if kind == "big":
        return b"a=" + b"x" * draw(st.integers(16_000, 70_000)), \
            draw(st.sampled_from(["application/x-www-form-urlencoded", "application/json"]))
    return draw(st.binary(max_size=300)), draw(st.none() | header_text)


def mailbox(app: str) -> str:
    """The BAL in paths: the webmail's session (an APP login) may open only its own."""
    return APP_BAL if app == "webmail" else PER


@st.composite
def requests(draw: st.DrawFn, servers: Servers, endpoint: Endpoint) -> tuple[str, str, dict[str, str], bytes]:
    app = endpoint.app
    method = draw(st.sampled_from(endpoint.methods) if draw(st.integers(0, 4)) else
                  st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    path = endpoint.path
    for name, convertor in path_names(endpoint.path):
        good = {"address": mailbox(app), "bal": PER, "uid": "1", "index": "0", "doc": "0", "folder": "INBOX",
                "session_id": servers.session_id, "login_id": "x", "path": "app.css"}.get(name, "1")
        value = draw(st.sampled_from([good, good]) | values)
        value = value if convertor == "str" else draw(st.sampled_from([good, str(draw(st.integers()))]))
        path = fill(path, name, quote(value.encode("utf-8", "surrogatepass"), safe="@"))
    query = draw(st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=5))
    query = [(k, v) for k, v in query if not (k == "wait" and app == "bridge")]  # a wait is a long poll
    body, ctype = draw(bodies())
    headers: dict[str, str] = {}
    if ctype is not None:
        headers["Content-Type"] = ctype
    auth = draw(st.sampled_from(["good", "good", "good", "none", "garbage", "bearer"]))
    if auth == "good":
        headers["Authorization"] = httpx2.BasicAuth(*servers.installation)._auth_header
        headers["X-Session-Secret"] = draw(st.sampled_from([servers.session_secret, "x"]) | header_text)
    elif auth != "none":
        headers["Authorization"] = (("Bearer " if auth == "bearer" else "Basic ") + draw(header_text)).strip()
    if draw(st.booleans()):
        headers["Cookie"] = draw(st.sampled_from([servers.webmail_cookie, "MSS_WEBMAIL=x"]) | header_text)
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["X-CSRF-Token", "Accept", "Origin", "Range", "Expect"]))] = draw(header_text)
    url = path + ("?" + urlencode(query, encoding="utf-8", errors="surrogatepass") if query else "")
    return method, url, headers, body


def check(app: str, method: str, url: str, response: httpx2.Response, trap: LogTrap) -> None:
    where = f"{app}: {method} {url[:200]} -> {response.status_code}"
    assert response.status_code < 500 or response.status_code == 503, where  # 503: an injected fault
    ctype = response.headers.get("content-type", "")
    if response.status_code >= 400 and response.content:
        if app in ("bridge", "api"):
            assert ctype.startswith("application/json") and "error" in response.json(), where
        elif app == "psc":
            assert ctype.startswith(("application/json", "text/html")), where
        elif url.startswith("/annuaire/"):  # the mock Annuaire: FHIR's OperationOutcome, or the server's JSON
            assert ctype.startswith(("application/fhir+json", "application/json")), where
        else:
            assert ctype.startswith("text/html") or url.startswith("/api"), where
    failures = trap.failures()
    trap.records.clear()
    assert failures == [], where


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with Servers(tmp_path_factory.mktemp("every-route")) as live:
        with httpx2.Client(base_url=live.sandbox_url, trust_env=False) as http:
            answer = http.post("/login/app", data={"bal": APP_BAL})
            assert answer.status_code == 303, answer.text
            live.webmail_cookie = f"MSS_WEBMAIL={answer.cookies['MSS_WEBMAIL']}"
        yield live


@pytest.fixture(scope="module")
def module_trap() -> Iterator[LogTrap]:
    with LogTrap() as live:
        yield live


@pytest.fixture
def trap(module_trap: LogTrap) -> LogTrap:
    """The servers' log records, from this test only."""
    module_trap.records.clear()
    return module_trap


def _send(http: httpx2.Client, method: str, url: str, headers: dict[str, str], body: bytes) -> httpx2.Response:
    with http.stream(method, url, headers=headers, content=body or None) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()  # a live event stream never ends: its headers are the answer
        return response


@pytest.mark.parametrize("app", ["bridge", "api", "psc", "webmail"])
def test_every_route_answers_hostile_input_with_a_4xx(app: str, servers: Servers, trap: LogTrap) -> None:
    """Each route of ``app`` in turn gets its own examples (a route drawn among 20 would be missed)."""
    assert servers.endpoints[app], f"no {app} routes found"
    base = servers.bridge_url if app == "bridge" else servers.sandbox_url
    with httpx2.Client(base_url=base, trust_env=False, timeout=20) as http:
        for endpoint in servers.endpoints[app]:
            _hostile(servers, trap, http, endpoint)()


#: The findings of issue 13 and their kin, sent to every method of every route (hypothesis explores around them).
BATTERY: list[tuple[bytes, str]] = [
    (b"[" * 5000 + b"]" * 5000, "application/json"),
    (b'{"method":' * 1500 + b"1" + b"}" * 1500, "application/json"),
    (b"\xff\xfe{", "application/json"),
    (b'{"method": ["ciba"], "national_id": 1, "fresh": "yes", "psc_unavailable": "no", "delay": -1}',
     "application/json"),
    (b"&".join(b"f%d=1" % i for i in range(1001)), "application/x-www-form-urlencoded"),
    (b"logout_token=%ff%fe&csrf=%00", "application/x-www-form-urlencoded"),
    (b"--x\r\n\r\n", "multipart/form-data"),
    (b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\n' + b"a" * (1 << 20) + b"\r\n--b--\r\n",
     "multipart/form-data; boundary=b"),
    (b'--b\r\nContent-Disposition: form-data; name="attachments"; filename="f"\r\n\r\nx',
     "multipart/form-data; boundary=b"),
]


@pytest.mark.parametrize("app", ["bridge", "api", "psc", "webmail"])
def test_every_route_answers_the_known_findings_with_a_4xx(app: str, servers: Servers, trap: LogTrap) -> None:
    base = servers.bridge_url if app == "bridge" else servers.sandbox_url
    auth = {"Authorization": httpx2.BasicAuth(*servers.installation)._auth_header,
            "X-Session-Secret": servers.session_secret, "Cookie": servers.webmail_cookie}
    with httpx2.Client(base_url=base, trust_env=False, timeout=20) as http:
        for endpoint in servers.endpoints[app]:
            url = endpoint.path
            for name, _ in path_names(endpoint.path):
                good = {"address": mailbox(app), "bal": PER, "session_id": servers.session_id, "path": "app.css"}
                url = fill(url, name, good.get(name, "1"))
            for method in endpoint.methods:
                for body, ctype in BATTERY:
                    headers = {**auth, "Content-Type": ctype}
                    check(app, method, url, _send(http, method, url, headers, body), trap)


def _hostile(servers: Servers, trap: LogTrap, http: httpx2.Client, endpoint: Endpoint) -> Any:
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def hostile(data: st.DataObject) -> None:
        method, url, headers, body = data.draw(requests(servers, endpoint))
        check(endpoint.app, method, url, _send(http, method, url, headers, body), trap)

    return hostile


def _raw_exchange(port: int, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send a request head and body chunks until the server answers; return its status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        sock.settimeout(0.0)
        for chunk in chunks:
            try:
                answer = sock.recv(200)
            except BlockingIOError:
                answer = b""
            if answer:
                return answer.split(b"\r\n", 1)[0]
            try:
                sock.sendall(chunk)
            except BlockingIOError:
                continue
            except OSError:  # the server answered and closed
                break
        sock.settimeout(20)
        return sock.recv(200).split(b"\r\n", 1)[0]


def _limits(servers: Servers) -> list[tuple[str, str, int]]:
    message = f"/api/bals/{PER}/messages"
    return [
        (servers.bridge_url, "/logins", BRIDGE_MAX_BODY),
        (servers.bridge_url, "/backchannel-logout", BRIDGE_MAX_BODY),
        (servers.sandbox_url, "/api/faults", 1 << 20),
        (servers.sandbox_url, message, MAX_UPLOAD),
        (servers.sandbox_url, f"{servers.psc_prefix}/protocol/openid-connect/token", PSC_MAX_BODY),
        (servers.sandbox_url, "/login/app", 1 << 20),
    ]


@pytest.mark.parametrize("chunked", [False, True])
def test_request_bodies_are_bounded_on_real_uvicorn(chunked: bool, servers: Servers, trap: LogTrap) -> None:
    """A body above its route's limit is refused 413, announced (Content-Length) or streamed (chunked)."""
    for base, path, limit in _limits(servers):
        port = int(base.rsplit(":", 1)[1])
        if chunked:
            if limit > 1 << 20:
                continue  # streaming 40 MiB proves nothing more than 1 MiB does
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            piece = b"x" * 65536
            count = limit // len(piece) + 2
            chunks: Iterator[bytes] = iter([b"%x\r\n%s\r\n" % (len(piece), piece)] * count + [b"0\r\n\r\n"])
        else:
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {limit + 1}\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n").encode()
            chunks = iter([b""])  # refused on the announced length, before any byte of the body
        status = _raw_exchange(port, head, chunks)
        assert status.startswith(b"HTTP/1.1 413"), (path, status)
    assert trap.failures() == []


def test_every_app_lists_its_routes(servers: Servers) -> None:
    """The route lists are the real ones (a test that found no routes would prove nothing)."""
    paths = {app: {e.path for e in endpoints} for app, endpoints in servers.endpoints.items()}
    assert {"/logins", "/sessions/{session_id}/token", "/backchannel-logout"} <= paths["bridge"]
    assert {"/api/faults", "/api/bals/{address}/messages"} <= paths["api"]
    assert any(p.endswith("/protocol/openid-connect/token") for p in paths["psc"])
    assert {"/login/app", "/mail/{address}/send"} <= paths["webmail"]


def test_unknown_paths_answer_in_the_clients_terms(servers: Servers, trap: LogTrap) -> None:
    with httpx2.Client(base_url=servers.sandbox_url, trust_env=False) as http:
        page = http.get("/nulle-part")
        api = http.get("/api/nulle-part")
        psc = http.get(servers.psc_prefix + "/nulle-part")
        wrong = http.put("/journal")
    assert page.status_code == 404 and "Introuvable" in page.text
    assert api.status_code == 404 and api.json()["error"] == "not_found"
    assert psc.status_code == 404 and psc.json()["error"] == "not_found"
    assert wrong.status_code == 405 and "Méthode non permise" in wrong.text and "allow" in wrong.headers
    assert trap.failures() == []


def test_curl_meets_the_same_limits(servers: Servers, trap: LogTrap, tmp_path: Path) -> None:
    """The limits as a C#/Java/WinDev editor's HTTP stack meets them: curl, announced and chunked."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    big = tmp_path / "big.bin"
    big.write_bytes(b"logout_token=" + b"a" * (BRIDGE_MAX_BODY + 1))
    for chunked in (False, True):
        extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
        answer = subprocess.run(
            ["curl", "-sS", "--noproxy", "*", "-o", str(tmp_path / "out.json"), "-w", "%{http_code}",
             "-H", "Content-Type: application/x-www-form-urlencoded", *extra, "--data-binary", f"@{big}",
             servers.bridge_url + "/backchannel-logout"], capture_output=True, text=True, timeout=60, check=False)
        assert answer.stdout == "413", (chunked, answer.stdout, answer.stderr)
        assert json.loads((tmp_path / "out.json").read_text())["error"] == "too_large"
    nested = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
         "--data-binary", "[" * 5000 + "]" * 5000, "-X", "POST", servers.sandbox_url + "/api/faults"],
        capture_output=True, text=True, timeout=60, check=False)
    body, status = nested.stdout.rsplit("\n", 1)
    assert status == "400" and json.loads(body)["error"] == "invalid_request"
    assert trap.failures() == []
