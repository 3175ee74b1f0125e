#!/usr/bin/env bash
# `make demo`: migrate, create topics, start `smsflow serve` in the background, send signed
# sample webhooks, and print what landed in the read model. `demo.sh stop` stops smsflow.
set -euo pipefail
cd "$(dirname "$0")/../.."

STATE="${SMSSTACK_STATE:-$HOME/.local/state/smsflow-stack}"
PIDFILE="$STATE/smsflow-demo.pid"
LOG="$STATE/logs/smsflow-demo.log"
mkdir -p "$STATE/logs"
export TWILIO_AUTH_TOKEN="${TWILIO_AUTH_TOKEN:-demo-auth-token}"
export TWILIO_ACCOUNT_SID="${TWILIO_ACCOUNT_SID:-ACdemo0000000000000000000000000000}"
# The query API's bearer tokens; examples/demo.rs signs one for user "demo" with it.
export SMSFLOW_API__AUTH__HS256_SECRET="${SMSFLOW_API__AUTH__HS256_SECRET:-demo-jwt-secret}"

stop() {
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PIDFILE")"
    for _ in $(seq 1 100); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    echo "smsflow stopped"
  fi
  rm -f "$PIDFILE"
}

if [[ ${1:-} == stop ]]; then stop; exit 0; fi

cargo build -q --bin smsflow --example demo
BIN="${CARGO_TARGET_DIR:-target}/debug/smsflow"
"$BIN" migrate
"$BIN" topics --allow-lower-replication
# Every topic's schema in the registry, under <topic>-value: what Confluent consumers read with,
# and what `SMSFLOW_KAFKA__WIRE_FORMAT=confluent make demo` writes ids of.
"$BIN" schemas register
# The sample senders belong to user "demo"; unregistered numbers are recorded, not enriched.
for n in +15105550142 +14155550123; do
  "$BIN" phones link "$n" --user demo --verified
done
# A New York number: dates in its messages are read in its own zone.
"$BIN" phones link +12125550100 --user demo --verified --time-zone America/New_York

stop
nohup "$BIN" serve >"$LOG" 2>&1 &
echo $! >"$PIDFILE"
echo "smsflow serve started (pid $(cat "$PIDFILE")), log: $LOG"
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:8080/healthz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "smsflow exited; last log lines:"; tail -30 "$LOG"; exit 1; }
  sleep 0.1
done

cargo run -q --example demo

cat <<MSG

Demo done. smsflow is still running so you can send your own webhooks (see README).
  operator routes: http://127.0.0.1:8090/readyz, /metrics (http.ops_addr)
  stop smsflow:    make demo-stop
  stop the stack:  make stack-down
MSG
