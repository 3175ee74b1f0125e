#!/usr/bin/env bash
# Local service stack for smsflow: Kafka 4 (KRaft, three nodes), Cassandra 5.0, Redis, Jaeger v2,
# Apicurio Registry (Confluent-compatible schema registry).
#
#   deploy/local/stack.sh up     [service...]   start (idempotent) and wait until ready
#   deploy/local/stack.sh down   [service...]   stop what this script started
#   deploy/local/stack.sh status [service...]   running/stopped + does it answer
#
# Services: cassandra kafka1 kafka2 kafka3 redis jaeger registry; `kafka` names all three Kafka
# nodes (default: all). Everything binds to 127.0.0.1.
# Downloads/binaries: $SMSSTACK_CACHE (default ~/.cache/smsflow-stack)
# Data, pid files, logs: $SMSSTACK_STATE (default ~/.local/state/smsflow-stack), logs in $STATE/logs
# Kafka node N listens on $SMSSTACK_KAFKA_PORT + 2(N-1) (default 9092, 9094, 9096), its
# controller one port above. Fault tests start a private cluster with their own
# SMSSTACK_STATE and SMSSTACK_KAFKA_PORT, so killing one of its nodes disturbs nobody else.
# Cassandra serves CQL on $SMSSTACK_CASSANDRA_PORT (default 9042, storage 7000, JMX 7199); any
# other port starts a private single-node cluster of its own (storage and JMX one and two ports
# above, its own cluster name and seed) that a test may freeze without disturbing the shared one.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SMSSTACK_CACHE:-$HOME/.cache/smsflow-stack}"
STATE="${SMSSTACK_STATE:-$HOME/.local/state/smsflow-stack}"
LOGS="$STATE/logs"
RUN="$STATE/run"
ALL_SERVICES=(cassandra kafka1 kafka2 kafka3 redis jaeger registry)   # cassandra first: slowest to start
KAFKA_NODES=(kafka1 kafka2 kafka3)

KAFKA_CLUSTER_ID="c21zZmxvdzMtbm9kZXMtMQ"   # fixed: one local cluster per state dir
KAFKA_PORT="${SMSSTACK_KAFKA_PORT:-9092}"
CASSANDRA_PORT="${SMSSTACK_CASSANDRA_PORT:-9042}"
# Heap per Kafka node: three nodes share the box with Cassandra (1 GiB) and the registry.
# 384 MiB ran out (OutOfMemoryError answering replica fetches) once a test run had left a few
# hundred topics (about 2,400 partition replicas per node); 768 MiB leaves room for that.
KAFKA_HEAP="${SMSSTACK_KAFKA_HEAP:-768m}"
JAEGER_MODULE="github.com/jaegertracing/jaeger"
JAEGER_VERSION="v1.76.0"                     # v1.7x tags = Jaeger v2.x releases; cmd/jaeger is v2
JAEGER_BIN="$CACHE/bin/jaeger-$JAEGER_VERSION"
PYTHON="${PYTHON:-python3}"
REGISTRY_URL="http://127.0.0.1:8081/apis/ccompat/v7"   # Apicurio's Confluent-compatible API

# readiness deadline / stop grace period, seconds
declare -A READY_DEADLINE=([cassandra]=180 [redis]=10 [jaeger]=30 [registry]=120)
declare -A STOP_GRACE=([cassandra]=60 [redis]=15 [jaeger]=15 [registry]=20)
# a string that must appear in /proc/<pid>/cmdline, to never signal a recycled pid
declare -A CMD_MARK=([cassandra]=CassandraDaemon [redis]=redis-server [jaeger]=jaeger- [registry]=smsflow-registry)
declare -A PORT=([cassandra]=$CASSANDRA_PORT [redis]=6379 [jaeger]=16686 [registry]=8081)
for _n in 1 2 3; do
  # A restart loads every partition of the leftover test topics (hundreds) on a busy 2-core
  # box: kafka3 took just over 120 s once, so allow 300 s.
  READY_DEADLINE[kafka$_n]=300; STOP_GRACE[kafka$_n]=60
  CMD_MARK[kafka$_n]="$STATE/kafka$_n/server.properties"
  PORT[kafka$_n]=$((KAFKA_PORT + 2 * (_n - 1)))
done
unset _n

