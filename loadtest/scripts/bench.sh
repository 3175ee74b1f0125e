#!/usr/bin/env bash
# make bench: smsflow's pipeline next to its ceilings and two Benthos peers, all in one run on the
# local stack, every pipeline figure reported as a ratio to a ceiling measured in this run.
#
# Usage: loadtest/scripts/bench.sh
#   RATE=500 DURATION=30     the main open-loop run (ack + end to end), req/s and seconds
#   STEPS="500 1000 ..."     open-loop rates tried for the sustainable ack rate (STEP_SECONDS each)
#   DRAIN=20000              messages queued in Kafka, then projected: the projection rate
#   SUSTAIN=0                seconds of the sustained run at SUSTAIN_RATE (e.g. 600 at 1000/s)
#   PERF_RECORDS, E2E_RECORDS, CQL_SECONDS: sizes of the Kafka tool and raw driver ceilings
#   PARTS="ceilings smsflow memory wire peer" (the default) or PARTS=sustain (only the long run,
#     e.g. SUSTAIN=600); also
#     PARTS=mix     SMS/MMS/voice notes through the whole pipeline (ingress, media, transcribe,
#                   enrich, projector), media served by the generator on loopback, read back
#                   until every part is enriched: MIX=sms=85,mms=13,voice=2 MIX_RATE=20 MIX_SECONDS=30
#     PARTS=drain   only the projection drain (DRAIN messages queued with the projector stopped,
#                   then projected) next to the raw driver's two ceilings (CQL_SECONDS each: the
#                   INSERT alone, and the projector's own statements per message); DRAIN_RATE sets
#                   how fast the backlog is queued (default RATE). SMSFLOW_BIN runs another smsflow
#                   binary (e.g. an earlier build, for a before/after comparison in one run)
#     PARTS=memory  ingress RSS against webhooks held in flight: a producer linger of MEM_LINGER
#                   holds every webhook until its batch goes out, so MEM_RATE x MEM_LINGER are in
#                   flight at the peak (defaults 850/s x 12 s = ~10k); MEM_SECONDS, MEM_IN_FLIGHT;
#                   then the same load against a bare relay (smsflow's HTTP server + append, the memory ceiling)
#     PARTS=rate    only the sustainable ack rate (RATE_STEPS, finer than STEPS around the rates this
#                   box sustains), smsflow with its projector running and then each peer in turn:
#                   the sustainable-rate ratios alone, without the rest of a full run
#     PARTS=wire    webhook ack latency with kafka.wire_format=confluent (schema-registry ids) against
#                   single_object: two ingress processes on the same topics, measured back to back in ABBA order,
#                   WIRE_ROUNDS rounds of WIRE_SECONDS at WIRE_RATE each (defaults 12 x DURATION at
#                   RATE, ~16 min: single rounds' p99 ratios range 0.8-1.4x on a two-core box, and
#                   4 rounds could not resolve the 5 % goal); the ratio is the median of the rounds'
#                   paired ratios; needs the registry
#   PEER=auto|off            the Benthos peers (binary: $BENTHOS or ~/.cache/smsflow-bench/benthos);
#   PEERS="minimal equal"    which: the minimal peer and the equal-work peer (loadtest/README.md)
#   KEEP_SPACES=1            keep this run's topics and keyspaces (removed at exit by default)
# Results: $OUT (default target/bench/<UTC time>): JSON per step, report.md + charts per run,
# summary.md and summary.json with the ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-500}
DURATION=${DURATION:-30}
STEPS=${STEPS:-"500 1000 1500 2000 3000 4000"}
STEP_SECONDS=${STEP_SECONDS:-10}
# Steps of 100-250/s where this box's pipelines stop keeping up: with STEPS' 500 -> 1000 a 1.5x
# ratio against a peer that sustains 500/s cannot be told from 1.0x.
RATE_STEPS=${RATE_STEPS:-"400 500 600 700 750 800 900 1000 1250 1500 2000 2500 3000"}
RATE_WARM=${RATE_WARM:-200}  # req/s of the unmeasured 10 s run before each pipeline's steps
DRAIN=${DRAIN:-20000}
SUSTAIN=${SUSTAIN:-0}
SUSTAIN_RATE=${SUSTAIN_RATE:-1000}
PEER=${PEER:-auto}
PEERS=${PEERS:-"minimal equal"}
# memory is in the default: without it the summary's memory row is "not measured at 10k".
PARTS=${PARTS:-"ceilings smsflow memory wire peer"}  # PARTS=sustain runs only the sustained run (SUSTAIN seconds)
PERF_RECORDS=${PERF_RECORDS:-300000}   # ProducerPerformance, unthrottled
E2E_RECORDS=${E2E_RECORDS:-5000}       # EndToEndLatency
CQL_SECONDS=${CQL_SECONDS:-20}         # raw driver loop
# Voice notes cost ~1.5 CPU-seconds each in pocketsphinx: keep their rate well under a core.
MIX=${MIX:-sms=85,mms=13,voice=2}
MIX_RATE=${MIX_RATE:-20}
MIX_SECONDS=${MIX_SECONDS:-30}
MEM_RATE=${MEM_RATE:-850}
MEM_LINGER=${MEM_LINGER:-12s}
MEM_SECONDS=${MEM_SECONDS:-20}
MEM_IN_FLIGHT=${MEM_IN_FLIGHT:-12000}
WIRE_RATE=${WIRE_RATE:-$RATE}
WIRE_SECONDS=${WIRE_SECONDS:-$DURATION}
WIRE_ROUNDS=${WIRE_ROUNDS:-12}
BENTHOS=${BENTHOS:-$HOME/.cache/smsflow-bench/benthos}
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
STATE=${SMSSTACK_STATE:-$HOME/.local/state/smsflow-stack}
KLIB=${SMSFLOW_STACK_CACHE:-$HOME/.cache/smsflow-stack}/kafka/lib
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

