#!/usr/bin/env bash
# Installs the Debian packages the build needs, only when missing. Idempotent.
set -euo pipefail

need=()
# ffmpeg and pocketsphinx: the transcribe stage's decoder and offline recognizer (and its tests).
# wrk: make bench.
# maven, a JDK 17 (javac) and python3-venv: the interop tests run other people's Avro code
# (the Java reference jar from Maven Central, fastavro and confluent-kafka from PyPI in a venv).
for pkg in build-essential cmake pkg-config libssl-dev libcurl4-openssl-dev zlib1g-dev \
  ffmpeg pocketsphinx pocketsphinx-en-us pocketsphinx-testdata wrk \
  maven openjdk-17-jdk-headless python3-venv; do
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

# cargo-nextest runs `make test` (test binaries side by side). Built once from crates.io and kept
# in ~/.cargo/bin; thin LTO and parallel codegen instead of its release profile's fat LTO keep
# the one-time build to a few minutes.
NEXTEST_VERSION=0.9.151
if ! cargo nextest --version 2>/dev/null | grep -q "^cargo-nextest $NEXTEST_VERSION "; then
  echo "deps: installing cargo-nextest $NEXTEST_VERSION (first run only)"
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install --locked --quiet cargo-nextest --version "$NEXTEST_VERSION"
fi
