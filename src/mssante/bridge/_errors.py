"""The bridge's HTTP-facing error: a status, a stable code and a safe message."""

from __future__ import annotations

from typing import ClassVar

from mssante.errors import Fault, MssanteError

__all__ = ["BridgeError"]


class BridgeError(MssanteError):
    """A request the bridge refuses; becomes ``{"error": code, "message": message}`` with ``status``.

    Attributes:
        status: the HTTP status code.
        code: the stable machine code of the JSON body (``session_not_found``, ``rate_limited``...).
        retry_after: seconds for a ``Retry-After`` header, if any.
    """

    fault: ClassVar[Fault] = "caller"
    error = "bridge"

    def __init__(self, status: int, code: str, message: str, *, retry_after: str | None = None,
                 requirement: str | None = None) -> None:
        """Describe the refusal."""
        super().__init__(message, requirement=requirement)
        self.status = status
        self.code = code
        self.retry_after = retry_after


def not_found() -> BridgeError:
    """The one answer for an unknown session, a wrong session secret or another installation's session."""
    return BridgeError(404, "session_not_found", "no such session for these credentials")


def ended(reason: str) -> BridgeError:
    """The answer for a session that is over (the client maps it to ``invalid_grant``, ECO.1.2.6)."""
    return BridgeError(410, "session_ended", f"the PSC session is over ({reason})", requirement="ECO.1.2.6")
