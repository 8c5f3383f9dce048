"""The sandbox's PSC IMAP front, side by side with Dovecot 2.3: same commands, same answers.

Each sequence of :data:`tests.interop.imap_corpus.SEQUENCES` runs, after STARTTLS and
``AUTHENTICATE XOAUTH2`` with a PSC token, against the sandbox's PSC front and against the
rootless Dovecot of :mod:`tests.interop.dovecot` (both on loopback, both fed by the same mock PSC),
on a folder both servers filled identically. The answers are normalised
(:func:`tests.interop.imap_diff.normalise`; each erased difference is listed with its RFC in
:data:`tests.interop.imap_diff.ALLOWED`) and must be equal. Known defects of the sandbox are
``xfail(strict=True)`` with the issue's words, so fixing one makes its sequence pass and the
marker must go.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.interop._imap_world import Server, World, teardown_on, world
from tests.interop.imap_corpus import INTERNALDATE, MESSAGES, SEQUENCES, Sequence, Step
from tests.interop.imap_diff import ALLOWED, Exchange, WireSession, normalise

__all__ = ["world"]

pytestmark = [pytest.mark.dovecot, pytest.mark.timeout(120)]

#: Known defects of the sandbox front, by sequence name: each becomes ``xfail(strict=True)`` with
#: its description, so fixing one makes its sequence pass and the entry must go. Empty since the
#: fronts run on mssante.sandbox.imapd (it listed 89 of the 96 sequences under pymap 0.36).
KNOWN: dict[str, str] = {}


def _literal(value: str | bytes) -> bytes:
    return MESSAGES[value] if isinstance(value, str) else value


def _setup(server: Server, seq: Sequence, folder: bytes) -> None:
    admin = server.login()
    try:
        teardown_on(admin, folder)
        created = admin.command(b"CREATE " + folder)
        assert created.lines[-1].startswith(b"TAG OK"), (server.name, created.lines)
        for index, name in enumerate(seq.messages):
            flags = seq.flags[index] if index < len(seq.flags) else ""
            answer = admin.command(b"APPEND " + folder + b" (" + flags.encode() + b") " + INTERNALDATE + b" %L",
                                   literals=[MESSAGES[name]])
            assert answer.lines[-1].startswith(b"TAG OK"), (server.name, answer.lines)
        admin.command(b"LOGOUT")
    finally:
        admin.close()


def _run(server: Server, seq: Sequence, folder: bytes) -> list[dict[str, Any]]:
    _setup(server, seq, folder)
    session = server.login()
    out: list[dict[str, Any]] = []
    try:
        for step in seq.steps:
            text = _template(step.text, folder, server.uid_offset)
            if step.idle_other:
                other = server.login()
                others: list[Exchange] = []

                def act(other: WireSession = other, step: Step = step, others: list[Exchange] = others) -> None:
                    for command in step.idle_other:
                        others.append(other.command(_template(command, folder, server.uid_offset)))
                        others[-1].command = command.encode()

                session.sock.settimeout(5)
                try:
                    exchange = session.idle(act, until=step.idle_until)
                except (TimeoutError, OSError, EOFError) as exc:
                    missing = f"<no {step.idle_until!r} within 5 s: {type(exc).__name__}>"
                    exchange = Exchange(b"IDLE", [missing.encode()])
                session.sock.settimeout(20)
                other.close()
                out.extend(_safe(x, server.uid_offset) | {"session": "other"} for x in others)
                out.append(_safe(exchange, server.uid_offset))
                if exchange.lines[-1].startswith(b"<"):
                    break
                continue
            try:
                exchange = session.command(text, literals=[_literal(x) for x in step.literals])
            except (TimeoutError, OSError, EOFError):
                # A closed connection reads as EOF or as a TLS close_notify: both mean "closed".
                out.append({"command": step.text, "error": "connection closed"})
                break
            exchange.command = step.text.encode()
            out.append(_safe(exchange, server.uid_offset))
    finally:
        session.close()
        admin = server.login()
        try:
            teardown_on(admin, folder)
        finally:
            admin.close()
    return out


def _template(text: str, folder: bytes, uid_offset: int) -> bytes:
    text = re.sub(r"%(\d)", lambda m: str(int(m.group(1)) + uid_offset), text.replace("%F", folder.decode()))
    return text.encode()


def _safe(exchange: Exchange, uid_offset: int) -> dict[str, Any]:
    try:
        return normalise(exchange, uid_offset)
    except ValueError as exc:
        return {"command": exchange.command.decode("utf-8", "replace"), "unparseable": repr(exc),
                "lines": exchange.lines}


def _tagged_is(*accepted: tuple[Any, ...]) -> Any:
    return lambda left, right: left.get("tagged") in accepted and right.get("tagged") in accepted


#: How each difference a sequence may tolerate (``Sequence.allowed``) is checked: the answers'
#: other fields must still be equal, and this relaxed check must hold.
_TOLERATED: dict[str, tuple[str, Any]] = {
    "read-only-store": ("tagged", _tagged_is(("TAG", "OK"), ("TAG", "NO", "READ-ONLY", ()))),
    "optional-code": ("tagged", lambda left, right: (left.get("tagged") or ())[:2] == (right.get("tagged") or ())[:2]),
    "no-date-search": ("untagged", lambda left, right: True),
    "invalid-content-type": ("fetch", lambda left, right: repr(left["fetch"]).replace(
        "(b'text', b'plain', (b'charset', b'us-ascii'), None, None, b'x-uuencode', '11', '0'",
        "(b'', b'', None, None, None, b'x-uuencode', '11'") == repr(right["fetch"])),
    "invalid-mutf7": ("tagged", lambda left, right: left.get("tagged") == ("TAG", "BAD")
                      and right.get("tagged") == ("TAG", "NO")),
    "lenient-syntax": ("tagged", lambda left, right: left.get("tagged") == ("TAG", "BAD")
                       and right.get("tagged") == ("TAG", "OK")),
    "unsolicited-flags": ("fetch", lambda left, right: all(
        set(items) == {"FLAGS"} for side in (left, right) for items in side.get("fetch", {}).values())),
}


def _tolerated(left: dict[str, Any], right: dict[str, Any], reason: str | None) -> bool:
    if reason is None:
        return False
    assert reason in ALLOWED, reason
    field_name, check = _TOLERATED[reason]
    rest_equal = {k: v for k, v in left.items() if k != field_name} == {
        k: v for k, v in right.items() if k != field_name}
    return rest_equal and bool(check(left, right))


def _differences(a: list[dict[str, Any]], b: list[dict[str, Any]], seq: Sequence) -> list[str]:
    out = []
    for index in range(max(len(a), len(b))):
        left = a[index] if index < len(a) else None
        right = b[index] if index < len(b) else None
        if left is not None and right is not None and _tolerated(left, right, seq.allowed.get(left.get("command", ""))):
            continue
        if left != right:
            command = (left or right or {}).get("command")
            keys = sorted({*(left or {}), *(right or {})} - {"command"})
            lines = [f"step {index} {command!r}:"]
            for key in keys:
                ours, theirs = (left or {}).get(key), (right or {}).get(key)
                if ours != theirs:
                    lines.append(f"  {key}: sandbox {ours!r}\n  {key}: dovecot {theirs!r}")
            out.append("\n".join(lines))
    return out


def _params() -> list[Any]:
    out = []
    for seq in SEQUENCES:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN[seq.name])] if seq.name in KNOWN else []
        out.append(pytest.param(seq, id=seq.name, marks=marks))
    return out


@pytest.mark.parametrize("seq", _params())
def test_same_answers_as_dovecot(world: World, seq: Sequence) -> None:
    folder = f"diff-{seq.name}".encode()
    sandbox, dovecot = (_run(server, seq, folder) for server in world.servers)
    differences = _differences(sandbox, dovecot, seq)
    assert not differences, f"{seq.name}: {len(differences)} differing step(s)\n" + "\n".join(differences)


def test_corpus_is_large_enough() -> None:
    # The bar: at least 80 command sequences, the LPS's and a stock client's among them.
    names = {seq.name for seq in SEQUENCES}
    assert len(SEQUENCES) >= 80 and len(names) == len(SEQUENCES)
    assert {"lps-poll", "stock-client-sync"} <= names


def test_normalise_keeps_real_differences() -> None:
    # The comparison must be able to fail: tags and text go, an ENVELOPE or status difference stays.
    def exchange(*lines: bytes) -> Exchange:
        return Exchange(b"FETCH 1 (ENVELOPE)", list(lines))

    ours = exchange(b'* 1 FETCH (ENVELOPE ("Tue, 11 Mar 2025" "a" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n',
                    b"TAG OK done\r\n")
    same = exchange(b'* 1 FETCH (ENVELOPE ({16}\r\nTue, 11 Mar 2025 "a" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n',
                    b"TAG OK [CAPABILITY IMAP4rev1] Fetch completed (0.001 + 0.000 secs).\r\n")
    other_date = exchange(b'* 1 FETCH (ENVELOPE ("11-Mar-2025" "a" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n',
                          b"TAG OK done\r\n")
    refused = exchange(b"TAG BAD no\r\n")
    assert normalise(ours) == normalise(same)
    assert normalise(ours) != normalise(other_date)
    assert normalise(ours) != normalise(refused)
    moved = Exchange(b"UID FETCH %1 (UID)", [b"* 1 FETCH (UID 101)\r\n", b"TAG OK\r\n"])
    assert normalise(moved, 100)["fetch"] == {"1": {"UID": "1"}}
    assert normalise(moved, 0)["fetch"] == {"1": {"UID": "101"}}
