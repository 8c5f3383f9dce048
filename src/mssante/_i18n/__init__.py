"""The message catalogue: what people read, in French or English (issue 13, item 6).

One gettext domain, ``mssante``. Message ids are the English texts (code and API docs stay in
English); ``locale/fr/LC_MESSAGES/mssante.po`` holds the French. There is no ``.mo`` file: the
``.po`` source is read with Babel and turned into a :class:`gettext.GNUTranslations` the first
time a language is used (a few milliseconds, once per process). So an editable install, a wheel
and a bare clone all read the same committed file, and no compiled artefact can go stale or be
missing from a build (setuptools' ``build_meta`` has no compile step without a ``setup.py``).

The language is chosen, in this order, by :func:`use` (the CLI's ``--lang``, the webmail's
choice), then by the POSIX locale variables ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` (the first one
set decides): ``fr…`` is French, any other named language English. An unset, ``C`` or ``POSIX``
locale gives French, the default of a toolkit made for French users.

Library findings (:mod:`mssante.xdm`, :mod:`mssante.message`) keep their English messages, the
API's stable text; :meth:`Translator.finding` renders them for people: each finding template of
the library is a catalogue entry (context ``finding``, placeholders ``{0}``, ``{1}``…) and a
message is matched against the templates, its parameters carried over.
"""

from __future__ import annotations

import contextvars
import functools
import gettext as _gettext
import io
import os
import re
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_LANG",
    "FINDING",
    "LANGS",
    "N_",
    "Lang",
    "Translator",
    "choose",
    "current",
    "gettext",
    "language_from_env",
    "ngettext",
    "parse_lang",
    "translator",
    "use",
]

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")
DEFAULT_LANG: Lang = "fr"
DOMAIN = "mssante"
#: The gettext context (msgctxt) of the library findings' templates.
FINDING = "finding"
LOCALE_DIR = Path(__file__).parent / "locale"

_chosen: contextvars.ContextVar[Lang | None] = contextvars.ContextVar("mssante_lang", default=None)


def parse_lang(value: str | None) -> Lang | None:
    """``fr``/``en`` from a language tag or a POSIX locale (``fr_FR.UTF-8``, ``en-GB``, ``C``).

    ``None`` for an empty value or the ``C``/``POSIX`` locale, which name no language.
    """
    if not value:
        return None
    tag = re.split(r"[_.@:-]", value.strip(), maxsplit=1)[0].lower()
    if tag in ("", "c", "posix"):
        return None
    return "fr" if tag == "fr" else "en"


def language_from_env(environ: Mapping[str, str] | None = None) -> Lang:
    """The language the POSIX locale variables ask for (``LC_ALL``, ``LC_MESSAGES``, ``LANG``).

    The first variable set decides, as in POSIX; none set (or ``C``/``POSIX``) gives French.
    """
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return parse_lang(value) or DEFAULT_LANG
    return DEFAULT_LANG


@functools.cache
def _catalogue(lang: Lang) -> _gettext.NullTranslations:
    if lang == "en":  # the message ids are the English texts
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return _gettext.GNUTranslations(compiled)


_FIELD = re.compile(r"\{(\d+)\}")


@dataclass(frozen=True)
class _Template:
    pattern: re.Pattern[str]
    translated: str
    specificity: int


def _template_regex(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(f"(?P<p{name}>.*?)")
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


@dataclass(frozen=True)
class Translator:
    """The catalogue in one language.

    Attributes:
        lang: ``fr`` or ``en``.
    """

    lang: Lang
    _translations: _gettext.NullTranslations = field(repr=False)

    def gettext(self, message: str) -> str:
        """``message`` (an English catalogue id) in this language."""
        return self._translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form of ``singular``/``plural`` for ``n`` in this language (French: 0 and 1 take the singular)."""
        return self._translations.ngettext(singular, plural, n)

    def pgettext(self, context: str, message: str) -> str:
        """``message`` in ``context`` (e.g. ``severity``) in this language."""
        return self._translations.pgettext(context, message)

    def finding(self, message: str) -> str:
        """A library finding's English message in this language, its parameters kept.

        A message that matches no template of the catalogue is returned as it is.
        """
        if self.lang == "en":
            return message
        return _render_finding(self.lang, message)


@functools.cache
def _templates(lang: Lang) -> tuple[dict[str, str], tuple[_Template, ...]]:
    """The finding templates of ``lang``: literal ones by text, parametrised ones most specific first."""
    from babel.messages.pofile import read_po

    with open(LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    literal: dict[str, str] = {}
    templates: list[_Template] = []
    for entry in catalog:
        if entry.context != FINDING or not entry.id or not entry.string or entry.fuzzy:
            continue
        source, target = str(entry.id), str(entry.string)
        if not _FIELD.search(source):
            literal[source.replace("{{", "{").replace("}}", "}")] = target.replace("{{", "{").replace("}}", "}")
            continue
        fixed = len(_FIELD.sub("", source))
        templates.append(_Template(_template_regex(source), target, fixed))
    templates.sort(key=lambda t: -t.specificity)
    return literal, tuple(templates)


def _render_finding(lang: Lang, message: str, depth: int = 0) -> str:
    literal, templates = _templates(lang)
    if message in literal:
        return literal[message]
    for template in templates:
        match = template.pattern.match(message)
        if match is None:
            continue
        values = {name[1:]: value for name, value in match.groupdict().items()}
        if depth < 2:  # a finding quoting another one ("IHE_XDM.ZIP: <archive finding>")
            values = {k: _render_finding(lang, v, depth + 1) for k, v in values.items()}
        return template.translated.format(*(values[str(i)] for i in range(len(values))))
    return message


def _quoted_finding(t: Translator) -> str:
    """The catalogue's least specific finding template: a location, then a finding it quotes.

    ``IHE_XDM/SUBSET01/DOC0001.XML: INS uses…`` is built by the message checks from an archive
    finding and its place; being the least specific template it is tried last, and its two
    parts are rendered in turn (so the quoted finding is translated). Never called: it only
    puts the template in the extracted catalogue.
    """
    return t.pgettext("finding", "{0}: {1}")


def translator(lang: Lang) -> Translator:
    """The :class:`Translator` of ``lang`` (loaded once per process).

    Raises:
        OSError: the catalogue file is missing (a broken installation).
    """
    return Translator(lang, _catalogue(lang))


def current() -> Translator:
    """The translator of the language in use: :func:`use`'s, else the locale's."""
    return translator(_chosen.get() or language_from_env())


@contextmanager
def use(lang: Lang | None) -> Iterator[Translator]:
    """Use ``lang`` (``None``: the locale's) for :func:`current` within the block (context-local)."""
    token = _chosen.set(lang)
    try:
        yield current()
    finally:
        _chosen.reset(token)


def choose(lang: Lang | None) -> None:
    """Use ``lang`` from now on in this context (the CLI's ``--lang``)."""
    _chosen.set(lang)


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it (translate it when shown)."""
    return message


def gettext(message: str) -> str:
    """``message`` in the language in use."""
    return current().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The plural form for ``n`` in the language in use."""
    return current().ngettext(singular, plural, n)
