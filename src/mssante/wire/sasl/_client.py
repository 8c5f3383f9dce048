"""SASL client mechanisms (client role): XOAUTH2, OAUTHBEARER (RFC 7628), PLAIN (RFC 4616)."""

from __future__ import annotations

from typing import ClassVar, Protocol

from mssante.errors import LocalProtocolError, RemoteProtocolError
from mssante.secret import Secret
from mssante.wire.sasl._common import _B64TOKEN, _CONTROLS, _KVSEP, _VALUE, BearerError, Mechanism


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
        if host is not None:
            try:
                encoded = host.encode("utf-8")  # a lone surrogate is not text: refused here, not later
            except UnicodeEncodeError:
                encoded = b"\x00"
            if _VALUE.fullmatch(encoded) is None:
                raise LocalProtocolError("the OAUTHBEARER host contains a forbidden character",
                                         requirement="RFC 7628 §3.1")
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
