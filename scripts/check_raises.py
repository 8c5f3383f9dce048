#!/usr/bin/env python3
"""Check the ``Raises:`` sections of the docstrings under src/ against what the code can raise.

House rule: a public callable names the errors it can raise, and only those (issue 10 §9). This
script reads the code (``ast``, nothing is imported) and lists:

* ``nothing``: sections that say only "Nothing" (``Raises: Nothing.``), the placeholder the
  rule asks to replace; with the subset whose body *does* raise or calls one of our functions
  that documents an error (``nothing-but-raises``): those are wrong, not only empty;
* ``cannot-raise``: a documented error of ours (a class defined under src/, e.g. the
  :mod:`mssante.errors` tree) that the function neither raises (``raise X``, a subclass, or a
  bare re-raise of a caught one) nor gets from a call to one of our functions documenting it
  (or a relative: a callee documenting ``MssanteError`` may raise ``TokenRejected``). Foreign
  errors (``OSError``, ``ValueError``...) are left alone: any library call may raise them.

The analysis is an approximation, by name (a call ``x.send(...)`` counts every project function
called ``send``): a finding is a place to look, not a proof. Callables whose Raises section
defers to another (``Whatever X raises``, ``see :meth:...``) are reported as ``deferred`` and
not judged.

Usage::

    python scripts/check_raises.py            # summary and every finding
    python scripts/check_raises.py --summary  # the counts only
    python scripts/check_raises.py --json     # machine-readable
    python scripts/check_raises.py --strict   # exit 1 when anything is found (for CI, after the sweep)
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

_SECTION = re.compile(r"^(\s*)Raises:\s*$", re.MULTILINE)
_ENTRY = re.compile(r"^([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*:(?:\s|$)")
# "Nothing.", and the variant "MssanteError: none on purpose."
_NOTHING = re.compile(r"^\s*(Nothing\b|\w+:\s*none(\s+on purpose)?\s*(\.|\(|$))", re.IGNORECASE)
_DEFERS = re.compile(r"\b(whatever|see\s+:|as\s+:|anything|same as)\b", re.IGNORECASE)


@dataclass
class Function:
    """One documented function and what its Raises section and body say."""

    path: str
    line: int
    name: str
    documented: list[str]
    nothing: bool
    deferred: bool
    owner: str = ""
    has_section: bool = True
    interface: bool = False
    raises: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)
    #: Calls whose target is known: ``f(...)`` (a module-level function or a class) and ``self.m(...)``
    #: (``Owner.m``).
    sure_calls: set[str] = field(default_factory=set)
    caught: set[str] = field(default_factory=set)
    reraises: bool = False


def raises_section(doc: str) -> tuple[list[str], bool, bool] | None:
    """The error names of a docstring's Raises section, whether it says Nothing, whether it defers.

    None when the docstring has no Raises section.
    """
    match = _SECTION.search(doc)
    if match is None:
        return None
    indent = len(match.group(1))
    body: list[str] = []
    for line in doc[match.end():].splitlines()[1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break  # the next section (Returns:, Example::...) or the end of the docstring
        body.append(line)
    text = "\n".join(body).strip()
    if not text:
        return [], False, False
    if _NOTHING.match(text):
        return ["Nothing."] if text == "Nothing." else [], True, False
    names: list[str] = []
    for line in body:
        entry = _ENTRY.match(line.strip())
        if entry and len(line) - len(line.lstrip()) <= indent + 4 + 1:
            names += [n.strip().rsplit(".", 1)[-1] for n in entry.group(1).split(",")]
    return names, False, bool(_DEFERS.search(text)) and not names


def _name(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``fn``'s body, not those of functions or classes nested in it."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _is_interface(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A protocol or abstract method: docstring then only ``...``, ``pass`` or ``raise NotImplementedError``."""
    body = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(
        fn.body[0].value, ast.Constant) else fn.body
    return all((isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)) or isinstance(b, ast.Pass)
               or (isinstance(b, ast.Raise) and _name(b.exc) == "NotImplementedError") for b in body)


