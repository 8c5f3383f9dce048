"""The hardened XML parser refuses DTDs/entities (XXE, billion laughs) and bounds size and depth."""

from __future__ import annotations

import pytest

from mssante.cda import XMLLimits, parse_cda_header, parse_xml
from mssante.errors import ContentError, LimitError, UnsafeContentError

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>"""

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><lolz>&lol9;</lolz>"
)

PARAM = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:1/evil.dtd"> %remote;]><x/>"""

EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:1/x.dtd"><x/>'


@pytest.mark.parametrize("doc", [XXE, LAUGHS, PARAM, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "param", "dtd"])
def test_dtd_and_entities_are_refused(doc: bytes) -> None:
    with pytest.raises(UnsafeContentError) as exc:
        parse_xml(doc)
    assert exc.value.requirement == "XDM-XML-SAFE"


def test_cda_header_refuses_xxe() -> None:
    with pytest.raises(UnsafeContentError):
        parse_cda_header(XXE)


def test_undefined_entity_is_a_content_error() -> None:
    with pytest.raises(ContentError) as exc:
        parse_xml(b"<x>&nope;</x>")
    assert not isinstance(exc.value, UnsafeContentError)


def test_size_and_depth_limits() -> None:
    with pytest.raises(LimitError):
        parse_xml(b"<x>" + b" " * 200 + b"</x>", limits=XMLLimits(max_bytes=100))
    deep = b"<a>" * 300 + b"</a>" * 300
    with pytest.raises(LimitError):
        parse_xml(deep)
    assert parse_xml(deep, limits=XMLLimits(max_depth=400)).tag == "a"
    with pytest.raises(LimitError):
        parse_xml(b"<r>" + b"<e/>" * 50 + b"</r>", limits=XMLLimits(max_elements=10))


@pytest.mark.parametrize(
    "doc", [b"", b"<x", b"\xff\xfe\x00<", b'<?xml version="1.0" encoding="nope"?><x/>', b"<a></b>"]
)
def test_malformed_is_content_error(doc: bytes) -> None:
    with pytest.raises(ContentError):
        parse_xml(doc)


def test_not_a_cda() -> None:
    with pytest.raises(ContentError):
        parse_cda_header(b"<html/>")


def test_namespaces_and_latin1() -> None:
    root = parse_xml('<?xml version="1.0" encoding="ISO-8859-1"?><a xmlns="urn:x" b="é"/>'.encode("latin-1"))
    assert root.tag == "{urn:x}a" and root.get("b") == "é"
