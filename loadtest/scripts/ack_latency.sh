#!/usr/bin/env bash
# Webhook ack latency at a fixed open-loop rate, next to its ceiling measured in the same run:
# the same generator against a bare axum route that returns 200 with empty TwiML.
# Usage: loadtest/scripts/ack_latency.sh [rate] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-500}
DURATION=${2:-20}
OUT=${OUT:-target/bench}
mkdir -p "$OUT"
cargo build -q --release -p smsflow --bin smsflow
cargo build -q --release -p smsflow-loadtest
T=${CARGO_TARGET_DIR:-target}/release

export TWILIO_AUTH_TOKEN=bench-token
export SMSFLOW_KAFKA__TOPIC_PREFIX="bench$(date +%s)."
export SMSFLOW_HTTP__ADDR=127.0.0.1:18080
export SMSFLOW_HTTP__PUBLIC_URL=http://127.0.0.1:18080
export SMSFLOW_HTTP__OPS_ADDR=127.0.0.1:0  # the operator listener is not read here
export RUST_LOG=warn
"$T/smsflow" topics >/dev/null

"$T/smsflow-loadtest" bare-route --addr 127.0.0.1:18090 2>/dev/null &
bare=$!
"$T/smsflow" serve --role ingress &
app=$!
trap 'kill $bare $app 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break; sleep 0.1; done

common=(--rate "$RATE" --duration "${DURATION}s" --warmup 5s)
"$T/smsflow-loadtest" run --label bare-route --target http://127.0.0.1:18090 --public-url http://127.0.0.1:18080 \
  --seed 1 --json "$OUT/bare.json" "${common[@]}" | tail -1
"$T/smsflow-loadtest" produce --topic "${SMSFLOW_KAFKA__TOPIC_PREFIX}sms.messages.v1" --rate "$RATE" \
  --duration "${DURATION}s" --warmup 5s --json "$OUT/produce.json" | tail -1
"$T/smsflow-loadtest" run --label smsflow-ingress --target http://127.0.0.1:18080 --public-url http://127.0.0.1:18080 \
  --seed 2 --json "$OUT/ingress.json" "${common[@]}" | tail -1
python3 - "$OUT/bare.json" "$OUT/ingress.json" "$OUT/produce.json" <<'PY'
import json, sys
bare, app, raw = (json.load(open(p)) for p in sys.argv[1:4])
ceiling = bare['p99_ms'] + raw['p99_ms']
print(f"ack p99 {app['p99_ms']:.2f} ms = {app['p99_ms']/ceiling:.2f}x (bare route p99 {bare['p99_ms']:.2f} + raw produce p99 {raw['p99_ms']:.2f} ms); target <= 2x")
print(f"ack p50 {app['p50_ms']:.2f} ms = {app['p50_ms']/bare['p50_ms']:.1f}x bare route; "
      f"p99 {app['p99_ms']:.2f} ms = {app['p99_ms']/bare['p99_ms']:.1f}x bare route; "
      f"success {app['success_rate']:.4f}; achieved {app['achieved_rate']:.0f}/s of {app['target_rate']:.0f}/s")
PY
