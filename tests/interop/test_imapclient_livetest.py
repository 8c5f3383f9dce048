"""IMAPClient's own live test suite (``imapclient.livetest``) against the sandbox's PSC front and Dovecot.

The suite is IMAPClient's, unchanged; only its login is ours: STARTTLS with the sandbox CA, then
``AUTHENTICATE XOAUTH2`` with a PSC token (the suite's ``oauth2`` option would fetch a Google
token). It runs once against each server of :func:`tests.interop._imap_world.world`. A failure
is the server's unless Dovecot fails the same test; those are the suite's own and are listed in
:data:`SUITE_OWN` with the reason. Two tests only time the server (:data:`SPEED_DEPENDENT`): any
outcome that says the server was faster or slower than their unrealistic timeouts is accepted,
anything else still counts. Every client the suite opens is closed after its run, so that no
socket is left to the garbage collector (and no ResourceWarning reaches a later test).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import imaplib
import socket
import threading
import unittest
import warnings
from collections.abc import Iterator
from typing import Any

import imapclient
import imapclient.livetest as livetest
import pytest

from tests.interop._imap_world import HOST, PER, Server, World, world

__all__ = ["world"]

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(300)]

#: Tests of the suite that fail against Dovecot 2.3 too, with why (none is the sandbox's fault).
SUITE_OWN: dict[str, str] = {
    **{f"{cls}.test_fetch": "assertSequenceEqual() on IMAPClient 4.1's Envelope, which has no len(): fails "
                            "whatever the server answers ('First sequence has no length')"
       for cls in ("TestWithUIDs", "TestWithoutUIDs")},
    "TestWithoutUIDs.test_move": "IMAPClient sends a non-UID MOVE through imaplib, which has no MOVE command in "
                                 "Python 3.11 ('Unknown IMAP4 command: move'); nothing reaches the server",
}

#: Tests whose outcome depends on the server's speed, not on what it answers, with why.
SPEED_DEPENDENT: dict[str, str] = {
    "TestSocketTimeout.test_small_connection_timeout_fail":
        "connects with SocketTimeout(connect=0.001): imaplib reads the greeting under that 1 ms "
        "timeout, so the test expects the greeting to take longer than 1 ms. Dovecot's separate "
        "imap-login process does; the sandbox front may greet sooner ('TimeoutError not raised').",
    "TestSocketTimeout.test_small_read_timeout_fail":
        "expects a NOOP not to be answered within 10 µs (SocketTimeout(read=0.00001)); over loopback either "
        "server may answer in time ('TimeoutError not raised'). When the NOOP does time out (a loaded "
        "machine), the suite's tearDown logs out on the timed-out socket and its quiet_logout() lets the "
        "OSError through ('cannot read from timed out object').",
}
#: The last line of a speed-dependent test's traceback when the server answered within the timeout.
_FASTER = "AssertionError: TimeoutError not raised"
#: ... when the expected timeout happened and the suite's tearDown then read the timed-out socket.
_TIMED_OUT_TEARDOWN = "OSError: cannot read from timed out object"


def _only_speed(traceback_text: str) -> bool:
    """True when a :data:`SPEED_DEPENDENT` test's traceback says only how fast the server answered.

    Either the server answered within the suite's timeout (the ``assertRaises`` failed and nothing
    else went wrong), or the timeout did happen and only the suite's ``tearDown`` failed, reading
    the socket that had timed out. Any other error (a refused connection, a bad answer) is not
    speed and still counts.
    """
    lines = traceback_text.strip().splitlines()
    if not lines:
        return False
    if lines[-1] == _FASTER:
        return sum(line.startswith("Traceback ") for line in lines) == 1
    return (lines[-1] == _TIMED_OUT_TEARDOWN and any("in tearDown" in line for line in lines)
            and any("quiet_logout" in line for line in lines))


def _conf(server: Server) -> argparse.Namespace:
    conf = argparse.Namespace(
        host=HOST, port=server.port, ssl=False, starttls=True, stream=False, timeout=20.0, username=PER,
        password=None, oauth2=False, namespace=("", "/"), alternates={}, ssl_check_hostname=False, ssl_verify_cert=True,
        ssl_ca_file=None, oauth2_client_id=None, oauth2_client_secret=None, oauth2_refresh_token=None,
    )
    conf.server = server
    return conf


def _client(conf: argparse.Namespace, login: bool = True) -> imapclient.IMAPClient:
    server: Server = conf.server
    client = imapclient.IMAPClient(conf.host, port=conf.port, ssl=False, timeout=conf.timeout)
    if not login:
        return client
    try:
        client.starttls(server.world.pki.client_ssl_context())
        client.oauth2_login(PER, server.world.token())
    except BaseException:
        client.shutdown()
        raise
    return client


def _reason(traceback_text: str) -> str:
    """The exception line of a unittest traceback (with an assertion's message)."""
    lines = traceback_text.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("AssertionError", "AttributeError",
                                                                          "imaplib", "imapclient", "TimeoutError"))),
                 len(lines) - 1)
    return "\n".join(lines[start:start + 12])