mkdir -p "$CACHE" "$LOGS" "$RUN"

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$1" "${*:2}"; }
die() { log "$1" "ERROR: ${*:2}" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites

apt_install() {  # apt_install PKG... (serialised; never starts the distro's own services)
  (
    flock 9
    local policy=/usr/sbin/policy-rc.d created=""
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1; fi
    trap '[[ -n $created ]] && rm -f "$policy"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
  ) 9>"$CACHE/.apt.lock"
}

java_home() {  # Cassandra 5.0 supports Java 11/17 only: always use 17
  local jh="${SMSSTACK_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
  if [[ ! -x $jh/bin/java ]]; then
    jh="$(ls -d /usr/lib/jvm/java-17-openjdk-* 2>/dev/null | head -n1 || true)"
  fi
  if [[ -z $jh || ! -x $jh/bin/java ]]; then
    apt_install openjdk-17-jre-headless >&2
    jh="$(ls -d /usr/lib/jvm/java-17-openjdk-* | head -n1)"
  fi
  echo "$jh"
}

fetch_jars() {  # fetch_jars NAME: $HERE/maven/NAME/pom.xml -> $CACHE/NAME/lib (cached by pom hash)
  local name=$1 pom="$HERE/maven/$1/pom.xml" dest="$CACHE/$1"
  local sum; sum="$(sha256sum "$pom" | cut -c1-16)"
  [[ -f $dest/.stamp && "$(cat "$dest/.stamp")" == "$sum" ]] && return 0
  command -v mvn >/dev/null || apt_install maven
  log "$name" "fetching jars with Maven (first run only) -> $dest/lib"
  (
    flock 9
    [[ -f $dest/.stamp && "$(cat "$dest/.stamp")" == "$sum" ]] && exit 0
    local tmp="$dest.tmp.$$"
    rm -rf "$tmp"
    JAVA_HOME="$JAVA_HOME" mvn -B -q -f "$pom" -Dmaven.repo.local="$CACHE/m2" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib" \
      >"$LOGS/$name-fetch.log" 2>&1 \
      || { tail -n 30 "$LOGS/$name-fetch.log" >&2; rm -rf "$tmp"; exit 1; }
    echo "$sum" >"$tmp/.stamp"
    rm -rf "$dest" && mv "$tmp" "$dest"
  ) 9>"$CACHE/.mvn.lock"
}

# ---------------------------------------------------------------- process helpers

pidfile() { echo "$RUN/$1.pid"; }

running_pid() {  # prints the pid if the service we started is alive; cleans stale pid files
  local f; f="$(pidfile "$1")"
  [[ -f $f ]] || return 1
  local pid; pid="$(cat "$f" 2>/dev/null || true)"
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null \
     && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "${CMD_MARK[$1]}"; then
    echo "$pid"; return 0
  fi
  rm -f "$f"; return 1
}

spawn() {  # spawn SERVICE LOGFILE CMD... : detached, pid of CMD itself recorded
  local svc=$1 logfile=$2; shift 2
  # shellcheck disable=SC2016
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$(pidfile "$svc")" "$@" >>"$logfile" 2>&1 </dev/null &
  local i; for i in $(seq 50); do [[ -s "$(pidfile "$svc")" ]] && break; sleep 0.1; done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

service_log() {  # main log file(s) of a service
  case $1 in
    cassandra) echo "$LOGS/cassandra.log $LOGS/cassandra.stdout.log" ;;
    kafka[123]) echo "$LOGS/$1.log" ;;
    jaeger) echo "$LOGS/jaeger.log $LOGS/jaeger-build.log" ;;
    *) echo "$LOGS/$1.log" ;;
  esac
}

show_log_tail() {
  local f
  for f in $(service_log "$1"); do
    [[ -s $f ]] || continue
    echo "----- last 30 lines of $f -----" >&2
    tail -n 30 "$f" >&2
  done
}

wait_ready() {  # wait_ready SERVICE: poll the real probe until it answers or the deadline passes
  local svc=$1 deadline=$((SECONDS + READY_DEADLINE[$1]))
  until probe "$svc" >/dev/null 2>&1; do
    if ! running_pid "$svc" >/dev/null; then
      show_log_tail "$svc"; die "$svc" "process exited before it became ready (logs: $(service_log "$svc"))"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail "$svc"; die "$svc" "not ready after ${READY_DEADLINE[$svc]}s (logs: $(service_log "$svc"))"
    fi
    sleep 1
  done
  log "$svc" "ready: $(probe "$svc" 2>&1)"
}

stop_service() {
  local svc=$1 pid
  if ! pid="$(running_pid "$svc")"; then log "$svc" "not running"; return 0; fi
  log "$svc" "stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_GRACE[$svc]))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$svc" "still alive after ${STOP_GRACE[$svc]}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$(pidfile "$svc")"
  log "$svc" "stopped"
}

