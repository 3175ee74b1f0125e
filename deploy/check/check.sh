#!/usr/bin/env bash
# make check-deploy: lint and validate everything under deploy/ offline, with the tools
# deploy/check/tools.sh installs from the package registries (cached under ~/.cache).
# Prints one line per check; exits non-zero on the first failing step.
#
#   DEPLOY_DOCKER_BUILD=check    (default) `cargo check --locked --bin smsflow` in a copy of the
#                                Docker build context (.dockerignore applied)
#   DEPLOY_DOCKER_BUILD=release  the Dockerfile's own `cargo build --locked --release --bin smsflow`
#   DEPLOY_DOCKER_BUILD=off      skip that step
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/check"
CACHE="${SMSDEPLOY_CACHE:-$HOME/.cache/smsflow-deploy}"
STACK_CACHE="${SMSSTACK_CACHE:-$HOME/.cache/smsflow-stack}"
JAEGER_BIN="$STACK_CACHE/bin/jaeger-v1.76.0"
CARGO="${CARGO:-cargo}"
K8S_VERSIONS=(1.30.0 1.37.0)   # the chart's kubeVersion floor, and the newest schemas shipped
cd "$ROOT"

started=$(date +%s)
step() { printf '\n== %s\n' "$*"; }
bash "$HERE/tools.sh" all
BIN="$CACHE/bin"
RENDERED=()
PY="$CACHE/venv/bin/python"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

step "Dockerfile: hadolint $("$CACHE/venv/bin/hadolint" --version | awk '{print $NF}')"
"$CACHE/venv/bin/hadolint" --no-color --config deploy/.hadolint.yaml deploy/Dockerfile
echo "ok   deploy/Dockerfile"

step "Docker build context (.dockerignore) and the runtime image's libraries"
"$PY" "$HERE/docker_context.py" --root "$ROOT" --dockerfile deploy/Dockerfile --out "$OUT/context"
case "${DEPLOY_DOCKER_BUILD:-check}" in
  check)   (cd "$OUT/context" && "$CARGO" check --locked -q --bin smsflow) && echo "ok   cargo check --locked --bin smsflow in the build context" ;;
  release) (cd "$OUT/context" && "$CARGO" build --locked --release --bin smsflow) && echo "ok   cargo build --locked --release --bin smsflow in the build context" ;;
  off)     echo "skip cargo in the build context (DEPLOY_DOCKER_BUILD=off)" ;;
  *)       echo "DEPLOY_DOCKER_BUILD must be check, release or off" >&2; exit 2 ;;
esac
"$CARGO" build -q --bin smsflow
SMSFLOW="${CARGO_TARGET_DIR:-$ROOT/target}/debug/smsflow"
"$PY" "$HERE/docker_context.py" --root "$ROOT" --dockerfile deploy/Dockerfile --libraries "$SMSFLOW"

step "Helm chart: helm $("$BIN/helm" version --template '{{.Version}}') lint and template"
CHART=deploy/helm/smsflow
for values in "" ci/minimal-values.yaml ci/production-values.yaml; do
  label=${values:-values.yaml}
  args=(); [[ -n $values ]] && args=(-f "$CHART/$values")
  "$BIN/helm" lint --strict "$CHART" "${args[@]}" >"$OUT/lint.log" || { cat "$OUT/lint.log"; exit 1; }
  echo "ok   helm lint --strict ($label)"
  out="$OUT/render-$(basename "$label" .yaml).yaml"
  "$BIN/helm" template smsflow "$CHART" --namespace sms "${args[@]}" >"$out"
  echo "ok   helm template ($label): $(grep -c '^kind:' "$out") resources"
  RENDERED+=("$out")
