"""The public surface of mssante.psc: exported names; public callables documented, with the errors they raise."""

from __future__ import annotations

import inspect

import mssante.psc as psc


def test_exports() -> None:
    assert sorted(psc.__all__) == sorted(set(psc.__all__))
    for name in psc.__all__:
        assert hasattr(psc, name), name


def test_public_callables_document_raises() -> None:
    """Every public callable has a docstring; one whose body raises names what in a Raises section (issue 10 §9)."""
    missing = []
    members = [(cls.__name__, name, member) for cls in (psc.PSCClient, psc.PSCSession, psc.PSCSettings,
                                                         psc.AuthorizationRequest, psc.TokenSet, psc.ProviderMetadata)
               for name, member in vars(cls).items()]
    for owner, name, member in [*members, ("", "mtls_context", psc.mtls_context)]:
        func = member.__func__ if isinstance(member, classmethod | staticmethod) else member
        if name.startswith("_") or not callable(func):
            continue
        doc = inspect.getdoc(func) or ""
        source = inspect.getsource(func)
        body = source.split('"""', 2)[-1] if '"""' in source else source
        if not doc or ("raise " in body and "Raises:" not in doc) or "Raises:\n    Nothing." in doc:
            missing.append(f"{owner}.{name}")
    assert missing == []
