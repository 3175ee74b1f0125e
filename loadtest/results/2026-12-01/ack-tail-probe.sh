#!/usr/bin/env bash
# Is the ack tail smsflow's, or librdkafka's on a saturated box? A raw rdkafka producer with
# smsflow's settings (a separate process, PROBE_RATE/s to its own topic of the same shape) runs
# alone, then beside ingress + projector at RATE, and its p99 is set against smsflow's
# received -> appended in the same window.
set -euo pipefail
cd /work/main
T=/work/targets/bench/release
RATE=${RATE:-500}; PROBE_RATE=${PROBE_RATE:-50}; SECS=${SECS:-30}
HEX=$(printf '%08x' "$(date +%s)")
SP=(SMSFLOW_KAFKA__TOPIC_PREFIX="t${HEX}ct." SMSFLOW_CQL__KEYSPACE="t_${HEX}ct" SMSFLOW_PROJECTOR__GROUP_ID="t${HEX}ct-projector")
PP=(SMSFLOW_KAFKA__TOPIC_PREFIX="t${HEX}pr." SMSFLOW_CQL__KEYSPACE="t_${HEX}ct")
export RUST_LOG=warn TWILIO_AUTH_TOKEN=bench-token
export SMSFLOW_INGRESS__RATE_LIMIT__SENDER_LIMIT=60000 SMSFLOW_INGRESS__RATE_LIMIT__SENDER_PERIOD=60000ms SMSFLOW_INGRESS__RATE_LIMIT__SENDER_BURST=1000
export SMSFLOW_HTTP__PUBLIC_URL=http://127.0.0.1:18080 SMSFLOW_INGRESS__SENDER_POLICY=any
mkdir -p "$OUT"
env "${SP[@]}" $T/smsflow migrate >/dev/null; env "${SP[@]}" $T/smsflow topics >/dev/null; env "${PP[@]}" $T/smsflow topics >/dev/null
PT="t${HEX}pr.sms.messages.v1"
probe() { env "${PP[@]}" ${EXTRA_ENV:-} $T/smsflow-loadtest produce --topic "$PT" --rate "$PROBE_RATE" --duration "$1" --warmup 3s --json "$2" | sed -n 3p; }
echo "== probe alone, ${PROBE_RATE}/s"; probe ${SECS}s "$OUT/probe-alone.json"
env "${SP[@]}" ${EXTRA_ENV:-} SMSFLOW_HTTP__ADDR=127.0.0.1:18080 SMSFLOW_HTTP__OPS_ADDR=127.0.0.1:18089 $T/smsflow serve --role ingress & ing=$!
env "${SP[@]}" SMSFLOW_HTTP__ADDR=127.0.0.1:18081 SMSFLOW_HTTP__OPS_ADDR=127.0.0.1:0 $T/smsflow serve --role projector & prj=$!
for u in http://127.0.0.1:18080/healthz http://127.0.0.1:18081/healthz; do
  for i in $(seq 1 300); do curl -fsS -o /dev/null $u 2>/dev/null && break; sleep 0.1; done; done
S=$(( $(date +%s) * 1000 + 11 ))
env "${SP[@]}" $T/smsflow-loadtest run --label warm --target http://127.0.0.1:18080 --public-url http://127.0.0.1:18080 --rate 200 --duration 10s --warmup 0s --seed $S >/dev/null
for round in ${ROUNDS:-1 2}; do
  S=$((S+1))
  echo "== round $round: smsflow at ${RATE}/s with the probe at ${PROBE_RATE}/s beside it"
  probe $((SECS+4))s "$OUT/probe-loaded-$round.json" > "$OUT/probe-loaded-$round.txt" & pr=$!
  env "${SP[@]}" $T/smsflow-loadtest run --label "smsflow@$RATE" --target http://127.0.0.1:18080 --public-url http://127.0.0.1:18080 \
    --rate $RATE --duration ${SECS}s --warmup 2s --seed $S --read-back stage-at --watch ingress=$ing --watch projector=$prj --out "$OUT/sms-$round" >/dev/null
  wait $pr; cat "$OUT/probe-loaded-$round.txt"
  sed -n '/^webhook ack/,+3p;/^| received -> appended/p' "$OUT/sms-$round/report.md"
  curl -s http://127.0.0.1:18089/metrics | grep -E "^smsflow_(webhook_step_duration_seconds|kafka_produce_duration_seconds|webhook_duration_seconds)" > "$OUT/metrics-$round.txt" || true
done
kill -TERM $ing $prj; wait || true
echo "== probe alone again, ${PROBE_RATE}/s"; probe ${SECS}s "$OUT/probe-alone-2.json"
$T/smsflow-loadtest drop-spaces --topic-prefix "t${HEX}ct." --keyspace "t_${HEX}ct" >/dev/null
$T/smsflow-loadtest drop-spaces --topic-prefix "t${HEX}pr." --keyspace "t_${HEX}ct" >/dev/null || true
