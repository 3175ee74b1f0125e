#!/usr/bin/env bash
# Build the Benthos peers' binary once into ~/.cache/smsflow-bench/benthos: v4.27.0 of
# github.com/benthosdev/benthos/v4 (MIT), only the components the peer configs use. A binary
# built before the equal-work peer (no redis_script or avro processor) is rebuilt.
# `go install ...@v4.27.0` is refused by the module proxy here (the module's version list is not
# served), so this builds a pinned main package (peers/benthos/) instead. Takes minutes.
set -euo pipefail
dest=${BENTHOS:-$HOME/.cache/smsflow-bench/benthos}
if [[ -x $dest ]]; then
  have=$("$dest" list processors 2>/dev/null || true)
  if grep -q -- "- redis_script$" <<<"$have" && grep -q -- "- avro$" <<<"$have"; then
    echo "benthos already built: $dest"; exit 0
  fi
  echo "benthos at $dest lacks the equal-work peer's processors (redis_script, avro): rebuilding"
fi
command -v go >/dev/null || { echo "needs Go (https://go.dev/dl/) to build the Benthos peer" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
cd "$(dirname "$0")/benthos"
GOFLAGS=-mod=mod nice -n 10 go build -o "$dest" .
"$dest" --version
