"""Generate ``docs/api.md``, the API reference, from the docstrings of mssante's public modules.

Usage::

    .venv/bin/python docs/gen_api.py            # (re)write docs/api.md
    .venv/bin/python docs/gen_api.py --check    # exit 1 when docs/api.md is not up to date (CI)

For each public name (``__all__``) of each module of :data:`MODULES`: its kind, its signature,
the first paragraph of its docstring and its ``Raises:`` section; for classes, the same for
their public methods and properties (inherited ones included when defined in mssante). A name
re-exported by several modules is described once, in the module closest to where it is
defined; the others link to it.

The output depends only on the source: no date, no memory address, stable order.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: The documented modules, in reading order.
MODULES: tuple[str, ...] = (
    "mssante.client",
    "mssante.credentials",
    "mssante.discovery",
    "mssante.trust",
    "mssante.message",
    "mssante.xdm",
    "mssante.cda",
    "mssante.pdf",
    "mssante.psc",
    "mssante.bridge.client",
    "mssante.bridge",
    "mssante.trace",
    "mssante.errors",
    "mssante.wire",
    "mssante.secret",
    "mssante.clock",
    "mssante.testing",
    "mssante.annuaire",
    "mssante.sandbox.runner",
    "mssante.sandbox.config",
    "mssante.sandbox.fronts.faults",
    "mssante.sandbox.fronts.journal",
    "mssante.conformance",
    "mssante.fleet",
    "mssante",
)
OUTPUT = Path(__file__).resolve().parent / "api.md"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_SECTION = re.compile(r"^(Args|Arguments|Attributes|Returns|Yields|Raises|Example|Examples|Note|Notes):\s*(.*)$")
_WIDTH = 100


# -- docstrings --------------------------------------------------------------------------------
def _doc(obj: Any) -> str:
    doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else None
    return inspect.cleandoc(doc) if doc else ""


def summary(doc: str) -> str:
    """The first paragraph of a docstring, on one line (a section header ends it too)."""
    lines: list[str] = []
    for line in doc.splitlines():
        if not line.strip() or _SECTION.match(line.strip()):
            break
        lines.append(line.strip())
    return " ".join(lines)


def raises(doc: str) -> list[str]:
    """The entries of the ``Raises:`` section, one string per exception (continuations joined)."""
    lines = doc.splitlines()
    for index, line in enumerate(lines):
        match = _SECTION.match(line.strip())
        if not match or match.group(1) != "Raises" or line[: len(line) - len(line.lstrip())]:
            continue
        body = [match.group(2)] if match.group(2) else []
        for following in lines[index + 1:]:
            if following.strip() and not following[:1].isspace():
                break  # the next section
            body.append(following)
        return _entries(body)
    return []


def _entries(body: list[str]) -> list[str]:
    texts = [line for line in body if line.strip()]
    if not texts:
        return []
    base = min(len(t) - len(t.lstrip()) for t in texts)
    entries: list[str] = []
    for text in texts:
        indent = len(text) - len(text.lstrip())
        if indent <= base or not entries:
            entries.append(text.strip())
        else:
            entries[-1] += " " + text.strip()
    return entries


def _clean(text: str) -> str:
    """Sphinx roles to Markdown code: ``:class:`~a.b.C``` becomes ```C```, ````x```` becomes ```x```."""
    text = re.sub(r":(?:class|func|meth|attr|mod|data|exc|obj):`~?([^`]+)`",
                  lambda m: f"`{m.group(1).rsplit('.', 1)[-1] if '~' in m.group(0) else m.group(1)}`", text)
    return text.replace("``", "`")


# -- signatures --------------------------------------------------------------------------------
def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return _ADDRESS.sub("", text)


def _default(value: Any) -> str:
    if value is dataclasses.MISSING:
        return ""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return _ADDRESS.sub("", repr(value))


def signature(obj: Callable[..., Any], *, skip_first: bool = False) -> str:
    """``(a: int, *, b: str = 'x') -> T`` with annotations exactly as written in the source."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = list(sig.parameters.values())
    if skip_first and params:
        params = params[1:]
    parts: list[str] = []
    keyword_only_marked = False
    for param in params:
        if param.kind is param.KEYWORD_ONLY and not keyword_only_marked:
            parts.append("*")
            keyword_only_marked = True
        elif param.kind is param.VAR_POSITIONAL:
            keyword_only_marked = True
        prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        text = prefix + param.name
        annotation = _annotation(param.annotation)
        if annotation:
            text += f": {annotation}"
        if param.default is not param.empty:
            text += (" = " if annotation else "=") + _default(param.default)
        parts.append(text)
        if param.kind is param.POSITIONAL_ONLY and (
            params.index(param) == len(params) - 1 or params[params.index(param) + 1].kind is not param.POSITIONAL_ONLY
        ):
            parts.append("/")
    returns = _annotation(sig.return_annotation)
    tail = f" -> {returns}" if returns and returns != "None" else ""
    return f"({', '.join(parts)}){tail}"


def _wrap(prefix: str, sig: str) -> str:
    """One line when short, else one parameter per line."""
    if len(prefix) + len(sig) <= _WIDTH or not sig.startswith("("):
        return prefix + sig
    depth, start, inner = 0, 1, []
    close = len(sig)
    for index, char in enumerate(sig):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                close = index
                break
        elif char == "," and depth == 1:
            inner.append(sig[start:index].strip())
            start = index + 1
    inner.append(sig[start:close].strip())
    return prefix + "(\n" + "".join(f"    {p},\n" for p in inner if p) + sig[close:]