cargo build -q --release -p smsflow --bin smsflow -p smsflow-loadtest --bin smsflow-loadtest
T=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)
SF=${SMSFLOW_BIN:-$T/smsflow}
unset SMSFLOW_BIN  # smsflow reads every SMSFLOW_* variable as configuration
LT=$T/smsflow-loadtest
# The local stack runs three Kafka nodes (kafka1..3): each is watched on its own.
KAFKA_WATCH=""
for n in 1 2 3; do
  [[ -f "$STATE/run/kafka$n.pid" ]] && KAFKA_WATCH="$KAFKA_WATCH --watch kafka$n=$(cat "$STATE/run/kafka$n.pid")"
done
[[ -n "$KAFKA_WATCH" ]] || { echo "bench: no Kafka pid under $STATE/run (make stack-up)" >&2; exit 1; }
CASSANDRA_PID=$(cat "$STATE/run/cassandra.pid")
JAEGER_PID=$(cat "$STATE/run/jaeger.pid")
REDIS_PID=$(cat "$STATE/run/redis.pid")  # dedupe and rate limits: part of the work per message  # smsflow exports every span to it: tracing's cost
kafka_java=(java -Xmx512m -Dlog4j2.configurationFile="$PWD/deploy/local/kafka/log4j2.xml" -cp "$KLIB/*")

# Names shaped like test leftovers (t + creation second in hex): the run removes them when it
# ends (KEEP_SPACES=1 keeps them), and the test harness' sweep removes what a killed run left
# after 30 minutes.
HEX=$(printf '%08x' "$(date +%s)")
# Seeds make MessageSids; Redis remembers SIDs for a day, so every run needs fresh ones.
SEED=$(( $(date +%s) * 1000 ))
next_seed() { SEED=$((SEED + 1)); }

export RUST_LOG=warn TWILIO_AUTH_TOKEN=bench-token
# The limiter still runs (its Redis round trip is part of the ack) but never limits here; the
# equal-work peer gets the same budget.
SENDER_LIMIT=60000 SENDER_PERIOD_MS=60000 SENDER_BURST=1000
export SMSFLOW_INGRESS__RATE_LIMIT__SENDER_LIMIT=$SENDER_LIMIT SMSFLOW_INGRESS__RATE_LIMIT__SENDER_PERIOD=${SENDER_PERIOD_MS}ms
export SMSFLOW_INGRESS__RATE_LIMIT__SENDER_BURST=$SENDER_BURST
export SMSFLOW_HTTP__PUBLIC_URL=http://127.0.0.1:18080
# Several smsflow processes run at once: each operator listener (/readyz, /metrics) takes a
# free port unless a step names one.
export SMSFLOW_HTTP__OPS_ADDR=127.0.0.1:0
# The generator's senders are not in the phone registry: accept every signed sender, keyed
# by its number. (The registered path adds one moka lookup per message, a cache hit after
# the first message of each sender; these figures were measured before the registry landed.)
export SMSFLOW_INGRESS__SENDER_POLICY=any

pids=()
SPACES=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  # Left on the stack, a run's topics slow the next run down (see the stack size recorded below).
  if [[ -n $SPACES && ${KEEP_SPACES:-0} != 1 ]]; then
    local drop=() s
    for s in $SPACES; do drop+=(--topic-prefix "t${HEX}$s." --keyspace "t_${HEX}$s"); done
    "$LT" drop-spaces "${drop[@]}" || echo "bench: could not remove this run's topics and keyspaces" >&2
  fi
}
trap cleanup EXIT
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
wait_url() {
  local i; for i in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: $1 did not answer in 30 s" >&2; return 1
}
space_env() {  # space_env NAME: SPACE_ENV = the topic prefix, keyspace and projector group of space NAME
  SPACE_ENV=(SMSFLOW_KAFKA__TOPIC_PREFIX="t${HEX}$1." SMSFLOW_CQL__KEYSPACE="t_${HEX}$1" SMSFLOW_PROJECTOR__GROUP_ID="t${HEX}$1-projector")
}
with_space() {  # with_space NAME CMD...: run CMD (a program) in space NAME
  space_env "$1"; shift
  env "${SPACE_ENV[@]}" "$@"
}
step() { echo; echo "== $*"; }
part() { [[ " $PARTS " == *" $1 "* ]]; }

