"""Who may open which BAL: the access decision shared by the IMAP and SMTP fronts.

Two fronts, as the SRV records say (EX_LPS_0300):

* **PSC front** (priority 10, BAL PER/ORG): SASL XOAUTH2 or OAUTHBEARER with a Pro Santé
  Connect access token. The token's national id (``preferred_username``) must hold the BAL
  named by ``user=``: its owner for a PER BAL, one of its holders for an ORG BAL.
* **AUTH_CLI front** (priority 20, BAL APP): a TLS client certificate IGC Santé ORG AUTH_CLI,
  then SASL PLAIN whose authentication id is the BAL address (the password is ignored). The BAL
  must belong to the structure named by the certificate's OU.

The decision carries an :class:`~mssante.wire.AccessDecision` (``OK``, ``AUTHENTICATIONFAILED``,
``AUTHORIZATIONFAILED``, ``UNAVAILABLE``), which each front turns into its reply with the wire
mapping (``NO [AUTHENTICATIONFAILED]`` / ``535 5.7.8``...), and the journal records as is.

Nothing here does I/O itself: token and certificate checks are injected (:class:`TokenVerifier`,
:class:`CertificateChecker`), so the sandbox wires the mock PSC and the test PKI, and tests may
wire anything real.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mssante.errors import AuthUnavailable, MssanteError, TrustError
from mssante.sandbox.config import SandboxConfig
from mssante.sandbox.fronts.faults import Faults
from mssante.secret import Secret
from mssante.wire import AuthOutcome

__all__ = [
    "AccessDecider",
    "AccessDecision",
    "CertificateChecker",
    "CertificateIdentity",
    "FrontKind",
    "TokenVerifier",
]

FrontKind = Literal["psc", "authcli"]
_OK, _AUTHN, _AUTHZ, _UNAVAILABLE = (AuthOutcome.OK, AuthOutcome.AUTHENTICATIONFAILED,
                                     AuthOutcome.AUTHORIZATIONFAILED, AuthOutcome.UNAVAILABLE)


class TokenVerifier(Protocol):
    """Checks a PSC access token (locally with the JWKS, or by introspection)."""

    async def verify(self, token: str) -> Mapping[str, Any]:
        """Return the token's claims.

        Raises:
            TokenRejected: expired, revoked, forged or otherwise invalid token.
            AuthUnavailable: PSC cannot be reached.
        """
        ...


class CertificateIdentity(Protocol):
    """What the sandbox needs from a checked ORG AUTH_CLI certificate."""

    @property
    def structure_id(self) -> str:
        """The structure national id (the subject's OU)."""
        ...

    @property
    def subject(self) -> str:
        """The subject as an RFC 4514 string, for the journal."""
        ...


class CertificateChecker(Protocol):
    """Checks a client certificate: chain to the ORG CA, CRL, EKU clientAuth, dates."""

    def check(self, der: bytes) -> CertificateIdentity:
        """Return the certificate's identity.

        Raises:
            CertificateError: bad chain, dates or key usage.
            RevocationError: revoked, or revocation unknown.
        """
        ...


@dataclass(frozen=True, kw_only=True)
class AccessDecision:
    """The decision for one authentication attempt; ``reason`` is for the journal (no secret)."""

    code: AuthOutcome
    reason: str
    identity: str | None = None
    bal: str | None = None

    @property
    def ok(self) -> bool:
        """True when access is granted."""
        return self.code is _OK


def _refuse(code: AuthOutcome, reason: str, identity: str | None = None, bal: str | None = None) -> AccessDecision:
    return AccessDecision(code=code, reason=reason, identity=identity, bal=bal)


class AccessDecider:
    """Decides bearer-token and certificate authentications for every front of a sandbox."""

    def __init__(
        self, config: SandboxConfig, tokens: TokenVerifier, certificates: CertificateChecker, faults: Faults
    ) -> None:
        """Decide against ``config``'s BALs, with the injected checks and fault switches."""
        self._config = config
        self._tokens = tokens
        self._certificates = certificates
        self._faults = faults

    def _injected(self, bal: str) -> AccessDecision | None:
        code = self._faults.take_auth_failure(bal)
        if code is not None:
            return _refuse(AuthOutcome(code), f"fault injected: {code}", bal=bal)
        return None

    async def bearer(self, front: FrontKind, user: str, token: Secret) -> AccessDecision:
        """Decide an XOAUTH2/OAUTHBEARER attempt for BAL ``user`` on ``front``.

        Never raises: every failure is an :class:`AccessDecision`.
        """
        if front != "psc":
            return _refuse(_AUTHN, "bearer tokens are only accepted on the PSC front", bal=user)
        injected = self._injected(user)
        if injected is not None:
            return injected
        if self._faults.psc_unavailable:
            return _refuse(_UNAVAILABLE, "PSC unavailable (fault injected)", bal=user)
        try:
            claims = await self._tokens.verify(token.reveal())
        except AuthUnavailable as exc:
            return _refuse(_UNAVAILABLE, f"PSC unavailable: {exc.message}", bal=user)
        except MssanteError as exc:
            return _refuse(_AUTHN, f"token refused: {exc.message}", bal=user)
        national_id = str(claims.get("preferred_username") or claims.get("SubjectNameID") or "")
        if not national_id:
            return _refuse(_AUTHN, "token has no preferred_username", bal=user)
        bal = self._config.bal(user)
        if bal is None:
            return _refuse(_AUTHZ, f"no BAL {user}", identity=national_id, bal=user)
        if bal.kind == "APP":
            return _refuse(_AUTHZ, "an APP BAL is opened with a certificate", national_id, bal.address)
        if national_id not in bal.holders:
            why = "not the owner" if bal.kind == "PER" else "not a holder"
            return _refuse(_AUTHZ, f"{national_id} is {why} of {bal.kind} BAL", national_id, bal.address)
        return AccessDecision(code=_OK, reason=f"{bal.kind} BAL opened by {national_id}", identity=national_id,
                           bal=bal.address)

    async def certificate_plain(
        self, front: FrontKind, authzid: str, authcid: str, peer_der: bytes | None
    ) -> tuple[AccessDecision, str | None]:
        """Decide a PLAIN attempt on ``front`` with the TLS peer certificate ``peer_der``.

        Returns the outcome and the certificate subject (for the journal) when there was one.
        Never raises.
        """
        if front != "authcli":
            return _refuse(_AUTHN, "PLAIN is only accepted on the AUTH_CLI front", bal=authcid), None
        if authzid and authzid.lower() != authcid.lower():
            return _refuse(_AUTHZ, "authzid differs from the BAL address", bal=authcid), None
        injected = self._injected(authcid)
        if injected is not None:
            return injected, None
        if peer_der is None:
            return _refuse(_AUTHN, "no client certificate (ORG AUTH_CLI required)", bal=authcid), None
        try:
            ident = self._certificates.check(peer_der)
        except TrustError as exc:
            return _refuse(_AUTHN, f"certificate refused: {exc.message}", bal=authcid), None
        except MssanteError as exc:
            # The operator cannot check (e.g. its PKI state is unreadable): temporary, the client's not at fault.
            return _refuse(_UNAVAILABLE, f"certificate check unavailable: {exc.message}", bal=authcid), None
        bal = self._config.bal(authcid)
        if bal is None:
            return _refuse(_AUTHZ, f"no BAL {authcid}", ident.structure_id, authcid), ident.subject
        if bal.kind != "APP":
            return (
                _refuse(_AUTHZ, f"{bal.kind} BAL needs a PSC token", ident.structure_id, bal.address),
                ident.subject,
            )
        if bal.structure_id != ident.structure_id:
            return (
                _refuse(
                    _AUTHZ,
                    f"certificate OU {ident.structure_id} is not the BAL's structure",
                    ident.structure_id,
                    bal.address,
                ),
                ident.subject,
            )
        outcome = AccessDecision(
            code=_OK, reason=f"APP BAL opened by structure {ident.structure_id}",
            identity=ident.structure_id, bal=bal.address,
        )
        return outcome, ident.subject