# -- objects ------------------------------------------------------------------------------------
def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return "exception"
        if issubclass(obj, enum.Enum):
            return "enum"
        if getattr(obj, "_is_protocol", False):
            return "protocol"
        return "dataclass" if dataclasses.is_dataclass(obj) else "class"
    if inspect.iscoroutinefunction(obj):
        return "async function"
    if inspect.isfunction(obj):
        return "function"
    return "constant"


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties of ``cls`` and of its mssante bases, in definition order."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("mssante") or klass is object:
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            if isinstance(value, property | classmethod | staticmethod) or inspect.isfunction(value):
                seen.add(name)
                yield name, value


def _member(name: str, value: Any) -> list[str]:
    if isinstance(value, property):
        head, doc = f"- **`{name}`** (property)", _doc(value.fget)
    else:
        func = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        tag = "classmethod" if isinstance(value, classmethod) else "staticmethod" if isinstance(value, staticmethod) \
            else "async" if inspect.iscoroutinefunction(func) else \
            "async generator" if inspect.isasyncgenfunction(func) else ""
        sig = signature(func, skip_first=not isinstance(value, staticmethod))
        head, doc = f"- **`{name}{sig}`**" + (f" ({tag})" if tag else ""), _doc(func)
    text = summary(doc)
    lines = [head + (f" — {_clean(text)}" if text else "")]
    lines += [f"  - *Raises* {_clean(entry)}" for entry in raises(doc)]
    return lines


def describe(name: str, obj: Any) -> list[str]:
    """The Markdown of one public name."""
    kind = _kind(obj)
    lines = [f"### `{name}`", "", f"*{kind}*", ""]
    if kind == "constant":
        text = _ADDRESS.sub("", repr(obj))
        lines += ["```python", f"{name} = {text if len(text) <= 300 else text[:297] + '...'}", "```", ""]
        return lines
    doc = _doc(obj)
    if kind == "enum":
        lines += ["```python", *(f"{name}.{m.name} = {m.value!r}" for m in obj), "```", ""]
    elif kind != "protocol":
        prefix = ("async def " if kind == "async function" else "def " if kind == "function" else "class ") + name
        target = obj.__init__ if kind == "exception" and "__init__" in vars(obj) else obj
        sig = signature(target, skip_first=target is not obj)
        if kind != "exception" or target is not obj:
            lines += ["```python", _wrap(prefix, sig), "```", ""]
    text = summary(doc)
    if text:
        lines += [_clean(text), ""]
    entries = raises(doc)
    if entries:
        lines += ["**Raises**", "", *(f"- {_clean(e)}" for e in entries), ""]
    if kind == "exception":
        lines += [f"`fault = {obj.fault!r}`, `error = {obj.error!r}`, exit code {obj.exit_code}", ""]
    elif inspect.isclass(obj) and kind != "enum":
        members = [line for member in _members(obj) for line in _member(*member)]
        if members:
            lines += ["**Members**", "", *members, ""]
    return lines


def _anchor(module: str) -> str:
    return module.replace(".", "")


def _home(obj: Any, exporters: list[str]) -> str:
    """The module that describes ``obj``: the longest exporter that is a prefix of where it is defined."""
    where = getattr(obj, "__module__", None) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None
    if isinstance(where, str):
        fits = [m for m in exporters if where == m or where.startswith(m + ".")]
        if fits:
            return max(fits, key=len)
    return exporters[0]


def generate() -> str:
    """The whole reference, as Markdown."""
    modules = {}
    for name in MODULES:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:  # an optional part absent from this installation
            continue
    exporters: dict[int, list[str]] = {}
    for name, module in modules.items():
        for public in getattr(module, "__all__", ()):
            obj = getattr(module, public)
            if not isinstance(obj, str | int | float | tuple | frozenset):
                exporters.setdefault(id(obj), []).append(name)
    out = [
        "# API reference",
        "",
        "<!-- Generated by docs/gen_api.py from the docstrings: do not edit by hand. -->",
        "",
        "Generated from the docstrings by [`gen_api.py`](gen_api.py) (`.venv/bin/python docs/gen_api.py`). "
        "Guides: [français](fr/index.md), [English](en/index.md).",
        "",
        "Modules:",
        "",
        *(f"- [`{name}`](#{_anchor(name)}) — {_clean(summary(_doc(module)))}" for name, module in modules.items()),
        "",
    ]
    for name, module in modules.items():
        out += [f"## {name}", "", _clean(summary(_doc(module))), ""]
        elsewhere: list[str] = []
        for public in getattr(module, "__all__", ()):
            obj = getattr(module, public)
            home = name if isinstance(obj, str | int | float | tuple | frozenset) else _home(obj, exporters[id(obj)])
            if home != name:
                elsewhere.append(f"[`{public}`](#{_anchor(home)})")
                continue
            out += describe(public, obj)
        if elsewhere:
            out += ["Also exported here (described in their own module): " + ", ".join(elsewhere) + ".", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write ``docs/api.md``, or with ``--check`` compare it with what would be written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run .venv/bin/python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