# ---------------------------------------------------------------- probes (real requests)

probe() {
  case $1 in
    kafka[123]) "$PYTHON" "$HERE/probe.py" kafka "127.0.0.1:${PORT[$1]}" ;;
    cassandra) "$PYTHON" "$HERE/probe.py" cql "127.0.0.1:${PORT[cassandra]}" ;;
    redis)
      local out; out="$(redis-cli -h 127.0.0.1 -p 6379 PING 2>&1)" && [[ $out == PONG ]] && echo "redis ok: PING -> $out" ;;
    jaeger) "$PYTHON" "$HERE/probe.py" http http://127.0.0.1:16686/api/services ;;
    registry) "$PYTHON" "$HERE/probe.py" http "$REGISTRY_URL/subjects" ;;
  esac
}

# ---------------------------------------------------------------- kafka

kafka_voters() {  # the static controller quorum: every node, controller port = broker port + 1
  local n out=()
  for n in 1 2 3; do out+=("$n@127.0.0.1:$((KAFKA_PORT + 2 * (n - 1) + 1))"); done
  local IFS=,; echo "${out[*]}"
}

# start_kafka1/2/3: one KRaft node each (broker + controller).
start_kafka_node() {
  local n=$1 svc=kafka$1
  fetch_jars kafka
  local dir="$STATE/$svc" props="$STATE/$svc/server.properties" lib="$CACHE/kafka/lib"
  local port=${PORT[$svc]} cport=$((PORT[$svc] + 1))
  mkdir -p "$dir/data"
  {
    cat "$HERE/kafka/server.properties"; echo
    echo "node.id=$n"
    echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
    echo "controller.quorum.voters=$(kafka_voters)"
    echo "log.dirs=$dir/data"
  } >"$props"
  if [[ ! -f $dir/data/meta.properties ]]; then
    log "$svc" "formatting KRaft storage in $dir/data"
    "$JAVA_HOME/bin/java" -Xmx256m -Dlog4j2.configurationFile="$HERE/kafka/log4j2.xml" -cp "$lib/*" \
      kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$props" --ignore-formatted \
      >>"$LOGS/$svc.log" 2>&1 || { show_log_tail "$svc"; die "$svc" "storage format failed"; }
  fi
  log "$svc" "starting (127.0.0.1:$port, controller 127.0.0.1:$cport, heap $KAFKA_HEAP)"
  spawn "$svc" "$LOGS/$svc.log" "$JAVA_HOME/bin/java" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:ActiveProcessorCount=2 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2.xml" -Dkafka.logs.dir="$LOGS" \
    -cp "$lib/*" kafka.Kafka "$props"
}
start_kafka1() { start_kafka_node 1; }
start_kafka2() { start_kafka_node 2; }
start_kafka3() { start_kafka_node 3; }

# ---------------------------------------------------------------- cassandra

start_cassandra() {
  fetch_jars cassandra
  local dir="$STATE/cassandra" lib="$CACHE/cassandra/lib"
  mkdir -p "$dir/triggers"
  local jamm; jamm="$(ls "$lib"/jamm-*.jar | head -n1)"
  local -a opts
  mapfile -t opts < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$HERE/cassandra/jvm17-server.options")
  local config="$HERE/cassandra/cassandra.yaml" storage=7000 jmx=7199
  if [[ $CASSANDRA_PORT != 9042 ]]; then
    # A private node: its own ports, seed and cluster name, so it can never gossip with the
    # shared one.
    storage=$((CASSANDRA_PORT + 1)) jmx=$((CASSANDRA_PORT + 2)) config="$dir/cassandra.yaml"
    sed -e "s/^cluster_name: .*/cluster_name: smsflow-private-$CASSANDRA_PORT/" \
        -e "s/127\.0\.0\.1:7000/127.0.0.1:$storage/" \
        -e "s/^storage_port: .*/storage_port: $storage/" \
        -e "s/^ssl_storage_port: .*/ssl_storage_port: $((CASSANDRA_PORT + 3))/" \
        -e "s/^native_transport_port: .*/native_transport_port: $CASSANDRA_PORT/" \
        "$HERE/cassandra/cassandra.yaml" >"$config"
  fi
  log cassandra "starting (CQL 127.0.0.1:$CASSANDRA_PORT, storage 127.0.0.1:$storage)"
  spawn cassandra "$LOGS/cassandra.stdout.log" "$JAVA_HOME/bin/java" "${opts[@]}" \
    -javaagent:"$jamm" \
    -Dcassandra.config="file://$config" \
    -Dlogback.configurationFile="file://$HERE/cassandra/logback.xml" \
    -Dcassandra.logdir="$LOGS" \
    -Dcassandra.storagedir="$dir" \
    -Dcassandra.triggers_dir="$dir/triggers" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.ring_delay_ms=100 \
    -Dcassandra.unsafesystem=true \
    -Dcassandra.jmx.local.port="$jmx" -Djava.rmi.server.hostname=127.0.0.1 \
    -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
}