# Every leftover partition costs the brokers (3 replicas each) and the latency of the next run;
# the summary shows what the stack held before this run created its own.
"$LT" stack-size --json "$OUT/stack-before.json"
SPACES="ceil sms"
{ part peer || part rate; } && SPACES="$SPACES peer peq"
part mix && SPACES="$SPACES mix"
part memory && SPACES="$SPACES mem"
part wire && SPACES="$SPACES wir"
for space in $SPACES; do with_space "$space" "$SF" migrate >/dev/null; with_space "$space" "$SF" topics >/dev/null; done
echo "bench: output in $OUT; topics t${HEX}{${SPACES// /,}}.*, keyspaces t_${HEX}{${SPACES// /,}}"

# The drain's two ceilings: the projector's INSERT alone, and its whole Cassandra work per message
# (MessagesProjection::apply: SELECT, INSERT, UPDATE) through the raw driver with no Kafka.
cql_ceilings() {
  step "ceiling: raw scylla driver, the projector's INSERT at projector.max_in_flight, ${CQL_SECONDS} s"
  with_space ceil "$LT" cql-writes --duration "${CQL_SECONDS}s" --json "$OUT/cql.json"
  step "ceiling: raw scylla driver, the projector's own statements per message (no Kafka), ${CQL_SECONDS} s"
  with_space ceil "$LT" cql-writes --work projection --duration "${CQL_SECONDS}s" --json "$OUT/cql-projection.json"
}

# ------------------------------------------------------------------ ceilings
if part ceilings; then
step "ceiling: bare axum route, same generator, ${RATE}/s"
"$LT" bare-route --addr 127.0.0.1:18090 2>/dev/null & bare=$!; pids+=("$bare")
wait_url http://127.0.0.1:18090/
next_seed
"$LT" run --label bare-route --target http://127.0.0.1:18090 --public-url http://127.0.0.1:18080 \
  --rate "$RATE" --duration "${DURATION}s" --warmup 5s --seed "$SEED" --json "$OUT/bare.json" | sed -n 2,4p
step "ceiling: bare route maximum (wrk, closed loop, 64 connections, 10 s)"
wrk -t1 -c64 -d10s http://127.0.0.1:18090/ | tee "$OUT/bare-wrk.txt" | grep -E "Requests/sec|Latency"
stop "$bare"

CEIL_TOPIC="t${HEX}ceil.sms.messages.v1"
step "ceiling: Kafka ProducerPerformance, acks=all, 400-byte records, unthrottled"
"${kafka_java[@]}" org.apache.kafka.tools.ProducerPerformance --topic "$CEIL_TOPIC" --num-records "$PERF_RECORDS" \
  --record-size 400 --throughput -1 --producer-props bootstrap.servers=127.0.0.1:9092 acks=all \
  enable.idempotence=true compression.type=lz4 linger.ms=2 2>&1 | grep "records sent" | tail -1 | tee "$OUT/kafka-perf-max.txt"
step "ceiling: Kafka ProducerPerformance at ${RATE}/s"
"${kafka_java[@]}" org.apache.kafka.tools.ProducerPerformance --topic "$CEIL_TOPIC" --num-records $((RATE * DURATION)) \
  --record-size 400 --throughput "$RATE" --producer-props bootstrap.servers=127.0.0.1:9092 acks=all \
  enable.idempotence=true compression.type=lz4 linger.ms=2 2>&1 | grep "records sent" | tail -1 | tee "$OUT/kafka-perf-rate.txt"
step "ceiling: Kafka EndToEndLatency (one record at a time, acks=all, 400 bytes, 1-partition topic)"
"${kafka_java[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --create \
  --topic "t${HEX}ceil.e2e" --partitions 1 --replication-factor 1 >/dev/null 2>&1
"${kafka_java[@]}" org.apache.kafka.tools.EndToEndLatency 127.0.0.1:9092 "t${HEX}ceil.e2e" "$E2E_RECORDS" all 400 2>&1 \
  | grep -E "^Avg latency|^Percentiles" | tee "$OUT/kafka-e2e.txt"
step "ceiling: raw rdkafka produce with smsflow's settings, ${RATE}/s"
with_space ceil "$LT" produce --topic "$CEIL_TOPIC" --rate "$RATE" --duration "${DURATION}s" --warmup 5s \
  --json "$OUT/produce.json" | sed -n 3p
step "ceiling: raw rdkafka produce -> consume echo with smsflow's settings, ${RATE}/s"
with_space ceil "$LT" echo --topic "$CEIL_TOPIC" --rate "$RATE" --duration "${DURATION}s" --warmup 5s \
  --json "$OUT/echo.json" | sed -n 3p
