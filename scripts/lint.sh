#!/usr/bin/env bash
# Formatting, clippy with warnings as errors, and cargo-deny when it is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo deny --version >/dev/null 2>&1; then
    cargo deny check
else
    echo "scripts/lint.sh: cargo-deny not installed (cargo install cargo-deny); skipping deny.toml checks" >&2
fi
