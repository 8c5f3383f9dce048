"""A wrapper for secrets (tokens, passwords, private keys) that never prints them.

ECO.1.2.5: PSC access tokens live in memory only and never appear in a repr, a log or a trace.
"""

from __future__ import annotations

import hmac
from typing import Final

__all__ = ["Secret"]

_MASK: Final = "***"


class Secret:
    """Holds a secret string. ``str()``, ``repr()`` and ``format()`` show ``***``.

    Use :meth:`reveal` at the single place where the value must go on the wire.
    Instances compare in constant time and cannot be pickled.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Wrap ``value``.

        Raises:
            TypeError: if ``value`` is not a ``str``.
        """
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        """Return the secret value. Never log or store what this returns."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")
