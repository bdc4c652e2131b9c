#!/usr/bin/env bash
# Soak: runs the release relay under moderate fan-out with constant subscriber and publisher
# churn, and samples its resident memory and open file descriptors every 10 s. Not run in CI.
#
#   scripts/soak.sh [SECONDS]        # default 600 (10 minutes)
#
# The load (moq-load, on loopback): one publisher at 30 frames/s of 4 KB, 20 steady
# subscribers, 4 workers that connect, subscribe, take one frame and leave, over and over
# (20 ms apart), and one worker that publishes a fresh track, has it received through the
# relay by a second session, and leaves.
# Prints one line per sample (seconds, RSS KiB, open fds), then moq-load's report.
# Environment: PORT (default 14443), CARGO_TARGET_DIR as usual.
set -euo pipefail

duration="${1:-600}"
port="${PORT:-14443}"
interval=10
cd "$(dirname "$0")/.."

cargo build --release -q -p moq-relay -p moq-load
target="${CARGO_TARGET_DIR:-target}/release"

"$target/moq-relay" --bind "127.0.0.1:$port" -q > /dev/null &
relay=$!
load=""
cleanup() {
    [ -n "$load" ] && kill "$load" 2>/dev/null || true
    kill "$relay" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Wait (bounded) until the relay's socket is up.
for _ in $(seq 50); do
    ss -Hlun "sport = :$port" | grep -q . && break
    sleep 0.1
done

sample() {
    local rss fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$relay/status")
    fds=$(find "/proc/$relay/fd" -mindepth 1 -maxdepth 1 | wc -l)
    printf '%6d  %8d  %4d\n' "$1" "$rss" "$fds"
}

"$target/moq-load" "moqf://localhost:$port" --tls-disable-verify \
    --subscribers 20 --rate 30 --frame-size 4000 --group-frames 30 \
    --churn-workers 4 --publisher-churn --churn-pause-ms 20 \
    --duration "$duration" --relay-pid "$relay" > /tmp/soak-load.$$ 2>&1 &
load=$!

echo "    s   RSS KiB   fds"
start=$(date +%s)
while kill -0 "$load" 2>/dev/null; do
    sample $(( $(date +%s) - start ))
    sleep "$interval"
done
wait "$load"
load=""
sample $(( $(date +%s) - start ))
cat /tmp/soak-load.$$
rm -f /tmp/soak-load.$$
