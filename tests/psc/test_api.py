"""The public surface of mssante.psc: exported names, and a Raises section on every public callable."""

from __future__ import annotations

import inspect

import mssante.psc as psc


def test_exports() -> None:
    assert sorted(psc.__all__) == sorted(set(psc.__all__))
    for name in psc.__all__:
        assert hasattr(psc, name), name


def test_public_callables_document_raises() -> None:
    missing = []
    for cls in (psc.PSCClient, psc.PSCSession, psc.PSCSettings, psc.AuthorizationRequest, psc.TokenSet,
                psc.ProviderMetadata):
        for name, member in vars(cls).items():
            func = member.__func__ if isinstance(member, classmethod | staticmethod) else member
            if name.startswith("_") or not callable(func):
                continue
            if "Raises:" not in (inspect.getdoc(func) or ""):
                missing.append(f"{cls.__name__}.{name}")
    if "Raises:" not in (inspect.getdoc(psc.mtls_context) or ""):
        missing.append("mtls_context")
    assert missing == []
