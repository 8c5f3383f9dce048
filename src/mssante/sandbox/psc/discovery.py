"""The discovery document, modelled on PSC's (psc-igc.md §1.2) but announcing only what the mock does.

Real PSC advertises Keycloak's full feature list (implicit, password, device flow, PAR, mTLS...);
the mock lists only the endpoints, grants and methods it implements, so a client relying
on discovery never picks something that would fail here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mssante.sandbox.psc.realm import Realm

__all__ = ["ENDPOINTS", "discovery_document"]

#: Endpoint paths relative to the issuer (psc-igc.md §1.1).
ENDPOINTS = {
    "authorization_endpoint": "protocol/openid-connect/auth",
    "token_endpoint": "protocol/openid-connect/token",
    "userinfo_endpoint": "protocol/openid-connect/userinfo",
    "introspection_endpoint": "protocol/openid-connect/token/introspect",
    "revocation_endpoint": "protocol/openid-connect/revoke",
    "end_session_endpoint": "protocol/openid-connect/logout",
    "jwks_uri": "protocol/openid-connect/certs",
    "backchannel_authentication_endpoint": "protocol/openid-connect/ext/ciba/auth",
}
_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def discovery_document(realm: Realm) -> dict[str, Any]:
    """Return the OpenID Provider metadata (OIDC Discovery 1.0 §3, RFC 8414 §2, CIBA §4)."""
    doc: dict[str, Any] = {"issuer": realm.issuer}
    doc.update({key: f"{realm.issuer}/{path}" for key, path in ENDPOINTS.items()})
    doc.update({
        "grant_types_supported": ["authorization_code", "refresh_token", "urn:openid:params:grant-type:ciba"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": _AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": _AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
        "backchannel_authentication_endpoint_auth_methods_supported": _AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(realm.scopes_supported),
        "acr_values_supported": ["eidas1"],
        "claims_supported": [
            "aud", "sub", "iss", "auth_time", "given_name", "family_name", "preferred_username", "acr",
            "SubjectNameID", "sid", "nonce",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
    })
    return doc
