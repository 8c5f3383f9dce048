"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII (0x20-0x7E) stands for itself except ``&``, written ``&-``. Any other run of
characters is written ``&`` + base64 of its UTF-16BE form (``,`` instead of ``/``, no ``=``
padding) + ``-``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

__all__ = ["decode_mutf7", "encode_mutf7"]

_SHIFTED: Final = re.compile(rb"&([A-Za-z0-9+,]*)-")


def encode_mutf7(name: str) -> bytes:
    """Encode a mailbox name to modified UTF-7 (RFC 3501 §5.1.3).

    Raises:
        ValueError: ``name`` holds a lone surrogate (not encodable in UTF-16).
    """
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.extend(b"&-" if char == "&" else char.encode("ascii"))
        else:
            pending.append(char)
    flush()
    return bytes(out)


def decode_mutf7(raw: bytes) -> str:
    """Decode a modified UTF-7 mailbox name.

    Raises:
        ValueError: ``raw`` is not valid modified UTF-7 (8-bit or control octets, an
            unterminated ``&`` shift, bad base64 or UTF-16).
    """
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        amp = raw.find(b"&", pos)
        plain = raw[pos : len(raw) if amp < 0 else amp]
        if any(not 0x20 <= octet <= 0x7E for octet in plain):
            raise ValueError("mailbox name has octets outside printable US-ASCII")
        out.append(plain.decode("ascii"))
        if amp < 0:
            break
        match = _SHIFTED.match(raw, amp)
        if match is None:
            raise ValueError("unterminated '&' shift in mailbox name")
        encoded = match.group(1)
        if not encoded:
            out.append("&")
        else:
            padded = encoded.replace(b",", b"/") + b"=" * (-len(encoded) % 4)
            try:
                utf16 = base64.b64decode(padded, validate=True)
                out.append(utf16.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError("bad modified base64 in mailbox name") from exc
        pos = match.end()
    return "".join(out)