cql_ceilings
fi

# ------------------------------------------------------------------ smsflow
# `env ... prog &` execs prog in the background child, so $! is smsflow's own pid (watched, stopped).
space_env sms; SMS_ENV=("${SPACE_ENV[@]}")
start_smsflow() {  # ingress and projector as separate processes, so each one's cost is its own
  env "${SMS_ENV[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18080 "$SF" serve --role ingress & ingress=$!; pids+=("$ingress")
  start_projector
  wait_url http://127.0.0.1:18080/healthz
}
start_projector() {
  env "${SMS_ENV[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18081 "$SF" serve --role projector & projector=$!; pids+=("$projector")
  wait_url http://127.0.0.1:18081/healthz
}
watch_sms() { echo --watch "ingress=$ingress" --watch "projector=$projector" $KAFKA_WATCH --watch "cassandra=$CASSANDRA_PID" --watch "jaeger=$JAEGER_PID"; }
watch_redis() { echo --watch "redis=$REDIS_PID"; }
sms_run() {  # sms_run LABEL RATE SECONDS [more run args]
  local label=$1 rate=$2 secs=$3; shift 3; next_seed
  with_space sms "$LT" run --label "$label" --target http://127.0.0.1:18080 --public-url http://127.0.0.1:18080 \
    --rate "$rate" --duration "${secs}s" --seed "$SEED" "$@"
}
SUSTAINED=0
sustainable() {  # sustainable NAME URL [--watch ...]: sets SUSTAINED to the highest step answered in full, on
  # schedule, without a queue building up (p99 <= 500 ms over the step; a backlog grows far past
  # that within seconds). Not in $(...): the seed counter must advance in this shell.
  # With --watch arguments, each step also records the watched processes' CPU per message
  # (its --out result.json): what the box spends where, at the step that no longer keeps up.
  local name=$1 url=$2 r; shift 2
  SUSTAINED=0
  for r in $STEPS; do
    next_seed
    with_space sms "$LT" run --label "$name@$r" --target "$url" --public-url "$url" --rate "$r" \
      --duration "${STEP_SECONDS}s" --warmup 2s --seed "$SEED" --json "$OUT/$name-step-$r.json" \
      ${1:+--out "$OUT/$name-step-$r"} "$@" >/dev/null
    python3 - "$OUT/$name-step-$r.json" <<'PY' || break
import json, sys
r = json.load(open(sys.argv[1]))
ok = r['success_rate'] >= 0.999 and r['achieved_rate'] >= 0.98 * r['target_rate'] and r['p99_ms'] <= 500
print(f"  {r['label']}: achieved {r['achieved_rate']:.0f}/s, success {r['success_rate']:.4f}, p99 {r['p99_ms']:.1f} ms -> {'sustained' if ok else 'NOT sustained'}")
sys.exit(0 if ok else 1)
PY
    SUSTAINED=$r
  done
}

if part smsflow || part sustain || part rate; then start_smsflow; fi
SMS_SUSTAINED=0
HALF=$((RATE / 2))
DRAIN_RATE=${DRAIN_RATE:-$RATE}
if part smsflow; then
step "smsflow: ${RATE}/s for ${DURATION}s, ack + end to end + cost"
sms_run smsflow "$RATE" "$DURATION" --warmup 5s --read-back stage-at $(watch_sms) --out "$OUT/smsflow" --json "$OUT/ingress.json"
step "smsflow: sustainable ack rate (steps: $STEPS)"
sustainable smsflow http://127.0.0.1:18080; SMS_SUSTAINED=$SUSTAINED
echo "smsflow sustained $SMS_SUSTAINED/s" | tee "$OUT/smsflow-sustained.txt"
HALF=$(( SMS_SUSTAINED / 2 )); ((HALF > 0)) || HALF=$((RATE / 2))
# Also lets the projector catch up on what the steps queued before it is stopped below.
step "smsflow: end to end at half the sustainable rate (${HALF}/s) for ${DURATION}s"
sms_run smsflow-half "$HALF" "$DURATION" --warmup 5s --read-back stage-at $(watch_sms) --out "$OUT/smsflow-half" >/dev/null
sed -n '/^end to end/,/send -> projected/p' "$OUT/smsflow-half/report.md"
step "smsflow: projection rate, draining $DRAIN queued messages"
stop "$projector"
DRAIN_RATE=$(( SMS_SUSTAINED > 0 ? SMS_SUSTAINED : RATE ))
sms_run smsflow-drain "$DRAIN_RATE" $(( (DRAIN + DRAIN_RATE - 1) / DRAIN_RATE )) --warmup 0s --out "$OUT/smsflow-drain" >/dev/null
start_projector
with_space sms "$LT" read-back --run "$OUT/smsflow-drain/result.json" --from stage-at --json "$OUT/smsflow-drain/e2e.json" >"$OUT/smsflow-drain/e2e.txt"
head -1 "$OUT/smsflow-drain/e2e.txt"
fi
if ((SUSTAIN > 0)) && { part smsflow || part sustain; }; then
  step "smsflow: sustained ${SUSTAIN_RATE}/s for ${SUSTAIN}s (backlog over time = consumer lag)"
  # The whole box's CPU each second (run queue, user, system, iowait, steal), to set the
  # backlog's spikes beside: vmstat_spikes.py writes box-cpu.txt.
  vmstat_pid=
  if command -v vmstat >/dev/null; then
    vmstat -t -w 1 >"$OUT/smsflow-sustained-vmstat.txt" & vmstat_pid=$!; pids+=("$vmstat_pid")
  fi
  sms_run smsflow-sustained "$SUSTAIN_RATE" "$SUSTAIN" --warmup 10s --read-back stage-at --read-back-deadline 300s \
    $(watch_sms) --out "$OUT/smsflow-sustained" >/dev/null
  sed -n '/^end to end/,$p' "$OUT/smsflow-sustained/report.md"
  if [[ -n $vmstat_pid ]]; then
    stop "$vmstat_pid"
    mv "$OUT/smsflow-sustained-vmstat.txt" "$OUT/smsflow-sustained/vmstat.txt"
    python3 loadtest/scripts/vmstat_spikes.py "$OUT/smsflow-sustained/result.json" \
      "$OUT/smsflow-sustained/vmstat.txt" >"$OUT/smsflow-sustained/box-cpu.txt" || true
    head -2 "$OUT/smsflow-sustained/box-cpu.txt"
  fi
