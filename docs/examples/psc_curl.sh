#!/bin/sh
# Pro Santé Connect by hand, with curl, against the sandbox's mock PSC: discovery, CIBA,
# authorization code + PKCE, refresh. Nothing but curl, sed and openssl (no jq, no Python).
#   sh docs/examples/psc_curl.sh .sandbox/sandbox.json 899700000001
# Every value comes from sandbox.json (psc.issuer, psc.client_id, psc.client_secret).
set -eu
STATE=${1:-.sandbox/sandbox.json}
NATIONAL_ID=${2:-899700000001}

# field KEY: the string (or number) value of "KEY" in the JSON on stdin (flat objects only).
field() { tr -d '\n' | sed -n "s/.*\"$1\" *: *\"\{0,1\}\([^\",}]*\).*/\1/p"; }
ISSUER=$(field issuer < "$STATE")
CLIENT_ID=$(field client_id < "$STATE")
CLIENT_SECRET=$(field client_secret < "$STATE")

# 1. Discovery: PSC publishes its endpoints at .well-known/wallet-openid-configuration.
curl -s -f "$ISSUER/.well-known/wallet-openid-configuration" > discovery.json
TOKEN_URL=$(field token_endpoint < discovery.json)
CIBA_URL=$(field backchannel_authentication_endpoint < discovery.json)
AUTH_URL=$(field authorization_endpoint < discovery.json)
echo "token endpoint: $TOKEN_URL"

# 2. CIBA (poll mode): PSC requires scope "openid scope_all", acr_values=eidas1, the national id
#    as login_hint and a short binding_message; the client authenticates (client_secret_basic).
curl -s -f -u "$CLIENT_ID:$CLIENT_SECRET" "$CIBA_URL" \
  -d "scope=openid scope_all" -d acr_values=eidas1 -d "login_hint=$NATIONAL_ID" -d binding_message=42 > ciba.json
AUTH_REQ_ID=$(field auth_req_id < ciba.json)
INTERVAL=$(field interval < ciba.json)
while :; do  # authorization_pending until the professional approves on the e-CPS app
  sleep "${INTERVAL:-1}"
  curl -s -u "$CLIENT_ID:$CLIENT_SECRET" "$TOKEN_URL" \
    -d grant_type=urn:openid:params:grant-type:ciba -d "auth_req_id=$AUTH_REQ_ID" > tokens.json
  grep -q '"access_token"' tokens.json && break
  grep -q 'authorization_pending\|slow_down' tokens.json || { cat tokens.json; exit 1; }
done
echo "CIBA: access token of $(field expires_in < tokens.json) s"

# 3. Refresh: a new access token (and a new refresh token: PSC rotates them) without the professional.
REFRESH=$(field refresh_token < tokens.json)
curl -s -f -u "$CLIENT_ID:$CLIENT_SECRET" "$TOKEN_URL" \
  -d grant_type=refresh_token -d "refresh_token=$REFRESH" > refreshed.json
echo "refresh: new access token of $(field expires_in < refreshed.json) s"

# 4. Authorization code + PKCE (RFC 7636 S256). A browser would show PSC's login page; the mock's page
#    is a plain form, so curl posts the choice (national_id, auth_mode, action=login) directly.
VERIFIER=$(openssl rand -hex 32)
CHALLENGE=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
REDIRECT=http://127.0.0.1/callback
curl -s -o /dev/null -D login.headers "$AUTH_URL" \
  -d response_type=code -d "client_id=$CLIENT_ID" -d "redirect_uri=$REDIRECT" -d "scope=openid scope_all" \
  -d acr_values=eidas1 -d state=xyz -d nonce=n-0S6 -d "code_challenge=$CHALLENGE" -d code_challenge_method=S256 \
  -d "national_id=$NATIONAL_ID" -d auth_mode=CARD -d action=login
CODE=$(sed -n 's/^[Ll]ocation:.*[?&]code=\([^&[:space:]]*\).*/\1/p' login.headers)
curl -s -f -u "$CLIENT_ID:$CLIENT_SECRET" "$TOKEN_URL" -d grant_type=authorization_code -d "code=$CODE" \
  -d "redirect_uri=$REDIRECT" -d "code_verifier=$VERIFIER" > code-tokens.json
echo "code + PKCE: access token of $(field expires_in < code-tokens.json) s"
