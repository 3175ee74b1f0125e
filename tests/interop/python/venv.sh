#!/usr/bin/env bash
# venv.sh [REQUIREMENTS]: prints the python of a venv holding REQUIREMENTS (default: this
# folder's requirements.txt, the Avro consumers), creating it once (from PyPI, with pip) under
# $SMSSTACK_CACHE/interop/venv-<hash of the requirements>. CI starts from a clean clone: this is
# the only install step the Python checks need. Users: tests/downstream_consumers.rs,
# tests/schema_registry.rs (Avro), tests/api_contract.rs (tests/interop/openapi/requirements.txt).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQUIREMENTS="${1:-$HERE/requirements.txt}"
CACHE="${SMSSTACK_CACHE:-$HOME/.cache/smsflow-stack}"
PYTHON="${PYTHON:-python3}"
sum="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
venv="$CACHE/interop/venv-$sum"
mkdir -p "$CACHE/interop"
if [[ ! -f $venv/.stamp ]]; then
  (
    flock 9
    [[ -f $venv/.stamp ]] && exit 0
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -r "$REQUIREMENTS" >&2
    touch "$venv/.stamp"
  ) 9>"$CACHE/interop/.venv-$sum.lock"
fi
echo "$venv/bin/python"
