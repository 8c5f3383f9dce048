"""PDF/A-1b structure of the rendered PDFs, checked with pikepdf (qpdf) and on the raw bytes.

Checked: ``%PDF-1.4`` header with a binary comment; XMP with ``pdfaid:part=1``/``conformance=B``, unfiltered,
whose Dublin Core/XMP/PDF properties equal the Info entries; a ``GTS_PDFA1`` OutputIntent with an ICC v2 RGB
``DestOutputProfile``; every font embedded (``FontFile``/``FontFile2``/``FontFile3``); no ``/Encrypt``; a
trailer ``/ID``; no JavaScript, actions, annotations or transparency; qpdf finds no syntax problem.
A validator we did not write judges every file: pikepdf's PDF/A-1b allowlist validator (``pikepdf[pdfa]``,
built from the veraPDF rules; veraPDF itself is neither in Debian nor on PyPI).
:func:`mssante.pdf.check_pdfa1` (the structural check the conformance suite uses) is shown to pass our files and
to flag each kind of broken file.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import pytest

from mssante.pdf import check_pdfa1
from mssante.pdf._icc import srgb_icc_profile
from tests.pdf._support import ALL_DOCS, rendered

pikepdf = pytest.importorskip("pikepdf", reason="structure checks use pikepdf")

DC = "{http://purl.org/dc/elements/1.1/}"
XMP = "{http://ns.adobe.com/xap/1.0/}"
PDFNS = "{http://ns.adobe.com/pdf/1.3/}"
PDFAID = "{http://www.aiim.org/pdfa/ns/id/}"


def _pdf_date(value: str) -> datetime:
    m = re.fullmatch(r"D:(\d{14})([+-])(\d\d)'(\d\d)'", value)
    assert m, value
    return datetime.strptime(m.group(1) + m.group(2) + m.group(3) + m.group(4), "%Y%m%d%H%M%S%z")


def _walk(obj: Any, seen: set[tuple[int, int]]) -> Any:
    """Yield every dictionary reachable from ``obj`` (streams' dictionaries included), once."""
    if isinstance(obj, pikepdf.Object) and obj.is_indirect:
        if obj.objgen in seen:
            return
        seen.add(obj.objgen)
    if isinstance(obj, pikepdf.Dictionary | pikepdf.Stream):
        yield obj
        for key in list(obj.keys()):
            if key != "/Parent":
                yield from _walk(obj[key], seen)
    elif isinstance(obj, pikepdf.Array):
        for item in obj:
            yield from _walk(item, seen)


@pytest.mark.parametrize("name", ALL_DOCS)
def test_pdfa_1b_structure(name: str) -> None:
    data = rendered(name)
    assert re.match(rb"%PDF-1\.[0-4]\n%[\x80-\xff]{4}", data)
    pdf = pikepdf.open(io.BytesIO(data))
    assert pdf.check_pdf_syntax() == []
    assert pdf.pdf_version <= "1.4"
    assert "/Encrypt" not in pdf.trailer and not pdf.is_encrypted
    ids = pdf.trailer.ID
    assert len(ids) == 2 and len(bytes(ids[0])) == 16

    # XMP: part 1, conformance B, not filtered (ISO 19005-1 §6.7.2) and equal to the Info entries (§6.7.3).
    stream = pdf.Root.Metadata
    assert "/Filter" not in stream and stream.Type == "/Metadata" and stream.Subtype == "/XML"
    raw = stream.read_bytes()
    assert b'<?xpacket begin="\xef\xbb\xbf"' in raw and b"bytes=" not in raw and b"encoding=" not in raw
    meta = pdf.open_metadata()
    assert meta[PDFAID + "part"] == "1" and meta[PDFAID + "conformance"] == "B" and meta.pdfa_status == "1B"
    info = pdf.docinfo
    assert str(info.Title) == meta[DC + "title"]
    assert [str(info.Author)] == meta[DC + "creator"]
    assert str(info.Subject) == meta[DC + "description"]
    assert str(info.Keywords) == meta[PDFNS + "Keywords"]
    assert str(info.Producer) == meta[PDFNS + "Producer"]
    assert str(info.Creator) == meta[XMP + "CreatorTool"]
    assert _pdf_date(str(info.CreationDate)) == datetime.fromisoformat(meta[XMP + "CreateDate"])
    assert _pdf_date(str(info.ModDate)) == datetime.fromisoformat(meta[XMP + "ModifyDate"])

    # OutputIntent GTS_PDFA1 with an embedded ICC v2 RGB output profile (§6.2.2).
    intents = pdf.Root.OutputIntents
    assert len(intents) == 1 and intents[0].S == "/GTS_PDFA1" and intents[0].Type == "/OutputIntent"
    icc = intents[0].DestOutputProfile
    assert icc.N == 3
    profile = icc.read_bytes()
    assert profile == srgb_icc_profile() and profile[8] == 2 and profile[12:20] == b"mntrRGB "

    # Fonts: every font dictionary is embedded (§6.3.4); no JavaScript, actions, annotations, transparency.
    fonts = 0
    for d in _walk(pdf.Root, set()):
        assert not {"/JS", "/JavaScript", "/AA", "/OpenAction", "/Annots", "/SMask", "/AcroForm"} & set(d.keys())
        assert d.get("/S") != "/Transparency"
        assert float(d.get("/CA", 1)) == 1.0 and float(d.get("/ca", 1)) == 1.0
        if d.get("/Type") == "/Font" and d.get("/Subtype") != "/Type0":
            fonts += 1
            desc = d.FontDescriptor
            assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(desc.keys()), d.BaseFont
            assert re.fullmatch(r"/[A-Z]{6}\+.+", str(d.BaseFont))  # subset tag
            assert "/Encoding" not in d and int(desc.Flags) & 4  # symbolic TrueType: no Encoding (§6.3.7)
    assert fonts >= 2
    for page in pdf.pages:
        assert float(page.MediaBox[2]) == pytest.approx(595.276, abs=0.01)  # A4
        assert b"/DeviceCMYK" not in page.Contents.read_bytes()


def test_icc_profile_is_a_working_srgb_v2_profile() -> None:
    from PIL import Image, ImageCms  # Pillow is a ReportLab dependency

    profile = ImageCms.getOpenProfile(io.BytesIO(srgb_icc_profile()))
    assert 2 <= profile.profile.version < 3  # PDF 1.4 knows ICC v2 only
    assert profile.profile.device_class == "mntr" and profile.profile.xcolor_space == "RGB "
    transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "RGB", "RGB")
    colours = [(0, 0, 0), (255, 0, 0), (12, 200, 90), (128, 128, 128), (255, 255, 255)]
    image = Image.new("RGB", (len(colours), 1))
    for x, colour in enumerate(colours):
        image.putpixel((x, 0), colour)
    out = ImageCms.applyTransform(image, transform)
    assert out is not None
    for x, colour in enumerate(colours):
        got = out.getpixel((x, 0))
        assert isinstance(got, tuple)
        assert all(abs(a - b) <= 1 for a, b in zip(got, colour, strict=True))


