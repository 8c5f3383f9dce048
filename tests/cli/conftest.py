"""The CLI tests run commands in-process: a ``--lang`` choice must not outlive its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mssante._i18n import choose


@pytest.fixture(autouse=True)
def _locale_language_after_each_test() -> Iterator[None]:
    yield
    choose(None)  # back to the locale's language (the suite pins fr_FR), as the CLI's own --lang callback does
