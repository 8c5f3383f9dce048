"""Reading as-mailbox-mss ContactPoints and resources from untrusted FHIR JSON."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mssante.annuaire import Mailbox, mailboxes_of
from mssante.annuaire._fhir import (
    EMAIL_TYPE_URL,
    MAILBOX_META_URL,
    TYPE_BAL_SYSTEM,
    TYPE_MESSAGERIE_SYSTEM,
    organization_from_fhir,
    practitioner_from_fhir,
)
from mssante.errors import RemoteProtocolError


def _point(address: str, kind: str | None = None, *, red: bool | None = None, typed: bool = True,
           system: str = "email") -> dict[str, Any]:
    ext: list[dict[str, Any]] = []
    if typed:
        ext.append({"url": EMAIL_TYPE_URL, "valueCoding": {"system": TYPE_MESSAGERIE_SYSTEM, "code": "MSSANTE"}})
    meta: list[dict[str, Any]] = []
    if kind is not None:
        meta.append({"url": "type", "valueCodeableConcept": {"coding": [{"system": TYPE_BAL_SYSTEM, "code": kind}]}})
    if red is not None:
        meta.append({"url": "listeRouge", "valueBoolean": red})
    if meta:
        ext.append({"url": MAILBOX_META_URL, "extension": meta})
    return {"system": system, "value": address, "extension": ext}


def test_mailboxes_kinds_red_list_and_plain_emails() -> None:
    resource = {"telecom": [
        _point("cab@x.mssante.fr", "CAB"),
        _point("rouge@x.mssante.fr", "PER", red=True),
        _point("plain@example.org", typed=False),  # an ordinary e-mail, not MSSanté
        _point("meta-only@x.mssante.fr", "ORG", typed=False),  # the metadata extension says MSSanté too
        _point("untyped@x.mssante.fr"),
        _point("+33123456789", system="phone"),
        {"system": "email", "value": "no-at-sign", "extension": []},
        "garbage", {"system": "email"},
    ]}
    assert mailboxes_of(resource) == (
        Mailbox("cab@x.mssante.fr", "CAB"), Mailbox("meta-only@x.mssante.fr", "ORG"),
        Mailbox("untyped@x.mssante.fr", None),
    )


def test_resources_need_their_type_and_id() -> None:
    with pytest.raises(RemoteProtocolError):
        practitioner_from_fhir({"resourceType": "Practitioner"})
    with pytest.raises(RemoteProtocolError):
        organization_from_fhir({"resourceType": "Practitioner", "id": "x"})
    bare = organization_from_fhir({"resourceType": "Organization", "id": "o"})
    assert (bare.name, bare.city, bare.mailboxes) == ("", None, ())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["telecom", "system", "value", "extension", "url", "valueCoding", "code",
                         "valueCodeableConcept", "coding", "valueBoolean", "name", "id", "resourceType"]),
        inner, max_size=5),
    max_leaves=30,
)


@given(_json)
def test_any_json_gives_mailboxes_or_a_typed_error(data: Any) -> None:
    if isinstance(data, dict):
        assert all(isinstance(m, Mailbox) for m in mailboxes_of(data))
        for build in (practitioner_from_fhir, organization_from_fhir):
            try:
                build({**data, "resourceType": build.__name__.split("_")[0].title(), "id": "x"})
            except RemoteProtocolError:
                pytest.fail("a typed resource with an id must always be read")
