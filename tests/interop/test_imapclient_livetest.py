"""IMAPClient's own live test suite (``imapclient.livetest``) against the sandbox's PSC front and Dovecot.

The suite is IMAPClient's, unchanged; only its login is ours: STARTTLS with the sandbox CA, then
``AUTHENTICATE XOAUTH2`` with a PSC token (the suite's ``oauth2`` option would fetch a Google
token). It runs once against each server of :func:`tests.interop._imap_world.world`. A failure
is the server's unless Dovecot fails the same test; those are the suite's own and are listed in
:data:`SUITE_OWN` with the reason.
"""

from __future__ import annotations

import argparse
import copy
import unittest
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
        "server may answer in time ('TimeoutError not raised').",
}


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


def _run_suite(server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setattr(livetest, "create_client_from_config", _client)
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
    suite.run(result)
    failed = {f"{type(test).__name__}.{test._testMethodName}": _reason(text)
              for test, text in (*result.failures, *result.errors)}
    assert result.testsRun > 40, result.testsRun
    return failed


def test_imapclient_livetest_has_no_failure_of_the_sandbox(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox, dovecot = world.servers
    ours = _run_suite(sandbox, monkeypatch)
    theirs = _run_suite(dovecot, monkeypatch)
    for name in SPEED_DEPENDENT:
        for failed in (ours, theirs):
            if name in failed:
                assert failed.pop(name) == "AssertionError: TimeoutError not raised"
    report = "\n".join(f"[{who}] {name}: {why}" for who, failed in (("sandbox", ours), ("dovecot", theirs))
                       for name, why in sorted(failed.items()))
    servers_fault = {name: why for name, why in ours.items() if name not in theirs}
    assert not servers_fault, report
    assert set(ours) <= set(SUITE_OWN), report
    assert set(SUITE_OWN) <= set(theirs), "a listed failure no longer fails against Dovecot: update SUITE_OWN"
