"""Skip the PDF tests when ReportLab (the renderer's dependency) is not installed."""

from __future__ import annotations

import pytest

pytest.importorskip("reportlab", reason="mssante.pdf needs reportlab>=4.4,<6")
