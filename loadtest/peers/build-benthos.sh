#!/usr/bin/env bash
# Build the Benthos peer once into ~/.cache/smsflow-bench/benthos: v4.27.0 of
# github.com/benthosdev/benthos/v4 (MIT), only the components the peer configs use.
# `go install ...@v4.27.0` is refused by the module proxy here (the module's version list is not
# served), so this builds a pinned main package (peers/benthos/) instead. Takes minutes.
set -euo pipefail
dest=${BENTHOS:-$HOME/.cache/smsflow-bench/benthos}
[[ -x $dest ]] && { echo "benthos already built: $dest"; exit 0; }
command -v go >/dev/null || { echo "needs Go (https://go.dev/dl/) to build the Benthos peer" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
cd "$(dirname "$0")/benthos"
GOFLAGS=-mod=mod nice -n 10 go build -o "$dest" .
"$dest" --version
