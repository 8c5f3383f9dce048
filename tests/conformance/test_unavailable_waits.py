"""The UNAVAILABLE judge measures the LPS's own waiting, not the machine's speed (ECO.1.2.3).

A tight loop on a loaded machine spends longer in each TLS handshake with a client certificate
and AUTH than a back-off lasts: the start-to-start gap between attempts looks spaced. The judge
measures from the operator's refusal to the next connection (or the next command in the same
session), which only the LPS's waiting makes long.
"""

from __future__ import annotations

import itertools

from mssante.conformance._cases_reactions import _attempts_in, _waits
from mssante.sandbox.fronts.journal import CommandRecord, SessionRecord
from mssante.wire import AuthOutcome

HANDSHAKE = 0.5  # TLS + client certificate + AUTH on a loaded machine


def _session(sid: int, started: float, *answers: tuple[float, AuthOutcome]) -> SessionRecord:
    record = SessionRecord(id=sid, front="imap-authcli", protocol="imap", peer="127.0.0.1:1", started_at=started)
    record.commands = [CommandRecord(at=at, command="A1 AUTHENTICATE PLAIN", result=outcome.imap_result,
                                     outcome=outcome) for at, outcome in answers]
    return record


def test_a_tight_loop_with_slow_handshakes_waits_almost_nothing() -> None:
    """Reconnects 10 ms after each refusal; each handshake + AUTH takes 0.5 s."""
    records, refused = [], 0.0
    for sid in range(1, 5):
        start = refused + 0.01 if sid > 1 else 0.0
        outcome = AuthOutcome.UNAVAILABLE if sid < 4 else AuthOutcome.OK
        records.append(_session(sid, start, (start + HANDSHAKE, outcome)))
        refused = start + HANDSHAKE
    attempts = _attempts_in(records, 0.0)
    start_to_start = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert min(start_to_start) > 0.5  # what the former judge compared: spaced, wrongly
    assert max(_waits(attempts, records)) < 0.02


def test_a_back_off_counts_whatever_the_handshake_lasts() -> None:
    """Waits 0.4 s after each refusal before reconnecting; handshakes of any length do not matter."""
    records, refused = [], 0.0
    for sid, handshake in enumerate((0.01, HANDSHAKE, 0.01), start=1):
        start = refused + 0.4 if sid > 1 else 0.0
        outcome = AuthOutcome.UNAVAILABLE if sid < 3 else AuthOutcome.OK
        records.append(_session(sid, start, (start + handshake, outcome)))
        refused = start + handshake
    waits = _waits(_attempts_in(records, 0.0), records)
    assert [round(w, 3) for w in waits] == [0.4, 0.4]


def test_a_retry_in_the_same_session_counts_from_the_refusal_to_its_answer() -> None:
    record = _session(1, 0.0, (0.1, AuthOutcome.UNAVAILABLE), (0.12, AuthOutcome.UNAVAILABLE),
                      (1.2, AuthOutcome.OK))
    waits = _waits(_attempts_in([record], 0.0), [record])
    assert [round(w, 3) for w in waits] == [0.02, 1.08]
