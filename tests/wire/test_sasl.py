"""SASL mechanisms without I/O: RFC 7628 §4 and RFC 4616 §4 examples, both roles, round trips."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.errors import LocalProtocolError, RemoteProtocolError
from mssante.secret import Secret
from mssante.wire.sasl import (
    BearerError,
    Mechanism,
    OAuthBearerClient,
    PlainClient,
    XOAuth2Client,
    b64decode,
    b64encode,
    check_error_ack,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
    smtp_auth_lines,
)

# RFC 7628 §4.1 (IMAP, success) and §4.4 (SMTP, failure): the client's initial response, as printed.
RFC7628_IMAP_IR = (
    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyI"
    "HZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
)
RFC7628_SMTP_IR = (
    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52Y"
    "jNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
)
RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
# RFC 7628 §4.3 (IMAP) and §4.4 (SMTP): the server's JSON error challenges.
RFC7628_IMAP_ERROR = (
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4"
    "YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
)
RFC7628_SMTP_ERROR = (
    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmV4YW1wbGUuY29tLyJ9"
)
# The client's answer to an error challenge in both examples.
RFC7628_ACK = "AQ=="


@pytest.mark.parametrize(("wire", "port"), [(RFC7628_IMAP_IR, 143), (RFC7628_SMTP_IR, 587)])
def test_oauthbearer_client_reproduces_rfc7628_examples(wire: str, port: int) -> None:
    client = OAuthBearerClient("user@example.com", Secret(RFC7628_TOKEN), host="server.example.com", port=port)
    assert b64encode(client.initial_response()).decode() == wire


@pytest.mark.parametrize(("wire", "port"), [(RFC7628_IMAP_IR, 143), (RFC7628_SMTP_IR, 587)])
def test_oauthbearer_server_parses_rfc7628_examples(wire: str, port: int) -> None:
    creds = parse_oauthbearer(b64decode(wire.encode()))
    assert creds.mechanism is Mechanism.OAUTHBEARER
    assert creds.user == "user@example.com"
    assert creds.host == "server.example.com"
    assert creds.port == port
    assert creds.token == Secret(RFC7628_TOKEN)
    assert RFC7628_TOKEN not in repr(creds)


def test_rfc7628_error_challenges_parse_and_are_acknowledged() -> None:
    imap = BearerError.parse(b64decode(RFC7628_IMAP_ERROR.encode()))
    assert imap == BearerError(
        status="invalid_token",
        scope="example_scope",
        openid_configuration="https://example.com/.well-known/openid-configuration",
    )
    smtp = BearerError.parse(b64decode(RFC7628_SMTP_ERROR.encode()))
    assert smtp == BearerError(status="401", schemes="bearer mac", scope="https://mail.example.com/")
    # Server role: the same objects serialise back to the RFC's exact bytes.
    assert b64encode(imap.to_bytes()).decode() == RFC7628_IMAP_ERROR
    assert b64encode(smtp.to_bytes()).decode() == RFC7628_SMTP_ERROR

    client = OAuthBearerClient("user@example.com", Secret(RFC7628_TOKEN))
    client.initial_response()
    assert b64encode(client.respond(b64decode(RFC7628_SMTP_ERROR.encode()))).decode() == RFC7628_ACK
    assert client.error == smtp
    check_error_ack(Mechanism.OAUTHBEARER, b"\x01")
    with pytest.raises(RemoteProtocolError):
        client.respond(b"{}")  # a second challenge is not allowed


def test_xoauth2_wire_format_and_empty_answer_to_error() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    client = XOAuth2Client("jean.dupont@hopital.mssante.fr", Secret(token))
    raw = client.initial_response()
    assert raw == b"user=jean.dupont@hopital.mssante.fr\x01auth=Bearer " + token.encode() + b"\x01\x01"
    assert token not in repr(client)
    creds = parse_xoauth2(raw)
    assert (creds.user, creds.token.reveal()) == ("jean.dupont@hopital.mssante.fr", token)
    challenge = BearerError(status="401", schemes="bearer", scope="openid scope_all").to_bytes()
    assert challenge == b'{"status":"401","schemes":"bearer","scope":"openid scope_all"}'
    assert client.respond(challenge) == b""
    assert client.error is not None and client.error.scope == "openid scope_all"
    check_error_ack(Mechanism.XOAUTH2, b"")
    with pytest.raises(RemoteProtocolError):
        check_error_ack(Mechanism.XOAUTH2, b"\x01")


def test_plain_rfc4616_examples() -> None:
    # RFC 4616 §4: "<NUL>tim<NUL>tanstaaftanstaaf" and "Ursel<NUL>Kurt<NUL>xipj3plmq".
    tim = PlainClient("tim", Secret("tanstaaftanstaaf"))
    assert tim.initial_response() == b"\x00tim\x00tanstaaftanstaaf"
    assert b64encode(tim.initial_response()) == b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
    ursel = PlainClient("Kurt", Secret("xipj3plmq"), authzid="Ursel")
    assert ursel.initial_response() == b"Ursel\x00Kurt\x00xipj3plmq"
    creds = parse_plain(b"Ursel\x00Kurt\x00xipj3plmq")
    assert (creds.authzid, creds.authcid, creds.password.reveal()) == ("Ursel", "Kurt", "xipj3plmq")
    assert parse_plain(b"\x00tim\x00tanstaaftanstaaf").authzid == ""
    assert "xipj3plmq" not in repr(creds) + repr(ursel)
    with pytest.raises(RemoteProtocolError):
        ursel.respond(b"")


@pytest.mark.parametrize(
    "message",
    [b"", b"tim\x00pw", b"\x00\x00pw", b"\x00tim\x00", b"a\x00b\x00c\x00d", b"\x00tim\x00\xff"],
)
def test_plain_server_rejects_malformed(message: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_plain(message)


def test_plain_client_nul_rules() -> None:
    with pytest.raises(LocalProtocolError):
        PlainClient("a\x00b", Secret("pw"))
    with pytest.raises(LocalProtocolError):
        PlainClient("bal@x.fr", Secret(""))
    with pytest.raises(LocalProtocolError):
        PlainClient("", Secret("pw"))


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"user=a\x01auth=Bearer SECRETTOK\x01",  # one ^A short
        b"user=a\x01auth=Bearer SECRETTOK",
        b"auth=Bearer SECRETTOK\x01\x01",  # no user
        b"user=a\x01\x01",  # no auth
        b"user=a\x01auth=Basic dXNlcg==\x01\x01",  # not a bearer token
        b"user=a\x01auth=Bearer SECRET TOK\x01\x01",
        b"user=a\x01user=b\x01auth=Bearer t\x01\x01",
        b"user=\xff\x01auth=Bearer t\x01\x01",
        b"us er=a\x01auth=Bearer t\x01\x01",
    ],
)
def test_xoauth2_server_rejects_malformed(message: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_xoauth2(message)
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    "message",
    [
        b"p=tls-unique,,\x01auth=Bearer t\x01\x01",  # channel binding is not supported
        b"x,,\x01auth=Bearer t\x01\x01",
        b"n,a=u\x01auth=Bearer t\x01\x01",
        b"n,u,\x01auth=Bearer t\x01\x01",
        b"n,a=u=2Xv,\x01auth=Bearer t\x01\x01",
        b"n,a=,\x01auth=Bearer t\x01\x01",
        b"n,,auth=Bearer t\x01\x01",
        b"n,,\x01port=99999\x01auth=Bearer t\x01\x01",
        b"n,,\x01host=a\x01\x01",
        b"\x01",
    ],
)
def test_oauthbearer_server_rejects_malformed(message: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_oauthbearer(message)


def test_oauthbearer_without_authzid_and_with_escapes() -> None:
    creds = parse_oauthbearer(b"n,,\x01auth=Bearer abc\x01\x01")
    assert creds.user is None and creds.host is None and creds.port is None
    client = OAuthBearerClient("a,b=c@x.fr", Secret("abc"))
    assert client.initial_response().startswith(b"n,a=a=2Cb=3Dc@x.fr,\x01")
    assert parse_oauthbearer(client.initial_response()).user == "a,b=c@x.fr"


@pytest.mark.parametrize("token", ["", "with space", "new\nline", "ctl\x01", "é"])
def test_client_refuses_tokens_that_are_not_b64token(token: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        XOAuth2Client("u@x.fr", Secret(token))
    assert token not in str(info.value) or not token


def test_client_refuses_control_characters_in_user() -> None:
    with pytest.raises(LocalProtocolError):
        XOAuth2Client("u\x01@x.fr", Secret("t"))
    with pytest.raises(LocalProtocolError):
        OAuthBearerClient("u\r\n@x.fr", Secret("t"))
    with pytest.raises(LocalProtocolError):
        OAuthBearerClient("u@x.fr", Secret("t"), port=0)


@pytest.mark.parametrize(
    "challenge", [b"", b"not json", b"[1]", b'{"scope":"x"}', b'{"status":401}', b"\xff", b'{"status":"401","scope":1}']
)
def test_client_rejects_malformed_error_challenges(challenge: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        BearerError.parse(challenge)
    with pytest.raises(RemoteProtocolError):
        XOAuth2Client("u@x.fr", Secret("t")).respond(challenge)


def test_b64decode_is_strict() -> None:
    assert b64decode(b"AQ==") == b"\x01"
    assert b64decode(b"") == b""
    with pytest.raises(RemoteProtocolError):
        b64decode(b"not base64!")


# -- RFC 4954 §4: the 512-octet AUTH line ----------------------------------------------------------


def test_short_initial_response_goes_on_the_auth_line() -> None:
    lines = smtp_auth_lines(Mechanism.XOAUTH2, b"user=a\x01auth=Bearer t\x01\x01")
    assert lines.uses_initial_response
    assert lines.command == b"AUTH XOAUTH2 " + base64.b64encode(b"user=a\x01auth=Bearer t\x01\x01")
    assert "dXNl" not in repr(lines)


def test_line_limit_counts_crlf_exactly() -> None:
    # "AUTH PLAIN " is 11 octets; 500 base64 octets + CRLF = 513 > 512; 496 + CRLF = 509.
    at_limit = b"x" * 372  # 372 raw -> 496 base64 -> 11 + 496 + 2 = 509 octets
    assert smtp_auth_lines("PLAIN", at_limit).uses_initial_response
    over = b"x" * 375  # 375 raw -> 500 base64 -> 513 octets
    lines = smtp_auth_lines("PLAIN", over)
    assert lines.command == b"AUTH PLAIN"
    assert lines.pending == base64.b64encode(over)
    exact = smtp_auth_lines("PLAIN", b"x" * 372, max_line=509)
    assert exact.uses_initial_response
    assert not smtp_auth_lines("PLAIN", b"x" * 372, max_line=508).uses_initial_response


def test_empty_initial_response_is_equals_sign_and_none_means_no_ir() -> None:
    assert smtp_auth_lines("EXTERNAL", b"").command == b"AUTH EXTERNAL ="
    none = smtp_auth_lines("XOAUTH2", None)
    assert none.command == b"AUTH XOAUTH2" and none.pending is None
    with pytest.raises(LocalProtocolError):
        smtp_auth_lines("BAD NAME", b"")
    with pytest.raises(LocalProtocolError):
        smtp_auth_lines("XOAUTH2", b"", max_line=10)


def test_a_real_psc_sized_token_does_not_fit() -> None:
    token = Secret("eyJ" + "a" * 1500)
    lines = smtp_auth_lines(Mechanism.XOAUTH2, XOAuth2Client("u@x.fr", token).initial_response())
    assert not lines.uses_initial_response
    assert len(lines.command) + 2 <= 512


# -- hypothesis: client -> server round trips ----------------------------------------------------

_USER = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=80)
_TOKEN = st.from_regex(r"[A-Za-z0-9\-._~+/]{1,200}={0,2}", fullmatch=True)
_SAFE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60)


@given(user=_USER, token=_TOKEN)
def test_xoauth2_round_trip(user: str, token: str) -> None:
    raw = XOAuth2Client(user, Secret(token)).initial_response()
    creds = parse_xoauth2(b64decode(b64encode(raw)))
    assert (creds.user, creds.token.reveal()) == (user, token)


@given(
    user=st.none() | _USER,
    token=_TOKEN,
    host=st.none() | st.from_regex(r"[a-z0-9.-]{1,40}", fullmatch=True),
    port=st.none() | st.integers(1, 65535),
)
def test_oauthbearer_round_trip(user: str | None, token: str, host: str | None, port: int | None) -> None:
    raw = OAuthBearerClient(user, Secret(token), host=host, port=port).initial_response()
    creds = parse_oauthbearer(raw)
    assert (creds.user, creds.token.reveal(), creds.host, creds.port) == (user, token, host, port)


@given(authzid=_SAFE, authcid=_SAFE.filter(bool), password=_SAFE.filter(bool))
def test_plain_round_trip(authzid: str, authcid: str, password: str) -> None:
    raw = PlainClient(authcid, Secret(password), authzid=authzid).initial_response()
    creds = parse_plain(raw)
    assert (creds.authzid, creds.authcid, creds.password.reveal()) == (authzid, authcid, password)


@given(
    status=st.text(max_size=20),
    schemes=st.none() | st.text(max_size=20),
    scope=st.none() | st.text(max_size=40),
    oidc=st.none() | st.text(max_size=40),
)
def test_bearer_error_round_trip(status: str, schemes: str | None, scope: str | None, oidc: str | None) -> None:
    err = BearerError(status=status, schemes=schemes, scope=scope, openid_configuration=oidc)
    assert BearerError.parse(err.to_bytes()) == err


@given(data=st.binary(max_size=300))
def test_server_parsers_only_raise_remote_protocol_error(data: bytes) -> None:
    for parse in (parse_xoauth2, parse_oauthbearer, parse_plain):
        with contextlib.suppress(RemoteProtocolError):
            parse(data)
