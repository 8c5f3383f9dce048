"""Settings shared by the whole suite: Hypothesis profiles (see tests/_hypothesis.py)."""

from __future__ import annotations

import os

import tests._hypothesis  # noqa: F401 - registers and loads the Hypothesis profile

# The messages people read follow the locale (mssante._i18n): the suite pins French, the default of
# a toolkit for French users, so that its assertions do not depend on the machine's LANG.
for _name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "fr_FR.UTF-8"
