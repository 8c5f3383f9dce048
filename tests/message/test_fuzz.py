"""Property tests: untrusted input only ever gives our typed errors or findings."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.errors import ContentError, LimitError, MssanteError, UsageError
from mssante.message import Draft, ReadSettings, _xdm_bridge, check_message, compose_message, parse_message
from tests._hypothesis import examples

from .conftest import NOW, PRO_ADDRESS, SENDER, SETTINGS, FakeXDM, xdm_draft

DATA = Path(__file__).parent / "data"
SMALL = ReadSettings(max_size=64 * 1024, max_parts=50, max_depth=8)
FUZZ = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def _fake_xdm() -> Iterator[None]:
    fake = FakeXDM()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_xdm_bridge, "inspect_archive", fake.inspect)
        yield


def _seeds() -> list[bytes]:
    with _fake_xdm():
        composed = compose_message(
            xdm_draft(html="<p>é</p>", request_mdn=True, end_of_exchange=True), settings=SETTINGS, now=NOW
        )
        seeds = [composed.to_bytes()]
    seeds += [p.read_bytes() for p in sorted(DATA.glob("*.eml"))]
    return seeds


SEEDS = _seeds()
TOKENS = [b"\r", b"\n", b"\r\n\r\n", b"\x00", b"\xff\xfe", b"=?utf-8?q?=0D=0A?=", b"=?x-unknown?b?AAAA?=", b"--", b'"',
          b";", b":", b"<", b">", b"@", b"\t", b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
          b"Content-Type: message/delivery-status\r\n\r\n", b"filename*0*=bogus''%ZZ", b"charset=unknown-8bit",
          b"Content-Transfer-Encoding: base64\r\n\r\n@@@=", b"Disposition: ;/", b"Final-Recipient: ;"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "flip", "truncate"]))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def _parse_and_check(data: bytes) -> None:
    try:
        parsed = parse_message(data, settings=SMALL)
    except (ContentError, LimitError):
        pass
    else:
        assert parsed.email is not None
    try:
        report = check_message(data, settings=SMALL)
    except LimitError:
        return
    assert all(f.severity in ("error", "warning", "info") and f.rule for f in report.findings)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    with _fake_xdm():
        _parse_and_check(data)


@FUZZ
@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    with _fake_xdm():
        _parse_and_check(data)


@FUZZ
@given(st.text(max_size=200))
def test_any_subject_round_trips_or_is_refused(subject: str) -> None:
    draft = Draft(sender=SENDER, to=(PRO_ADDRESS,), subject=subject, text="x")
    try:
        raw = compose_message(draft, settings=SETTINGS, now=NOW).to_bytes()
    except (ContentError, UsageError):
        assert any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in subject)
        return
    assert raw.isascii()
    parsed = parse_message(raw)
    assert parsed.subject == subject.strip()


def test_nesting_bomb_is_a_limit() -> None:
    depth = 60
    head = b"From: a@b.mssante.fr\r\nMIME-Version: 1.0\r\n"
    body = b""
    for i in range(depth):
        body += f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
    with pytest.raises((LimitError, ContentError)) as caught:
        parse_message(head + body, settings=SMALL)
    assert isinstance(caught.value, MssanteError)
