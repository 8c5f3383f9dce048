"""An OpenID Connect relying party for Pro Santé Connect (PSC), async, on Authlib + joserfc + httpx2.

Typical web flow::

    settings = PSCSettings.bac_a_sable("my-client", client_secret=secret)
    async with PSCClient(settings) as psc:
        url, pending = await psc.begin_authorization("https://app.example/callback")
        ...  # store pending.to_dict() server side, redirect the browser to url
        tokens = await psc.complete_authorization(pending, callback_url)
        session = psc.open_session(tokens)          # a TokenSource for IMAP/SMTP XOAUTH2
        session.on_end(close_imap_and_smtp)          # ECO.1.2.6
        token = await session.token()                # refreshed ahead of expiry

CIBA (poll mode): ``req = await psc.start_ciba(national_id)`` then ``await psc.wait_ciba(req)``.

``PSCError.oauth_error`` codes: the server's own (RFC 6749 §5.2 ``invalid_grant``,
``invalid_client``...; CIBA §11 ``authorization_pending``, ``slow_down``, ``expired_token``,
``access_denied``; an error callback's ``error``), plus these, raised locally:

========================  =====================================================================
``invalid_state``         callback ``state`` missing or different, or request older than 10 min
``invalid_callback``      callback without ``code``, with repeated or fragment parameters
``invalid_issuer``        discovery ``issuer`` or the callback's ``iss`` (RFC 9207) differs
``invalid_discovery``     discovery document or JWKS unusable (missing or non-https endpoint)
``invalid_id_token``      ID token signature, algorithm, iss, aud, exp/iat, acr, nonce, at_hash
``invalid_token``         access token refused by the local check, or by userinfo (HTTP 401)
``invalid_logout_token``  back-channel logout token invalid or replayed (answer 400 invalid_request)
``invalid_grant``         also when a :class:`PSCSession` is over (``TokenSource`` contract)
``expired_token``         also when a CIBA request's ``expires_in`` has passed locally
========================  =====================================================================

PSC unavailable (HTTP 5xx, ``temporarily_unavailable``) raises
:class:`~mssante.errors.AuthUnavailable`; network failures raise the
:class:`~mssante.errors.TransportError` family (a session turns them into ``AuthUnavailable``);
TLS failures the :class:`~mssante.errors.TrustError` family.
"""

from mssante.psc._ciba import CIBA_GRANT_TYPE
from mssante.psc._client import PSCClient
from mssante.psc._discovery import ProviderMetadata
from mssante.psc._jwt import BACKCHANNEL_LOGOUT_EVENT
from mssante.psc._models import AuthorizationRequest, Channel, CibaRequest, LogoutResult, LogoutToken, TokenSet
from mssante.psc._session import EndCallback, PSCSession
from mssante.psc._settings import BAC_A_SABLE_ISSUER, PRODUCTION_ISSUER, AuthMethod, PSCSettings, mtls_context

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "BAC_A_SABLE_ISSUER",
    "CIBA_GRANT_TYPE",
    "PRODUCTION_ISSUER",
    "AuthMethod",
    "AuthorizationRequest",
    "Channel",
    "CibaRequest",
    "EndCallback",
    "LogoutResult",
    "LogoutToken",
    "PSCClient",
    "PSCSession",
    "PSCSettings",
    "ProviderMetadata",
    "TokenSet",
    "mtls_context",
]
