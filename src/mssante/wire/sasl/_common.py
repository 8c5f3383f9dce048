"""SASL definitions shared by both roles: mechanisms, base64, the RFC 7628 JSON error."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Final

from mssante.errors import RemoteProtocolError

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
