#!/usr/bin/env bash
# The Debian packages, tested for real (scripts/test.sh runs it; so can you, as root):
#
#     sudo scripts/package-test.sh [DEBDIR]      # DEBDIR: test these packages, build none
#
# 1. scripts/package.sh builds every package into a scratch directory;
# 2. lintian on all of them: no errors, and every warning tag is explained in
#    docs/PACKAGING.md;
# 3. a clean Debian root (debootstrap, minbase, from the mirror of /etc/apt/sources.list*; the
#    finished root is cached as a tarball in $LVS_PKG_CACHE, default /var/cache/lvs-rs-test,
#    so only the first run downloads), in a network namespace of its own:
#    `apt-get install ./lvs-*.deb`, the layout (group, run directory, conffiles, man pages),
#    every daemon's --check-config on the installed samples, every daemon started and stopped
#    by its SysV init script, `lvsadm -L -n` and `lvs-lockctl status` answer, the director's
#    package upgrade keeps its process (where the director can hand over), then
#    `apt-get purge`: the file list of the root is the same as before the install.
#
# About 75 s when cargo has nothing to compile and the cached root exists (docs/PACKAGING.md
# has the figures). Ends with `package-test: PASS (N s)` or exits non-zero.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/package-test.sh: must run as root (chroot, network namespace)" >&2
    exit 1
fi
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH
started=$(date +%s)
say() { echo "package-test: $*"; }
fail() { echo "package-test: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d /tmp/lvs-pkgtest-XXXXXX)
root=$work/root
ns=lvspkg-$$
cleanup() {
    # Whatever still runs inside the root (a failed run): its processes, then the namespace.
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- 1. build (or the packages of an earlier scripts/package.sh: the directory as argument)
if [ -n "${1:-}" ]; then
    mkdir -p "$work/debs"
    cp "$1"/*.deb "$1"/*.changes "$1"/*.buildinfo "$work/debs/"
    [ ! -d "$1/dbgsym" ] || cp "$1"/dbgsym/*.deb "$work/debs/" 2>/dev/null || true
else
    bash scripts/package.sh "$work/debs" >"$work/build.log" 2>&1 || {
        tail -40 "$work/build.log" >&2
        fail "scripts/package.sh failed (above: the end of its output)"
    }
    [ ! -d "$work/debs/dbgsym" ] || cp "$work"/debs/dbgsym/*.deb "$work/debs/" 2>/dev/null || true
fi
changes=$(ls "$work"/debs/*.changes)
say "built $(ls "$work"/debs/*.deb | grep -vc -- -dbgsym_) packages, $(ls "$work"/debs/*.deb | grep -c -- -dbgsym_ || true) -dbgsym"

# --- 2. lintian
lintian_status=0
lintian --fail-on error --tag-display-limit 0 "$changes" >"$work/lintian.log" 2>&1 || lintian_status=$?
if grep -q '^E: ' "$work/lintian.log"; then
    grep '^E: ' "$work/lintian.log" >&2
    fail "lintian reports errors"
fi
if [ "$lintian_status" -ne 0 ]; then
    cat "$work/lintian.log" >&2
    fail "lintian could not check the packages (exit $lintian_status)"
fi
grep '^W: ' "$work/lintian.log" | sed 's/^/  /' || true
undocumented=
for tag in $(awk '/^W: / { print $3 }' "$work/lintian.log" | sort -u); do
    grep -q -- "\`$tag\`" docs/PACKAGING.md || undocumented="$undocumented $tag"
done
[ -z "$undocumented" ] || {
    grep '^W: ' "$work/lintian.log" >&2
    fail "lintian warnings not explained in docs/PACKAGING.md:$undocumented"
}
say "lintian: no errors, $(grep -c '^W: ' "$work/lintian.log" || true) warnings (explained in docs/PACKAGING.md)"

# --- 3. a clean Debian root
# The packages' dependencies go into the base, so that nothing is downloaded inside the
# namespace (which has no network) and the purge check compares our files alone.
include=adduser,nftables,iproute2,openssl,init-system-helpers
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=${LVS_DEBIAN_MIRROR:-$(
    # The first mirror of the main archive for this suite: deb822 .sources stanzas first,
    # then one-line `deb URL SUITE ...` entries.
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$suite" '
        /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
        /^$/ { if (hit && uri != "") { print uri; exit } uri = ""; hit = 0 }
        END { if (hit && uri != "") print uri }' | head -1
)}
if [ -z "$mirror" ]; then
    mirror=$(awk -v s="$suite" '$1 == "deb" && $3 == s { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
cache=${LVS_PKG_CACHE:-/var/cache/lvs-rs-test}
base=$cache/root-$suite-$(echo "$include" | sha256sum | cut -c1-12).tar.gz
mkdir -p "$cache"
if [ ! -s "$base" ]; then
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
    }
    say "debootstrap $suite from $mirror (once: cached as $base)"
    rm -rf "$cache/bootstrap"
    debootstrap --variant=minbase --include="$include" "$suite" "$cache/bootstrap" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        fail "debootstrap $suite $mirror failed"
    }
    rm -rf "$cache/bootstrap/var/cache/apt/archives"/*.deb
    tar -C "$cache/bootstrap" -czf "$base.tmp" . && mv "$base.tmp" "$base"
    rm -rf "$cache/bootstrap"
fi
mkdir -p "$root"
tar -C "$root" -xzf "$base"
# Nothing starts a service behind the test's back (the packages do not enable theirs anyway).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
# heartbeatd's VIP device is a TUN device.
mkdir -p "$root/dev/net"
[ -e "$root/dev/net/tun" ] || mknod -m 0666 "$root/dev/net/tun" c 10 200

# The file list of the clean root, without what apt and dpkg keep for themselves and what
# adduser leaves when it makes the user and group lvs (which stay: see docs/PACKAGING.md).
snapshot() {
    (cd "$root" && find . -xdev \
        \( -path ./tmp -o -path ./proc -o -path ./sys -o -path ./dev -o -path ./var/lib/dpkg \
        -o -path ./var/lib/apt -o -path ./var/cache -o -path ./var/log/apt \
        -o -path ./var/log/dpkg.log -o -path ./var/log/alternatives.log \
        -o -path ./run/adduser -o -name 'group-' -o -name 'gshadow-' -o -name 'passwd-' \
        -o -name 'shadow-' \) -prune -o -print |
        sort)
}
snapshot >"$work/before"

mkdir -p "$root/tmp/debs"
cp "$work"/debs/*.deb "$root/tmp/debs/"
rm -f "$root"/tmp/debs/*-dbgsym_*.deb
cp scripts/package-test-inside.sh "$root/tmp/inside.sh"

# --- 4. install, check, start, stop, purge: inside the root, in a network namespace of its
# own (the director forwards on the interfaces it finds; these are the sample's, as dummies).
ip netns add "$ns"
set +e
ip netns exec "$ns" sh -c '
    set -e
    mount -t proc proc "$1/proc"
    mount -t sysfs sysfs "$1/sys"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$1/dev/pts"
    exec chroot "$1" /bin/sh /tmp/inside.sh
' sh "$root" 2>&1 | sed 's/^/  /'
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || fail "inside the root (above)"

for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] &&
        fail "process $(cat "$p/comm" 2>/dev/null) (${p#/proc/}) still runs after the purge"
done
snapshot >"$work/after"
if ! diff -u "$work/before" "$work/after" >"$work/files.diff"; then
    cat "$work/files.diff" >&2
    fail "the purge left files behind or took some away (diff above: before, after)"
fi
say "purge: the root's file list is the same as before the install"
say "PASS ($(($(date +%s) - started)) s)"
