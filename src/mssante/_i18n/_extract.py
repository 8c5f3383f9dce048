"""Extract the catalogue's messages from the sources and update the ``.po`` files.

``python -m mssante._i18n._extract`` rewrites ``locale/*/LC_MESSAGES/mssante.po`` from the
sources, keeping every translation already there (Babel's ``Catalog.update``); new messages
come out untranslated for a translator to fill. ``--check`` changes nothing and exits 1 when a
message lacks its French (the test suite runs the same check).

Three kinds of messages are found:

- ``_()``/``gettext()``/``ngettext()``/``pgettext()`` calls in Python (Babel's extractor);
- ``{% trans %}`` blocks and ``_()`` calls in the webmail's Jinja templates;
- the findings of :mod:`mssante.xdm`, :mod:`mssante.message` and :mod:`mssante.cda`: each
  ``out.add(severity, rule, MESSAGE, ...)`` whose message is a literal or an f-string becomes
  a template in context ``finding``, its replacement fields numbered ``{0}``, ``{1}``….
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from mssante._i18n import DOMAIN, FINDING, LANGS, LOCALE_DIR

__all__ = ["finding_templates", "missing", "template_catalog"]

PACKAGE = Path(__file__).resolve().parent.parent
_FINDING_PACKAGES = ("xdm", "message", "cda")
_METHODS = [
    ("**/sandbox/web/templates/**.html", "jinja2.ext:babel_extract"),
    ("**.py", "python"),
]
_KEYWORDS = {"_": None, "N_": None, "_n": (1, 2), "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}


def _searched(path: str) -> bool:
    """Every source folder (Babel's default skips ``_i18n`` and any ``_`` folder), no caches."""
    name = Path(path).name
    return not name.startswith(".") and name != "__pycache__"


def _template_of(node: ast.expr) -> str | None:
    """The catalogue template of a literal or f-string message, ``None`` for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if not isinstance(node, ast.JoinedStr):
        return None
    out: list[str] = []
    index = 0
    for part in node.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            out.append(part.value.replace("{", "{{").replace("}", "}}"))
        else:
            out.append(f"{{{index}}}")
            index += 1
    return "".join(out)


def finding_templates(root: Path = PACKAGE) -> Iterator[tuple[str, str, int]]:
    """``(template, file, line)`` for every finding message of the library's validators."""
    for package in _FINDING_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add"
                        and len(node.args) >= 3):
                    template = _template_of(node.args[2])
                    if template:
                        yield template, str(path.relative_to(root.parent)), node.lineno


def template_catalog(root: Path = PACKAGE) -> Catalog:
    """Every message of the sources, as a Babel template catalogue (the ``.pot``)."""
    catalog = Catalog(domain=DOMAIN, project="mssante", charset="utf-8")
    extracted = extract_from_dir(str(root), method_map=_METHODS, keywords=_KEYWORDS,
                                 options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n",
                                                                   "trimmed": "true"}},
                                 strip_comment_tags=True, directory_filter=_searched)
    for filename, lineno, message, comments, context in extracted:
        catalog.add(message, None, [(f"mssante/{filename}", lineno)], auto_comments=comments, context=context)
    for template, filename, lineno in finding_templates(root):
        catalog.add(template, None, [(filename, lineno)], context=FINDING)
    return catalog


def _po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _ids(message_id: object) -> tuple[str, ...]:
    if isinstance(message_id, (tuple, list)):
        return tuple(str(m) for m in message_id)
    return () if message_id is None else (str(message_id),)


def missing(lang: str = "fr", root: Path = PACKAGE) -> list[str]:
    """The source messages with no usable ``lang`` translation (absent, empty or fuzzy)."""
    with open(_po_path(lang), "rb") as handle:
        translated = read_po(handle, locale=lang, domain=DOMAIN)
    out: list[str] = []
    for message in template_catalog(root):
        if not message.id:
            continue
        entry = translated.get(message.id, context=message.context)
        strings = _ids(entry.string) if entry is not None else ()
        if entry is None or entry.fuzzy or not all(strings):
            out.append(f"{message.context + ': ' if message.context else ''}{_ids(message.id)[0]!r}")
    return out


def update(langs: Iterable[str] | None = None) -> None:
    """Rewrite the ``.po`` files of ``langs`` (default: every language but English) from the sources."""
    template = template_catalog()
    for lang in langs if langs is not None else [lang for lang in LANGS if lang != "en"]:
        path = _po_path(lang)
        if path.exists():
            with open(path, "rb") as handle:
                catalog = read_po(handle, locale=lang, domain=DOMAIN)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, project="mssante")
        catalog.update(template, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            write_po(handle, catalog, width=120, omit_header=False, ignore_obsolete=True, sort_output=False,
                     include_previous=False)


def _main(argv: list[str]) -> int:
    if "--check" in argv:
        gaps = missing()
        for gap in gaps:
            print(f"no French for {gap}")
        return 1 if gaps else 0
    update()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
