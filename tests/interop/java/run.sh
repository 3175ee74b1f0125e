#!/usr/bin/env bash
# Runs a class of tests/interop/java/ against the Avro reference implementation (Java):
#   tests/interop/java/run.sh CLASS [ARGS...]
# The Avro jar comes from Maven Central (pom.xml here) with `mvn dependency:copy-dependencies`,
# like deploy/local/stack.sh fetches Kafka; jars and compiled classes are cached by content hash
# under $SMSSTACK_CACHE/interop/avro-java. Nothing here uses smsflow's code.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SMSSTACK_CACHE:-$HOME/.cache/smsflow-stack}"
JAVA_HOME="${SMSSTACK_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
[[ -x $JAVA_HOME/bin/javac ]] || JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
export JAVA_HOME

sum="$(cat "$HERE/pom.xml" "$HERE"/*.java | sha256sum | cut -c1-16)"
dest="$CACHE/interop/avro-java/$sum"
mkdir -p "$CACHE/interop"
if [[ ! -f $dest/.stamp ]]; then
  (
    flock 9
    [[ -f $dest/.stamp ]] && exit 0
    command -v mvn >/dev/null || { echo "mvn not found: apt-get install maven" >&2; exit 1; }
    tmp="$dest.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/classes"
    mvn -B -q -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib" \
      >"$tmp.log" 2>&1 || { tail -n 30 "$tmp.log" >&2; rm -rf "$tmp"; exit 1; }
    "$JAVA_HOME/bin/javac" -d "$tmp/classes" -cp "$tmp/lib/*" "$HERE"/*.java
    touch "$tmp/.stamp"
    rm -rf "$dest" && mv "$tmp" "$dest" && rm -f "$tmp.log"
  ) 9>"$CACHE/interop/.avro-java.lock"
fi
# slf4j-api without a provider only warns; silence it so stdout/stderr stay readable.
exec "$JAVA_HOME/bin/java" -Dslf4j.internal.verbosity=ERROR -cp "$dest/classes:$dest/lib/*" "$@"
