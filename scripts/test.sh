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

# Every external program the tests start, with its Debian package: the list between the PROGRAMS
# markers below (scripts/lint.sh checks that the tests start nothing else).
programs=()
packages=()
while read -r prog pkg _; do
    case "$prog" in '' | '#'*) continue ;; esac
    [ -n "$pkg" ] || { echo "scripts/test.sh: the program list: '$prog' has no package" >&2; exit 1; }
    programs+=("$prog")
    packages+=("$pkg")
done <<'PROGRAMS'
# Every external program the tests start, and the Debian package that provides it.
#
#   PROGRAM PACKAGE     a program (a name looked up in PATH, or an absolute path)
#   - PACKAGE           a package the tests need that brings no program of its own
#
# This script reads this list first: it installs the package of every program that
# `command -v` cannot find (and every `-` package not installed), then fails with one line
# naming the program and its package if one is still missing. scripts/lint.sh fails when a
# test starts a program that is not listed here (testsupport/tests/programs_declared.rs says
# which calls it reads). Programs that daemons under test start are listed by hand below: the
# lint cannot see them, since their names come from configuration defaults.

# --- network namespaces, the testbed (scripts/testbed.sh) and the tests' packet tools
ip iproute2
nft nftables
ethtool ethtool
sysctl procps
kill procps
tcpdump tcpdump
# Best effort (warms d2's ARP cache in director/tests/sync.rs), but started all the same.
ping iputils-ping

# --- real servers, clients and probes
python3 python3
# The SMTP tests prefer Debian's interpreter (a python3 earlier in PATH may lack aiosmtpd).
/usr/bin/python3 python3
- python3-aiosmtpd
# The strict reference parser of the layer-7 differential tests (lvs-l7, l7_framing).
- python3-h11
curl curl
openssl openssl

# --- the lock manager's clock-jump test preloads libfaketime into its daemons (no program)
- libfaketime

# --- compilers: the C scheduler plugins, the lock manager's C API and its C++ header check
gcc gcc
g++ g++
- libc6-dev

# --- lvs-webmon's browser test: node drives chromium through playwright-core (npm ci)
node nodejs
npm npm
/usr/bin/chromium chromium

# --- the SysV init scripts under test (etc/init.d/*)
start-stop-daemon dpkg

# --- the systemd units under test (etc/systemd/*): verified and scored, and the daemons run
# under their restrictions (testsupport/src/unit.rs: capability bounding set, read-only root)
systemd-analyze systemd
setpriv util-linux
unshare util-linux
mount mount

# --- shells and the base tools that test shell lines, scripts and lvs-lockctl commands run
sh dash
/bin/sh dash
bash bash
# scripts/testbed.sh's #! line.
/usr/bin/env coreutils
head coreutils
id coreutils
cat coreutils
date coreutils
dirname coreutils
echo coreutils
env coreutils
head coreutils
id coreutils
mkdir coreutils
rm coreutils
seq coreutils
sha256sum coreutils
sleep coreutils
sort coreutils
timeout coreutils
touch coreutils
tr coreutils
true coreutils
xargs findutils

# --- the anycast test's routing daemons (heartbeatd/tests/anycast.rs; their paths are
# computed there, so the lint cannot see them): BIRD 2 on each director, FRR on the router
# (run as its frr user: chown gives it the test's files)
bird bird2
/usr/lib/frr/zebra frr
/usr/lib/frr/bfdd frr
/usr/lib/frr/bgpd frr
chown coreutils

# --- started by the daemons under test (not visible to the lint: set by config defaults)
# lvs-director's guard (director/src/guard.rs, `nft` by default): nft, listed above.
# lvs-webmon makes its self-signed certificate with openssl (webmon/src/tls.rs): listed above.
# lvs-heartbeatd's UDP medium (heartbeatd/src/udp.rs) runs ip: listed above.
PROGRAMS

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
