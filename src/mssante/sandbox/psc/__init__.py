"""A faithful local mock of Pro Santé Connect's bac à sable (realm ``esante-wallet``).

Endpoints at PSC's paths (psc-igc.md §1.1): discovery (``wallet-openid-configuration`` and
the standard name), authorization code flow with mandatory PKCE S256 and a French login
page standing in for CPS / e-CPS, CIBA poll mode, token endpoint (client_secret_basic and
client_secret_post), refresh token rotation, userinfo, introspection, revocation, JWKS,
RP-initiated logout and back-channel logout.

Behaviour choices (see the modules for the rules and their sources):

* Access tokens: RS256, header ``typ: JWT`` + ``kid``, PSC's claims, no ``aud``.
* ID tokens: RS256 with the realm key (real PSC may use HS256 keyed by the client secret).
* Refresh tokens: opaque, single use. Reusing a rotated one answers ``invalid_grant`` and
  revokes that client's token family (RFC 9700 §4.14.2); the SSO session survives.
* A replayed authorization code answers ``invalid_grant`` and revokes what it produced.
* Unexpected errors become 400 ``invalid_request``; the mock never answers 500.

Use :class:`MockPSC`.
"""

from mssante.sandbox.psc.claims import subject, userinfo
from mssante.sandbox.psc.clients import CIBA_GRANT_TYPE, redirect_uri_matches
from mssante.sandbox.psc.discovery import ENDPOINTS
from mssante.sandbox.psc.keys import KEY_FILE_NAME, SIGNING_ALG
from mssante.sandbox.psc.mock import MockPSC
from mssante.sandbox.psc.pages import COOKIE_NAME
from mssante.sandbox.psc.tokens import BACKCHANNEL_LOGOUT_EVENT

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "CIBA_GRANT_TYPE",
    "COOKIE_NAME",
    "ENDPOINTS",
    "KEY_FILE_NAME",
    "SIGNING_ALG",
    "MockPSC",
    "redirect_uri_matches",
    "subject",
    "userinfo",
]
