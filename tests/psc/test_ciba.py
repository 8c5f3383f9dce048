"""CIBA poll mode against the mock PSC: approval, refusal, expiry, slow_down."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mssante.errors import PSCError, TimeoutError, UsageError
from mssante.psc import CibaRequest
from tests.psc.conftest import CLAUDE, CLIENT_ID, LIFETIMES, MARIE, Box


async def test_approved_after_the_delay(box: Box) -> None:
    psc = box.client()
    request = await psc.start_ciba(MARIE, channel="MOBILE")
    assert len(request.binding_message) == 2 and request.binding_message.isdigit()  # like ANS
    assert request.interval == 1 and 25 < request.expires_at - box.clock.now() <= 30
    assert await psc.poll_ciba(request) is None  # pending: the professional has not answered yet
    started = box.clock.now()
    tokens = await box.clock.run(psc.wait_ciba(request, timeout=10))
    assert box.clock.now() - started == 1  # approved after the mock's 1 s delay, seen at the next poll
    assert tokens.national_id == MARIE and tokens.refresh_token
    access = await psc.validate_access_token(tokens.access_token, azp=CLIENT_ID)
    assert access["authMode"] == "MOBILE"
    with pytest.raises(PSCError) as err:  # an auth_req_id is redeemed once (CIBA Core §11)
        await psc.poll_ciba(request)
    assert err.value.oauth_error == "invalid_grant"


async def test_denied(box: Box) -> None:
    psc = box.client()
    request = await psc.start_ciba(CLAUDE, binding_message="42", channel="CARD")
    with pytest.raises(PSCError) as err:
        await box.clock.run(psc.wait_ciba(request, timeout=10))
    assert err.value.oauth_error == "access_denied"


async def test_slow_down_raises_the_interval(box: Box) -> None:
    psc = box.client(ciba_slow_down_step=0.5)
    request = await psc.start_ciba(MARIE)
    assert await psc.poll_ciba(request) is None  # authorization_pending
    assert request.interval == 1
    assert await psc.poll_ciba(request) is None  # too fast: slow_down
    assert request.interval == 1.5 and request.next_poll_at == box.clock.now() + 1.5
    tokens = await box.clock.run(psc.wait_ciba(request, timeout=10))  # waits the new interval: no slow_down
    assert tokens.national_id == MARIE


@pytest.mark.parametrize("lifetimes", [replace(LIFETIMES, ciba_request=1.5, ciba_approve_delay=5)])
async def test_expired(box: Box) -> None:
    psc = box.client()
    request = await psc.start_ciba(MARIE)
    with pytest.raises(PSCError) as err:  # local expiry: no poll after expires_at
        await box.clock.run(psc.wait_ciba(request))
    assert err.value.oauth_error == "expired_token"
    # PSC's own answer once its clock passed expires_in.
    stale = CibaRequest(auth_req_id=request.auth_req_id, expires_at=box.clock.now() + 60, interval=1,
                        binding_message="00", channel="MOBILE", national_id=MARIE)
    with pytest.raises(PSCError) as err:
        await psc.poll_ciba(stale)
    assert err.value.oauth_error == "expired_token"


async def test_timeout_and_bad_arguments(box: Box) -> None:
    psc = box.client()
    request = await psc.start_ciba(MARIE)
    with pytest.raises(TimeoutError):
        await psc.wait_ciba(request, timeout=0.2)
    with pytest.raises(UsageError):
        await psc.start_ciba("")
    with pytest.raises(UsageError):
        await psc.start_ciba(MARIE, channel="FAX")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        await psc.start_ciba(MARIE, binding_message="x" * 21)
    with pytest.raises(PSCError) as err:
        await psc.start_ciba("899700999999")
    assert err.value.oauth_error == "unknown_user_id"
