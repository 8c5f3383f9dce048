"""Helpers for tests of software built on mssante, ours and LPS editors' alike.

- :class:`FakeClock`: a :class:`mssante.clock.Clock` that moves only when the test says so, so
  token lifetimes, refresh margins and backoffs run instantly and deterministically;
- :func:`running_sandbox`: the whole sandbox operator on loopback for a block of a test;
- :func:`login_through_page` and :func:`sandbox_access_token`: the professional's side of the
  mock Pro Santé Connect (its login page for the code flow; CIBA for a token);
- :func:`read_login_form`: the first form of an HTML page (login page, webmail pages).

The sandbox helpers need the ``sandbox`` extra (``pip install 'mssante[sandbox]'``).
"""

from __future__ import annotations

from ._clock import FakeClock
from ._psc import LoginForm, login_through_page, read_login_form, sandbox_access_token
from ._sandbox import running_sandbox

__all__ = ["FakeClock", "LoginForm", "login_through_page", "read_login_form", "running_sandbox", "sandbox_access_token"]
