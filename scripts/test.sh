#!/usr/bin/env bash
# The test command (README): installs what the tests need on a fresh Debian machine, builds the
# whole workspace (the scheduler plugins must exist as .so files before the tests load them),
# and runs every test. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the tests use: gcc builds the C plugins of the ABI tests and the C programs
# of the lock manager's C API tests (lockmgr/capi); iproute2, ethtool
# and nftables build and inspect the network-namespace testbeds; python3 serves HTTP on the
# testbed's real servers and curl is the client; procps gives sysctl; python3-aiosmtpd is the
# real SMTP server the alert tests mail to; openssl makes their test certificates.
# chromium is the real browser of lvs-webmon's browser test, driven from nodejs by
# playwright-core (installed with npm below; npm comes with NodeSource's nodejs, else Debian's).
packages=(gcc libc6-dev iproute2 ethtool nftables python3 curl procps python3-aiosmtpd openssl chromium nodejs)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "scripts/test.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
    for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
        [ -x "$c" ] && PATH="$(dirname "$c"):$PATH" && break
    done
fi
command -v cargo >/dev/null || { echo "scripts/test.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: WARNING: not root: tests that need root will print SKIPPED" >&2
fi

# lvs-webmon's browser test drives chromium with playwright-core, pinned by
# webmon/tests/browser/package-lock.json.
if ! command -v npm >/dev/null && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
fi
(cd webmon/tests/browser && npm ci --no-audit --no-fund --loglevel=error)

cargo build --workspace --locked
cargo test --workspace --locked