fi
if part rate && ! part smsflow; then
  step "smsflow: sustainable ack rate, projector running (steps: $RATE_STEPS)"
  # A full run's steps follow its 30 s main run; here a short unmeasured run warms the new
  # topics' leaders, the connection pools and the JVMs' code paths first (the first step
  # otherwise measures the start-up: p99 549 ms at 400/s once).
  sms_run smsflow-warm "$RATE_WARM" 10 --warmup 0s >/dev/null
  STEPS=$RATE_STEPS sustainable smsflow http://127.0.0.1:18080 $(watch_sms) $(watch_redis)
  echo "smsflow sustained $SUSTAINED/s" | tee "$OUT/smsflow-sustained.txt"
fi
if part smsflow || part sustain || part rate; then stop "$ingress"; stop "$projector"; fi

# ------------------------------------------------------------------ projection drain alone
if part drain; then
  part ceilings || cql_ceilings
  step "smsflow ($SF): projection rate, draining $DRAIN messages queued at ${DRAIN_RATE}/s"
  env "${SMS_ENV[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18080 "$SF" serve --role ingress & ingress=$!; pids+=("$ingress")
  wait_url http://127.0.0.1:18080/healthz
  sms_run smsflow-drain "$DRAIN_RATE" $(( (DRAIN + DRAIN_RATE - 1) / DRAIN_RATE )) --warmup 0s --out "$OUT/smsflow-drain" >/dev/null
  start_projector
  with_space sms "$LT" read-back --run "$OUT/smsflow-drain/result.json" --from stage-at --json "$OUT/smsflow-drain/e2e.json" >"$OUT/smsflow-drain/e2e.txt"
  head -1 "$OUT/smsflow-drain/e2e.txt"
  stop "$ingress"; stop "$projector"
fi

# ------------------------------------------------------------------ mixed traffic
if part mix; then
  step "smsflow, whole pipeline: mix $MIX at ${MIX_RATE}/s for ${MIX_SECONDS}s, read back until every part is enriched"
  space_env mix; MIX_ENV=("${SPACE_ENV[@]}")
  # The generator serves the media on 127.0.0.1, which the media stage refuses unless allowed
  # (production allows only Twilio's hosts); basic auth goes to it as it would to Twilio.
  MEDIA_ENV=(SMSFLOW_MEDIA__ALLOWED_HOSTS='["127.0.0.1"]' SMSFLOW_MEDIA__CREDENTIAL_HOSTS='["127.0.0.1"]'
    SMSFLOW_MEDIA__ALLOW_ADDRESSES='["127.0.0.1"]' SMSFLOW_MEDIA__STORE_URL="file://$OUT/mix-media"
    SMSFLOW_STAGES__INSTANCE_ID="t${HEX}mix" TWILIO_ACCOUNT_SID=ACloadtest0000000000000000000000000)
  mkdir -p "$OUT/mix-media"
  env "${MIX_ENV[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18180 "$SF" serve --role ingress & mix_ingress=$!; pids+=("$mix_ingress")
  env "${MIX_ENV[@]}" "${MEDIA_ENV[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18182 "$SF" serve --role media --role transcribe --role enrich & mix_stages=$!; pids+=("$mix_stages")
  env "${MIX_ENV[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18181 "$SF" serve --role projector & mix_projector=$!; pids+=("$mix_projector")
  wait_url http://127.0.0.1:18180/healthz; wait_url http://127.0.0.1:18181/healthz; wait_url http://127.0.0.1:18182/healthz
  next_seed
  with_space mix "$LT" run --label "smsflow-mix" --target http://127.0.0.1:18180 --public-url http://127.0.0.1:18080 \
    --rate "$MIX_RATE" --duration "${MIX_SECONDS}s" --warmup 5s --seed "$SEED" --mix "$MIX" \
    --read-back stage-at --until done --read-back-deadline 300s \
    --watch "ingress=$mix_ingress" --watch "stages=$mix_stages" --watch "projector=$mix_projector" \
    $KAFKA_WATCH --watch "cassandra=$CASSANDRA_PID" --out "$OUT/mix" >/dev/null
  sed -n '/^end to end/,/^| process/p' "$OUT/mix/report.md"
  stop "$mix_ingress"; stop "$mix_stages"; stop "$mix_projector"
