"""What the CIBA and logout flows need from a relying party: a small, explicit interface.

:mod:`._ciba` and :mod:`._logout` are written against :class:`RelyingParty`, not against
:class:`~mssante.psc.PSCClient`'s private attributes: its settings, its clock, an HTTP
exchange, the discovery document, the token endpoint, revocation, its live sessions and the
replay cache of back-channel logout tokens. ``PSCClient`` implements it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mssante.clock import Clock
    from mssante.psc._discovery import Discovery, ProviderMetadata
    from mssante.psc._http import HTTP
    from mssante.psc._models import TokenSet
    from mssante.psc._session import PSCSession
    from mssante.psc._settings import PSCSettings
    from mssante.secret import Secret

__all__ = ["RelyingParty"]


class RelyingParty(Protocol):
    """The relying party as CIBA and logout use it."""

    @property
    def settings(self) -> PSCSettings:
        """Issuer, client, scope, ACR values, CIBA steps, leeway."""
        ...

    @property
    def clock(self) -> Clock:
        """The time, and how to wait (CIBA polling)."""
        ...

    @property
    def http(self) -> HTTP:
        """The bounded HTTP exchange with PSC (client authentication included)."""
        ...

    @property
    def discovery(self) -> Discovery:
        """PSC's discovery document and keys."""
        ...

    @property
    def logout_jtis(self) -> dict[str, float]:
        """The ``jti`` of each back-channel logout token seen, until it can no longer be replayed."""
        ...

    async def metadata(self, *, refresh: bool = False) -> ProviderMetadata:
        """PSC's checked discovery document."""
        ...

    async def token_request(self, form: Mapping[str, str], what: str, *, nonce: str | None = None,
                            previous: TokenSet | None = None, id_token_required: bool = True) -> TokenSet:
        """A token endpoint request, answered and validated."""
        ...

    async def revoke(self, token: Secret | str, *, token_type_hint: str = "refresh_token") -> None:  # noqa: S107
        """Revoke a token (RFC 7009)."""
        ...

    def sessions(self) -> list[PSCSession]:
        """The live sessions of this relying party."""
        ...
