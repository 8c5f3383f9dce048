"""Value checks and name normalisation shared by compose, parse and check.

Nothing here touches a message: these are the small pure rules that the MSSanté
Référentiel socle #2 (Ref #2) and RFC 5322 put on the strings that end up in header fields
and attachment names.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from mssante.errors import ContentError, UsageError

__all__ = [
    "check_address",
    "check_header_value",
    "check_message_id",
    "file_token",
    "plain_name",
    "strip_accents",
]

# Characters that would end or fold a header line, or that have no business in one:
# C0/C1 controls (incl. CR, LF, TAB, NUL, DEL, NEL), line/paragraph separators (which
# str.splitlines() treats as line ends) and lone surrogates. RFC 5322 §2.2 / §3.2.2.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})

# RFC 5322 §3.4.1 dot-atom addr-spec, restricted to ASCII (MSSanté addresses are ASCII;
# SMTPUTF8 is out of scope).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})+$")

# RFC 5322 §3.6.4 msg-id, in the dot-atom form every sane generator uses.
MSG_ID = re.compile(rf"<{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_ATEXT}+(?:\.{_ATEXT}+)*|\[[!-Z^-~]*\])>")
_MSG_ID_FULL = re.compile(rf"^{MSG_ID.pattern}$")

# Letters that NFKD does not decompose into base letter + combining mark.
_LIGATURES = str.maketrans(
    {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L"}
)


def check_header_value(value: str, *, what: str) -> str:
    """Refuse a value that would allow header injection; return it unchanged otherwise.

    A caller-supplied value is never silently cleaned: CR, LF and every other control
    character (Unicode categories Cc, Zl, Zp, Cs) are refused (RFC 5322 §2.2, §3.2.2).

    Raises:
        ContentError: the value holds a forbidden character.
    """
    for index, char in enumerate(value):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise ContentError(
                f"{what} holds control character U+{ord(char):04X} at position {index}: "
                "header injection refused",
                requirement="RFC 5322 §2.2",
            )
    return value


def check_address(value: str, *, what: str) -> str:
    """Check an e-mail address (addr-spec, no display name) and return it.

    Raises:
        ContentError: the value holds a control character (header injection).
        UsageError: the value is not a plain ASCII ``local@domain`` address.
    """
    check_header_value(value, what=what)
    if len(value) > 254 or not _ADDR_SPEC.match(value):
        raise UsageError(f"{what} is not a valid e-mail address: {value!r}", requirement="RFC 5322 §3.4.1")
    return value


def check_message_id(value: str, *, what: str) -> str:
    """Check a ``<left@right>`` message identifier and return it.

    Raises:
        ContentError: the value holds a control character (header injection).
        UsageError: the value is not an RFC 5322 §3.6.4 msg-id.
    """
    check_header_value(value, what=what)
    if not _MSG_ID_FULL.match(value):
        raise UsageError(f"{what} is not a '<left@right>' message id: {value!r}", requirement="RFC 5322 §3.6.4")
    return value


def strip_accents(value: str) -> str:
    """Return ``value`` without diacritics (``"Hélène Œil"`` -> ``"Helene OEil"``)."""
    decomposed = unicodedata.normalize("NFKD", value.translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def plain_name(value: str) -> str:
    """A name without accents and with single spaces, as the ECO.2.1.3 subject wants it."""
    return " ".join(strip_accents(value).split())


def file_token(value: str, *, max_length: int | None = None) -> str:
    """Turn a free label into one ECO.2.1.6 file-name field.

    Accents are removed and every run of characters that is not a letter or a digit becomes
    one ``_`` (``"CR d'imagerie médicale"`` -> ``"CR_d_imagerie_medicale"``, the form of the
    ANS IG example). ``max_length`` truncates the label *before* normalisation (ECO.2.1.6:
    the document type is the code ``displayName`` truncated to 40 characters).
    """
    if max_length is not None:
        value = value[:max_length]
    return re.sub(r"[^A-Za-z0-9]+", "_", strip_accents(value)).strip("_")


def format_birth_date(value: date) -> str:
    """``JJ/MM/AAAA`` as in the ECO.2.1.3 subject."""
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"
