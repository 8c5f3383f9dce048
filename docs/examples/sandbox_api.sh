#!/usr/bin/env bash
# Drive the sandbox from a CI job in any language: plain HTTP + JSON on 127.0.0.1 (no authentication).
#   bash docs/examples/sandbox_api.sh .sandbox/sandbox.json
# The full description is served at $API/openapi.json (OpenAPI 3.1).
set -euo pipefail

SANDBOX_JSON=${1:-.sandbox/sandbox.json}
# field a.0.b: read one value of the JSON document on stdin (jq would do as well).
field() {
  python3 -c 'import functools, json, sys
print(functools.reduce(lambda v, k: v[int(k)] if isinstance(v, list) else v[k], sys.argv[1].split("."), json.load(sys.stdin)))' "$1"
}

API=$(field api_url < "$SANDBOX_JSON")
DOMAIN=$(field domain < "$SANDBOX_JSON")
BAL="dpi.hopital@$DOMAIN"

curl -sf "$API/health"; echo

# 1. Start from an empty BAL, then put a message in its INBOX without SMTP (a test shortcut).
curl -sf -X DELETE "$API/bals/$BAL" > /dev/null
printf 'From: sil.labo@%s\r\nTo: %s\r\nSubject: Test CI\r\nMessage-ID: <ci-1@%s>\r\n\r\nBonjour.\r\n' \
  "$DOMAIN" "$BAL" "$DOMAIN" |
  curl -sf -X POST -H 'Content-Type: message/rfc822' --data-binary @- "$API/bals/$BAL/messages?folder=INBOX"
echo

# 2. What the BAL holds: envelope, X-MSS headers, XDM content and the Référentiel #2 findings.
curl -sf "$API/bals/$BAL/messages?folder=INBOX" | field messages.0.check

# 3. Fault injection: the next authentication of this BAL fails with [AUTHENTICATIONFAILED].
curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"fail_auth\": {\"count\": 1, \"code\": \"AUTHENTICATIONFAILED\", \"bal\": \"$BAL\"}}" "$API/faults"
echo
curl -sf "$API/faults" | field pending_auth_failures
curl -sf -X DELETE "$API/faults" > /dev/null                # back to normal
curl -sf -X DELETE "$API/sessions/$BAL?mode=bye"; echo       # end the BAL's live sessions (BYE)

# 4. The session journal (what the operator saw: TLS, SASL mechanism, commands; never a secret).
curl -sf "$API/journal?bal=$BAL&format=jsonl" | tail -n 1 | head -c 300; echo
