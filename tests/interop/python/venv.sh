#!/usr/bin/env bash
# Prints the python of a venv holding tests/interop/python/requirements.txt, creating it once
# (from PyPI, with pip) under $SMSSTACK_CACHE/interop/venv-<hash of requirements>. CI starts
# from a clean clone: this is the only install step the Python checks need.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SMSSTACK_CACHE:-$HOME/.cache/smsflow-stack}"
PYTHON="${PYTHON:-python3}"
sum="$(sha256sum "$HERE/requirements.txt" | cut -c1-16)"
venv="$CACHE/interop/venv-$sum"
mkdir -p "$CACHE/interop"
if [[ ! -f $venv/.stamp ]]; then
  (
    flock 9
    [[ -f $venv/.stamp ]] && exit 0
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -r "$HERE/requirements.txt" >&2
    touch "$venv/.stamp"
  ) 9>"$CACHE/interop/.venv.lock"
fi
echo "$venv/bin/python"
