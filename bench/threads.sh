#!/usr/bin/env bash
# --threads 1 against --threads 2 on both tools, on the bench's `reuse`,
# `pipe` and `tlsconn` workloads (examples/bench/model.rs: -s 20 -l 5120,
# 50000 messages; tlsconn: 5000 connections, one STARTTLS handshake each).
# Rounds alternate the thread counts so that machine noise hits both alike;
# each line gives msg/s (source wall clock) and the CPU seconds of each tool.
#
# Usage: bench/threads.sh [ROUNDS] (after cargo build --release);
# N=... scales the message counts (tlsconn uses N/10).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}
N=${N:-50000}
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
USER_ARGS=()
[ "$(id -u)" = 0 ] && USER_ARGS=(-u nobody)

ticks() { # utime + stime of PID, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

round() { # WORKLOAD THREADS
  local w=$1 t=$2 port m=$N src_extra=(-d) sink_extra=()
  case $w in
    reuse) ;;
    pipe) src_extra=(-d --ehlo --pipelining) ;;
    tlsconn) src_extra=(--starttls); sink_extra=(--tls-self-signed); m=$((N / 10)) ;;
  esac
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN/smtp-sink" "${USER_ARGS[@]}" --threads "$t" "${sink_extra[@]}" "127.0.0.1:$port" 1000 2>"$WORK/sink.err" &
  local sink=$!
  sleep 0.3
  local before
  before=$(ticks $sink)
  /usr/bin/time -o "$WORK/src.time" -f "%e %U %S" \
    "$BIN/smtp-source" --threads "$t" "${src_extra[@]}" -s 20 -l 5120 -m "$m" "127.0.0.1:$port" 2>"$WORK/src.err"
  local after
  after=$(ticks $sink)
  kill $sink
  wait $sink 2>/dev/null || true
  read -r wall user sys <"$WORK/src.time"
  awk -v w="$w" -v t="$t" -v n="$m" -v s="$wall" -v u="$user" -v y="$sys" -v k=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%-8s --threads %d %9.0f msg/s  source cpu %6.2f s  sink cpu %6.2f s\n", w, t, n / s, u + y, k / hz }'
}

for _ in $(seq "$ROUNDS"); do
  for w in reuse pipe tlsconn; do
    for t in 1 2; do
      round "$w" "$t"
    done
  done
done
