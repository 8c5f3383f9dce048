"""The mock Annuaire Santé over real HTTP (loopback): FHIR shapes, search, paging, API key, refusals, never 500.

Requests are made with httpx2 and with curl (software we did not write), as an LPS in any language would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.annuaire._fhir import EMAIL_TYPE_URL, MAILBOX_META_URL, TYPE_BAL_SYSTEM
from tests._hypothesis import examples
from tests.annuaire.conftest import Served

KEY = "ESANTE-API-KEY"


def _get(served: Served, path: str, params: Any = None, key: str | None = "ok") -> httpx2.Response:
    headers = {KEY: served.api_key if key == "ok" else key} if key is not None else {}
    return httpx2.get(served.base_url + path, params=params, headers=headers, timeout=10)


def _ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == mode]


def _outcome(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    return body["issue"][0]  # type: ignore[no-any-return]


def test_missing_or_wrong_api_key_is_401(annuaire: Served) -> None:
    for path in ("/Practitioner", "/Organization?name=centre", "/metadata", "/Practitioner/pra-899700000001", "/x/y/z"):
        assert _outcome(_get(annuaire, path, key=None), 401)["code"] == "login"
        assert _outcome(_get(annuaire, path, key="not-the-key"), 401)["code"] == "security"
        assert _get(annuaire, path, key=annuaire.api_key + "x").status_code == 401
    assert _get(annuaire, "/metadata").json()["fhirVersion"] == "4.0.1"


def test_bad_parameters_and_oversized_pages_are_400_with_an_operation_outcome(annuaire: Served) -> None:
    assert _outcome(_get(annuaire, "/Practitioner", {"birthdate": "1970"}), 400)["code"] == "not-supported"
    assert _outcome(_get(annuaire, "/Practitioner", {"name:fuzzy": "x"}), 400)["code"] == "not-supported"
    assert _outcome(_get(annuaire, "/Practitioner", {"name": ""}), 400)["code"] == "invalid"
    assert _outcome(_get(annuaire, "/Practitioner", {"_count": "101"}), 400)["code"] == "too-costly"
    assert _outcome(_get(annuaire, "/Practitioner", {"_count": "100000"}), 400)["code"] == "too-costly"
    assert _outcome(_get(annuaire, "/Practitioner", {"_count": "-1"}), 400)["code"] == "invalid"
    assert _outcome(_get(annuaire, "/Organization", {"_offset": "99999"}), 400)["code"] == "too-costly"
    assert _get(annuaire, "/Practitioner", {"_count": "100"}).status_code == 200
    assert _outcome(_get(annuaire, "/Patient"), 404)["code"] == "not-supported"
    assert _outcome(_get(annuaire, "/Practitioner/nobody"), 404)["code"] == "not-found"
    posted = httpx2.post(annuaire.base_url + "/Practitioner", headers={KEY: annuaire.api_key}, content=b"{}")
    assert _outcome(posted, 405)["code"] == "not-supported"


def test_practitioner_with_its_mailbox_as_an_as_mailbox_mss_contact_point(annuaire: Served) -> None:
    pra = _get(annuaire, "/Practitioner/pra-899700000001").json()
    assert pra["resourceType"] == "Practitioner"
    idents = {i["system"]: i["value"] for i in pra["identifier"]}
    assert idents == {"urn:oid:1.2.250.1.71.4.2.1": "899700000001", "https://rpps.esante.gouv.fr": "99700000001"}
    assert pra["name"][0]["family"] == "CURIE" and pra["name"][0]["given"] == ["Marie"]
    (box,) = pra["telecom"]
    assert box["system"] == "email" and box["value"] == "marie.curie@mss.sandbox.test"
    ext = {e["url"]: e for e in box["extension"]}
    assert ext[EMAIL_TYPE_URL]["valueCoding"]["code"] == "MSSANTE"
    meta = {e["url"]: e for e in ext[MAILBOX_META_URL]["extension"]}
    assert meta["type"]["valueCodeableConcept"]["coding"][0] == {
        "system": TYPE_BAL_SYSTEM, "code": "PER", "display": "BAL personnelle"}
    assert meta["listeRouge"]["valueBoolean"] is False
    org = _get(annuaire, "/Organization/org-1750000001").json()
    kinds = {t["value"]: t["extension"][1]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
             for t in org["telecom"]}
    assert kinds == {"secretariat.cardio@mss.sandbox.test": "ORG", "dpi.hopital@mss.sandbox.test": "APP"}
    assert org["address"][0]["city"] == "Paris" and org["address"][0]["postalCode"] == "75000"


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/Practitioner", {"name": "curie"}, ["pra-899700000001"]),
        ("/Practitioner", {"name": "MARIE"}, ["pra-899700000001"]),
        ("/Practitioner", {"family:exact": "CURIE"}, ["pra-899700000001"]),
        ("/Practitioner", {"family:exact": "curie"}, []),
        ("/Practitioner", {"name:contains": "steu"}, ["pra-899700000002"]),
        ("/Practitioner", {"name": "curie,pasteur"}, ["pra-899700000001", "pra-899700000002"]),
        ("/Practitioner", {"identifier": "99700000002"}, ["pra-899700000002"]),
        ("/Practitioner", {"identifier": "https://rpps.esante.gouv.fr|99700000003"}, ["pra-899700000003"]),
        ("/Practitioner", {"identifier": "urn:oid:1.2.250.1.71.4.2.1|899700000001"}, ["pra-899700000001"]),
        ("/Practitioner", {"identifier": "urn:oid:1.2.250.1.71.4.2.1|99700000001"}, []),
        ("/Practitioner", {"qualification-code": "21"}, ["pra-899700000002"]),
        ("/Practitioner", {"qualification-code": "SM54"}, ["pra-899700000001", "pra-899700000003"]),
        ("/Practitioner", {"address-city": "paris"}, ["pra-899700000001", "pra-899700000002"]),
        ("/Practitioner", {"mailbox-mss": "marie."}, ["pra-899700000001"]),
        ("/Practitioner", {"mailbox-mss-type": "PER"}, ["pra-899700000001"]),
        ("/Organization", {"address-city": "cote"}, ["org-318751275100020"]),
        ("/Organization", {"name": "laboratoire"}, ["org-318751275100020"]),
        ("/Organization", {"mailbox-mss-type": "APP", "address-city": "Paris"}, ["org-1750000001", "org-1999999990"]),
        ("/PractitionerRole", {"role": "10"}, ["rol-899700000001-1750000001"]),
        ("/PractitionerRole", {"organization": "Organization/org-1750000001"},
         ["rol-899700000001-1750000001", "rol-899700000002-1750000001"]),
    ],
)
def test_search(annuaire: Served, path: str, params: dict[str, str], expected: list[str]) -> None:
    response = _get(annuaire, path, params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert _ids(bundle) == expected and bundle["total"] == len(expected)


def test_include_and_full_urls(annuaire: Served) -> None:
    bundle = _get(annuaire, "/PractitionerRole", [("practitioner", "pra-899700000002"),
                                                  ("_include", "PractitionerRole:organization"),
                                                  ("_include", "PractitionerRole:practitioner")]).json()
    assert _ids(bundle) == ["rol-899700000002-1750000001"]
    assert sorted(_ids(bundle, "include")) == ["org-1750000001", "pra-899700000002"]
    assert all(e["fullUrl"].startswith(annuaire.base_url + "/") for e in bundle["entry"])


def test_paging_follows_link_next_to_the_end(annuaire: Served) -> None:
    url: str | None = annuaire.base_url + "/Practitioner?active=true&_count=1"
    seen: list[str] = []
    while url is not None:
        bundle = httpx2.get(url, headers={KEY: annuaire.api_key}, timeout=10).json()
        assert bundle["total"] == 3 and len(bundle["entry"]) <= 1
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith(annuaire.base_url + "/Practitioner?")
        seen += _ids(bundle)
        url = links.get("next")
    assert seen == ["pra-899700000001", "pra-899700000002", "pra-899700000003"]
    last = _get(annuaire, "/Practitioner", {"_count": "2", "_offset": "2"}).json()
    assert _ids(last) == ["pra-899700000003"] and "next" not in {link["relation"] for link in last["link"]}


def test_curl_sees_the_same_directory(annuaire: Served) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        out = subprocess.run([curl, "-sS", "-w", "\n%{http_code}", *args], capture_output=True, check=True,
                             timeout=30, text=True)
        body, _, code = out.stdout.rpartition("\n")
        return int(code), json.loads(body)

    code, bundle = run("-H", f"{KEY}: {annuaire.api_key}", "-G", "--data-urlencode", "name=Pasteur",
                       annuaire.base_url + "/Practitioner")
    assert code == 200 and _ids(bundle) == ["pra-899700000002"]
    code, outcome = run(annuaire.base_url + "/Practitioner?name=Pasteur")
    assert code == 401 and outcome["resourceType"] == "OperationOutcome"


def test_access_log_records_requests_without_the_key(annuaire: Served) -> None:
    _get(annuaire, "/Organization", {"name": "journal-marker"})
    record = annuaire.mock.access_log[-1]
    assert record.path.endswith("/Organization") and "journal-marker" in record.query and record.status == 200
    assert annuaire.api_key not in repr(list(annuaire.mock.access_log))


_ALLOWED = {200, 400, 401, 404, 405}
_raw = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/Practitioner", "/PractitionerRole", "/Organization", "/metadata", "/Practitioner/x",
                          "/Organization/org-1750000001", "/a/b/c", "/Practitioner/"]),
    params=st.lists(st.tuples(st.sampled_from(["name", "name:exact", "identifier", "_count", "_offset", "_include",
                                               "role", "organization", "address-city", "qualification-code",
                                               "mailbox-mss-type", "_format", "zzz", "name:contains"]) | _raw,
                              _raw), max_size=6),
    method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "DELETE"]),
)
def test_never_a_500_whatever_the_request(annuaire: Served, path: str, params: list[tuple[str, str]],
                                          method: str) -> None:
    response = httpx2.request(method, annuaire.base_url + path, params=params, headers={KEY: annuaire.api_key},
                              timeout=10)
    assert response.status_code in _ALLOWED | {307}, (response.status_code, response.text[:300])
    if method != "HEAD" and response.status_code != 307:
        assert response.json()["resourceType"] in ("Bundle", "OperationOutcome", "Practitioner", "Organization",
                                                   "CapabilityStatement")


def test_links_come_from_the_socket_not_from_a_hostile_host_header(annuaire: Served) -> None:
    for host in ("[bad", "evil.example", "a b"):
        response = httpx2.get(annuaire.base_url + "/Practitioner?_count=1", timeout=10,
                              headers={KEY: annuaire.api_key, "Host": host})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            assert all(link["url"].startswith(annuaire.base_url) for link in response.json()["link"])