# ---------------------------------------------------------------- redis

start_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log redis "installing redis-server from Debian (first run only)"
    apt_install redis-server redis-tools
  fi
  mkdir -p "$STATE/redis"
  log redis "starting (127.0.0.1:6379)"
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --pidfile "$(pidfile redis)" \
    --dir "$STATE/redis" --logfile "$LOGS/redis.log" --save '' --appendonly no
  local i; for i in $(seq 50); do [[ -s "$(pidfile redis)" ]] && break; sleep 0.1; done
}

# ---------------------------------------------------------------- jaeger

build_jaeger() {
  [[ -x $JAEGER_BIN ]] && return 0
  command -v go >/dev/null || die jaeger "Go toolchain not found (needed to build Jaeger once)"
  (
    flock 9
    [[ -x $JAEGER_BIN ]] && exit 0
    log jaeger "building $JAEGER_MODULE/cmd/jaeger@$JAEGER_VERSION (first run only, several minutes; log: $LOGS/jaeger-build.log)"
    # 'go install mod@ver' refuses modules with replace directives: build inside a copy instead.
    local moddir src="$CACHE/src/jaeger-$JAEGER_VERSION"
    moddir="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "$JAEGER_MODULE@$JAEGER_VERSION" \
      | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    rm -rf "$src" && mkdir -p "$(dirname "$src")" "$CACHE/bin"
    cp -r "$moddir" "$src" && chmod -R u+w "$src"
    if ! (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-trimpath CGO_ENABLED=0 \
          go build -ldflags="-s -w" -o "$JAEGER_BIN.tmp" ./cmd/jaeger) >"$LOGS/jaeger-build.log" 2>&1; then
      tail -n 30 "$LOGS/jaeger-build.log" >&2; exit 1
    fi
    mv "$JAEGER_BIN.tmp" "$JAEGER_BIN"
    rm -rf "$src"
  ) 9>"$CACHE/.jaeger-build.lock"
}

start_jaeger() {
  build_jaeger
  log jaeger "starting (OTLP 127.0.0.1:4317 grpc / 4318 http, UI+API http://127.0.0.1:16686)"
  spawn jaeger "$LOGS/jaeger.log" "$JAEGER_BIN" --config "$HERE/jaeger/jaeger.yaml"
}

# ---------------------------------------------------------------- registry

java21_home() {  # Apicurio Registry 3 is a Quarkus app that needs Java 21 or newer
  local jh="${SMSSTACK_JAVA21_HOME:-}" v
  if [[ -z $jh ]]; then
    for jh in /usr/lib/jvm/temurin-25-jdk-* /usr/lib/jvm/temurin-2[1-9]-j* /usr/lib/jvm/java-2[1-9]-openjdk-*; do
      [[ -x $jh/bin/java ]] && break
    done
  fi
  if [[ ! -x $jh/bin/java ]]; then
    apt_install openjdk-21-jre-headless >&2 \
      || die registry "no Java 21+ found: set SMSSTACK_JAVA21_HOME (Apicurio Registry 3 needs it)"
    jh="$(ls -d /usr/lib/jvm/java-21-openjdk-* | head -n1)"
  fi
  v="$("$jh/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  ((v >= 21)) || die registry "$jh is Java $v; Apicurio Registry 3 needs 21 or newer (SMSSTACK_JAVA21_HOME)"
  echo "$jh"
}