fi

# ------------------------------------------------------------------ wire format: confluent vs single_object
if part wire; then
  step "ack latency by wire format: single_object vs confluent, ${WIRE_RATE}/s, ${WIRE_ROUNDS} paired rounds (ABBA order) of ${WIRE_SECONDS}s"
  # The same ingress twice, differing only in kafka.wire_format. Both append to the same topics
  # (consumers read either format by its first byte), so both meet the same partition leaders
  # on the same brokers. The confluent one has its registry ids cached before it serves, as
  # readiness requires.
  with_space wir "$SF" schemas register >/dev/null
  # Started with env directly, not through with_space: $! must be the server's own pid, or
  # stop would end a subshell and leave the server running (and holding its port) after the run.
  space_env wir; wire_env=("${SPACE_ENV[@]}")
  wire_start() {  # wire_start FORMAT PORT: one ingress writing FORMAT; sets wire_pid
    env "${wire_env[@]}" SMSFLOW_HTTP__ADDR="127.0.0.1:$2" SMSFLOW_HTTP__OPS_ADDR="127.0.0.1:$(($2 + 10))" \
      SMSFLOW_KAFKA__WIRE_FORMAT="$1" "$SF" serve --role ingress & wire_pid=$!; pids+=("$wire_pid")
    wait_url "http://127.0.0.1:$(($2 + 10))/readyz"  # readiness is on the operator listener
  }
  for round in $(seq 1 "$WIRE_ROUNDS"); do
    # ABBA order: odd rounds start with single_object, even rounds with confluent, so drift in
    # the shared stack (broker CPU, compaction, page cache) does not favour one format. Each
    # round starts both processes afresh in the order it measures them, on ports it swaps: with
    # one long-lived process per format, two single_object processes differed by ~4 % (A/A).
    if (( round % 2 )); then order="single_object confluent"; else order="confluent single_object"; fi
    port=18380; declare -A wire_port=() wire_pids=()
    for fmt in $order; do
      wire_start "$fmt" "$port"; wire_port[$fmt]=$port; wire_pids[$fmt]=$wire_pid; port=$((port + 1))
    done
    for fmt in $order; do
      next_seed
      with_space wir "$LT" run --label "ack-$fmt-$round" --target "http://127.0.0.1:${wire_port[$fmt]}" \
        --public-url http://127.0.0.1:18080 --rate "$WIRE_RATE" --duration "${WIRE_SECONDS}s" --warmup 5s \
        --seed "$SEED" --json "$OUT/wire-$fmt-$round.json" --watch "ingress=${wire_pids[$fmt]}" \
        --out "$OUT/wire-$fmt-$round" | sed -n 4p
    done
    for fmt in $order; do stop "${wire_pids[$fmt]}"; done
  done
fi