@contextlib.contextmanager
def _clients_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[imapclient.IMAPClient]]:
    """Serve the suite our :func:`_client`, and close every client it opened once it has run.

    The suite's own tearDowns may leave a socket open (after a timeout, its quiet_logout() raises
    before closing); what is left after the explicit closes is collected here, its warnings
    silenced: they are about the suite's client sockets, never about the server under test.
    """
    opened: list[imapclient.IMAPClient] = []

    def tracked(conf: argparse.Namespace, login: bool = True) -> imapclient.IMAPClient:
        client = _client(conf, login)
        opened.append(client)
        return client

    monkeypatch.setattr(livetest, "create_client_from_config", tracked)
    try:
        yield opened
    finally:
        for client in opened:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.shutdown()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def _run_suite(server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Run the suite against ``server``; return each failed test's full traceback by name."""
    conf = _conf(server)
    classes: list[type[Any]] = []
    general = type("TestGeneral", (livetest.TestGeneral,), {"conf": conf})
    timeouts = type("TestSocketTimeout", (livetest.TestSocketTimeout,), {"conf": copy.copy(conf)})
    classes += [general, timeouts]
    for use_uid, name in ((True, "TestWithUIDs"), (False, "TestWithoutUIDs")):
        klass = livetest.createUidTestClass(conf, use_uid=use_uid)
        klass.__name__ = klass.__qualname__ = name
        classes.append(klass)
    for klass in classes:
        klass.maxDiff = None  # full assertion messages in the report
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(k) for k in classes)
    result = unittest.TestResult()
    with _clients_closed(monkeypatch):
        suite.run(result)
    failed = {f"{type(test).__name__}.{test._testMethodName}": text
              for test, text in (*result.failures, *result.errors)}
    assert result.testsRun > 40, result.testsRun
    return failed


def test_imapclient_livetest_has_no_failure_of_the_sandbox(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox, dovecot = world.servers
    ours, theirs = (
        {name: _reason(text) for name, text in _run_suite(server, monkeypatch).items()
         if not (name in SPEED_DEPENDENT and _only_speed(text))}
        for server in (sandbox, dovecot))
    report = "\n".join(f"[{who}] {name}: {why}" for who, failed in (("sandbox", ours), ("dovecot", theirs))
                       for name, why in sorted(failed.items()))
    servers_fault = {name: why for name, why in ours.items() if name not in theirs}
    assert not servers_fault, report
    assert set(ours) <= set(SUITE_OWN), report
    assert set(SUITE_OWN) <= set(theirs), "a listed failure no longer fails against Dovecot: update SUITE_OWN"


@contextlib.contextmanager
def _greeter_that_never_answers() -> Iterator[int]:
    """A loopback IMAP server that greets, answers imaplib's CAPABILITY, then never answers again."""
    listener = socket.create_server((HOST, 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            accepted.append(conn)
            conn.sendall(b"* OK silent\r\n")
            tag = conn.makefile("rb").readline().split(b" ")[0]
            conn.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
            while conn.recv(4096):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
        thread.join(5)


def test_a_read_timeout_is_speed_and_its_socket_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loaded-machine outcome of test_small_read_timeout_fail: the NOOP times out (the test body
    passes), the suite's tearDown then fails reading the timed-out socket. That is speed, not the
    server; and the client the suite left open is closed by the run, not by the garbage collector."""
    with _greeter_that_never_answers() as port:
        conf = _conf(Server("silent", port, None))  # type: ignore[arg-type] - no login, no world needed
        klass = type("TestSocketTimeout", (livetest.TestSocketTimeout,), {"conf": conf})
        result = unittest.TestResult()
        with _clients_closed(monkeypatch) as opened:
            klass("test_small_read_timeout_fail").run(result)
    assert not result.failures
    [(_, text)] = result.errors
    assert text.strip().splitlines()[-1] == _TIMED_OUT_TEARDOWN, text
    assert _only_speed(text)
    [client] = opened
    assert client._imap.sock.fileno() == -1  # closed, not left to the garbage collector


def test_a_refused_connection_is_not_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A speed-dependent test that fails for another reason than speed still counts."""
    with socket.create_server((HOST, 0)) as closed:
        port = closed.getsockname()[1]
    conf = _conf(Server("nobody", port, None))  # type: ignore[arg-type] - no login, no world needed
    klass = type("TestSocketTimeout", (livetest.TestSocketTimeout,), {"conf": conf})
    result = unittest.TestResult()
    with _clients_closed(monkeypatch):
        klass("test_small_read_timeout_fail").run(result)
    [(_, text)] = result.errors
    assert "ConnectionRefusedError" in text, text
    assert not _only_speed(text)
