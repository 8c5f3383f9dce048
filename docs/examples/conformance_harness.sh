#!/bin/sh
# A minimal LPS harness in POSIX shell + curl (no jq, no Python): it follows the conformance run's
# events from the sandbox API, does each step with curl (IMAP/SMTP with STARTTLS, BAL APP: ORG
# AUTH_CLI certificate + SASL PLAIN), and acknowledges it so the suite judges at once.
#
#   terminal 1: mssante sandbox up --state-dir .sandbox
#   terminal 2: mssante conformance run --profile app --sandbox-state .sandbox --case imap-starttls ...
#   terminal 3: API=... BAL=... CA=... CERT=... KEY=... IMAP=host:port SMTP=host:port sh conformance_harness.sh
#
# Every value comes from .sandbox/sandbox.json (api_url, bals[].cert/key, ca_bundle, imap.authcli,
# smtp.authcli). The front host names resolve through the sandbox DNS only, hence --resolve to 127.0.0.1
# (or add the lines of `mssante sandbox hosts` to /etc/hosts). Events: docs/schemas/conformance-events.schema.json.
# Handled actions: open-session, reconnect (IMAP login), send (plain text message), wait; others are
# acknowledged with "ok": false so the suite does not wait for them.
set -eu

: "${API:?API=http://127.0.0.1:PORT/api}" "${BAL:?}" "${CA:?}" "${CERT:?}" "${KEY:?}" "${IMAP:?host:port}" "${SMTP:?host:port}"
IMAP_HOST=${IMAP%:*}; IMAP_PORT=${IMAP##*:}; SMTP_HOST=${SMTP%:*}; SMTP_PORT=${SMTP##*:}
TLS="--ssl-reqd --cacert $CA --cert $CERT --key $KEY --tlsv1.2 -s -S --max-time 20"
LOGIN="--user $BAL: --login-options AUTH=PLAIN --sasl-authzid $BAL"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# value KEY: the first "KEY":"string" of the event on stdin (events are one JSON object per line).
value() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }

ack() {  # ack STEP OK DETAIL
  curl -s -S -f -X POST -H 'Content-Type: application/json' \
    --data "{\"ok\": $2, \"detail\": \"$3\"}" "$API/conformance/steps/$1/done" > /dev/null
}

imap_login() {
  curl $TLS $LOGIN --resolve "$IMAP_HOST:$IMAP_PORT:127.0.0.1" "imap://$IMAP_HOST:$IMAP_PORT/INBOX" \
    -X 'EXAMINE INBOX' > /dev/null
}

send() {  # send TO
  printf 'From: %s\r\nTo: %s\r\nSubject: Test conformite (harnais shell)\r\nMessage-ID: <%s.%s@harness>\r\nX-MSS-NIL: HARNESS-SH\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour.\r\n' \
    "$BAL" "$1" "$(date +%s)" "$$" > "$WORK/msg"
  curl $TLS $LOGIN --resolve "$SMTP_HOST:$SMTP_PORT:127.0.0.1" "smtp://$SMTP_HOST:$SMTP_PORT" \
    --mail-from "$BAL" --mail-rcpt "$1" -T "$WORK/msg"
}

# Follow the run RUN_ID from its start, or else the runs that start from now on.
if [ -n "${RUN_ID:-}" ]; then
  after=0; filter="&run_id=$RUN_ID"
else
  curl -s -S -f -D "$WORK/headers" "$API/conformance/events?after=999999999&format=jsonl" > /dev/null
  after=$(sed -n 's/^[Xx]-[Nn]ext: *\([0-9]*\).*/\1/p' "$WORK/headers"); filter=""
fi
echo "harnais prêt (après l'événement $after)"
while :; do
  curl -s -S -f -D "$WORK/headers" "$API/conformance/events?after=$after&wait=30&format=jsonl$filter" > "$WORK/events"
  next=$(sed -n 's/^[Xx]-[Nn]ext: *\([0-9]*\).*/\1/p' "$WORK/headers")
  after=${next:-$after}
  while IFS= read -r event; do
    type=$(printf '%s' "$event" | value type)
    case $type in
      end) printf 'fin : %s\n' "$(printf '%s' "$event" | value verdict)"; exit 0 ;;
      step) ;;
      *) continue ;;
    esac
    step=$(printf '%s' "$event" | value step)
    action=$(printf '%s' "$event" | value action)
    printf '%s %s\n' "$step" "$action"
    case $action in
      open-session|reconnect) if imap_login; then ack "$step" true ""; else ack "$step" false "imap"; fi ;;
      send)
        to=$(printf '%s' "$event" | sed -n 's/.*"to":\["\([^"]*\)".*/\1/p')
        if send "$to"; then ack "$step" true ""; else ack "$step" false "smtp"; fi ;;
      wait) ;;
      *) ack "$step" false "action $action non prise en charge par ce harnais" ;;
    esac
  done < "$WORK/events"
done
