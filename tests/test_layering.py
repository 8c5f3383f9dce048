"""Protocol cores do no I/O: the layering the project is built on, enforced (as trio does for _core).

The order between the project's own layers is import-linter's contract in pyproject.toml, run
by scripts/test.sh (lint-imports); this test adds what it cannot see: the standard library
and third-party network modules a core may not import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mssante"

#: Packages that must stay pure: bytes and values in, bytes and values out.
CORES = ("wire", "xdm", "cda", "message")
#: What a core may not import: networking, event loops, servers, the layers above.
FORBIDDEN = (
    "asyncio", "socket", "ssl", "selectors", "http", "urllib.request", "httpx2", "aiosmtplib", "dns",
    "uvicorn", "starlette", "mssante.client", "mssante.sandbox", "mssante.bridge", "mssante.psc",
    "mssante.conformance", "mssante.cli", "mssante.discovery", "mssante.trust",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("core", CORES)
def test_protocol_cores_import_no_network_layer(core: str) -> None:
    offenders = []
    for path in sorted((SRC / core).rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN):
                offenders.append(f"{path.relative_to(SRC)}: {name}")
    assert not offenders, offenders
