#!/usr/bin/env bash
# The sandbox from the command line: faults, journal, test PKI, and checking what an LPS sent.
#   PATH=.venv/bin:$PATH bash docs/examples/sandbox_cli.sh .sandbox
# Run it after an example that sent a message with an XDM archive (per_send_receive.py).
set -euo pipefail

STATE=${1:-.sandbox}                      # the --state-dir of `mssante sandbox up`
field() {                                  # read one value of the JSON on stdin (a.0.b)
  python3 -c 'import functools, json, sys
print(functools.reduce(lambda v, k: v[int(k)] if isinstance(v, list) else v[k], sys.argv[1].split("."), json.load(sys.stdin)))' "$1"
}
API=$(field api_url < "$STATE/sandbox.json")
BAL="marie.curie@$(field domain < "$STATE/sandbox.json")"

# Faults: the next authentication of the BAL fails, then back to normal; end its sessions (BYE).
mssante sandbox fault --state-dir "$STATE" --fail-auth 1 --code AUTHENTICATIONFAILED --bal "$BAL"
mssante sandbox fault --state-dir "$STATE" --clear
mssante sandbox fault --state-dir "$STATE" --end-sessions bye --bal "$BAL"

# Journal: one JSON line per session (TLS version, SASL mechanism, identity, commands; no secret).
mssante sandbox journal --state-dir "$STATE" --bal "$BAL" --front smtp-psc | tail -n 1 |
  field mechanism

# Test PKI: CAs, CRLs, and the ORG AUTH_CLI certificates of the BAL APP.
mssante sandbox pki show --state-dir "$STATE/pki" | grep auth_cli

# Take the last message the LPS sent with an XDM archive, and check it as the operator received it.
WORK=$(mktemp -d)
UID_SENT=$(curl -sf "$API/bals/$BAL/messages?folder=Sent" |
  python3 -c 'import json, sys; print([m["uid"] for m in json.load(sys.stdin)["messages"] if m["xdm"]][-1])')
curl -sf "$API/bals/$BAL/messages/$UID_SENT/raw?folder=Sent" -o "$WORK/message.eml"
curl -sf "$API/bals/$BAL/messages/$UID_SENT/attachments/0?folder=Sent" -o "$WORK/IHE_XDM.ZIP"
mssante check "$WORK/message.eml"          # Référentiel #2 rules; exit code 1 on an error finding
mssante xdm inspect "$WORK/IHE_XDM.ZIP"
mssante xdm validate "$WORK/IHE_XDM.ZIP"
rm -r "$WORK"
