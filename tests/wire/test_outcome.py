"""AuthOutcome: the one vocabulary of authentication outcomes, checked on the wire both ways.

Outcome → reply: the line a front sends is parsed back by our own IMAP engine (a client that
never saw the table) and by the SMTP reply reader, and gives the same outcome. Reply → outcome:
transcripts of what real servers send (Dovecot, Gmail, Postfix, Exchange) read as the outcome an
LPS must react to (ref2 §2.4). Outcome ↔ error: every refusal has its error type, and back.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.errors import (
    AuthError,
    AuthUnavailable,
    CommandFailed,
    NotAuthorized,
    StartTLSError,
    TokenRejected,
    TransportError,
)
from mssante.wire import (
    AuthOutcome,
    SMTPReply,
    enhanced_code,
    outcome_from_imap,
    outcome_from_smtp,
    outcome_of_error,
)
from mssante.wire.imap import Authenticate, ClientConnection, Tagged
from tests._hypothesis import examples

A = AuthOutcome
#: What a reply cannot say apart: IMAP has one BAD for "cancelled" and "malformed".
IMAP_READS_AS = {A.CANCELLED: A.MALFORMED}


def _tagged_after_authenticate(line: bytes) -> Tagged:
    """Feed ``line`` to a client engine that just sent AUTHENTICATE, return the tagged answer."""
    conn = ClientConnection(tls=True)
    conn.receive_data(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n")
    conn.next_event()
    conn.send(Authenticate(mechanism="XOAUTH2", initial_response=b"user=u\x01auth=Bearer t\x01\x01"))
    conn.receive_data(line)
    event = conn.next_event()
    assert isinstance(event, Tagged), event
    return event


@pytest.mark.parametrize("outcome", list(AuthOutcome))
def test_imap_response_reads_back_as_its_outcome(outcome: AuthOutcome) -> None:
    line = outcome.imap_response(b"a001")
    tagged = _tagged_after_authenticate(line)
    assert tagged.status == outcome.imap_status
    code = tagged.code.name if tagged.code is not None else None
    assert code == outcome.imap_code
    assert outcome_from_imap(tagged.status, code) is IMAP_READS_AS.get(outcome, outcome)
    assert outcome.imap_result == (tagged.status if code is None else f"{tagged.status} [{code}]")


@pytest.mark.parametrize("outcome", list(AuthOutcome))
def test_smtp_reply_reads_back_as_its_outcome(outcome: AuthOutcome) -> None:
    line = outcome.smtp.line()
    code, text = int(line[:3]), line[4:]
    assert enhanced_code(text) == outcome.smtp.enhanced
    assert outcome_from_smtp(code, text) is outcome


def test_the_five_rfc5530_outcomes_on_the_wire() -> None:
    assert A.AUTHENTICATIONFAILED.imap_response(b"A1") == b"A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    assert A.PRIVACYREQUIRED.imap_response(b"t", "Use STARTTLS.") == b"t NO [PRIVACYREQUIRED] Use STARTTLS.\r\n"
    assert A.CANCELLED.imap_response(b"t") == b"t BAD Authentication cancelled.\r\n"  # RFC 3501 §6.2.2
    assert A.TOOBIG.imap_result == "BAD [TOOBIG]" and A.OK.imap_result == "OK"
    assert A.AUTHENTICATIONFAILED.smtp == SMTPReply(535, "5.7.8", "Authentication credentials invalid")
    assert A.UNAVAILABLE.smtp.line() == "454 4.7.0 Temporary authentication failure"  # RFC 4954 §6
    assert A.PRIVACYREQUIRED.smtp.line() == "530 5.7.0 Must issue a STARTTLS command first"  # RFC 3207 §4
    assert A.MALFORMED.smtp.line("Cannot decode base64") == "501 5.5.2 Cannot decode base64"
    assert A.OK.ok and not any(o.ok for o in AuthOutcome if o is not A.OK)
    assert [o.value for o in AuthOutcome][:5] == [
        "OK", "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "UNAVAILABLE", "PRIVACYREQUIRED"]


@pytest.mark.parametrize("text", ["two\r\nlines", "line\n", "non-ASCII é"])
def test_reply_texts_are_one_ascii_line(text: str) -> None:
    with pytest.raises(ValueError):
        A.AUTHENTICATIONFAILED.imap_response(b"a1", text)
    with pytest.raises(ValueError):
        A.AUTHENTICATIONFAILED.smtp.line(text)


# What real servers answer to AUTHENTICATE (text as they send it).
IMAP_TRANSCRIPTS = [
    (b"a001 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", A.AUTHENTICATIONFAILED),  # Dovecot
    (b"a001 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n", A.AUTHENTICATIONFAILED),  # Gmail
    (b"a001 NO [EXPIRED] Authentication failed: expired token\r\n", A.AUTHENTICATIONFAILED),  # RFC 5530 §3
    (b"a001 NO [AUTHORIZATIONFAILED] Authorization failed\r\n", A.AUTHORIZATIONFAILED),
    (b"a001 NO [UNAVAILABLE] Temporary authentication failure. [host:2026-12-06 10:00:00]\r\n", A.UNAVAILABLE),
    (b"a001 NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n",
     A.PRIVACYREQUIRED),  # Dovecot, disable_plaintext_auth
    (b"a001 NO Unsupported authentication mechanism.\r\n", A.AUTHENTICATIONFAILED),  # Dovecot: no code at all
    (b"a001 NO [CANNOT] Mechanism not offered\r\n", A.NOMECHANISM),
    (b"a001 BAD Invalid base64 data in continued response\r\n", A.MALFORMED),  # Dovecot
    (b"a001 BAD [TOOBIG] SASL line too long\r\n", A.TOOBIG),
    (b"a001 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n", A.OK),
    (b"a001 NO [SERVERBUG] Internal error occurred.\r\n", None),  # not an authentication outcome
]


@pytest.mark.parametrize(("line", "outcome"), IMAP_TRANSCRIPTS)
def test_imap_server_replies_read_as_outcomes(line: bytes, outcome: AuthOutcome | None) -> None:
    tagged = _tagged_after_authenticate(line)
    assert outcome_from_imap(tagged.status, tagged.code.name if tagged.code else None) is outcome


SMTP_TRANSCRIPTS = [
    ("235 2.7.0 Authentication successful", A.OK),
    ("535 5.7.8 Authentication failed", A.AUTHENTICATIONFAILED),  # Dovecot submission, Postfix
    ("535-5.7.8 Username and Password not accepted.", A.AUTHENTICATIONFAILED),  # Gmail (multi-line head)
    ("535 5.7.3 Authentication unsuccessful", A.AUTHENTICATIONFAILED),  # Exchange
    ("535 5.7.1 Not authorized on this mailbox", A.AUTHORIZATIONFAILED),
    ("535 5.7.8 Authorization failed: not allowed on this BAL (AUTHORIZATIONFAILED)", A.AUTHORIZATIONFAILED),
    ("454 4.7.0 Temporary authentication failure", A.UNAVAILABLE),
    ("530 5.7.0 Must issue a STARTTLS command first", A.PRIVACYREQUIRED),
    ("538 5.7.11 Encryption required for requested authentication mechanism", A.PRIVACYREQUIRED),
    ("501 5.7.0 Authentication cancelled", A.CANCELLED),
    ("501 5.5.2 Cannot decode base64", A.MALFORMED),
    ("503 5.5.1 Already authenticated", A.MALFORMED),
    ("504 5.5.4 Unrecognized authentication type", A.NOMECHANISM),
    ("500 5.5.6 Authentication Exchange line is too long", A.TOOBIG),
    ("500 5.5.2 Line too long", A.TOOBIG),  # Dovecot, a PSC token as initial response (RFC 4954 §4)
    ("500 5.5.1 Command unrecognized", A.MALFORMED),
    ("554 5.7.0 Go away", None),
    ("421 4.4.2 Connection closed", None),
]


@pytest.mark.parametrize(("line", "outcome"), SMTP_TRANSCRIPTS)
def test_smtp_server_replies_read_as_outcomes(line: str, outcome: AuthOutcome | None) -> None:
    assert outcome_from_smtp(int(line[:3]), line[4:]) is outcome


def test_enhanced_code() -> None:
    assert enhanced_code("5.7.8 Authentication failed") == "5.7.8"
    assert enhanced_code("  4.7.0 x") == "4.7.0"
    assert enhanced_code("Authentication failed 5.7.8") is None
    assert enhanced_code("5.7.8x") is None


ERRORS: list[tuple[AuthOutcome, type[Exception]]] = [
    (A.AUTHENTICATIONFAILED, TokenRejected),
    (A.AUTHORIZATIONFAILED, NotAuthorized),
    (A.UNAVAILABLE, AuthUnavailable),
    (A.PRIVACYREQUIRED, StartTLSError),
    (A.CANCELLED, AuthError),
    (A.MALFORMED, AuthError),
    (A.NOMECHANISM, AuthError),
    (A.TOOBIG, AuthError),
]


@pytest.mark.parametrize(("outcome", "kind"), ERRORS)
def test_outcome_to_error_and_back(outcome: AuthOutcome, kind: type[Exception]) -> None:
    assert outcome.error_type is kind
    error = outcome.error("  the server said so  ", imap_code=outcome.imap_code,
                          smtp_code=outcome.smtp.code, enhanced_code=outcome.smtp.enhanced)
    assert type(error) is kind
    assert error.message.endswith(": the server said so")
    assert (error.imap_code, error.smtp_code, error.enhanced_code) == (
        outcome.imap_code, outcome.smtp.code, outcome.smtp.enhanced)
    assert outcome_of_error(error) is outcome and error.auth_outcome == outcome.value
    # An error of the same type made elsewhere (no auth_outcome) still reads by its type or codes.
    bare = kind("x", imap_code=outcome.imap_code, smtp_code=outcome.smtp.code, enhanced_code=outcome.smtp.enhanced)
    assert outcome_of_error(bare) is outcome
    assert (error.requirement == "ECO.1.2.1") is (outcome is A.PRIVACYREQUIRED)


def test_errors_without_an_outcome() -> None:
    assert A.OK.error_type is None
    with pytest.raises(ValueError):
        A.OK.error("fine")
    assert outcome_of_error(AuthError("refused")) is None
    assert outcome_of_error(AuthError("refused", imap_code="SERVERBUG")) is None
    assert outcome_of_error(AuthError("refused", smtp_code=554, enhanced_code="5.7.0")) is None
    assert outcome_of_error(CommandFailed("no", smtp_code=535)) is None  # not an authentication error
    assert outcome_of_error(TransportError("down")) is None
    assert outcome_of_error(ValueError("x")) is None
    assert A.AUTHENTICATIONFAILED.error("x" * 300).message == "credentials rejected: " + "x" * 200


@settings(max_examples=examples(200))
@given(st.text(max_size=12), st.one_of(st.none(), st.text(max_size=30)))
def test_reading_any_imap_answer_never_raises(status: str, code: str | None) -> None:
    outcome = outcome_from_imap(status, code)
    assert outcome is None or isinstance(outcome, AuthOutcome)
    if status.upper() == "OK":
        assert outcome is A.OK


@settings(max_examples=examples(200))
@given(st.integers(min_value=-1, max_value=1000), st.text(max_size=80))
def test_reading_any_smtp_reply_never_raises(code: int, text: str) -> None:
    outcome = outcome_from_smtp(code, text)
    assert outcome is None or isinstance(outcome, AuthOutcome)
    assert (outcome is A.OK) == (code == 235)
