"""Properties of the Java LPS's hand-written JSON reader and writer (docs/examples/java/src/lps/Json.java).

One JVM runs tests/java/JsonEcho.java (a test helper compiled beside the LPS) for the whole
module; each example is one line in, one line out. Whatever Python's ``json`` writes, the Java
reader reads the same value and its writer writes it back; malformed input is refused with a
message, never a crash.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._hypothesis import examples

HELPER = Path(__file__).with_name("JsonEcho.java")

_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | _text)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                       | st.dictionaries(_text, inner, max_size=5), max_leaves=30)


class Echo:
    """The helper process: a line in, a line out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def __call__(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "the Java helper died"
        return answer.rstrip("\n")


@pytest.fixture(scope="module")
def echo(java_classes: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Echo]:
    out = tmp_path_factory.mktemp("json-echo")
    command = ["javac", "-encoding", "UTF-8", "-Xlint:all", "-Werror", "-cp", str(java_classes), "-d", str(out),
               str(HELPER)]
    done = subprocess.run(command,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    process = subprocess.Popen(["java", "-cp", f"{java_classes}:{out}", "lps.JsonEcho"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        yield Echo(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=0, abs_tol=0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=examples(300), deadline=None)
@given(value=_values, ascii_only=st.booleans())
def test_what_python_writes_java_reads_and_writes_back(echo: Echo, value: Any, ascii_only: bool) -> None:
    answer = echo(json.dumps(value, ensure_ascii=ascii_only))
    assert answer.startswith("OK "), answer
    assert _same(json.loads(answer[3:]), value)


@settings(max_examples=examples(300), deadline=None)
@given(line=st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"), max_size=60))
def test_any_line_is_read_or_refused_with_a_message(echo: Echo, line: str) -> None:
    answer = echo(line)
    assert answer.startswith(("OK ", "ERR JSON: "))
    if answer.startswith("OK "):
        assert _same(json.loads(answer[3:]), json.loads(line))


@pytest.mark.parametrize("line", ["[" * 70 + "]" * 70, "+0", "00", "1e400", "1.", '{"a": 1,}', '"\\u12"', "01x",
                                  '"tab\there"', "nul", ""])
def test_malformed_or_too_deep_input_is_refused(echo: Echo, line: str) -> None:
    assert echo(line).startswith("ERR JSON: ")
