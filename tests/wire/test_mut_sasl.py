"""SASL edges found by mutation testing (``benchmarks/mutation.py --target wire-sasl``).

Every refusal says whose fault it is and which rule was broken: the exact message (what an LPS
developer reads in a log) and the requirement are part of the contract. Boundaries (ports, the
SMTP line limit, gs2 flags) are checked on both sides of the edge.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mssante.errors import LocalProtocolError, MssanteError, RemoteProtocolError
from mssante.secret import Secret
from mssante.wire.sasl import (
    BearerError,
    Mechanism,
    OAuthBearerClient,
    PlainClient,
    XOAuth2Client,
    b64decode,
    check_error_ack,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
    smtp_auth_lines,
)

TOKEN = Secret("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==")
AUTH = b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"

_XO, _OB, _PL = "RFC 7628 §3.1", "RFC 5801 §4", "RFC 4616 §2"


@pytest.mark.parametrize(
    ("parse", "message", "expected", "requirement"),
    [
        (parse_xoauth2, b"user=a\x01" + AUTH[:-1], "malformed XOAUTH2 client response: does not end with ^A^A",
         "XOAUTH2 (Google)"),
        (parse_xoauth2, b"user=a", "malformed XOAUTH2 client response: does not end with ^A", "XOAUTH2 (Google)"),
        (parse_xoauth2, b"user\x01\x01", "malformed XOAUTH2 client response: invalid key=value pair",
         "XOAUTH2 (Google)"),
        (parse_xoauth2, b"user=a\x01user=b\x01\x01", "malformed XOAUTH2 client response: duplicate key 'user'",
         "XOAUTH2 (Google)"),
        (parse_xoauth2, AUTH, "malformed XOAUTH2 client response: no user key", "XOAUTH2 (Google)"),
        (parse_xoauth2, b"user=a\x01\x01", "malformed XOAUTH2 client response: no auth key", "XOAUTH2 (Google)"),
        (parse_xoauth2, b"user=a\x01auth=Basic eA==\x01\x01",
         "malformed XOAUTH2 client response: auth is not 'Bearer <b64token>'", "RFC 6750 §2.1"),
        (parse_xoauth2, b"user=\xff\x01" + AUTH, "malformed XOAUTH2 client response: user is not UTF-8",
         "XOAUTH2 (Google)"),
        (parse_oauthbearer, b"p=tls-unique,,\x01" + AUTH,
         "malformed OAUTHBEARER client response: gs2 header must start with 'n,' or 'y,' (no channel binding)", _XO),
        (parse_oauthbearer, b"n", "malformed OAUTHBEARER client response: gs2 header must start with 'n,' or 'y,' "
         "(no channel binding)", _XO),
        (parse_oauthbearer, b"n,a=x", "malformed OAUTHBEARER client response: unterminated gs2 header", _XO),
        (parse_oauthbearer, b"n,u=x,\x01" + AUTH,
         "malformed OAUTHBEARER client response: gs2 authzid must start with 'a='", _XO),
        (parse_oauthbearer, b"n,a=x=41,\x01" + AUTH, "malformed OAUTHBEARER client response: bad escape in authzid",
         _OB),
        (parse_oauthbearer, b"n,a=,\x01" + AUTH, "malformed OAUTHBEARER client response: empty authzid", _OB),
        (parse_oauthbearer, b"n,a=\xff,\x01" + AUTH, "malformed OAUTHBEARER client response: authzid is not UTF-8",
         _OB),
        (parse_oauthbearer, b"n,,host=x\x01" + AUTH, "malformed OAUTHBEARER client response: no ^A after the gs2 "
         "header", _XO),
        (parse_oauthbearer, b"n,,\x01host=\xc3\x01" + AUTH,
         "malformed OAUTHBEARER client response: invalid key=value pair", _XO),
        (parse_oauthbearer, b"n,,\x01port=0\x01" + AUTH, "malformed OAUTHBEARER client response: bad port", _XO),
        (parse_oauthbearer, b"n,,\x01port=65536\x01" + AUTH, "malformed OAUTHBEARER client response: bad port", _XO),
        (parse_oauthbearer, b"n,,\x01port=x\x01" + AUTH, "malformed OAUTHBEARER client response: bad port", _XO),
        (parse_oauthbearer, b"n,,\x01\x01", "malformed OAUTHBEARER client response: no auth key", _XO),
        (parse_plain, b"a\x00b", "malformed PLAIN client response: expected [authzid] NUL authcid NUL passwd", _PL),
        (parse_plain, b"\x00\x00pw", "malformed PLAIN client response: empty authcid or password", _PL),
        (parse_plain, b"\x00id\x00", "malformed PLAIN client response: empty authcid or password", _PL),
        (parse_plain, b"\x00id\x00\xff", "malformed PLAIN client response: a field is not UTF-8", _PL),
    ],
)
def test_server_refusals_say_what_and_which_rule(
    parse: Callable[[bytes], object], message: bytes, expected: str, requirement: str
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse(message)
    assert (info.value.message, info.value.requirement) == (expected, requirement)


def test_server_accepts_the_edges_of_the_grammar() -> None:
    # gs2 flag "y" (client supports channel binding, server does not: RFC 5801 §4) is fine.
    assert parse_oauthbearer(b"y,,\x01" + AUTH).user is None
    # Ports 1 and 65535 are the edges of the range; a host may hold a comma (VCHAR).
    low = parse_oauthbearer(b"n,a=u=2Cx=3D,\x01host=a,b\x01port=1\x01" + AUTH)
    assert (low.user, low.host, low.port) == ("u,x=", "a,b", 1)
    assert parse_oauthbearer(b"n,,\x01port=65535\x01" + AUTH).port == 65535
    # Keys are case-insensitive; the scheme name too (RFC 7235 §2.1); several spaces are allowed.
    creds = parse_xoauth2(b"USER=a@b\x01AUTH=bEaReR   tok\x01\x01")
    assert (creds.user, creds.token.reveal(), creds.mechanism) == ("a@b", "tok", Mechanism.XOAUTH2)
    plain = parse_plain("zid\x00id\x00pé".encode())
    assert (plain.authzid, plain.authcid, plain.password.reveal()) == ("zid", "id", "pé")


@pytest.mark.parametrize(
    ("build", "expected", "requirement"),
    [
        (lambda: OAuthBearerClient("u", TOKEN, port=0), "the OAUTHBEARER port is out of range", _XO),
        (lambda: OAuthBearerClient("u", TOKEN, port=65536), "the OAUTHBEARER port is out of range", _XO),
        (lambda: OAuthBearerClient("u", TOKEN, host="a\x00b"), "the OAUTHBEARER host contains a forbidden character",
         _XO),
        (lambda: OAuthBearerClient("u\n", TOKEN), "the OAUTHBEARER user contains a forbidden control character",
         None),
        (lambda: XOAuth2Client("u\x7f", TOKEN), "the XOAUTH2 user contains a forbidden control character", None),
        (lambda: XOAuth2Client("u", Secret("a b")), "the bearer token is not an RFC 6750 b64token",
         "RFC 6750 §2.1"),
        (lambda: PlainClient("id", Secret("pw"), authzid="z\x00"),
         "the PLAIN authzid contains a forbidden control character", None),
        (lambda: PlainClient("i\x00d", Secret("pw")), "the PLAIN authcid contains a forbidden control character",
         None),
        (lambda: PlainClient("id", Secret("p\x00w")), "the PLAIN password contains a forbidden control character",
         None),
        (lambda: PlainClient("", Secret("pw")), "PLAIN needs a non-empty authcid and password", _PL),
        (lambda: PlainClient("id", Secret("")), "PLAIN needs a non-empty authcid and password", _PL),
        (lambda: smtp_auth_lines("XOAUTH2é", b"x"), "invalid SASL mechanism name", "RFC 4422 §3.1"),
        (lambda: smtp_auth_lines("XOAUTH2", b"x", max_line=len(b"AUTH XOAUTH2") + 1),
         "max_line is too small for the AUTH command", None),
    ],
)
def test_client_refusals_say_what_and_which_rule(
    build: Callable[[], object], expected: str, requirement: str | None
) -> None:
    with pytest.raises(LocalProtocolError) as info:
        build()
    assert (info.value.message, info.value.requirement) == (expected, requirement)


def test_client_edges_of_the_ranges_are_accepted() -> None:
    assert b"port=1\x01" in OAuthBearerClient("u", TOKEN, port=1).initial_response()
    assert b"port=65535\x01" in OAuthBearerClient("u", TOKEN, port=65535).initial_response()
    assert smtp_auth_lines("XOAUTH2", None, max_line=len(b"AUTH XOAUTH2") + 2).command == b"AUTH XOAUTH2"
    assert OAuthBearerClient("é,=", TOKEN, host="h").initial_response().startswith(b"n,a=\xc3\xa9=2C=3D,\x01host=h\x01")
    with pytest.raises(LocalProtocolError):  # RFC 7628 values are ASCII VCHAR
        OAuthBearerClient("u", TOKEN, host="hôte")


def test_a_host_that_is_not_encodable_is_refused_up_front() -> None:
    # A lone surrogate used to pass the check (encoded with 'replace') and make
    # initial_response() raise UnicodeEncodeError instead of a typed error.
    with pytest.raises(LocalProtocolError):
        OAuthBearerClient("u", TOKEN, host="h\udcff")


def test_protocol_breaks_after_the_exchange() -> None:
    client = XOAuth2Client("u", TOKEN)
    assert client.respond(b'{"status":"401"}') == b""
    with pytest.raises(RemoteProtocolError) as info:
        client.respond(b'{"status":"401"}')
    assert info.value.message == "XOAUTH2: unexpected challenge after the error challenge"
    with pytest.raises(RemoteProtocolError) as plain:
        PlainClient("id", Secret("pw")).respond(b"")
    assert (plain.value.message, plain.value.requirement) == ("PLAIN: unexpected server challenge", _PL)
    for mechanism, wrong in ((Mechanism.OAUTHBEARER, b""), (Mechanism.XOAUTH2, b"\x01")):
        with pytest.raises(RemoteProtocolError) as ack:
            check_error_ack(mechanism, wrong)
        assert ack.value.requirement == "RFC 7628 §3.2.3"
        assert ack.value.message.startswith(f"{mechanism}: the answer to the error challenge must be ")


def test_reprs_name_the_class_and_hide_secrets() -> None:
    for client, name in ((XOAuth2Client("u", TOKEN), "XOAuth2Client"),
                         (OAuthBearerClient("u", TOKEN), "OAuthBearerClient"),
                         (PlainClient("id", TOKEN), "PlainClient")):
        text = repr(client)
        assert text.startswith(name + "(") and TOKEN.reveal() not in text


def test_error_challenge_members_and_encoding() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        BearerError.parse(b'{"status":"401","scope":3}')
    assert (info.value.message, info.value.requirement) == (
        "SASL error challenge member 'scope' is not a string", "RFC 7628 §3.2.2")
    # UTF-8 on the wire, not \\u escapes (the server role writes what the RFC 7628 §3.2.2 example shows).
    assert BearerError(status="401", scope="accès").to_bytes() == '{"status":"401","scope":"accès"}'.encode()
    with pytest.raises(MssanteError):
        b64decode(b"dXNl*cg==")  # a stray character is refused, not skipped (RFC 4648 §3.3)


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        (b"\xff", "SASL error challenge is not JSON"),
        (b"{", "SASL error challenge is not JSON"),
        (b'["401"]', "SASL error challenge is not a JSON object"),
        (b'{"scope":"x"}', "SASL error challenge has no 'status'"),
    ],
)
def test_error_challenge_refusals_name_rfc7628(challenge: bytes, expected: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        BearerError.parse(challenge)
    assert (info.value.message, info.value.requirement) == (expected, "RFC 7628 §3.2.2")


def test_bad_base64_names_rfc4954() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        b64decode(b"%%%")
    assert (info.value.message, info.value.requirement) == ("SASL data is not valid base64", "RFC 4954 §4")