start_registry() {
  fetch_jars registry
  local app="$CACHE/registry/app"
  if [[ ! -f $app/.stamp || "$(cat "$app/.stamp")" != "$(cat "$CACHE/registry/.stamp")" ]]; then
    log registry "unpacking Apicurio Registry -> $app"
    rm -rf "$app.tmp" && mkdir -p "$app.tmp"
    tar -xzf "$CACHE"/registry/lib/apicurio-registry-app-*-all.tar.gz -C "$app.tmp"
    cp "$CACHE/registry/.stamp" "$app.tmp/.stamp"
    rm -rf "$app" && mv "$app.tmp" "$app"
  fi
  local jh; jh="$(java21_home)"
  log registry "starting Apicurio Registry (in-memory; Confluent API $REGISTRY_URL, management 127.0.0.1:8091)"
  # In-memory H2 storage: the registry is as disposable as the rest of the local stack;
  # `smsflow schemas register` (run by demo.sh and the tests) fills it again.
  # cwd = $app so Quarkus finds its lib/ next to quarkus-run.jar.
  (cd "$app" && spawn registry "$LOGS/registry.log" "$jh/bin/java" -Dsmsflow-registry \
    -Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=8081 \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port=8091 \
    -Dquarkus.log.console.json=false \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
    -jar "$app/quarkus-run.jar")
}

# ---------------------------------------------------------------- up / down / status

up_service() {  # start one service unless already up, then wait until it answers
  local svc=$1 pid
  if pid="$(running_pid "$svc")"; then
    if probe "$svc" >/dev/null 2>&1; then log "$svc" "already running (pid $pid)"; return 0; fi
    log "$svc" "pid $pid alive but not answering yet: waiting"
  else
    if port_open "${PORT[$svc]}"; then
      die "$svc" "port ${PORT[$svc]} is in use by a process this script did not start"
    fi
    "start_$svc"
  fi
  wait_ready "$svc"
}

select_services() {  # validate names; default = all
  if (($# == 0)); then echo "${ALL_SERVICES[@]}"; return; fi
  local s out=()
  for s in "$@"; do
    if [[ $s == kafka ]]; then out+=("${KAFKA_NODES[@]}"); continue; fi
    [[ " ${ALL_SERVICES[*]} " == *" $s "* ]] || die stack "unknown service '$s' (known: kafka ${ALL_SERVICES[*]})"
    out+=("$s")
  done
  echo "${out[@]}"
}

retire_single_node_kafka() {  # an older stack.sh ran one Kafka node in $STATE/kafka: stop and drop it
  local f="$RUN/kafka.pid" pid
  if [[ -f $f ]]; then
    pid="$(cat "$f" 2>/dev/null || true)"
    if [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q kafka.Kafka; then
      log kafka "stopping the single-node Kafka of an older stack.sh (pid $pid); the stack now runs three nodes"
      kill -TERM "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 60))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  fi
  [[ -d $STATE/kafka ]] && { log kafka "removing the single-node data in $STATE/kafka"; rm -rf "$STATE/kafka"; }
  return 0
}

cmd_up() {
  local -a svcs; read -r -a svcs <<<"$(select_services "$@")"
  JAVA_HOME="$(java_home)"; export JAVA_HOME
  [[ " ${svcs[*]} " == *" kafka"* ]] && retire_single_node_kafka
  log stack "logs: $LOGS   state: $STATE   cache: $CACHE"
  local -A pids=()
  local svc rc=0
  for svc in "${svcs[@]}"; do   # all in parallel; each waits for its own readiness
    up_service "$svc" &
    pids[$svc]=$!
  done
  for svc in "${svcs[@]}"; do
    wait "${pids[$svc]}" || { rc=1; log "$svc" "FAILED"; }
  done
  if ((rc)); then log stack "some services failed; logs in $LOGS"; return 1; fi
  log stack "all up: ${svcs[*]}   (logs: $LOGS)"
}

cmd_down() {
  local -a svcs; read -r -a svcs <<<"$(select_services "$@")"
  local svc
  for svc in "${svcs[@]}"; do stop_service "$svc" & done
  wait
}

cmd_status() {
  local -a svcs; read -r -a svcs <<<"$(select_services "$@")"
  local svc pid out rc=0
  for svc in "${svcs[@]}"; do
    if pid="$(running_pid "$svc")"; then
      if out="$(probe "$svc" 2>&1)"; then
        printf '%-10s running (pid %s), answering: %s\n' "$svc" "$pid" "$out"
      else
        printf '%-10s running (pid %s), NOT answering\n' "$svc" "$pid"; rc=1
      fi
    else
      printf '%-10s stopped\n' "$svc"; rc=1
    fi
  done
  echo "logs: $LOGS"
  return "$rc"
}

main() {
  local cmd="${1:-}"; shift || true
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    *) echo "usage: $0 up|down|status [kafka|kafka1|kafka2|kafka3|cassandra|redis|jaeger|registry ...]" >&2; exit 2 ;;
  esac
}

main "$@"
