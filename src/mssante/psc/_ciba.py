"""CIBA poll mode against PSC (OpenID Connect CIBA Core 1.0; psc-igc.md §1.6).

PSC implements poll mode only. The request carries ``scope``, ``acr_values=eidas1``,
``login_hint`` (the national id), ``binding_message`` (two random digits, as ANS does) and
PSC's ``channel`` (``CARD`` or ``MOBILE``). The token endpoint then answers
``authorization_pending`` / ``slow_down`` until the professional answers.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Final

from mssante.errors import PSCError, RemoteProtocolError, TimeoutError, UsageError
from mssante.psc._models import Channel, CibaRequest, TokenSet
from mssante.secret import Secret

if TYPE_CHECKING:
    from mssante.psc._party import RelyingParty

__all__ = ["CIBA_GRANT_TYPE", "poll", "start", "wait"]

CIBA_GRANT_TYPE: Final = "urn:openid:params:grant-type:ciba"
#: CIBA Core §7.3: "If no value is provided, clients MUST use 5 as the default value".
_DEFAULT_INTERVAL: Final = 5.0
_MAX_BINDING_MESSAGE: Final = 20


def _binding_message() -> str:
    """Two random digits 00-99, like ANS's example server (psc-igc.md §1.6)."""
    return f"{secrets.randbelow(100):02d}"


async def start(client: RelyingParty, national_id: str, *, binding_message: str | None = None,
                channel: Channel = "MOBILE") -> CibaRequest:
    """Send a backchannel authentication request (CIBA Core §7.1) and return the pending request.

    Args:
        national_id: the professional's idNat_PS, sent as ``login_hint``.
        binding_message: shown to the professional; default two random digits.
        channel: ``MOBILE`` (e-CPS) or ``CARD`` (CPx through CPS-Gestion).

    Raises:
        UsageError: empty national id, unknown channel, or an unprintable or long binding message.
        PSCError: the server's error (``unknown_user_id``, ``unauthorized_client``, ``invalid_client``...),
            or ``invalid_discovery`` when PSC advertises no CIBA endpoint.
        AuthUnavailable, TransportError, TrustError: PSC could not be reached.
        RemoteProtocolError: the answer lacks ``auth_req_id`` or ``expires_in``.
    """
    if not national_id or not national_id.isprintable():
        raise UsageError("national_id must be a non-empty printable string")
    if channel not in ("CARD", "MOBILE"):
        raise UsageError("channel must be CARD or MOBILE")
    message = _binding_message() if binding_message is None else binding_message
    if not message or len(message) > _MAX_BINDING_MESSAGE or not message.isprintable():
        raise UsageError(f"binding_message must be 1-{_MAX_BINDING_MESSAGE} printable characters")
    meta = await client.metadata()
    form = {"scope": client.settings.scope, "acr_values": client.settings.acr_values, "login_hint": national_id,
            "binding_message": message, "channel": channel}
    http = client.http
    response = await http.post_form(meta.endpoint("backchannel_authentication_endpoint"), form, "CIBA request")
    body = http.json(response, "CIBA request")
    auth_req_id, expires_in = body.get("auth_req_id"), body.get("expires_in")
    if not isinstance(auth_req_id, str) or not auth_req_id or not isinstance(expires_in, int | float):
        raise RemoteProtocolError("PSC's CIBA answer lacks auth_req_id or expires_in (CIBA Core §7.3)")
    interval = body.get("interval")
    interval = float(interval) if isinstance(interval, int | float) and interval > 0 else _DEFAULT_INTERVAL
    now = client.clock()
    return CibaRequest(auth_req_id=Secret(auth_req_id), expires_at=now + float(expires_in), interval=interval,
                       binding_message=message, channel=channel, national_id=national_id,
                       next_poll_at=now + interval)


async def poll(client: RelyingParty, request: CibaRequest) -> TokenSet | None:
    """Poll the token endpoint once (CIBA Core §10.1); None while the professional has not answered.

    ``slow_down`` raises ``request.interval`` by ``settings.ciba_slow_down_step`` (CIBA Core
    §11: for all later polls). Each call moves ``request.next_poll_at``.

    Raises:
        PSCError: ``expired_token`` (also raised locally once ``expires_at`` has passed),
            ``access_denied`` (the professional refused), ``invalid_grant`` (unknown or
            already redeemed ``auth_req_id``), ``invalid_id_token``, other OAuth errors.
        AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
    """
    now = client.clock()
    if now >= request.expires_at:
        raise PSCError("the CIBA request has expired", oauth_error="expired_token")
    form = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": request.auth_req_id.reveal()}
    try:
        tokens = await client.token_request(form, "CIBA token request")
    except PSCError as exc:
        if exc.oauth_error == "slow_down":
            request.interval += client.settings.ciba_slow_down_step
        if exc.oauth_error in ("authorization_pending", "slow_down"):
            request.next_poll_at = client.clock() + request.interval
            return None
        raise
    return tokens


# The deadline also decides whether one more poll fits, so it is a parameter, not asyncio.timeout.
async def wait(
    client: RelyingParty, request: CibaRequest, timeout: float | None = None  # noqa: ASYNC109
) -> TokenSet:
    """Poll at ``request.interval`` until tokens come (CIBA Core §7.3: never faster).

    Raises:
        PSCError: ``expired_token``, ``access_denied``... (see :func:`poll`).
        TimeoutError: ``timeout`` seconds elapsed before an answer.
        AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
    """
    deadline = None if timeout is None else client.clock() + timeout
    while True:
        now = client.clock()
        wake = max(request.next_poll_at, now)
        if deadline is not None and wake > deadline:
            raise TimeoutError(f"no CIBA answer within {timeout:g} s")
        if wake >= request.expires_at:  # PSC forgets the request before the next allowed poll
            await client.clock.sleep(request.expires_at - now)
            raise PSCError("the CIBA request has expired", oauth_error="expired_token")
        await client.clock.sleep(wake - now)
        tokens = await poll(client, request)
        if tokens is not None:
            return tokens
