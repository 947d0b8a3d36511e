#!/usr/bin/env bash
# The test command (README): installs what the tests need on a fresh Debian machine, builds the
# whole workspace (the scheduler plugins must exist as .so files before the tests load them),
# runs every test binary even when one fails, and ends with one line
# `N passed, N failed, N skipped`. Exits non-zero on any failure.
#
# It runs as root only: most tests build network namespaces, and a test that cannot run must
# fail, not print SKIPPED and pass (LVS_TESTS_REQUIRE_ALL below makes every such test fail).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: must run as root (the tests build network namespaces): sudo scripts/test.sh" >&2
    exit 1
fi

# nft, sysctl, ethtool and start-stop-daemon live in the sbin directories, which a root shell
# from `su` (without -) may not have in PATH; the tests look them up in PATH too.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

# scripts/test-programs: every external program the tests start, with its Debian package
# (scripts/lint.sh checks that the tests start nothing else).
programs=()
packages=()
while read -r prog pkg _; do
    case "$prog" in '' | '#'*) continue ;; esac
    [ -n "$pkg" ] || { echo "scripts/test.sh: scripts/test-programs: '$prog' has no package" >&2; exit 1; }
    programs+=("$prog")
    packages+=("$pkg")
done < scripts/test-programs

# A `-` line names a package without a program of its own: it counts as present when dpkg says
# it is installed.
present() {
    if [ "$1" = - ]; then
        dpkg-query -W -f='${Status}' "$2" 2>/dev/null | grep -q "install ok installed"
    else
        command -v "$1" >/dev/null
    fi
}

missing=()
for i in "${!programs[@]}"; do
    if ! present "${programs[$i]}" "${packages[$i]}"; then
        case " ${missing[*]} " in *" ${packages[$i]} "*) ;; *) missing+=("${packages[$i]}") ;; esac
    fi
done
# A failed apt-get is not the end: one package it cannot install must not keep the others out
# (so they go one by one then), and the check below names the program still missing.
if [ ${#missing[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -qq --no-install-recommends "$@"; }
    apt-get update -qq || true
    if ! apt_install "${missing[@]}"; then
        for p in "${missing[@]}"; do apt_install "$p" || true; done
    fi
fi
for i in "${!programs[@]}"; do
    if ! present "${programs[$i]}" "${packages[$i]}"; then
        if [ "${programs[$i]}" = - ]; then
            echo "scripts/test.sh: Debian package ${packages[$i]} is not installed" >&2
        else
            echo "scripts/test.sh: ${programs[$i]} is missing (Debian package ${packages[$i]})" >&2
        fi
        exit 1
    fi
done

if ! command -v cargo >/dev/null; then
    for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
        [ -x "$c" ] && PATH="$(dirname "$c"):$PATH" && break
    done
fi
command -v cargo >/dev/null || { echo "scripts/test.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }

# lvs-webmon's browser test drives chromium with playwright-core, pinned by
# webmon/tests/browser/package-lock.json.
(cd webmon/tests/browser && npm ci --no-audit --no-fund --loglevel=error)

# Read by lvs-testsupport (and the few tests that check for themselves): a test whose
# prerequisite is missing (root, a program, a built binary) fails instead of skipping.
export LVS_TESTS_REQUIRE_ALL=1

cargo build --workspace --locked

log=$(mktemp /tmp/lvs-test-XXXXXX.log)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Cargo's own errors first (a test binary that failed to build, or died before its
# `test result:` line), so that the summary is the last line.
if [ "$status" -ne 0 ]; then
    grep -E '^error: ' "$log" | sed 's|^|scripts/test.sh: |' >&2 || true
fi
# One line summed over every `test result:` line (unit, integration and doc tests). "skipped"
# counts the #[ignore]d tests: a test that prints SKIPPED cannot pass here, since
# LVS_TESTS_REQUIRE_ALL turns every skip into a failure.
awk '
    /^test result: / {
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed;?$/) passed += $(i - 1)
            if ($i ~ /^failed;?$/) failed += $(i - 1)
            if ($i ~ /^ignored;?$/) ignored += $(i - 1)
        }
    }
    END { printf "%d passed, %d failed, %d skipped\n", passed, failed, ignored }
' "$log"
exit "$status"
