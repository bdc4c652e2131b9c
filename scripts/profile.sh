#!/usr/bin/env bash
# Call-graph profiles of our relay, moq-relay 0.6.15 and the plain-quinn floor server under the
# same fan-out load, one after the other, with a flame graph of each and a table of where the
# CPU time goes (docs/performance.md, "Profile").
#
#   scripts/profile.sh [SUBSCRIBERS]        default 100; 8 KiB frames at 30 fps, 60-frame groups
#
#   PROFILE_OUT   where the perf data, folded stacks and flame graphs go (default target/profile)
#   PROFILE_HZ    sampling rate (default 2999: the relays use a few % of a core at these points,
#                 so a lower rate leaves a few hundred samples)
#
# Needs perf (and permission to profile other processes), python3, and inferno
# (`cargo install inferno`), the reference relay from scripts/install-reference-peers.sh, and
# openssl for the certificate both relays serve. Each relay listens on 127.0.0.1 only, and each
# run is bounded: 22 s of publishing, 14 s of it recorded.
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS="${1:-100}"
OUT="${PROFILE_OUT:-target/profile}"
HZ="${PROFILE_HZ:-2999}"
REF="${MOQ_REF_DIR:-$HOME/.cache/moq-ref}/bin/moq-relay"
mkdir -p "$OUT"

for tool in perf python3 inferno-collapse-perf inferno-flamegraph openssl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ -x "$REF" ] || scripts/install-reference-peers.sh

# Release code with debug info: the profile sees inlined frames.
cargo build --profile profiling -p moq-relay -p moq-load
LOAD=target/profiling/moq-load
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null

LOAD_ARGS=(--subscribers "$SUBSCRIBERS" --rate 30 --frame-size 8192 --group-frames 60 --duration 22)

record() { # TAG PID: 14 s of samples, after 5 s of warm-up
    sleep 5
    perf record -q -F "$HZ" --call-graph dwarf,16384 -p "$2" -o "$OUT/$1.data" -- sleep 14 \
        >/dev/null 2>&1
}

relay() { # TAG BINARY ARGS...
    local tag=$1 binary=$2 port pid load
    shift 2
    port=$((20000 + RANDOM % 20000))
    "$binary" --bind "127.0.0.1:$port" --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" \
        "$@" >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
    "$LOAD" --tls-disable-verify "${LOAD_ARGS[@]}" --relay-pid "$pid" "moqf://127.0.0.1:$port" \
        >"$OUT/$tag.out" 2>&1 &
    load=$!
    record "$tag" "$pid"
    wait "$load"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

relay ours target/profiling/moq-relay -q --max-sessions-per-ip 100000
relay ref "$REF" -q

"$LOAD" floor "${LOAD_ARGS[@]}" >"$OUT/floor.out" 2>&1 &
load=$!
server=""
for _ in $(seq 100); do
    server=$(pgrep -f "moq-load floor-server" | head -1 || true)
    [ -n "$server" ] && break
    sleep 0.1
done
[ -n "$server" ] || { echo "the floor server did not start" >&2; exit 1; }
record floor "$server"
wait "$load"

for tag in ours ref floor; do
    perf script -i "$OUT/$tag.data" 2>/dev/null | inferno-collapse-perf --all >"$OUT/$tag.folded"
    inferno-flamegraph --width 1200 --minwidth 0.3 --countname ns \
        --title "$tag: $SUBSCRIBERS subscribers x 8 KiB x 30 fps, CPU time" \
        <"$OUT/$tag.folded" >"$OUT/$tag.svg"
    echo "$tag: $(grep -h -o '[0-9.]* CPU-s per delivered GB\|p99 [0-9.]*' "$OUT/$tag.out" | tr '\n' ' ')"
done
python3 scripts/profile-groups.py "$OUT/ours.folded" "$OUT/floor.folded" "$OUT/ref.folded"
