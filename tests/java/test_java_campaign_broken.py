"""A deliberately broken variant of the Java LPS (``--break``) fails exactly the cases it breaks, each with
an explanation naming the broken rule (tests/java/_campaign.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.conformance import Profile, Status
from tests.java._campaign import campaign, valid
from tests.java.conftest import RunningSandbox

pytestmark = pytest.mark.slow


#: The broken Java variant (``--break``) and, per profile, exactly the cases it must turn red.
BREAKS = "no-nil,no-mdn,no-cert-check,plain-pdf"
BROKEN = ("x-mss-nil", "mdn-request", "server-cert-expired", "server-cert-foreign", "server-cert-wrong-host",
          "server-cert-revoked", "server-cert-impostor", "crl-outage", "pdf-companion", "pdf-from-cda")
EXPECTED_RED = {Profile.PER_ORG: {*BROKEN, "mdn-return"}, Profile.APP: {*BROKEN, "mdn-return"}}  # MDN: issue 16


@pytest.mark.parametrize("profile", [Profile.PER_ORG, Profile.APP], ids=lambda p: p.value)
async def test_a_broken_java_variant_fails_exactly_the_cases_it_breaks(
    java_classes: Path, fresh_sandbox: RunningSandbox, tmp_path: Path, profile: Profile
) -> None:
    report, log, events_file, _ = await campaign(java_classes, fresh_sandbox, tmp_path, profile, breaks=BREAKS)
    red = {r.code: r for r in report.results if r.status is not Status.PASS}
    table = "\n".join(f"{r.case_id} {r.code} {r.status.value}: {r.explanation}" for r in red.values())
    assert set(red) == EXPECTED_RED[profile], table + "\n" + log
    assert all(r.status is Status.FAIL for r in red.values()), table
    assert "X-MSS-NIL" in red["x-mss-nil"].explanation
    assert "Disposition-Notification-To" in red["mdn-request"].explanation
    assert all("Authentification tentée malgré" in red[c].explanation for c in BROKEN if c.startswith("server-cert"))
    assert "Aucun accusé de lecture" in red["mdn-return"].explanation
    assert "PDF/A-1" in red["pdf-companion"].explanation
    assert "ne nomme pas le patient" in red["pdf-from-cda"].explanation
    end = valid(events_file, "conformance-events.schema.json")[-1]
    assert end["verdict"] == "NON CONFORME" and end["exit_code"] == 1