done
# The chart's guards must refuse what would break at run time.
refuse() {  # refuse REASON-REGEX helm-args...
  local want=$1; shift
  if "$BIN/helm" template smsflow "$CHART" "$@" >/dev/null 2>"$OUT/refused.log"; then
    echo "FAIL the chart rendered with $*" >&2; exit 1
  fi
  grep -qE "$want" "$OUT/refused.log" || { cat "$OUT/refused.log" >&2; exit 1; }
  echo "ok   refused: $*"
}
refuse "must exceed preStopSleepSeconds" --set roleGroups.stages.terminationGracePeriodSeconds=30
refuse "must exceed preStopSleepSeconds" --set config.http.shutdown_grace=40s
refuse "file:// media store" --set config.media.store_url=file:///var/tmp/smsflow/media
refuse "autoscaling \(CPU\) or keda" --set keda.enabled=true --set roleGroups.stages.autoscaling.enabled=true
refuse "runs no consumer role" --set keda.enabled=true --set roleGroups.api.keda.enabled=true
refuse "must listen on every interface" --set config.http.ops_addr=127.0.0.1:8090

step "smsflow.toml of each rendering, read by smsflow's own configuration loader"
for r in "${RENDERED[@]}"; do
  "$PY" - "$r" "$OUT/smsflow.toml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap" and "smsflow.toml" in d.get("data", {})]
open(sys.argv[2], "w").write(docs[0]["data"]["smsflow.toml"])
PY
  env -i PATH="$PATH" HOME="$HOME" "$SMSFLOW" --config "$OUT/smsflow.toml" topics --emit strimzi >/dev/null
  echo "ok   $(basename "$r"): smsflow accepts its smsflow.toml"
  "$PY" "$HERE/listeners.py" "$r"
done
env -i PATH="$PATH" HOME="$HOME" "$SMSFLOW" --config deploy/compose/smsflow.toml topics --emit strimzi >/dev/null
echo "ok   deploy/compose/smsflow.toml: smsflow accepts it"

step "Manifests against Kubernetes and CRD schemas"
"$PY" "$HERE/validate_manifests.py" --strimzi-crds "$CACHE/strimzi-crds" --node-modules "$CACHE/node/node_modules" --crdtypes "$BIN/crdtypes" \
  $(printf -- '--k8s-version %s ' "${K8S_VERSIONS[@]}") "${RENDERED[@]}" deploy/k8s/*.yaml deploy/k8s/strimzi/*.yaml
"$PY" "$HERE/cross_check.py" --root "$ROOT"

step "OpenTelemetry Collector and Jaeger configs: $(basename "$JAEGER_BIN") validate, then started on loopback"
[[ -x $JAEGER_BIN ]] || bash deploy/local/stack.sh up jaeger >/dev/null
JAEGER_OTLP_ENDPOINT=jaeger:4317 "$JAEGER_BIN" validate --config deploy/otel/collector.yaml
echo "ok   deploy/otel/collector.yaml (otlp, memory_limiter, tail_sampling, batch, otlp exporter, healthcheckv2)"
"$JAEGER_BIN" validate --config deploy/otel/jaeger.yaml
echo "ok   deploy/otel/jaeger.yaml"
# validate reads keys and types; tail-sampling policies and storage backends are built at start.
"$PY" "$HERE/run_collector.py" "$JAEGER_BIN" deploy/otel/collector.yaml JAEGER_OTLP_ENDPOINT=127.0.0.1:9
"$PY" "$HERE/run_collector.py" "$JAEGER_BIN" deploy/otel/jaeger.yaml

step "Compose file: compose-go (the Compose specification's reference loader)"
TWILIO_ACCOUNT_SID=AC0 TWILIO_AUTH_TOKEN=t SMSFLOW_API__AUTH__HS256_SECRET=s "$BIN/composecheck" deploy/compose/compose.yaml

step "Prometheus rules and Grafana dashboard: promtool of $(go version -m "$BIN/promtool" | awk '$1=="mod" {print $2, $3}')"
RULES=$CHART/files/prometheus-rules.yaml
"$BIN/promtool" check rules "$RULES"
"$BIN/promtool" test rules "$HERE/prometheus-rules.test.yaml"
"$PY" "$HERE/check_dashboard.py" --root "$ROOT" --promtool "$BIN/promtool" \
  --dashboard "$CHART/files/grafana-dashboard.json" --rules "$RULES"

echo
echo "check-deploy: every check passed in $(( $(date +%s) - started )) s"
