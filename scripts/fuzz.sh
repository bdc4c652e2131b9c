#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time; any crash fails the script (CI).
#
#   FUZZ_SECONDS   seconds per target (default 40; CI runs all four in under 3 minutes)
#   FUZZ_CACHE     where cargo-fuzz, the build and the corpora live (default ~/.cache/moq-fuzz)
#   FUZZ_SANITIZER address (default) or none (about 3 times faster, for long runs by hand)
#
# cargo-fuzz comes from the registry, installed once into "$FUZZ_CACHE/cargo-fuzz"; the
# nightly toolchain must be installed. A crash leaves its input in fuzz/artifacts/<target>/;
# turn it into a regression test in moq-transfork/tests/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-40}"
FUZZ_CACHE="${FUZZ_CACHE:-$HOME/.cache/moq-fuzz}"
mkdir -p "$FUZZ_CACHE"

if ! [ -x "$FUZZ_CACHE/cargo-fuzz/bin/cargo-fuzz" ]; then
    cargo install cargo-fuzz --locked --root "$FUZZ_CACHE/cargo-fuzz"
fi
export PATH="$FUZZ_CACHE/cargo-fuzz/bin:$PATH"

build=(--target-dir "$FUZZ_CACHE/target" --sanitizer "${FUZZ_SANITIZER:-address}")
cargo +nightly fuzz build "${build[@]}"

for target in $(cargo +nightly fuzz list); do
    case "$target" in
        # Inputs past the 8 KiB message cap; a session script gets a longer timeout.
        stream_reader) flags=(-max_len=20000) ;;
        session_input) flags=(-timeout=10) ;;
        *) flags=() ;;
    esac
    corpus="$FUZZ_CACHE/corpus/$target"
    mkdir -p "$corpus"
    echo "-- $target (${FUZZ_SECONDS}s)"
    log="$FUZZ_CACHE/$target.log"
    status=0
    cargo +nightly fuzz run "${build[@]}" "$target" "$corpus" -- \
        -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "${flags[@]}" >"$log" 2>&1 ||
        status=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+ *DONE' \
        "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
