#!/usr/bin/env bash
# Installs the Debian packages the build needs, only when missing. Idempotent.
set -euo pipefail

need=()
# ffmpeg and pocketsphinx: the transcribe stage's decoder and offline recognizer (and its tests).
# wrk: make bench.
for pkg in build-essential cmake pkg-config libssl-dev libcurl4-openssl-dev zlib1g-dev \
  ffmpeg pocketsphinx pocketsphinx-en-us pocketsphinx-testdata wrk; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo not found; install Rust (rustup) first" >&2; exit 1; }
