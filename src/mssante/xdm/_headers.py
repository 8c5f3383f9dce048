"""The MSSanté ``X-MSS-*`` message headers derived from an XDM archive (Référentiel socle #2 ECO.2.4.x)."""

from __future__ import annotations

from mssante.xdm._model import XDMArchive

__all__ = ["xmss_headers"]


def xmss_headers(archive: XDMArchive) -> dict[str, str]:
    """Return the ``X-MSS-CODECDA`` and ``X-MSS-INS`` headers for a message carrying ``archive``.

    * ``X-MSS-CODECDA`` (ECO.2.4.1): the ``ClinicalDocument/code/@code`` of every CDA of the archive,
      comma-separated when there are several (separator as reported by third parties, ref2 §5.1);
    * ``X-MSS-INS`` (ECO.2.4.2): ``O`` when the archive carries a qualified INS
      (:attr:`XDMArchive.has_qualified_ins`), ``N`` otherwise.

    Both are absent (empty dict) when the archive holds no CDA document: the rules forbid them then.
    ``X-MSS-NIL`` and ``X-MSS-MES`` do not depend on the archive and are the message layer's job.

    Raises:
        MssanteError: none on purpose.
    """
    codes = archive.cda_codes
    if not codes:
        return {}
    return {"X-MSS-CODECDA": ",".join(codes), "X-MSS-INS": "O" if archive.has_qualified_ins else "N"}
