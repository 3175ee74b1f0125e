#!/usr/bin/env bash
# Webhook throughput and ack latency with tracing at its default head sampling
# (telemetry.sampler) and with 100 % sampling, each as a ratio to tracing off, measured in the
# same run with wrk (closed loop, one signed request replayed), and ingress's CPU per webhook
# (from /proc over the measured window), which is the cost itself rather than its effect on a
# shared box.
# Usage: loadtest/scripts/tracing_overhead.sh [seconds] [connections]
#   ROUNDS (default 4): rounds of the four modes, every second one in reverse order (ABBA).
#   The summary also gives tracing off against itself (its best and worst round), the noise
#   that any ratio of this run carries.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-20}
CONNS=${2:-32}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/smsflow}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
[[ -x $BIN ]] || cargo build --release --bin smsflow
LT=$(dirname "$BIN")/smsflow-loadtest
[[ -x $LT ]] || cargo build --release -p smsflow-loadtest --bin smsflow-loadtest

export TWILIO_AUTH_TOKEN=bench-token
# Named like bench.sh's spaces (t + creation second in hex), removed at exit; a killed run's
# are swept by the test harness after 30 minutes.
HEX=$(printf '%08x' "$(date +%s)")
export SMSFLOW_KAFKA__TOPIC_PREFIX="t${HEX}trc."
export SMSFLOW_HTTP__ADDR=127.0.0.1:18080
export SMSFLOW_HTTP__PUBLIC_URL=http://127.0.0.1:18080
export SMSFLOW_HTTP__OPS_ADDR=127.0.0.1:0  # the operator listener is not read here
export RUST_LOG=warn
# One signed request is replayed: without these it would be a duplicate or rate-limited.
export SMSFLOW_INGRESS__DEDUPE=false
export SMSFLOW_INGRESS__RATE_LIMIT__ENABLED=false
# The sender is nobody's number: accept it (single tenant) so that every answer is a 200 after
# a registry lookup, not a 503 for a missing keyspace or a SenderRejected.
export SMSFLOW_CQL__KEYSPACE="t_${HEX}trc"
trap '"$LT" drop-spaces --topic-prefix "$SMSFLOW_KAFKA__TOPIC_PREFIX" --keyspace "$SMSFLOW_CQL__KEYSPACE" >/dev/null || true' EXIT
export SMSFLOW_INGRESS__SENDER_POLICY=any
"$BIN" topics >/dev/null
"$BIN" migrate >/dev/null

lua=$(mktemp --suffix=.lua)
python3 - "$lua" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
params = {"AccountSid": "ACbench000000000000000000000000000", "Body": "met Dana Reyes at the Oakland expo #lead",
          "From": "+15105550142", "MessageSid": "SMbench00000000000000000000000001", "NumMedia": "0",
          "NumSegments": "1", "To": "+14155550100"}
url = "http://127.0.0.1:18080/webhooks/twilio/messages"
sig = base64.b64encode(hmac.new(b"bench-token", (url + "".join(k + params[k] for k in sorted(params))).encode(), hashlib.sha1).digest()).decode()
body = urllib.parse.urlencode(params)
open(sys.argv[1], "w").write(f'''wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["X-Twilio-Signature"] = "{sig}"
''')
PY

run() { # $1 = label, rest = env assignments
  local label=$1; shift
  env "$@" "$BIN" serve --role ingress &
  local pid=$!
  for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  wrk -t1 -c"$CONNS" -d3s -s "$lua" http://127.0.0.1:18080/webhooks/twilio/messages >/dev/null  # warm-up
  local cpu0; cpu0=$(cpu_ticks "$pid")
  local out; out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$lua" http://127.0.0.1:18080/webhooks/twilio/messages)
  local cpu1; cpu1=$(cpu_ticks "$pid")
  kill -TERM "$pid"; wait "$pid" || true
  local rps p50 p99 non2xx reqs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  local cpu_us; cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) / hz * 1e6 / n }')
  echo "$label rps=$rps p50=$p50 p99=$p99 non2xx=${non2xx:-0} cpu_us_per_req=$cpu_us"
}

# utime + stime of the process, in clock ticks (proc(5): fields 14 and 15, counted after the
# command name, which may hold spaces).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

results=()
mode() {
  case $1 in
    off) run off OTEL_SDK_DISABLED=true ;;
    default) run default ;;
    on) run on OTEL_TRACES_SAMPLER=always_on ;;
    # Same SDK work, but the spans go to a closed port: separates smsflow's cost from Jaeger's.
    on_noexport) run on_noexport OTEL_TRACES_SAMPLER=always_on OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 ;;
  esac
}
# ABBA order: every second round runs the modes in reverse, so a drift of the shared stack over
# the run (it slows down as topics and Cassandra fill) does not count against the modes run last.
MODES=(off default on on_noexport)
for r in $(seq 1 "${ROUNDS:-4}"); do
  if (( r % 2 )); then order=("${MODES[@]}"); else order=(on_noexport on default off); fi
  for m in "${order[@]}"; do results+=("$(mode "$m")"); done
done
printf '%s\n' "${results[@]}"
printf '%s\n' "${results[@]}" | python3 "$(dirname "$0")/tracing_summary.py"
rm -f "$lua"
