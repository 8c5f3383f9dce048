"""HL7 v3 ``TS`` values (CDA) to XDS ``DTM`` values (UTC).

XDS times (``creationTime``, ``serviceStartTime``, ``serviceStopTime``, ``submissionTime``) are HL7 DTM
``YYYY[MM[DD[hh[mm[ss]]]]]`` in UTC, without offset (IHE ITI TF-3 §4.2.3.1.7 [I]; xdm-cda.md §2.3). French
CDA times carry an offset (``20210104160527+0100``) that must be applied with real date arithmetic (the
digit-wise subtraction seen in some tools breaks across midnight; xdm-cda.md §2.3).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mssante.errors import ContentError, UsageError

__all__ = ["format_dtm", "hl7_to_utc"]

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


def hl7_to_utc(value: str) -> str:
    """Convert an HL7 ``TS`` (``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]``) to an XDS DTM in UTC.

    The precision of the input is kept (minutes stay minutes, a date stays a date); fractions of seconds
    are dropped. A value without offset is returned unchanged (its zone is unknown). A date-only value
    is never shifted.

    Raises:
        ContentError: ``value`` is not an HL7 TS, names an impossible date, or falls outside years
            1 to 9999 once shifted to UTC.
    """
    m = _TS.match(value.strip())
    if not m:
        raise ContentError(f"not an HL7 TS date/time: {value[:40]!r}")
    parts = [p for p in m.groups()[:6] if p is not None]
    digits = "".join(parts)
    offset = m.group(7)
    try:
        dt = datetime(
            int(m.group(1)),
            int(m.group(2) or 1),
            int(m.group(3) or 1),
            int(m.group(4) or 0),
            int(m.group(5) or 0),
            int(m.group(6) or 0),
        )
        if offset:
            sign = 1 if offset[0] == "+" else -1
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
            if int(offset[3:5]) >= 60 or int(offset[1:3]) > 14:
                raise ValueError("bad offset")
    except ValueError:
        raise ContentError(f"impossible HL7 TS date/time: {value[:40]!r}") from None
    if not offset or len(digits) <= 8:
        return digits
    try:
        utc = dt - sign * delta
    except OverflowError:  # 9999-12-31T23:59-1400 is past year 9999 in UTC
        raise ContentError(f"HL7 TS date/time out of range once in UTC: {value[:40]!r}") from None
    return utc.strftime("%Y%m%d%H%M%S")[: len(digits)]


def format_dtm(moment: datetime) -> str:
    """Format an aware ``datetime`` as an XDS DTM ``YYYYMMDDHHMMSS`` in UTC.

    Raises:
        UsageError: ``moment`` is naive (its zone would be a guess).
    """

    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError("a timezone-aware datetime is required (got a naive one)")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")
