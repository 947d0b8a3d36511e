#!/usr/bin/env bash
# Builds the Debian packages of lvs-rs (debian/, debhelper) into OUTDIR (default
# target/debian):
#
#     scripts/package.sh [OUTDIR]
#     sudo apt install ./target/debian/lvs-*.deb
#
# The -dbgsym packages (debug symbols) go to OUTDIR/dbgsym.
# It installs the Debian build tools it misses (debhelper, dpkg-dev, help2man, lintian; as
# root), copies the source tree (the files git knows, committed or not) to a clean build
# directory and runs dpkg-buildpackage there, so the checkout gets no build droppings.
# Cargo (rustup) builds into $CARGO_TARGET_DIR, default target/ of the checkout, so a second
# run only relinks what changed. LVS_DEB_VERSION=0.1.0+1 builds the same tree under another
# version (a changelog entry is added in the copy), e.g. to test an upgrade.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${1:-target/debian}
mkdir -p "$out"
out=$(cd "$out" && pwd)

PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
if ! command -v cargo >/dev/null; then
    for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
        [ -x "$c" ] && PATH="$(dirname "$c"):$PATH" && break
    done
fi
command -v cargo >/dev/null || { echo "scripts/package.sh: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
export PATH

# The build tools, each as PROGRAM:PACKAGE (the program shows the package is there).
missing=()
for tool in dpkg-buildpackage:dpkg-dev dh:debhelper help2man:help2man lintian:lintian; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/package.sh: missing ${missing[*]}: run as root once, or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "scripts/package.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$CARGO_TARGET_DIR"
CARGO_TARGET_DIR=$(cd "$CARGO_TARGET_DIR" && pwd)

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
cargo_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
if [ "${version%%[+~]*}" != "$cargo_version" ]; then
    echo "scripts/package.sh: debian/changelog says $version, Cargo.toml $cargo_version: add a changelog entry (dch -v $cargo_version)" >&2
    exit 1
fi

build=$CARGO_TARGET_DIR/debian-build
rm -rf "$build"
src=$build/lvs-rs-$version
mkdir -p "$src"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
    # Files git knows, committed or not, that still exist (a deleted file is not copied).
    git -C "$repo" ls-files -z --cached --others --exclude-standard |
        (cd "$repo" && xargs -0 sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done; true' sh) |
        tar -C "$repo" --null -T - -cf - | tar -C "$src" -xf -
else
    tar -C "$repo" --exclude=./target --exclude=./.git -cf - . | tar -C "$src" -xf -
fi

if [ -n "${LVS_DEB_VERSION:-}" ]; then
    version=$LVS_DEB_VERSION
    {
        printf 'lvs-rs (%s) unstable; urgency=medium\n\n  * Built by scripts/package.sh as %s.\n\n' "$version" "$version"
        printf ' -- lvs-rs developers <lvs-rs@example.invalid>  %s\n\n' "$(date -R)"
        cat "$src/debian/changelog"
    } >"$src/debian/changelog.new"
    mv "$src/debian/changelog.new" "$src/debian/changelog"
fi

# A dev-profile build (scripts/test.sh) is for testing the packaging: its debug symbols are
# not worth packaging (nor the minutes dwz and xz spend on them).
if [ "${LVS_DEB_PROFILE:-release}" = dev ]; then
    export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }noautodbgsym"
fi
(cd "$src" && dpkg-buildpackage -b --no-sign)

arch=$(dpkg --print-architecture)
changes=$build/lvs-rs_${version}_${arch}.changes
# The packages, their debug symbols, and the .changes/.buildinfo that list them (lintian
# reads the .changes).
for f in $(awk '/^Files:/ { on = 1; next } on && /^ / { print $5 } on && !/^ / { on = 0 }' "$changes") \
    "$(basename "$changes")"; do
    rm -f "$out/$f"
    mv "$build/$f" "$out/"
done
rm -rf "$build"
# The debug symbols apart, so that `apt install ./lvs-*.deb` installs the packages alone.
mkdir -p "$out/dbgsym"
mv "$out"/*-dbgsym_"$version"_*.deb "$out/dbgsym/" 2>/dev/null || true
echo "scripts/package.sh: packages in $out (debug symbols in $out/dbgsym):"
ls -1 "$out"/*_"$version"_*.deb
