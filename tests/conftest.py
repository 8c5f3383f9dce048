"""Settings shared by the whole suite: Hypothesis profiles (see tests/_hypothesis.py)."""

from __future__ import annotations

import os

import tests._hypothesis  # noqa: F401 - registers and loads the Hypothesis profile

# The messages people read follow the locale (mssante._i18n): the suite pins C.UTF-8, which every
# Debian machine has and which gives French (the default of a toolkit for French users), so that its
# assertions do not depend on the machine's LANG. A locale the machine lacks (fr_FR.UTF-8 on a bare
# Debian) would leave other programs (the JDK of tests/java) in ASCII.
for _name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"
