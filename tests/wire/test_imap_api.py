"""The public surface of mssante.wire.imap: exports, docstrings, tables, and the no-I/O rule."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import mssante.wire.imap as imap
from mssante.wire.imap import _state

PACKAGE = Path(imap.__file__).parent


def test_all_is_unique_and_importable() -> None:
    assert len(set(imap.__all__)) == len(imap.__all__)
    for name in imap.__all__:
        assert hasattr(imap, name), name


def test_public_callables_have_docstrings_and_raises_sections() -> None:
    for name in imap.__all__:
        obj = getattr(imap, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name
    for name, member in inspect.getmembers(imap.ClientConnection, inspect.isfunction):
        if name.startswith("_"):
            continue
        doc = inspect.getdoc(member) or ""
        assert doc, name
        if "raise " in inspect.getsource(member) or name in ("next_event", "send", "receive_data"):
            assert "Raises:" in doc and "Error" in doc.split("Raises:")[1], name


def test_every_command_is_allowed_somewhere() -> None:
    allowed = set().union(*_state.COMMANDS_ALLOWED.values())
    commands = [getattr(imap, n) for n in imap.__all__]
    names = {c.name for c in commands if inspect.isclass(c) and issubclass(c, imap.Command) and c is not imap.Command}
    assert names == allowed


def test_transition_tables_are_closed() -> None:
    for state, triggers in _state.TRANSITIONS.items():
        assert isinstance(state, _state.ClientState)
        assert all(isinstance(target, _state.ClientState) for target in triggers.values())
    for phase, triggers in _state.PHASES.items():
        assert all(isinstance(target, _state.Phase) for target in triggers.values())
        if "+" in triggers:
            assert phase in _state.CONTINUATION_PURPOSE


def test_engine_does_no_io_and_modules_stay_short() -> None:
    forbidden = {"socket", "ssl", "asyncio", "time", "random", "secrets", "os", "select", "selectors", "threading"}
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        assert len(source.splitlines()) < 400, path.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & forbidden, (path.name, names)