@pytest.mark.parametrize("name", ["vsm", "BIO-CR-BIO_2021.01_Microbiologie_V1.xml"])
def test_raw_layout_xref_offsets_and_eol_before_endstream(name: str) -> None:
    data = rendered(name)
    xref_at = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", data).group(1))  # type: ignore[union-attr]
    head = re.match(rb"xref\n0 (\d+)\n", data[xref_at:])
    assert head is not None
    entries = data[xref_at + head.end() :].split(b"\n")[: int(head.group(1))]
    for number, entry in enumerate(entries[1:], 1):
        assert data.startswith(f"{number} 0 obj".encode(), int(entry[:10]))
    streams = list(re.finditer(rb"/Length (\d+)(?![0-9])[^>]*>>\nstream\n", data))
    assert len(streams) >= 5
    for m in streams:  # ISO 19005-1 §6.1.7: EOL after "stream" and before "endstream"
        assert data[m.end() + int(m.group(1)) :].startswith(b"\nendstream\nendobj")


def test_pikepdf_pdfa_validator_approves_every_rendered_file() -> None:
    pdfa = pytest.importorskip("pikepdf.pdfa", reason="pikepdf[pdfa] (jsonschema, fonttools) is not installed")
    for name in ALL_DOCS:
        try:
            data = rendered(name)
        except pytest.skip.Exception:
            continue  # an ANS sample absent on a bare clone
        report = pdfa.validate_written(io.BytesIO(data), "1b")
        assert report.verdict == "pass", (name, [str(f) for f in report.findings[:10]])


