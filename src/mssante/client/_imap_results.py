"""What IMAP answers mean to the client: SELECT results, and AUTHENTICATE refusals mapped to our errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mssante.errors import AuthError, MssanteError
from mssante.wire import outcome_from_imap
from mssante.wire.imap import Event, ExistsResponse, Tagged, UntaggedStatus

__all__ = ["SelectInfo", "imap_auth_error"]


@dataclass(frozen=True, kw_only=True)
class SelectInfo:
    """What SELECT/EXAMINE said about a mailbox (RFC 3501 §6.3.1)."""

    name: str
    exists: int
    uidvalidity: int | None
    uidnext: int | None
    readonly: bool

    @classmethod
    def parse(cls, name: str, tagged: Tagged, events: Sequence[Event], *, readonly: bool) -> SelectInfo:
        """Read EXISTS, ``[UIDVALIDITY]``, ``[UIDNEXT]`` and ``[READ-ONLY]`` (RFC 3501 §6.3.1, §7.1)."""
        exists, uidvalidity, uidnext = 0, None, None
        for event in events:
            if isinstance(event, ExistsResponse):
                exists = event.count
            elif isinstance(event, UntaggedStatus) and event.code is not None and isinstance(event.code.data, int):
                if event.code.name == "UIDVALIDITY":
                    uidvalidity = event.code.data
                elif event.code.name == "UIDNEXT":
                    uidnext = event.code.data
        ro = readonly or (tagged.code is not None and tagged.code.name == "READ-ONLY")
        return cls(name=name, exists=exists, uidvalidity=uidvalidity, uidnext=uidnext, readonly=ro)


def imap_auth_error(tagged: Tagged) -> MssanteError:
    """Map a failed AUTHENTICATE answer to our error tree (RFC 5530 codes, ref2 §2.4).

    Returns:
        The error of :func:`~mssante.wire.outcome_from_imap`'s outcome (``[AUTHENTICATIONFAILED]``,
        ``[EXPIRED]`` or no code → :class:`TokenRejected`; ``[AUTHORIZATIONFAILED]`` →
        :class:`NotAuthorized`; ``[UNAVAILABLE]`` → :class:`AuthUnavailable`; ``[PRIVACYREQUIRED]``
        → :class:`StartTLSError`); BAD or another code → :class:`AuthError`.

    Raises:
        Nothing: the error is returned.
    """
    code = tagged.code.name if tagged.code is not None else None
    outcome = outcome_from_imap(tagged.status, code)
    if outcome is None or outcome.ok:
        return AuthError(f"AUTHENTICATE {tagged.status}: {tagged.text[:200]}", imap_code=code)
    return outcome.error(tagged.text, imap_code=code)
