#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (cargo fuzz + libFuzzer, stable toolchain): see
# docs/FUZZING.md. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      each target for SECONDS (default 60)
#   scripts/fuzz.sh -r RUNS [SECONDS] [TARGET...]  each for RUNS executions (at most SECONDS)
#   scripts/fuzz.sh -l                         list the targets
#
# Installs cargo-fuzz (pinned) if missing, builds every target, runs them one after the other
# and prints executions and crashes per target. New inputs go to fuzz/corpus/TARGET (not
# committed; the committed seeds are fuzz/seeds/TARGET), crashes to fuzz/artifacts/TARGET,
# libFuzzer's output to fuzz/logs/TARGET.log. Exits 1 if any target crashed (or timed out or
# ran out of memory), 2 on a usage or build error.
#
# On a shared machine run it as `nice -n 19 scripts/fuzz.sh ...`: it then takes idle CPU only.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
bin_dir="$fuzz/target/x86_64-unknown-linux-gnu/release"

targets_all() {
    sed -n 's/^name = "\(.*\)"$/\1/p' "$fuzz/Cargo.toml" | grep -v '^lvs-fuzz$'
}

usage() {
    sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

runs=""
seconds=60
while getopts "r:lh" opt; do
    case $opt in
        r) runs=$OPTARG ;;
        l) targets_all; exit 0 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
elif [[ -n $runs ]]; then
    seconds=0 # no time limit
fi
if [[ -n $runs && ! $runs =~ ^[0-9]+$ ]]; then
    usage
fi
if [[ $# -gt 0 ]]; then
    targets=("$@")
    for t in "${targets[@]}"; do
        targets_all | grep -qx "$t" || { echo "fuzz.sh: no target $t (see -l)" >&2; exit 2; }
    done
else
    mapfile -t targets < <(targets_all)
fi

# cargo-fuzz drives libFuzzer through libfuzzer-sys; with `--sanitizer none` every flag it
# passes to rustc is a stable one (-Cpasses=sancov-module, -Cllvm-args=...), so no nightly.
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

cd "$fuzz"
# The fuzz crate is its own workspace with its own target directory.
unset CARGO_TARGET_DIR
if ! cargo fuzz build --sanitizer none >/dev/null 2>"$fuzz/build.log"; then
    cat "$fuzz/build.log" >&2
    exit 2
fi

mkdir -p "$fuzz/logs"
failed=0
printf '%-18s %8s %12s %10s %8s  %s\n' target seconds executions exec/s crashes "new crash files" >&2
for t in "${targets[@]}"; do
    mkdir -p "$fuzz/corpus/$t" "$fuzz/artifacts/$t"
    before=$(find "$fuzz/artifacts/$t" -type f | wc -l)
    limit=(-max_total_time="$seconds")
    [[ -n $runs ]] && limit+=(-runs="$runs")
    start=$(date +%s)
    status=0
    "$bin_dir/$t" "$fuzz/corpus/$t" "$fuzz/seeds/$t" \
        "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$fuzz/artifacts/$t/" >"$fuzz/logs/$t.log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$fuzz/logs/$t.log" | tail -1)
    execs=${execs:-0}
    new=$(find "$fuzz/artifacts/$t" -type f -newermt "@$start" | sort)
    crashes=$(($(find "$fuzz/artifacts/$t" -type f | wc -l) - before))
    if [[ $status -ne 0 && $crashes -eq 0 ]]; then
        crashes=1 # libFuzzer failed without writing an input: see the log
        new="(see fuzz/logs/$t.log)"
    fi
    [[ $crashes -gt 0 ]] && failed=1
    printf '%-18s %8d %12d %10d %8d  %s\n' "$t" "$elapsed" "$execs" \
        $((execs / (elapsed > 0 ? elapsed : 1))) "$crashes" "$(echo $new)"
done
exit $failed
