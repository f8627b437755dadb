#!/usr/bin/env bash
# The cost of --metrics: the bench's `reuse` workload (smtp-source -d -s 20
# -l 5120 -m 50000 into smtp-sink, both ours) run plain and with --metrics
# on both tools while curl polls both /metrics pages every 100 ms. Rounds
# alternate plain/metrics so that machine noise hits both alike; each line
# gives msg/s (source wall clock) and the CPU seconds of each tool.
#
# Usage: bench/metrics-overhead.sh [ROUNDS] (after cargo build --release);
# MODES="plain metrics unscraped" adds --metrics without the scraper.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${N:-50000}
MODES=${MODES:-plain metrics}
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
USER_ARGS=()
[ "$(id -u)" = 0 ] && USER_ARGS=(-u nobody)

ticks() { # utime + stime of PID, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

url_of() { # wait for the "metrics: listening on URL" line in FILE
  for _ in $(seq 200); do
    u=$(grep -o 'http://[^ ]*/metrics' "$1" || true)
    [ -n "$u" ] && { echo "$u"; return; }
    sleep 0.05
  done
  echo "no metrics line in $1" >&2
  exit 1
}

round() { # MODE: plain | metrics | unscraped
  local mode=$1 port extra=()
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  [ "$mode" != plain ] && extra=(--metrics 127.0.0.1:0)
  "$BIN/smtp-sink" "${USER_ARGS[@]}" "${extra[@]}" "127.0.0.1:$port" 1000 2>"$WORK/sink.err" &
  local sink=$!
  sleep 0.3
  local before
  before=$(ticks $sink)
  /usr/bin/time -o "$WORK/src.time" -f "%e %U %S" \
    "$BIN/smtp-source" "${extra[@]}" -d -s 20 -l 5120 -m "$N" "127.0.0.1:$port" 2>"$WORK/src.err" &
  local src=$! scraper=
  if [ "$mode" = metrics ]; then
    local u1 u2
    u1=$(url_of "$WORK/sink.err")
    u2=$(url_of "$WORK/src.err")
    (while :; do curl -s -o /dev/null "$u1"; curl -s -o /dev/null "$u2" || true; sleep 0.1; done) &
    scraper=$!
  fi
  wait $src
  local after
  after=$(ticks $sink)
  [ -n "$scraper" ] && kill $scraper
  kill $sink
  wait $sink 2>/dev/null || true
  read -r wall user sys <"$WORK/src.time"
  local hz
  hz=$(getconf CLK_TCK)
  awk -v m="$mode" -v n="$N" -v w="$wall" -v u="$user" -v s="$sys" -v t=$((after - before)) -v hz="$hz" \
    'BEGIN { printf "%-8s %9.0f msg/s  source cpu %6.2f s  sink cpu %6.2f s\n", m, n / w, u + s, t / hz }'
}

for r in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    round "$mode"
  done
done
