"""IHE XDM archives (``IHE_XDM.ZIP``, IHE ITI-32) carrying CDA R2 documents over MSSanté.

Public API:

* :func:`build_archive` — CDA documents → deterministic ``IHE_XDM.ZIP`` with ebRIM METADATA.XML;
* :func:`read_archive` — safe, bounded reading into :class:`XDMArchive` (documents, CDA headers, patient);
* :func:`validate_archive` — :class:`ValidationReport` with :class:`Finding` objects citing their rule;
* :func:`xmss_headers` — the ``X-MSS-CODECDA`` / ``X-MSS-INS`` message headers;
* :func:`read_metadata` / :func:`write_metadata` — METADATA.XML alone; :func:`document_entry_for`.
"""

from mssante.xdm._build import DEFAULT_SOURCE_ID, XDMSender, build_archive, document_entry_for
from mssante.xdm._headers import xmss_headers
from mssante.xdm._metadata_read import read_metadata
from mssante.xdm._metadata_write import write_metadata
from mssante.xdm._model import (
    Association,
    DocumentEntry,
    Finding,
    Severity,
    SubmissionSet,
    ValidationReport,
    XDMArchive,
    XDMDocument,
    XDMMetadata,
    XDMSubset,
    XDSAuthor,
)
from mssante.xdm._read import read_archive
from mssante.xdm._validate import check_archive, validate_archive
from mssante.xdm._vocab import class_code_for, format_code_for, table_source
from mssante.xdm._zip import XDMLimits

__all__ = [
    "DEFAULT_SOURCE_ID",
    "Association",
    "DocumentEntry",
    "Finding",
    "Severity",
    "SubmissionSet",
    "ValidationReport",
    "XDMArchive",
    "XDMDocument",
    "XDMLimits",
    "XDMMetadata",
    "XDMSender",
    "XDMSubset",
    "XDSAuthor",
    "build_archive",
    "check_archive",
    "class_code_for",
    "document_entry_for",
    "format_code_for",
    "read_archive",
    "read_metadata",
    "table_source",
    "validate_archive",
    "write_metadata",
    "xmss_headers",
]