@pytest.mark.parametrize("name", ALL_DOCS)
def test_structural_check_passes_rendered_files(name: str) -> None:
    assert check_pdfa1(rendered(name)) == ()


def _codes(data: bytes) -> set[str]:
    findings = check_pdfa1(data)
    assert all(f.clause.startswith("ISO 19005-1 §") and f.message and f.message_fr for f in findings)
    return {f.code for f in findings}


def _edited(edit: Any, **save: Any) -> bytes:
    """The rendered VSM, changed by ``edit(pdf)`` and saved again with ``save`` options."""
    with pikepdf.open(io.BytesIO(rendered("vsm"))) as pdf:
        edit(pdf)
        out = io.BytesIO()
        pdf.save(out, **{"object_stream_mode": pikepdf.ObjectStreamMode.disable, "fix_metadata_version": False, **save})
        return out.getvalue()


def _plain_reportlab_pdf() -> bytes:
    from reportlab.pdfgen.canvas import Canvas

    out = io.BytesIO()
    canvas = Canvas(out, invariant=1)
    canvas.drawString(72, 720, "Compte rendu")
    canvas.save()
    return out.getvalue()


def test_structural_check_flags_each_broken_file() -> None:
    from PIL import ImageCms

    assert _codes(b"") >= {"header", "not-pdf"}
    assert _codes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\nnot a pdf") == {"not-pdf"}
    assert _codes(_plain_reportlab_pdf()) == {"xmp-missing", "output-intent", "font-not-embedded"}
    enc = pikepdf.Encryption(owner="o", user="", R=4)
    assert "encrypted" in _codes(_edited(lambda pdf: None, encryption=enc))
    assert _codes(_edited(lambda pdf: None, object_stream_mode=pikepdf.ObjectStreamMode.generate)) == {
        "object-streams"
    }

    def compress_xmp(pdf: Any) -> None:
        pdf.Root.Metadata.write(pdf.Root.Metadata.read_bytes(), filter=pikepdf.Name.FlateDecode)

    assert _codes(_edited(compress_xmp)) == {"xmp-filtered"}

    def claim_pdfa2(pdf: Any) -> None:
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as xmp:
            xmp["pdfaid:part"] = "2"

    assert _codes(_edited(claim_pdfa2)) == {"pdfa-id"}

    def doctype_xmp(pdf: Any) -> None:
        pdf.Root.Metadata.write(b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + pdf.Root.Metadata.read_bytes())

    assert _codes(_edited(doctype_xmp)) == {"xmp-unsafe"}

    v4 = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # littleCMS builds a v4 profile

    def v4_profile(pdf: Any) -> None:
        pdf.Root.OutputIntents[0].DestOutputProfile.write(v4)

    assert _codes(_edited(v4_profile)) == {"icc-profile"}
    assert _codes(_edited(lambda pdf: pdf.Root.OutputIntents[0].__setitem__("/S", pikepdf.Name.GTS_PDFX))) == {
        "output-intent"
    }

    def unembed_fonts(pdf: Any) -> None:
        for d in _walk(pdf.Root, set()):
            if "/FontFile2" in d:
                del d["/FontFile2"]

    assert _codes(_edited(unembed_fonts)) == {"font-not-embedded"}
