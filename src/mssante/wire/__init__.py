"""Sans-IO protocol engines: bytes in, events out; commands in, bytes out.

Nothing under :mod:`mssante.wire` opens a socket, reads a clock or draws a random number
(house rule 1). Drivers that do the I/O live elsewhere and stay short.
"""

from __future__ import annotations

from mssante.wire._outcome import (
    AuthOutcome,
    SMTPReply,
    enhanced_code,
    outcome_from_imap,
    outcome_from_smtp,
    outcome_of_error,
)

__all__ = ["AuthOutcome", "SMTPReply", "enhanced_code", "outcome_from_imap", "outcome_from_smtp", "outcome_of_error"]
