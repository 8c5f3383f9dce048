"""SASL client-message parsers (server role): XOAUTH2, OAUTHBEARER, PLAIN, error acknowledgement."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mssante.errors import RemoteProtocolError
from mssante.secret import Secret
from mssante.wire.sasl._common import _AUTH_VALUE, _KEY, _KVSEP, _PORT, _VALUE, _XOAUTH2_VALUE, Mechanism


@dataclass(frozen=True, kw_only=True)
class BearerCredentials:
    """What a client sent with XOAUTH2 or OAUTHBEARER. The token stays wrapped.

    Attributes:
        mechanism: the mechanism used.
        user: the XOAUTH2 ``user`` or the OAUTHBEARER gs2 authzid (None when absent).
        token: the bearer token.
        host: the OAUTHBEARER ``host`` key, when sent.
        port: the OAUTHBEARER ``port`` key, when sent.
    """

    mechanism: Mechanism
    user: str | None
    token: Secret
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, kw_only=True)
class PlainCredentials:
    """What a client sent with PLAIN (RFC 4616). ``authzid`` is ``""`` when absent."""

    authzid: str
    authcid: str
    password: Secret


def _bad(mech: Mechanism, why: str, requirement: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed {mech} client response: {why}", requirement=requirement)


def _kv_pairs(mech: Mechanism, data: bytes, requirement: str, value_re: re.Pattern[bytes] = _VALUE) -> dict[str, bytes]:
    # RFC 7628 §3.1: "*kvpair kvsep" with kvpair = key "=" value kvsep, so the data ends with ^A
    # and, when there is at least one pair, with ^A^A.
    if not data.endswith(_KVSEP):
        raise _bad(mech, "does not end with ^A", requirement)
    body = data[: -len(_KVSEP)]
    if body and not body.endswith(_KVSEP):
        raise _bad(mech, "does not end with ^A^A", requirement)
    pairs: dict[str, bytes] = {}
    for item in body.split(_KVSEP)[:-1]:
        key, eq, value = item.partition(b"=")
        if not eq or _KEY.fullmatch(key) is None or value_re.fullmatch(value) is None:
            raise _bad(mech, "invalid key=value pair", requirement)
        name = key.decode("ascii").lower()
        if name in pairs:
            raise _bad(mech, f"duplicate key {name!r}", requirement)
        pairs[name] = value
    return pairs


def _bearer_token(mech: Mechanism, pairs: dict[str, bytes], requirement: str) -> Secret:
    auth = pairs.get("auth")
    if auth is None:
        raise _bad(mech, "no auth key", requirement)
    m = _AUTH_VALUE.fullmatch(auth)
    if m is None:
        raise _bad(mech, "auth is not 'Bearer <b64token>'", "RFC 6750 §2.1")
    return Secret(m.group(1).decode("ascii"))


def _utf8(mech: Mechanism, data: bytes, what: str, requirement: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(mech, f"{what} is not UTF-8", requirement) from exc


def parse_xoauth2(message: bytes) -> BearerCredentials:
    """Parse an XOAUTH2 initial client response (server role).

    Raises:
        RemoteProtocolError: not ``user=..^Aauth=Bearer ..^A^A``, no user, or a bad token syntax.
    """
    req = "XOAUTH2 (Google)"
    pairs = _kv_pairs(Mechanism.XOAUTH2, message, req, _XOAUTH2_VALUE)
    user = pairs.get("user")
    if not user:
        raise _bad(Mechanism.XOAUTH2, "no user key", req)
    token = _bearer_token(Mechanism.XOAUTH2, pairs, req)
    return BearerCredentials(mechanism=Mechanism.XOAUTH2, user=_utf8(Mechanism.XOAUTH2, user, "user", req), token=token)


def _unescape_saslname(raw: bytes) -> str:
    # RFC 5801 §4: saslname = 1*(UTF8-char-safe / "=2C" / "=3D"); any other "=" is an error.
    mech, req = Mechanism.OAUTHBEARER, "RFC 5801 §4"
    text = _utf8(mech, raw, "authzid", req)
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "=":
            esc = text[i : i + 3]
            if esc not in ("=2C", "=3D"):
                raise _bad(mech, "bad escape in authzid", req)
            out.append("," if esc == "=2C" else "=")
            i += 3
        else:
            out.append(text[i])
            i += 1
    if not out:
        raise _bad(mech, "empty authzid", req)
    return "".join(out)


def parse_oauthbearer(message: bytes) -> BearerCredentials:
    """Parse an OAUTHBEARER initial client response (server role, RFC 7628 §3.1).

    Raises:
        RemoteProtocolError: a bad gs2 header (channel binding ``p=`` is refused, RFC 7628 §3.1),
            bad key/value pairs, a missing ``auth`` key, or a bad port.
    """
    mech, req = Mechanism.OAUTHBEARER, "RFC 7628 §3.1"
    # gs2-header = gs2-cbind-flag "," [ gs2-authzid ] "," (RFC 5801 §4)
    flag, sep1, rest = message.partition(b",")
    if not sep1 or flag not in (b"n", b"y"):
        raise _bad(mech, "gs2 header must start with 'n,' or 'y,' (no channel binding)", req)
    authzid_raw, sep2, rest = rest.partition(b",")
    if not sep2:
        raise _bad(mech, "unterminated gs2 header", req)
    user: str | None = None
    if authzid_raw:
        if not authzid_raw.startswith(b"a="):
            raise _bad(mech, "gs2 authzid must start with 'a='", req)
        user = _unescape_saslname(authzid_raw[2:])
    if not rest.startswith(_KVSEP):
        raise _bad(mech, "no ^A after the gs2 header", req)
    pairs = _kv_pairs(mech, rest[1:], req)
    token = _bearer_token(mech, pairs, req)
    host = _utf8(mech, pairs["host"], "host", req) if "host" in pairs else None
    port: int | None = None
    if "port" in pairs:
        if _PORT.fullmatch(pairs["port"]) is None or not 0 < int(pairs["port"]) < 65536:
            raise _bad(mech, "bad port", req)
        port = int(pairs["port"])
    return BearerCredentials(mechanism=mech, user=user, token=token, host=host, port=port)


def parse_plain(message: bytes) -> PlainCredentials:
    """Parse a PLAIN client message (server role, RFC 4616 §2).

    Raises:
        RemoteProtocolError: not exactly two NULs, an empty authcid or password, or not UTF-8.
    """
    mech, req = Mechanism.PLAIN, "RFC 4616 §2"
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise _bad(mech, "expected [authzid] NUL authcid NUL passwd", req)
    authzid, authcid, passwd = (_utf8(mech, p, "a field", req) for p in parts)
    if not authcid or not passwd:
        raise _bad(mech, "empty authcid or password", req)
    return PlainCredentials(authzid=authzid, authcid=authcid, password=Secret(passwd))


def check_error_ack(mechanism: Mechanism, message: bytes) -> None:
    """Check the client's answer to the JSON error challenge (server role).

    XOAUTH2 expects an empty response; OAUTHBEARER a single ^A (RFC 7628 §3.2.3).

    Raises:
        RemoteProtocolError: the client sent anything else.
    """
    expected = _KVSEP if mechanism is Mechanism.OAUTHBEARER else b""
    if message != expected:
        raise RemoteProtocolError(
            f"{mechanism}: the answer to the error challenge must be {expected!r}", requirement="RFC 7628 §3.2.3"
        )


# -- SMTP AUTH line (RFC 4954 §4) ---------------------------------------------------------------
