#!/usr/bin/env bash
# Checks that the equal-work Benthos peer does smsflow's work, with other people's code:
#   1. webhooks signed by Twilio's helper library (loadtest/peers/check/webhooks.py): accepted
#      (200), forged or tampered (403), duplicate (200, not appended), malformed (400), JSON
#      (415), a sender over its budget (200, recorded as SenderRejected);
#   2. every record on the peer's topic decodes with fastavro from schemas/*.avsc, found by the
#      spec's fingerprint in the single-object header, and matches its event-type header
#      (tests/interop/python/consume.py, the analytics-team consumer of tests/downstream_consumers.rs);
#      the counts per type are what step 1 sent;
#   3. the projection peer wrote both tables for every accepted message (read back with
#      Benthos' cassandra input), the full message with its geo, media and Messaging Service.
# Runs on the shared local stack in its own topic prefix, keyspace and Redis keys (t<hex>pck).
# Usage: loadtest/peers/check-equal-work.sh   (BENTHOS, SMSFLOW_BIN as in bench.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENTHOS=${BENTHOS:-$HOME/.cache/smsflow-bench/benthos}
SF=${SMSFLOW_BIN:-${CARGO_TARGET_DIR:-target}/release/smsflow}
unset SMSFLOW_BIN  # smsflow reads every SMSFLOW_* variable as configuration
[[ -x $BENTHOS ]] || { echo "check: no Benthos binary at $BENTHOS (loadtest/peers/build-benthos.sh)" >&2; exit 1; }
[[ -x $SF ]] || { echo "check: no smsflow binary at $SF (cargo build --release), needed for migrate and topics" >&2; exit 1; }
HEX=$(printf '%08x' "$(date +%s)")
WORK=$(mktemp -d)
pids=()
LT=$(dirname "$SF")/smsflow-loadtest
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"
  # Its topics and keyspace (bench.sh builds smsflow-loadtest next to smsflow; otherwise the
  # test harness' sweep removes them after 30 minutes).
  [[ -x $LT ]] && "$LT" drop-spaces --topic-prefix "t${HEX}pck." --keyspace "t_${HEX}pck" >/dev/null || true
}
trap cleanup EXIT
wait_url() {
  local i; for i in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "check: $1 did not answer in 30 s" >&2; return 1
}
export SMSFLOW_KAFKA__TOPIC_PREFIX="t${HEX}pck." SMSFLOW_CQL__KEYSPACE="t_${HEX}pck" RUST_LOG=warn
for cmd in migrate topics; do
  "$SF" "$cmd" >"$WORK/$cmd.log" 2>&1 || { tail -20 "$WORK/$cmd.log" >&2; echo "check: smsflow $cmd failed" >&2; exit 1; }
done
fps=$(bash tests/interop/java/run.sh AvroFingerprints schemas/MessageReceived.avsc schemas/SenderRejected.avsc)
export PEER_FP_MESSAGE_RECEIVED=$(awk '$1 == "MessageReceived.avsc" {print $2}' <<<"$fps")
export PEER_FP_SENDER_REJECTED=$(awk '$1 == "SenderRejected.avsc" {print $2}' <<<"$fps")
export PEER_TOPIC="t${HEX}pck.sms.messages.v1" PEER_KEYSPACE="t_${HEX}pck" PEER_GROUP="t${HEX}pck-project"
export PEER_KEY_PREFIX="t${HEX}pck." PEER_SCHEMAS="$PWD/schemas" PEER_BROKERS=127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096
export TWILIO_AUTH_TOKEN=check-token PEER_PUBLIC_URL=http://127.0.0.1:18196
BURST=3
PEER_HTTP_ADDR=127.0.0.1:18196 PEER_METRICS_ADDR=127.0.0.1:14297 PEER_SENDER_LIMIT=$BURST PEER_SENDER_BURST=$BURST \
  "$BENTHOS" -c loadtest/peers/benthos-equal-ingest.yaml >"$WORK/ingest.log" 2>&1 & pids+=("$!")
PEER_METRICS_ADDR=127.0.0.1:14298 "$BENTHOS" -c loadtest/peers/benthos-equal-project.yaml >"$WORK/project.log" 2>&1 & pids+=("$!")
wait_url http://127.0.0.1:14297/ready; wait_url http://127.0.0.1:14298/ready

