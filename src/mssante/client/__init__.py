"""The mssante client library: IMAP and SMTP sessions on the API LPS (facades over wire, trust and discovery)."""

__all__: list[str] = []
