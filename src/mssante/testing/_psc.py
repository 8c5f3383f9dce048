"""Playing the professional on the sandbox's mock Pro Santé Connect: login page and CIBA."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal

import httpx2

from mssante.errors import RemoteProtocolError
from mssante.secret import Secret

__all__ = ["LoginForm", "login_through_page", "read_login_form", "sandbox_access_token"]


@dataclass
class LoginForm:
    """The first form of a page: where it posts, its hidden fields, its radio choices and buttons."""

    action: str = ""
    hidden: list[tuple[str, str]] = field(default_factory=list)
    radios: dict[str, list[str]] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form: LoginForm | None = None
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form = LoginForm(action=a.get("action", ""))
        elif self.form is None or self._done:
            return
        elif tag == "input" and a.get("type") == "hidden" and "name" in a:
            self.form.hidden.append((a["name"], a.get("value", "")))
        elif tag == "input" and a.get("type") == "radio" and "name" in a:
            self.form.radios.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "button" and "name" in a:
            self.form.buttons.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.form is not None:
            self._done = True


def read_login_form(html: str) -> LoginForm:
    """Read the first HTML form of a page (the mock PSC's login page, the webmail's pages).

    Raises:
        RemoteProtocolError: the page has no form.
    """
    reader = _FormReader()
    reader.feed(html)
    if reader.form is None:
        raise RemoteProtocolError("the page has no form")
    return reader.form


async def login_through_page(
    browser: httpx2.AsyncClient,
    authorize_url: str,
    national_id: str,
    *,
    auth_mode: Literal["CARD", "MOBILE"] = "CARD",
    action: Literal["login", "cancel"] = "login",
) -> str:
    """Play the professional's browser on the mock PSC's login page; return the redirect location.

    ``authorize_url`` is the authorization request the relying party built (code flow with
    PKCE); the returned location is the relying party's callback with ``code`` and ``state``
    (or ``error=access_denied`` for ``action="cancel"``, the page's « Annuler »). When the
    browser's PSC session cookie is still valid, PSC redirects at once (SSO) and no page is shown.

    Raises:
        RemoteProtocolError: the mock answered something else than its login page or a redirect.
        httpx2.HTTPError: the mock could not be reached.
    """
    page = await browser.get(authorize_url)
    if page.status_code in (302, 303):
        return str(page.headers["location"])
    if page.status_code != 200:
        raise RemoteProtocolError(f"the PSC login page answered HTTP {page.status_code}")
    form = read_login_form(page.text)
    data = dict([*form.hidden, ("national_id", national_id), ("auth_mode", auth_mode), ("action", action)])
    answer = await browser.post(form.action, data=data)
    if answer.status_code not in (302, 303):
        raise RemoteProtocolError(f"the PSC login form answered HTTP {answer.status_code}")
    return str(answer.headers["location"])


async def sandbox_access_token(
    info: dict[str, Any],
    national_id: str,
    *,
    channel: Literal["CARD", "MOBILE"] = "MOBILE",
    timeout: float = 120.0,  # noqa: ASYNC109 - the CIBA wait's own deadline
) -> Secret:
    """Obtain a PSC access token for a sandbox professional by CIBA, as an LPS would.

    ``info`` is the sandbox's ``sandbox.json``; the request carries what PSC requires (scope
    ``openid scope_all``, ``acr_values=eidas1``, the professional's national id as login hint)
    with the sandbox's registered client. The token lives as the sandbox's lifetimes say.

    Raises:
        ConfigError: ``info`` does not describe the mock PSC.
        PSCError: PSC refused (e.g. a professional configured to deny CIBA).
        TimeoutError: no approval within ``timeout`` seconds.
        TransportError: the sandbox does not answer.
    """
    from mssante.psc import PSCClient, PSCSettings

    client = PSCClient(PSCSettings.from_sandbox(info))
    try:
        request = await client.start_ciba(national_id, channel=channel)
        tokens = await client.wait_ciba(request, timeout=timeout)
    finally:
        await client.aclose()
    return tokens.access_token
