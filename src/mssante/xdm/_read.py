"""Read an IHE XDM archive into :class:`~mssante.xdm.XDMArchive` (safe, bounded, tolerant).

Names are matched case-insensitively (``IHE_XDM``, ``SUBSETnn``, ``METADATA.XML``), every subset directory is
read (not only ``SUBSET01``), and document URIs are resolved relative to their subset (xdm-cda.md §1.4).
Structural problems are kept in the model for :func:`~mssante.xdm.validate_archive`; only unreadable or
dangerous archives raise.
"""

from __future__ import annotations

import hashlib

from mssante.cda import CDAHeader, XMLLimits, parse_cda_header
from mssante.errors import ContentError, LimitError, UnsafeContentError
from mssante.xdm._metadata_read import read_metadata
from mssante.xdm._model import XDMArchive, XDMDocument, XDMSubset
from mssante.xdm._zip import XDMLimits, read_zip

__all__ = ["read_archive", "resolve_uri"]


def resolve_uri(subset: str, uri: str) -> str | None:
    """Return the archive path a DocumentEntry URI points to (relative to its subset), or None if unsafe."""
    u = uri.strip().replace("\\", "/")
    while u.startswith("./"):
        u = u[2:]
    if not u or u.startswith("/") or ":" in u or any(p in ("..", "") for p in u.split("/")):
        return None
    return f"{subset}/{u}"


def _parse_cda(data: bytes, limits: XMLLimits, path: str) -> tuple[CDAHeader | None, str | None]:
    try:
        return parse_cda_header(data, limits=limits, what=path), None
    except (UnsafeContentError, LimitError):
        raise
    except ContentError as exc:
        return None, exc.message


def read_archive(data: bytes, *, limits: XDMLimits | None = None) -> XDMArchive:
    """Read an XDM ZIP archive: layout, every subset's METADATA.XML, documents and their CDA headers.

    Args:
        data: the ZIP bytes (e.g. the ``IHE_XDM.ZIP`` attachment).
        limits: archive and XML bounds (:class:`XDMLimits`).

    Returns:
        The archive model. ``documents`` lists one :class:`XDMDocument` per DocumentEntry (``data`` None when
        its URI does not resolve), then the XML files of a subset whose metadata is missing or unreadable.

    Raises:
        LimitError: a size/count limit was hit (archive, entry, total, XML size or depth).
        UnsafeContentError: path traversal, symlink, encrypted or duplicate entry, zip bomb ratio, or a DTD /
            entity declaration in METADATA.XML or in a CDA document (XXE, billion laughs).
        ContentError: the bytes are not a readable ZIP archive.
    """
    lim = limits or XDMLimits()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ContentError(f"expected archive bytes, got {type(data).__name__}")
    xml_limits = XMLLimits(max_bytes=lim.max_xml_bytes, max_depth=lim.max_xml_depth)
    entries = read_zip(bytes(data), lim)
    by_upper = {e.name.upper(): e for e in entries}
    names = tuple(e.name for e in entries)
    subset_dirs: list[str] = []
    for e in entries:
        parts = e.name.split("/")
        if len(parts) >= 3 and parts[0].upper() == "IHE_XDM":
            d = f"{parts[0]}/{parts[1]}"
            if d not in subset_dirs:
                subset_dirs.append(d)
    subsets: list[XDMSubset] = []
    documents: list[XDMDocument] = []
    for d in subset_dirs:
        meta_entry = by_upper.get(f"{d}/METADATA.XML".upper())
        metadata = None
        error = None
        if meta_entry is not None:
            try:
                metadata = read_metadata(meta_entry.data, limits=xml_limits, what=meta_entry.name)
            except (UnsafeContentError, LimitError):
                raise
            except ContentError as exc:
                error = exc.message
        subsets.append(XDMSubset(d, meta_entry.name if meta_entry else None, metadata, error))
        if metadata is not None:
            for de in metadata.document_entries:
                target = resolve_uri(d, de.uri) if de.uri else None
                found = by_upper.get(target.upper()) if target else None
                if found is None:
                    documents.append(XDMDocument(target or f"{d}/?", d, de, None))
                    continue
                sha1 = hashlib.sha1(found.data, usedforsecurity=False).hexdigest()
                cda: CDAHeader | None = None
                err: str | None = None
                mime = (de.mime_type or "text/xml").lower()
                if mime in ("text/xml", "application/xml") or found.name.upper().endswith(".XML"):
                    cda, err = _parse_cda(found.data, xml_limits, found.name)
                documents.append(XDMDocument(found.name, d, de, found.data, sha1, cda, err))
        else:
            for e in entries:
                if (
                    e.name.upper().startswith(d.upper() + "/")
                    and e.name.upper().endswith(".XML")
                    and e is not meta_entry
                    and e.name.count("/") == 2
                ):
                    fcda, ferr = _parse_cda(e.data, xml_limits, e.name)
                    sha1 = hashlib.sha1(e.data, usedforsecurity=False).hexdigest()
                    documents.append(XDMDocument(e.name, d, None, e.data, sha1, fcda, ferr))
    upper_names = {n.upper() for n in names}
    return XDMArchive(
        names=names,
        subsets=tuple(subsets),
        documents=tuple(documents),
        has_readme="README.TXT" in upper_names,
        has_index="INDEX.HTM" in upper_names,
    )
