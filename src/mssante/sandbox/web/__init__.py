"""The sandbox webmail: read and send as a test BAL, in French, on the sandbox HTTP port.

Starlette pages rendered with Jinja2 (auto-escaped) and a vendored htmx (``static/``, BSD-0):
log in as a PER/ORG BAL through the mock Pro Santé Connect (code flow + PKCE) or pick an APP
BAL; read folders that update live (server-sent events); see X-MSS headers, MDN/DSN reports,
XDM documents and a plain rendering of their CDA; compose with attachments; see the session
journal and the last conformance results. Nothing is loaded from outside the sandbox.
"""

from mssante.sandbox.web.app import Webmail

__all__ = ["Webmail"]
