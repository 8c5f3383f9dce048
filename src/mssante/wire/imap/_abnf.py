"""IMAP4rev1 grammar pieces as compiled regular expressions.

Each rule quotes RFC 3501 §9 (formal syntax), or RFC 9051 §9 where it is compatible, the way
h11's ``_abnf.py`` keeps RFC 7230 next to its regexes. Everything works on ``bytes``.
"""

from __future__ import annotations

import re
from typing import Final

# CTL = %x00-1F / %x7F                                      (RFC 5234 B.1)
# list-wildcards = "%" / "*"
# quoted-specials = DQUOTE / "\"
# resp-specials = "]"
# atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM_SPECIALS: Final = rb'(){ %*"\\\]\x00-\x1f\x7f'
# ATOM-CHAR = <any CHAR except atom-specials>   (CHAR = %x01-7F, so no 8-bit octets)
ATOM_CHARS: Final = rb"[^" + _ATOM_SPECIALS + rb"\x80-\xff]"
# atom = 1*ATOM-CHAR
ATOM: Final = re.compile(ATOM_CHARS + rb"+")
# ASTRING-CHAR = ATOM-CHAR / resp-specials ;  astring = 1*ASTRING-CHAR / string
ASTRING_ATOM: Final = re.compile(rb"(?:" + ATOM_CHARS + rb"|\])+")
# list-mailbox = 1*list-char / string ;  list-char = ATOM-CHAR / list-wildcards / resp-specials
LIST_CHARS: Final = re.compile(rb"(?:" + ATOM_CHARS + rb"|[%*\]])+")
# tag = 1*<any ASTRING-CHAR except "+">
TAG: Final = re.compile(rb"(?:[^" + _ATOM_SPECIALS + rb"+\x80-\xff]|\])+")
# number = 1*DIGIT  (unsigned 32-bit; number64 in RFC 9051 for sizes and mod-sequences)
NUMBER: Final = re.compile(rb"[0-9]+")
# literal = "{" number64 ["+"] "}" CRLF *CHAR8        (RFC 9051; "+" only from clients, RFC 7888)
# literal8 = "~{" number64 "}" CRLF *OCTET            (RFC 3516 §4.2)
# A literal announcement always ends its line: the octets follow the CRLF.
LITERAL_AT_END: Final = re.compile(rb"(~?)\{([0-9]{1,20})\}\Z")
# QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
#   TEXT-CHAR = <any CHAR except CR and LF>; RFC 9051 adds UTF8-2/3/4, so 8-bit is tolerated.
QUOTED: Final = re.compile(rb'"([^"\\\r\n\x00]*(?:\\["\\][^"\\\r\n\x00]*)*)"')  # runs between escapes
QUOTED_UNESCAPE: Final = re.compile(rb'\\(["\\])')
#: ``quoted`` without a capture, to build larger patterns from: the same QUOTED-CHAR as :data:`QUOTED`,
#: written as runs of plain characters between escapes (one alternation per escape, not per character).
QUOTED_TOKEN: Final = rb'"[^"\\\r\n\x00]*(?:\\["\\][^"\\\r\n\x00]*)*"'
# flag-extension = "\" atom ;  flag-perm = flag / "\*"
FLAG: Final = re.compile(rb"\\?" + ATOM_CHARS + rb"+|\\\*")
# sequence-set = (seq-number / seq-range) ["," sequence-set] ; seq-number = nz-number / "*"
SEQUENCE_SET: Final = re.compile(
    rb"(?:[1-9][0-9]*|\*)(?::(?:[1-9][0-9]*|\*))?(?:,(?:[1-9][0-9]*|\*)(?::(?:[1-9][0-9]*|\*))?)*\Z"
)
# uid-set = (uniqueid / uid-range) *("," uid-set)   (RFC 4315 §4: no "*")
UID_SET: Final = re.compile(rb"[1-9][0-9]*(?::[1-9][0-9]*)?(?:,[1-9][0-9]*(?::[1-9][0-9]*)?)*\Z")
# date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
DATE_TIME: Final = re.compile(
    rb"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})\Z"
)
MONTHS: Final = (b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC")
# section = "[" [section-spec] "]"   partial = "<" number ["." nz-number] ">"  (we read the body of
# a FETCH item name up to its closing bracket, skipping quoted strings, then the optional origin)
ORIGIN: Final = re.compile(rb"<([0-9]+)>")
# fetch-att names as a client may send them: atoms, sections with header lists, partials.
FETCH_ATT: Final = re.compile(rb"[A-Za-z0-9.\-]+(?:\[[A-Za-z0-9.\- ()\"]*\])?(?:<[0-9]+(?:\.[1-9][0-9]*)?>)?\Z")
# auth-type = atom  (RFC 3501 §6.2.2; SASL mechanism names, RFC 4422 §3.1)
SASL_MECH: Final = re.compile(rb"[A-Z0-9_-]{1,20}\Z")
# base64 = *(4base64-char) [base64-terminal]   (RFC 3501 §9)
BASE64: Final = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")


def is_atom(value: bytes) -> bool:
    """Return True if ``value`` is a non-empty IMAP atom (RFC 3501 §9 ``atom``)."""
    return ATOM.fullmatch(value) is not None
