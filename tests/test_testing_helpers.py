"""mssante.testing's page reader (the CIBA and sandbox helpers run in the PSC and client suites)."""

from __future__ import annotations

import pytest

from mssante.errors import RemoteProtocolError
from mssante.testing import read_login_form

PAGE = """<html lang="fr"><body>
<form method="post" action="/login-actions/authenticate?tab=1">
  <input type="hidden" name="session_code" value="abc">
  <input type="radio" name="auth_mode" value="CARD"><input type="radio" name="auth_mode" value="MOBILE">
  <input type="text" name="national_id">
  <button type="submit" name="action" value="login">Se connecter</button>
  <button type="submit" name="action" value="cancel">Annuler</button>
</form>
<form action="/other"><input type="hidden" name="x" value="y"></form>
</body></html>"""


def test_reads_the_first_form_only() -> None:
    form = read_login_form(PAGE)
    assert form.action == "/login-actions/authenticate?tab=1"
    assert form.hidden == [("session_code", "abc")]
    assert form.radios == {"auth_mode": ["CARD", "MOBILE"]}
    assert form.buttons == [("action", "login"), ("action", "cancel")]


def test_a_page_without_a_form_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError, match="no form"):
        read_login_form("<html><body><p>Erreur</p></body></html>")