def _handler_types(handler: ast.ExceptHandler) -> list[str]:
    if handler.type is None:
        return ["BaseException"]
    items = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return [n for n in (_name(i) for i in items) if n]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def scan(path: Path) -> tuple[list[Function], dict[str, list[str]]]:
    """The documented functions of one file, and the classes it defines (name -> base names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    classes = {node.name: [b for b in (_name(base) for base in node.bases) if b]
               for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    owners = {id(item): node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef) for item in node.body}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node)
        section = raises_section(doc) if doc else None
        documented, nothing, deferred = section if section is not None else ([], False, False)
        fn = Function(path=_shown(path), line=node.lineno, name=node.name, documented=documented,
                      nothing=nothing, deferred=deferred, owner=owners.get(id(node), ""),
                      has_section=section is not None, interface=_is_interface(node))
        for sub in _own_nodes(node):
            if isinstance(sub, ast.Raise):
                if sub.exc is None:
                    fn.reraises = True
                elif (raised := _name(sub.exc)) is not None:
                    fn.raises.add(raised)
            elif isinstance(sub, ast.Call):
                if (called := _name(sub.func)) is not None:
                    fn.calls.add(called)
                if isinstance(sub.func, ast.Name):
                    fn.sure_calls.add(sub.func.id)
                elif (isinstance(sub.func, ast.Attribute) and isinstance(sub.func.value, ast.Name)
                      and sub.func.value.id in ("self", "cls") and fn.owner):
                    fn.sure_calls.add(f"{fn.owner}.{sub.func.attr}")
                # a function handed over to be called (``asyncio.to_thread(self._call, ...)``)
                fn.calls.update(n for n in (_name(a) for a in sub.args if isinstance(a, ast.Name | ast.Attribute))
                                if n)
            elif isinstance(sub, ast.ExceptHandler):
                fn.caught.update(_handler_types(sub))
            elif isinstance(sub, ast.With | ast.AsyncWith):  # contextlib.suppress(X, Y)
                for item in sub.items:
                    if isinstance(item.context_expr, ast.Call) and _name(item.context_expr.func) == "suppress":
                        fn.caught.update(n for n in (_name(a) for a in item.context_expr.args) if n)
        found.append(fn)
    return found, classes


class Hierarchy:
    """Exception classes by simple name: the project's (from the source) and the builtins."""

    def __init__(self, project: dict[str, list[str]]) -> None:
        self.project = project
        self._builtin = {n: c for n, c in vars(builtins).items()
                         if isinstance(c, type) and issubclass(c, BaseException)}

    def ancestors(self, name: str) -> set[str]:
        """``name`` and every class it derives from."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in self.project:
                todo.extend(self.project[current])
            elif current in self._builtin:
                todo.extend(b.__name__ for b in self._builtin[current].__mro__[1:])
        return seen

    def related(self, a: str, b: str) -> bool:
        """One is the other or derives from it."""
        return a in self.ancestors(b) or b in self.ancestors(a)

    def is_ours(self, name: str) -> bool:
        """A class defined under src/ that is an exception."""
        return name in self.project and "BaseException" in self.ancestors(name)


@dataclass
class Finding:
    """One place to look."""

    kind: str
    path: str
    line: int
    function: str
    detail: str


def check(functions: list[Function], hierarchy: Hierarchy) -> list[Finding]:
    """Every finding, in file order."""
    by_name: dict[str, list[Function]] = defaultdict(list)
    for fn in functions:
        by_name[fn.name].append(fn)
    sure: dict[str, list[Function]] = defaultdict(list)
    for fn in functions:  # calling a class runs its __init__
        if fn.name == "__init__" and fn.owner:
            by_name[fn.owner].append(fn)
            sure[fn.owner].append(fn)
        sure[f"{fn.owner}.{fn.name}" if fn.owner else fn.name].append(fn)
    # What each function may raise, through every project function it calls (by name), to a fixpoint.
    may: dict[int, set[str]] = {id(fn): set(fn.raises) | set(fn.documented) | (fn.caught if fn.reraises else set())
                                for fn in functions}
    changed = True
    while changed:
        changed = False
        for fn in functions:
            mine = may[id(fn)]
            before = len(mine)
            for called in fn.calls:
                for callee in by_name.get(called, ()):
                    mine |= may[id(callee)]
            changed |= len(mine) != before
    findings = []
    for fn in functions:
        if not fn.has_section:
            continue
        if fn.interface:
            findings.append(Finding("interface", fn.path, fn.line, fn.name,
                                    "protocol or abstract method: documents its implementations' errors"))
            continue
        if fn.nothing:
            # One level only: what the body raises, and what the functions it surely calls document.
            sources = set(fn.raises) | (fn.caught if fn.reraises else set())
            for called in fn.sure_calls:
                for callee in sure.get(called, ()):
                    if callee is not fn:
                        sources.update(callee.documented)
            findings.append(Finding("nothing", fn.path, fn.line, fn.name,
                                    "only 'Nothing.'" if fn.documented == ["Nothing."] else "Nothing, with a note"))
            # an except clause for the error or an ancestor may stop it (try scopes are not followed)
            ours = sorted(s for s in sources if hierarchy.is_ours(s)
                          and not any(c in hierarchy.ancestors(s) for c in fn.caught))
            if fn.raises or ours:
                shown = sorted(fn.raises) or ours
                findings.append(Finding("nothing-but-raises", fn.path, fn.line, fn.name,
                                        "says Nothing, may raise " + ", ".join(shown)))
            continue
        if fn.deferred:
            findings.append(Finding("deferred", fn.path, fn.line, fn.name, "Raises section defers to another"))
            continue
        sources = set(fn.raises) | (fn.caught if fn.reraises else set())
        for called in fn.calls:
            for callee in by_name.get(called, ()):
                if callee is not fn:
                    sources |= may[id(callee)]
        if any("BaseException" not in hierarchy.ancestors(r) for r in fn.raises):
            continue  # raises what a call returns (``raise map_ssl_error(exc)``): any error may come out
        for error in fn.documented:
            if not hierarchy.is_ours(error):
                continue
            if not any(hierarchy.related(error, s) for s in sources):
                findings.append(Finding("cannot-raise", fn.path, fn.line, fn.name,
                                        f"documents {error}, which nothing in its body raises or calls"))
    return findings


def main(argv: list[str] | None = None) -> int:
    """Run the check; the exit status is 1 with ``--strict`` and findings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders to report on (default: src/)")
    parser.add_argument("--tree", type=Path, default=SRC, help="the source tree read for classes and callees")
    parser.add_argument("--summary", action="store_true", help="print the counts only")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 on findings (other than 'deferred' and 'interface')")
    args = parser.parse_args(argv)
    files = sorted({f for p in (args.paths or [args.tree]) for f in ([p] if p.is_file() else p.rglob("*.py"))})
    functions: list[Function] = []
    classes: dict[str, list[str]] = {}
    for path in sorted(args.tree.rglob("*.py")):  # the hierarchy and callees come from the whole tree
        found, defined = scan(path.resolve())
        classes.update(defined)
        functions += found
    chosen = {_shown(f.resolve()) for f in files}
    findings = [f for f in check(functions, Hierarchy(classes)) if f.path in chosen]
    counts: dict[str, int] = defaultdict(int)
    for finding in findings:
        counts[finding.kind] += 1
    sections = sum(1 for f in functions if f.path in chosen and f.has_section)
    bare = sum(1 for f in findings if f.kind == "nothing" and f.detail == "only 'Nothing.'")
    summary = {"raises_sections": sections, "nothing_only": bare, **{k: counts.get(k, 0) for k in
               ("nothing", "nothing-but-raises", "cannot-raise", "deferred", "interface")}}
    if args.json:
        print(json.dumps({"summary": summary, "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        if not args.summary:
            for finding in findings:
                if finding.kind not in ("nothing", "interface"):
                    print(f"{finding.path}:{finding.line}: {finding.function}: [{finding.kind}] {finding.detail}")
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 1 if args.strict and any(f.kind not in ("deferred", "interface") for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