# ------------------------------------------------------------------ memory per in-flight webhook
if part memory; then
  # One connection per webhook in flight, on both ends: the generator raises its own soft
  # open-files limit; ingress inherits this shell's, raised here to the hard limit.
  ulimit -n "$(ulimit -Hn)"
  if (( $(ulimit -n) < MEM_IN_FLIGHT + 1024 )); then
    echo "bench: PARTS=memory needs ulimit -n >= $((MEM_IN_FLIGHT + 1024)), the hard limit is $(ulimit -Hn)" >&2; exit 1
  fi
  echo "open-files limit for ingress and generator: $(ulimit -n)"
  step "ingress memory: ${MEM_RATE}/s for ${MEM_SECONDS}s, each webhook held ~${MEM_LINGER} by the producer linger"
  # linger holds each record until its batch goes out, and the webhook is answered only after
  # Kafka's ack: a legitimate setting (a large batching window) that keeps webhooks waiting.
  # produce_deadline and the HTTP timeout must outlast it; requests in flight are capped by
  # http.max_concurrent_requests (4096 by default) and sockets by http.max_connections.
  space_env mem
  MEM_ENV=("${SPACE_ENV[@]}"
    SMSFLOW_KAFKA__LINGER="$MEM_LINGER" SMSFLOW_KAFKA__PRODUCE_DEADLINE=14s SMSFLOW_HTTP__REQUEST_TIMEOUT=15s
    SMSFLOW_HTTP__MAX_CONCURRENT_REQUESTS=$((MEM_IN_FLIGHT + 1024))
    SMSFLOW_HTTP__MAX_CONNECTIONS=$((MEM_IN_FLIGHT + 1024)))
  mem_measure() {  # mem_measure NAME PORT PID DIR: warm the server on PORT, then the measured run
    # Warm the process (allocator arenas, connection pools, lazily built state) before the
    # baseline: a short run whose webhooks are all answered before the measured one starts.
    next_seed
    with_space mem "$LT" run --label "$1-warm" --target "http://127.0.0.1:$2" --public-url http://127.0.0.1:18080 \
      --rate 100 --duration 5s --warmup 0s --seed "$SEED" >/dev/null
    next_seed
    with_space mem "$LT" run --label "$1-memory" --target "http://127.0.0.1:$2" --public-url http://127.0.0.1:18080 \
      --rate "$MEM_RATE" --duration "${MEM_SECONDS}s" --warmup 0s --seed "$SEED" --max-in-flight "$MEM_IN_FLIGHT" \
      --watch "$1=$3" --memory-sample 100ms --out "$4" >/dev/null
    sed -n '/^webhook ack/,+3p;/^memory against/,$p' "$4/report.md"
  }
  env "${MEM_ENV[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18280 "$SF" serve --role ingress & mem_ingress=$!; pids+=("$mem_ingress")
  wait_url http://127.0.0.1:18280/healthz
  mem_measure ingress 18280 "$mem_ingress" "$OUT/memory"
  stop "$mem_ingress"
  # The ceiling: an axum route on smsflow's HTTP server that only appends the body with
  # smsflow's producer settings and answers after the ack, under the same linger, load and
  # limits (one connection, one request and one Kafka record per webhook, and nothing else).
  step "ceiling: bare relay (smsflow's HTTP server + append), same ${MEM_RATE}/s held ~${MEM_LINGER}"
  env "${MEM_ENV[@]}" "$LT" bare-route --addr 127.0.0.1:18290 --relay-topic "t${HEX}mem.sms.messages.v1" 2>/dev/null & mem_relay=$!; pids+=("$mem_relay")
  wait_url http://127.0.0.1:18290/healthz
  mem_measure relay 18290 "$mem_relay" "$OUT/memory-ceiling"
  stop "$mem_relay"
fi

