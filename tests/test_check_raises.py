"""scripts/check_raises.py: the Raises-section checker the docstring sweep will use."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_raises.py"
SOURCE = '''
class Oops(Exception):
    pass


class Worse(Oops):
    pass


def raises_worse():
    """Fail.

    Raises:
        Worse: always.
    """
    raise Worse("x")


def _helper():
    raises_worse()


def honest():
    """Call the helper.

    Raises:
        Oops: from the helper, through an undocumented private function.
    """
    _helper()


def says_nothing_but_raises():
    """Claim calm.

    Raises:
        Nothing.
    """
    raises_worse()


def says_nothing_and_catches():
    """Catch.

    Raises:
        Nothing.
    """
    try:
        raises_worse()
    except Oops:
        return None


def cannot():
    """Promise too much.

    Raises:
        Oops: never, in fact.
        ValueError: foreign errors are not judged.
    """
    return 1


def placeholder():
    """Say so differently.

    Raises:
        Oops: none on purpose.
    """
    return 2


class Port:
    def call(self):
        """An interface.

        Raises:
            Oops: the implementations may.
        """
        ...
'''


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_raises", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_raises"] = module
    spec.loader.exec_module(module)
    return module


def test_findings_on_a_small_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mod.py").write_text(SOURCE, encoding="utf-8")
    check_raises = _load()
    assert check_raises.main(["--tree", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    found = {(f["function"], f["kind"]) for f in report["findings"]}
    assert found == {
        ("says_nothing_but_raises", "nothing"), ("says_nothing_but_raises", "nothing-but-raises"),
        ("says_nothing_and_catches", "nothing"), ("placeholder", "nothing"),
        ("cannot", "cannot-raise"), ("call", "interface"),
    }
    assert report["summary"] == {"raises_sections": 7, "nothing_only": 2, "nothing": 3, "nothing-but-raises": 1,
                                 "cannot-raise": 1, "deferred": 0, "interface": 1}
    assert check_raises.main(["--tree", str(tmp_path), "--strict", "--summary"]) == 1


def test_the_section_parser() -> None:
    parse = _load().raises_section
    assert parse("Do.\n\nRaises:\n    A, B: x.\n    C: y\n        continued: not an entry\n\nReturns:\n    z") == (
        ["A", "B", "C"], False, False)
    assert parse("Do.\n\nRaises:\n    Nothing.") == (["Nothing."], True, False)
    assert parse("Do.\n\nRaises:\n    Nothing of ours.") == ([], True, False)
    assert parse("Do.\n\nRaises:\n    BadCommand: none is here.") == (["BadCommand"], False, False)
    assert parse("Do.\n\nRaises:\n    Whatever the callback raises.") == ([], False, True)
    assert parse("Do.") is None


def test_src_has_no_placeholder_raises_section(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10 §9: a docstring names the errors a callable can raise, never a bare ``Raises: Nothing.``."""
    check_raises = _load()
    assert check_raises.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    placeholders = [f"{f['path']}:{f['line']} {f['function']}" for f in report["findings"]
                    if f["kind"] == "nothing" and f.get("only")]
    assert report["summary"]["nothing_only"] == 0, placeholders
