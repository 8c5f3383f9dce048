"""SASL mechanisms of the API LPS, without I/O: XOAUTH2, OAUTHBEARER and PLAIN, both roles.

Messages here are the *raw* SASL messages; IMAP and SMTP carry them base64-encoded
(:func:`b64encode`, :func:`b64decode`). Client objects produce the bytes to send; server
functions parse what a client sent into typed credentials. Bearer tokens and passwords are
held in :class:`~mssante.secret.Secret` and revealed only inside the bytes produced
(ECO.1.2.5): no repr, no error message here ever contains one.

Wire formats:

* XOAUTH2 (Google's definition, reused by Ref #2 ECO.1.2.1):
  ``"user=" addr ^A "auth=Bearer " token ^A ^A``; on failure the server sends a JSON error
  challenge and the client answers with an *empty* response.
* OAUTHBEARER (RFC 7628 §3.1): ``gs2-header ^A *(key "=" value ^A) ^A`` with the gs2 header
  ``n,a=addr,`` (RFC 5801 §4); on failure the client answers the JSON error challenge with a
  single ``^A`` (RFC 7628 §3.2.3).
* PLAIN (RFC 4616 §2): ``[authzid] NUL authcid NUL passwd``.

The JSON error challenge (RFC 7628 §3.2.2) is :class:`BearerError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final, Protocol

from mssante.errors import LocalProtocolError, RemoteProtocolError
from mssante.secret import Secret

__all__ = [
    "SMTP_AUTH_LINE_LIMIT",
    "BearerCredentials",
    "BearerError",
    "ClientMechanism",
    "Mechanism",
    "OAuthBearerClient",
    "PlainClient",
    "PlainCredentials",
    "SMTPAuthLines",
    "XOAuth2Client",
    "b64decode",
    "b64encode",
    "check_error_ack",
    "parse_oauthbearer",
    "parse_plain",
    "parse_xoauth2",
    "smtp_auth_lines",
]

#: RFC 4954 §4: "AUTH mechanism initial-response" is limited to 512 octets, CRLF included
#: (the RFC 5321 §4.5.3.1.4 command line limit). Dovecot submission enforces it.
SMTP_AUTH_LINE_LIMIT: Final = 512

_KVSEP: Final = b"\x01"
# RFC 7628 §3.1: key = 1*(ALPHA); value = *(VCHAR / SP / HTAB / CR / LF).
_KEY: Final = re.compile(rb"[A-Za-z]+")
_VALUE: Final = re.compile(rb"[\x21-\x7e \t\r\n]*")
# XOAUTH2 is not RFC 7628: its user may be an internationalised (UTF-8) address; no controls.
_XOAUTH2_VALUE: Final = re.compile(rb"[^\x00-\x1f\x7f]*")
# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; b64token = 1*(ALPHA / DIGIT / "-" / "." /
# "_" / "~" / "+" / "/") *"=". The scheme name is case-insensitive (RFC 7235 §2.1).
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_AUTH_VALUE: Final = re.compile(rb"(?i:bearer) +([A-Za-z0-9\-._~+/]+=*)")
_PORT: Final = re.compile(rb"[0-9]{1,5}")
_CONTROLS: Final = "".join(map(chr, range(0x20))) + "\x7f"


class Mechanism(StrEnum):
    """The SASL mechanisms the API LPS uses."""

    XOAUTH2 = "XOAUTH2"
    OAUTHBEARER = "OAUTHBEARER"
    PLAIN = "PLAIN"


# -- base64 (RFC 4648 §4, as used by RFC 4954 and RFC 3501 §6.2.2) -------------------------------


def b64encode(data: bytes) -> bytes:
    """Base64-encode a SASL message for IMAP or SMTP (an empty message gives ``b""``)."""
    return base64.b64encode(data)


def b64decode(data: bytes) -> bytes:
    """Decode a base64 SASL message or challenge received from the peer.

    Raises:
        RemoteProtocolError: ``data`` is not strict base64 (RFC 4648 §4, no stray characters).
    """
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RemoteProtocolError("SASL data is not valid base64", requirement="RFC 4954 §4") from exc


# -- the RFC 7628 §3.2.2 JSON error challenge -----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BearerError:
    """The JSON error a server sends as a challenge when a bearer token fails (RFC 7628 §3.2.2).

    Attributes:
        status: the failure, an HTTP status code string such as ``"401"`` (RFC 7628 §3.2.2;
            the RFC's own §4.3 example uses ``"invalid_token"``, so any string is accepted).
        schemes: space-separated HTTP auth schemes the server supports (``"bearer"``).
        scope: the OAuth scope the token needs.
        openid_configuration: URL of the OpenID discovery document (``openid-configuration``).
    """

    status: str
    schemes: str | None = None
    scope: str | None = None
    openid_configuration: str | None = None

    _KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("status", "status"),
        ("schemes", "schemes"),
        ("scope", "scope"),
        ("openid-configuration", "openid_configuration"),
    )

    def to_bytes(self) -> bytes:
        """Serialise to the compact JSON object a server sends (server role)."""
        obj = {key: getattr(self, attr) for key, attr in self._KEYS if getattr(self, attr) is not None}
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def parse(cls, challenge: bytes) -> BearerError:
        """Parse a (base64-decoded) error challenge (client role).

        Unknown members are ignored (RFC 7628 §3.2.2 allows extensions).

        Raises:
            RemoteProtocolError: not a UTF-8 JSON object, ``status`` missing, or a member that
                is not a string.
        """
        try:
            obj = json.loads(challenge.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RemoteProtocolError("SASL error challenge is not JSON", requirement="RFC 7628 §3.2.2") from exc
        if not isinstance(obj, dict):
            raise RemoteProtocolError("SASL error challenge is not a JSON object", requirement="RFC 7628 §3.2.2")
        values: dict[str, str | None] = {}
        for key, attr in cls._KEYS:
            value = obj.get(key)
            if value is not None and not isinstance(value, str):
                raise RemoteProtocolError(
                    f"SASL error challenge member {key!r} is not a string", requirement="RFC 7628 §3.2.2"
                )
            values[attr] = value
        status = values.pop("status")
        if status is None:
            raise RemoteProtocolError("SASL error challenge has no 'status'", requirement="RFC 7628 §3.2.2")
        return cls(status=status, **values)


# -- client role ---------------------------------------------------------------------------------


class ClientMechanism(Protocol):
    """What an IMAP or SMTP driver needs from a client-side SASL mechanism."""

    @property
    def name(self) -> Mechanism:
        """The mechanism name sent in ``AUTH``/``AUTHENTICATE``."""
        ...

    @property
    def error(self) -> BearerError | None:
        """The JSON error challenge received, if any (bearer mechanisms)."""
        ...

    def initial_response(self) -> bytes:
        """The raw initial client response (RFC 4422 §3.3)."""
        ...

    def respond(self, challenge: bytes) -> bytes:
        """Answer a raw server challenge that follows the initial response."""
        ...


def _check_b64token(token: Secret) -> None:
    if _B64TOKEN.fullmatch(token.reveal()) is None:
        # Never echo the token; its shape is enough to explain the refusal.
        raise LocalProtocolError("the bearer token is not an RFC 6750 b64token", requirement="RFC 6750 §2.1")


def _check_text(value: str, what: str, forbidden: str) -> None:
    if any(ch in forbidden for ch in value):
        raise LocalProtocolError(f"{what} contains a forbidden control character")


class _BearerClient:
    """Shared behaviour of the two bearer mechanisms: record the JSON error, then acknowledge it."""

    _ACK: ClassVar[bytes] = b""
    name: Mechanism

    def __init__(self, user: str | None, token: Secret) -> None:
        _check_b64token(token)
        self._user = user
        self._token = token
        self._error: BearerError | None = None

    @property
    def error(self) -> BearerError | None:
        """The JSON error challenge received, if any."""
        return self._error

    def respond(self, challenge: bytes) -> bytes:
        """Answer the server's error challenge; any other challenge breaks the protocol.

        Raises:
            RemoteProtocolError: a second challenge, or one that is not the JSON error.
        """
        if self._error is not None:
            raise RemoteProtocolError(f"{self.name}: unexpected challenge after the error challenge")
        self._error = BearerError.parse(challenge)
        return self._ACK

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user={self._user!r}, token={self._token!r})"


class XOAuth2Client(_BearerClient):
    """Client side of XOAUTH2 for BAL PER/ORG with a PSC access token (ECO.1.2.1)."""

    name = Mechanism.XOAUTH2
    # Google XOAUTH2: the client answers the error challenge with an empty response.
    _ACK = b""

    def __init__(self, user: str, token: Secret) -> None:
        """Prepare the mechanism for the BAL address ``user``.

        Raises:
            LocalProtocolError: ``user`` contains a control character, or the token is not an
                RFC 6750 b64token.
        """
        _check_text(user, "the XOAUTH2 user", _CONTROLS)
        super().__init__(user, token)

    def initial_response(self) -> bytes:
        """``user=<addr>^Aauth=Bearer <token>^A^A``."""
        return b"user=%s\x01auth=Bearer %s\x01\x01" % (
            (self._user or "").encode("utf-8"),
            self._token.reveal().encode("ascii"),
        )


def _saslname(value: str) -> bytes:
    # RFC 5801 §4: in a gs2 authzid, "=" is written "=3D" and "," is written "=2C".
    return value.replace("=", "=3D").replace(",", "=2C").encode("utf-8")


class OAuthBearerClient(_BearerClient):
    """Client side of OAUTHBEARER (RFC 7628), without channel binding (gs2 flag ``n``)."""

    name = Mechanism.OAUTHBEARER
    # RFC 7628 §3.2.3: the client answers the error challenge with a single ^A.
    _ACK = _KVSEP

    def __init__(self, user: str | None, token: Secret, *, host: str | None = None, port: int | None = None) -> None:
        """Prepare the mechanism; ``user`` becomes the gs2 authzid (``a=``), ``host``/``port`` are optional.

        Raises:
            LocalProtocolError: a control character in ``user`` or ``host``, a port out of
                range, or a token that is not an RFC 6750 b64token.
        """
        if user is not None:
            _check_text(user, "the OAUTHBEARER user", _CONTROLS)
        if host is not None and _VALUE.fullmatch(host.encode("utf-8", "replace")) is None:
            raise LocalProtocolError("the OAUTHBEARER host contains a forbidden character", requirement="RFC 7628 §3.1")
        if port is not None and not 0 < port < 65536:
            raise LocalProtocolError("the OAUTHBEARER port is out of range", requirement="RFC 7628 §3.1")
        super().__init__(user, token)
        self._host = host
        self._port = port

    def initial_response(self) -> bytes:
        """``n,a=<addr>,^A[host=..^A][port=..^A]auth=Bearer <token>^A^A`` (RFC 7628 §3.1)."""
        authzid = b"a=" + _saslname(self._user) if self._user else b""
        out = b"n," + authzid + b"," + _KVSEP
        if self._host is not None:
            out += b"host=" + self._host.encode("utf-8") + _KVSEP
        if self._port is not None:
            out += b"port=%d" % self._port + _KVSEP
        return out + b"auth=Bearer " + self._token.reveal().encode("ascii") + _KVSEP + _KVSEP


class PlainClient:
    """Client side of PLAIN (RFC 4616), used by BAL APP after the AUTH_CLI certificate handshake."""

    name = Mechanism.PLAIN

    def __init__(self, authcid: str, password: Secret, *, authzid: str = "") -> None:
        """Prepare the mechanism. For a BAL APP, ``authcid`` is the BAL address.

        Raises:
            LocalProtocolError: a field contains NUL, or ``authcid``/``password`` is empty
                (RFC 4616 §2: ``authcid = 1*SAFE``, ``passwd = 1*SAFE``).
        """
        for value, what in ((authzid, "authzid"), (authcid, "authcid"), (password.reveal(), "password")):
            _check_text(value, f"the PLAIN {what}", "\x00")
        if not authcid or not password:
            raise LocalProtocolError("PLAIN needs a non-empty authcid and password", requirement="RFC 4616 §2")
        self._authzid = authzid
        self._authcid = authcid
        self._password = password

    @property
    def error(self) -> BearerError | None:
        """Always None: PLAIN has no error challenge."""
        return None

    def initial_response(self) -> bytes:
        """``[authzid] NUL authcid NUL passwd`` in UTF-8 (RFC 4616 §2)."""
        return b"\x00".join(part.encode("utf-8") for part in (self._authzid, self._authcid, self._password.reveal()))

    def respond(self, challenge: bytes) -> bytes:
        """PLAIN is a single message: any further challenge breaks the protocol.

        Raises:
            RemoteProtocolError: always.
        """
        raise RemoteProtocolError("PLAIN: unexpected server challenge", requirement="RFC 4616 §2")

    def __repr__(self) -> str:
        return f"PlainClient(authzid={self._authzid!r}, authcid={self._authcid!r}, password={self._password!r})"


# -- server role ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class SMTPAuthLines:
    """How to start ``AUTH``: the command line, and the response to send after the first ``334``.

    Both are base64 and may carry a credential, so neither is shown in the repr.

    Attributes:
        command: the AUTH line without CRLF, e.g. ``b"AUTH XOAUTH2 dXNlcj0..."`` or ``b"AUTH XOAUTH2"``.
        pending: the base64 initial response still to send, or None when it went on the AUTH line.
    """

    command: bytes = field(repr=False)
    pending: bytes | None = field(repr=False)

    @property
    def uses_initial_response(self) -> bool:
        """True when the initial response travels on the AUTH line (SASL-IR)."""
        return self.pending is None


def smtp_auth_lines(
    mechanism: Mechanism | str, initial_response: bytes | None, *, max_line: int = SMTP_AUTH_LINE_LIMIT
) -> SMTPAuthLines:
    """Decide whether the initial response fits on the ``AUTH`` line (RFC 4954 §4).

    ``AUTH <mech> <base64>`` plus CRLF must not exceed ``max_line`` octets; otherwise send
    ``AUTH <mech>`` and the response after the server's empty ``334`` challenge. An empty
    initial response is sent as ``=`` (RFC 4954 §4).

    Args:
        mechanism: the SASL mechanism name.
        initial_response: the *raw* initial response, or None for a mechanism without one.
        max_line: the line limit, CRLF included.

    Raises:
        LocalProtocolError: the mechanism name is not a valid SASL name (RFC 4422 §3.1), or
            ``max_line`` cannot even hold ``AUTH <mech>``.
    """
    name = str(mechanism).encode("ascii", "replace")
    if re.fullmatch(rb"[A-Z0-9\-_]{1,20}", name) is None:
        raise LocalProtocolError("invalid SASL mechanism name", requirement="RFC 4422 §3.1")
    bare = b"AUTH " + name
    if len(bare) + 2 > max_line:
        raise LocalProtocolError("max_line is too small for the AUTH command")
    if initial_response is None:
        return SMTPAuthLines(bare, None)
    encoded = b64encode(initial_response) or b"="
    full = bare + b" " + encoded
    if len(full) + 2 <= max_line:
        return SMTPAuthLines(full, None)
    return SMTPAuthLines(bare, b64encode(initial_response))
