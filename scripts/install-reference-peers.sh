#!/usr/bin/env bash
# Builds the released reference peers (moq-relay 0.6.15, moq-clock 0.5.17) once, into a cache
# outside the repository. The interop tests find them in "$MOQ_REF_DIR/bin".
# cargo install is a no-op when the same versions are already installed there.
set -euo pipefail

MOQ_REF_DIR="${MOQ_REF_DIR:-$HOME/.cache/moq-ref}"
mkdir -p "$MOQ_REF_DIR"

if [ -x "$MOQ_REF_DIR/bin/moq-relay" ] && [ -x "$MOQ_REF_DIR/bin/moq-clock" ] &&
    grep -q 'moq-relay 0.6.15' "$MOQ_REF_DIR/.crates.toml" 2>/dev/null &&
    grep -q 'moq-clock 0.5.17' "$MOQ_REF_DIR/.crates.toml" 2>/dev/null; then
    echo "reference peers already in $MOQ_REF_DIR/bin"
    exit 0
fi

# A separate target dir keeps the workspace's build cache apart and survives in the cache dir.
CARGO_TARGET_DIR="$MOQ_REF_DIR/target" \
    cargo install --locked moq-relay@0.6.15 moq-clock@0.5.17 --root "$MOQ_REF_DIR"
echo "reference peers installed in $MOQ_REF_DIR/bin"