# ------------------------------------------------------------------ Benthos peers
# Two peers, each a webhook job and a projection job in Benthos (loadtest/README.md, "The Benthos
# peers"): `minimal` (no signature, dedupe or rate limit, JSON, one table) and `equal` (smsflow's
# work: signature, Redis dedupe and per-sender limit, Avro single-object, both tables). Each goes
# through the same steps as smsflow: the main rate, the sustainable ack rate, end to end at half
# smsflow's sustainable rate, and a projection drain of DRAIN queued messages.
run_peer() {  # run_peer KIND: minimal | equal
  local kind=$1 space label ingest_yaml project_yaml port ingest_metrics project_metrics read_from prefix
  if [[ $kind == minimal ]]; then
    space=peer label=benthos prefix=peer ingest_yaml=benthos-ingest.yaml project_yaml=benthos-project.yaml
    port=18095 ingest_metrics=14195 project_metrics=14196 read_from=write-time
  else
    space=peq label=benthos-equal prefix=peer-equal ingest_yaml=benthos-equal-ingest.yaml project_yaml=benthos-equal-project.yaml
    port=18096 ingest_metrics=14197 project_metrics=14198 read_from=stage-at
  fi
  export PEER_TOPIC="t${HEX}${space}.sms.messages.v1" PEER_KEYSPACE="t_${HEX}${space}" PEER_GROUP="t${HEX}${space}-project"
  export PEER_KEY_PREFIX="t${HEX}${space}." PEER_PUBLIC_URL="http://127.0.0.1:$port"
  start_peer_project() {
    PEER_METRICS_ADDR=127.0.0.1:$project_metrics "$BENTHOS" -c "loadtest/peers/$project_yaml" & peer_project=$!; pids+=("$peer_project")
    wait_url "http://127.0.0.1:$project_metrics/ping"
  }
  PEER_HTTP_ADDR=127.0.0.1:$port PEER_METRICS_ADDR=127.0.0.1:$ingest_metrics "$BENTHOS" -c "loadtest/peers/$ingest_yaml" & peer_ingest=$!
  pids+=("$peer_ingest")
  start_peer_project
  wait_url "http://127.0.0.1:$ingest_metrics/ping"
  peer_run() {
    local label=$1 rate=$2 secs=$3; shift 3; next_seed
    with_space "$space" "$LT" run --label "$label" --target "http://127.0.0.1:$port" --public-url "http://127.0.0.1:$port" \
      --rate "$rate" --duration "${secs}s" --seed "$SEED" "$@"
  }
  watch_peer() { echo --watch "benthos-ingest=$peer_ingest" --watch "benthos-project=$peer_project" $KAFKA_WATCH --watch "cassandra=$CASSANDRA_PID"; }
  if ! part peer; then  # PARTS=rate: the sustainable ack rate alone
    step "peer ($label): sustainable ack rate, projection running (steps: $RATE_STEPS)"
    peer_run "$label-warm" "$RATE_WARM" 10 --warmup 0s >/dev/null  # as smsflow's, above
    STEPS=$RATE_STEPS sustainable "$label" "http://127.0.0.1:$port" $(watch_peer) $(watch_redis)
    echo "$label sustained $SUSTAINED/s" | tee "$OUT/$prefix-sustained.txt"
    stop "$peer_ingest"; stop "$peer_project"
    return
  fi
  step "peer ($label): ${RATE}/s for ${DURATION}s, ack + end to end + cost"
  peer_run "$label" "$RATE" "$DURATION" --warmup 5s --read-back "$read_from" $(watch_peer) --out "$OUT/$prefix" --json "$OUT/$prefix-ingress.json"
  step "peer ($label): sustainable ack rate"
  sustainable "$label" "http://127.0.0.1:$port"
  echo "$label sustained $SUSTAINED/s" | tee "$OUT/$prefix-sustained.txt"
  # Also lets the peer project what the steps queued before its projector is stopped.
  step "peer ($label): end to end at ${HALF}/s for ${DURATION}s"
  peer_run "$label-half" "$HALF" "$DURATION" --warmup 5s --read-back "$read_from" $(watch_peer) --out "$OUT/$prefix-half" >/dev/null
  sed -n '/^end to end/,/send -> projected/p' "$OUT/$prefix-half/report.md"
  step "peer ($label): projection rate, draining $DRAIN queued messages"
  stop "$peer_project"
  peer_run "$label-drain" "$DRAIN_RATE" $(( (DRAIN + DRAIN_RATE - 1) / DRAIN_RATE )) --warmup 0s --out "$OUT/$prefix-drain" >/dev/null
  start_peer_project
  with_space "$space" "$LT" read-back --run "$OUT/$prefix-drain/result.json" --from "$read_from" --json "$OUT/$prefix-drain/e2e.json" >"$OUT/$prefix-drain/e2e.txt"
  head -1 "$OUT/$prefix-drain/e2e.txt"
  stop "$peer_ingest"; stop "$peer_project"
}
if ! part peer && ! part rate; then
  :
elif [[ $PEER != off && -x $BENTHOS ]]; then
  for kind in $PEERS; do
    if [[ $kind == equal ]]; then
      # The equal-work peer writes the spec's single-object header: the fingerprints come from
      # the Avro reference implementation (Java), not from smsflow.
      fps=$(bash tests/interop/java/run.sh AvroFingerprints schemas/MessageReceived.avsc schemas/SenderRejected.avsc) || {
        echo "bench: the Avro reference (tests/interop/java/run.sh) failed; no equal-work peer" | tee "$OUT/peer-equal-missing.txt"; continue; }
      export PEER_FP_MESSAGE_RECEIVED=$(awk '$1 == "MessageReceived.avsc" {print $2}' <<<"$fps")
      export PEER_FP_SENDER_REJECTED=$(awk '$1 == "SenderRejected.avsc" {print $2}' <<<"$fps")
      export PEER_SCHEMAS="$PWD/schemas" PEER_REDIS_URL=${SMSFLOW_REDIS__URL:-redis://127.0.0.1:6379}
      export PEER_BROKERS=127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096
      # smsflow's rate limit settings of this run, in the peer's terms (same GCRA).
      export PEER_SENDER_LIMIT=$SENDER_LIMIT PEER_SENDER_PERIOD_MS=$SENDER_PERIOD_MS PEER_SENDER_BURST=$SENDER_BURST
      step "peer (benthos-equal): does smsflow's work? (loadtest/peers/check-equal-work.sh)"
      if SMSFLOW_BIN=$SF BENTHOS=$BENTHOS bash loadtest/peers/check-equal-work.sh >"$OUT/peer-equal-check.txt" 2>&1; then
        tail -1 "$OUT/peer-equal-check.txt"
      else
        echo "bench: the equal-work peer FAILED its check (its figures below are not equal work): $OUT/peer-equal-check.txt" | tee -a "$OUT/peer-equal-check.txt"
      fi
    fi
    run_peer "$kind"
  done
else
  echo "bench: no Benthos peer (PEER=$PEER, binary $BENTHOS missing?)" | tee "$OUT/peer-missing.txt"
fi

step "summary"
if part rate && ! part smsflow; then STEPS=$RATE_STEPS; fi
STEPS="$STEPS" python3 loadtest/scripts/summary.py "$OUT" | tee "$OUT/summary.md"
