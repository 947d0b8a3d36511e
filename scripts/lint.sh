#!/usr/bin/env bash
# Formatting, the declared test programs, the event lines, clippy with warnings as errors, and cargo-deny
# (licenses, bans, sources; the advisories too where the advisory database can be fetched).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo fmt --all -- --check
# Every external program a test starts is named in scripts/test.sh's program list (so that
# scripts/test.sh installs it): read from the sources, so the verdict does not depend on what
# this machine has installed.
cargo test --locked -q -p lvs-testsupport --test programs_declared
# Every event line is built by lvs_common::event! (never written by hand with `event=`), and
# every event and key it names is in docs/LOGGING.md.
cargo test --locked -q -p lvs-testsupport --test events_through_macro
# `unsafe` only in sys modules (sys.rs, sys/), apart from the files listed with a reason in
# testsupport/tests/unsafe_confined.rs: read from the sources too.
cargo test --locked -q -p lvs-testsupport --test unsafe_confined
cargo clippy --workspace --all-targets --locked -- -D warnings
if ! cargo deny --version >/dev/null 2>&1; then
    echo "scripts/lint.sh: installing cargo-deny (once per machine)" >&2
    cargo install cargo-deny --version 0.20.2 --locked
fi
cargo deny check licenses bans sources
# The advisory database lives on GitHub; a machine that cannot reach it says so instead of
# failing (deny.toml records the one advisory we accept, bincode's, and why).
if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny check advisories
else
    echo "scripts/lint.sh: advisory database unreachable: advisories not checked" >&2
fi