echo "== 1. webhooks signed by Twilio's RequestValidator ($(grep -o 'twilio==[0-9.]*' loadtest/peers/check/requirements.txt))"
TWILIO_PY=$(bash tests/interop/python/venv.sh "$PWD/loadtest/peers/check/requirements.txt")
"$TWILIO_PY" loadtest/peers/check/webhooks.py --url "$PEER_PUBLIC_URL/webhooks/twilio/messages" --token "$TWILIO_AUTH_TOKEN" \
  --seed "$HEX" --burst "$BURST" >"$WORK/sent.json"

echo "== 2. the topic, read by fastavro from schemas/ (tests/interop/python/consume.py)"
AVRO_PY=$(bash tests/interop/python/venv.sh)
"$AVRO_PY" tests/interop/python/consume.py --brokers 127.0.0.1:9092 --topics "$PEER_TOPIC" --mode single-object \
  --schemas schemas --timeout 60 >"$WORK/consumed.json" || { cat "$WORK/consumed.json"; exit 1; }
python3 - "$WORK/sent.json" "$WORK/consumed.json" "$PEER_TOPIC" <<'PY'
import json, sys
sent, got, topic = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
types = got["topics"][topic]["types"]
print(f"   decoded {got['topics'][topic]['decoded']}/{got['topics'][topic]['records']} records: {types}; expected {sent['expect']}")
sys.exit(0 if types == sent["expect"] else 1)
PY

echo "== 3. both tables, read back through Benthos' cassandra input"
cat >"$WORK/query.yaml" <<'EOF'
input:
  cassandra:
    addresses: [ "${PEER_CQL:127.0.0.1:9042}" ]
    query: ${QUERY}
output:
  stdout: {}
logger: { level: WARN }
EOF
query() { QUERY="$1" "$BENTHOS" -c "$WORK/query.yaml" 2>/dev/null; }
accepted=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["sent"]["accepted"]))' "$WORK/sent.json")
deadline=$((SECONDS + 60))
while :; do
  rows=$(query "SELECT message_sid, user_id, body, media, geo, messaging_service_sid FROM $PEER_KEYSPACE.messages_by_user")
  status=$(query "SELECT message_sid, parts_expected, stage_at FROM $PEER_KEYSPACE.message_status")
  missing=""
  for sid in $accepted; do
    grep -q "\"message_sid\":\"$sid\"" <<<"$rows" && grep -q "\"message_sid\":\"$sid\"" <<<"$status" || missing="$missing $sid"
  done
  [[ -z $missing ]] && break
  ((SECONDS < deadline)) || { echo "check: not projected to both tables within 60 s:$missing" >&2; exit 1; }
  sleep 1
done
python3 - "$rows" "$status" "$accepted" <<'PY'
import json, sys
rows = {r["message_sid"]: r for r in map(json.loads, sys.argv[1].splitlines())}
status = {r["message_sid"]: r for r in map(json.loads, sys.argv[2].splitlines())}
accepted = sys.argv[3].split()
full = rows[accepted[0]]
want = {"geo": {"from_city": "OAKLAND", "from_country": "US", "from_state": "CA", "to_zip": "94105"},
        "media": [["https://api.twilio.com/m/0", "image/jpeg"], ["https://api.twilio.com/m/1", "text/vcard"]],
        "messaging_service_sid": "MG" + "1" * 32, "body": "met Dana + Sam, 50% off & more: café ☕"}
bad = {k: full.get(k) for k, v in want.items() if full.get(k) != v}
bad.update({"parts_expected": status[accepted[0]]["parts_expected"]} if status[accepted[0]]["parts_expected"] != 3 else {})
bad.update({"stage_at": s["stage_at"] for s in status.values() if set(s["stage_at"]) != {"received", "projected"}})
print(f"   {len(accepted)} accepted messages in messages_by_user and message_status; the full one: "
      f"{'as sent' if not bad else 'WRONG ' + json.dumps(bad)}")
sys.exit(1 if bad else 0)
PY
echo "equal-work peer: all checks passed"
