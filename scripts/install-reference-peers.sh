#!/usr/bin/env bash
# Builds the released reference peers (moq-relay 0.6.15, moq-clock 0.5.17) once, into a cache
# outside the repository. The interop tests find them in "$MOQ_REF_DIR/bin", and run this script
# themselves when they are missing. A file lock makes concurrent callers (parallel test binaries)
# build once: the others wait, then find the peers installed.
set -euo pipefail

MOQ_REF_DIR="${MOQ_REF_DIR:-$HOME/.cache/moq-ref}"
mkdir -p "$MOQ_REF_DIR"

installed() {
    [ -x "$MOQ_REF_DIR/bin/moq-relay" ] && [ -x "$MOQ_REF_DIR/bin/moq-clock" ] &&
        grep -q 'moq-relay 0.6.15' "$MOQ_REF_DIR/.crates.toml" 2>/dev/null &&
        grep -q 'moq-clock 0.5.17' "$MOQ_REF_DIR/.crates.toml" 2>/dev/null
}

if installed; then
    echo "reference peers already in $MOQ_REF_DIR/bin"
    exit 0
fi

exec 9>"$MOQ_REF_DIR/.install.lock"
if ! flock --nonblock 9; then
    echo "another process is building the reference peers into $MOQ_REF_DIR; waiting for it" >&2
    flock 9
fi
if installed; then
    echo "reference peers already in $MOQ_REF_DIR/bin"
    exit 0
fi

if ! command -v cargo >/dev/null; then
    echo "error: cargo is not on PATH; install a Rust toolchain (rustup) to build the reference peers" >&2
    exit 1
fi

echo "building the reference peers moq-relay 0.6.15 and moq-clock 0.5.17 into $MOQ_REF_DIR" \
    "(once; about ten minutes on two cores)" >&2
start=$(date +%s)
# A separate target dir keeps the workspace's build cache apart and survives in the cache dir.
if ! CARGO_TARGET_DIR="$MOQ_REF_DIR/target" \
    cargo install --locked moq-relay@0.6.15 moq-clock@0.5.17 --root "$MOQ_REF_DIR"; then
    echo "error: building the reference peers failed (see cargo's output above); they need" \
        "crates.io and a C compiler (cc) for their TLS dependencies" >&2
    exit 1
fi
echo "reference peers installed in $MOQ_REF_DIR/bin in $(($(date +%s) - start)) s" >&2
