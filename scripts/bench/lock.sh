#!/usr/bin/env bash
# Lock manager benchmark: lock-and-unlock operations per second and p50/p99 latency of one
# lock+unlock, uncontended (each client its own lock name) and contended (all clients on one
# name), with N client threads (one connection each), for
#   - lvs-lockmgr, one node, and three nodes on loopback when the binary supports peers;
#   - etcd 3 (Debian's etcd-server), one and three nodes on loopback, through its lock API
#     (/v3/lock/lock + /v3/lock/unlock with a lease, over the HTTP/JSON gateway);
#   - Redis (Debian's redis-server), SET key val NX PX / DEL, appendonly yes, appendfsync always.
# The same client (lvs-lockbench, lockmgr/bench) drives all of them with keep-alive
# connections, so the client's own cost is the same. Every system syncs its log to disk before
# it answers (lvs-lockmgr fsync = true, etcd's WAL fsync, Redis appendfsync always) and keeps it
# in the same temporary directory. Prints a Markdown table with ratios against etcd and Redis.
#
# usage: scripts/bench/lock.sh [--clients N] [--seconds S]     (defaults: 8 clients, 5 s a run)
#        scripts/bench/lock.sh --soak MINUTES
#        scripts/bench/lock.sh --profile [--clients N] [--seconds S]
# Three nodes also get one-client runs (uncontended): the latency of one lock+unlock alone
# (lvs-lockmgr: the client on the leader's node, and on a follower's, which forwards).
# LOCKBENCH_BIN=DIR takes lvs-lockmgr, lvs-lockctl and lvs-lockbench from DIR and builds nothing
# (e.g. to compare two builds back to back); by default they are built into
# ${CARGO_TARGET_DIR:-target}/release.
# --soak runs no benchmark: it runs the randomised fault test of lockmgr/tests/cluster.rs (three
# daemons, SIGKILL, partitions, SIGSTOP, six clients) for MINUTES (the tests run it for 30 s)
# and prints the history checker's verdict and the size of the history (needs root).
# --profile runs only three lvs-lockmgr nodes, uncontended, N clients spread over the three,
# and shows where the time goes: CPU time per lock+unlock of each process (user and system,
# from /proc), context switches per lock+unlock, and `perf record -g`
# of the leader and of one follower (the top symbols, and the binaries). Needs perf
# (Debian's linux-perf).
# Installs etcd-server, etcd-client and redis-server with apt-get when missing (needs root then).
# Ports used: BASE_PORT (default 24100) .. BASE_PORT+40 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CLIENTS=${CLIENTS:-8}
RUN_SECS=${BENCH_SECONDS:-5}
BASE=${BASE_PORT:-24100}
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS=$2; shift 2 ;;
        --seconds) RUN_SECS=$2; shift 2 ;;
        --soak) SOAK_MINUTES=$2; shift 2 ;;
        --profile) PROFILE=1; shift ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "lock.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "lock.sh: $*" >&2; }

if [ -n "${SOAK_MINUTES:-}" ]; then
    case "$SOAK_MINUTES" in '' | *[!0-9]*) say "--soak takes a whole number of minutes"; exit 2 ;; esac
    [ "$(id -u)" -eq 0 ] || { say "--soak needs root (network namespaces, nftables)"; exit 1; }
    HISTORY=$(mktemp /var/tmp/lvs-lock-history.XXXXXX.jsonl)
    say "randomised faults for $SOAK_MINUTES minute(s); the history goes to $HISTORY (kept)"
    set +e
    LVS_LOCK_SOAK_SECONDS=$((SOAK_MINUTES * 60)) LVS_LOCK_HISTORY=$HISTORY \
        cargo test --release --locked -p lvs-lockmgr --test cluster -- --exact \
        randomised_faults_never_break_mutual_exclusion --nocapture 2>&1 |
        grep -E '^(randomised fault test|seed|history|checker|test result)|panicked' >&2
    rc=${PIPESTATUS[0]}
    set -e
    echo "history: $(wc -l <"$HISTORY") events, $(du -h "$HISTORY" | cut -f1) in $HISTORY"
    if [ "$rc" -eq 0 ]; then
        echo "verdict: consistent with a lock service"
    else
        echo "verdict: NOT consistent (or the run failed); see the lines above"
    fi
    exit "$rc"
fi

# ---- what we need ----
missing=()
wanted=(etcd-server etcd-client redis-server)
[ -n "${PROFILE:-}" ] && wanted=(linux-perf)
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "missing Debian packages: ${missing[*]} (run as root to install them)"; exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ -n "${LOCKBENCH_BIN:-}" ]; then
    BIN=$LOCKBENCH_BIN
    say "binaries from $BIN (LOCKBENCH_BIN; nothing built)"
else
    say "building lvs-lockmgr and lvs-lockbench (release)"
    cargo build --release --locked -p lvs-lockmgr -p lvs-lockbench >&2
    BIN="${CARGO_TARGET_DIR:-target}/release"
fi
LOCKMGR="$BIN/lvs-lockmgr"
LOCKCTL="$BIN/lvs-lockctl"
BENCH="$BIN/lvs-lockbench"

WORK=$(mktemp -d /var/tmp/lvs-lockbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at the start: $LOAD_BEFORE ($(nproc) CPUs): figures from a busy machine are low"

# wait_until WHAT SECONDS CMD...: polls CMD until it succeeds, or fails naming WHAT.
wait_until() {
    local what=$1 limit=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then say "timed out after ${limit}s waiting for $what"; return 1; fi
        sleep 0.1
    done
}

stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

# bench SYSTEM NODES TARGET ARGS...: both workloads, one JSON line each into $RESULTS.
bench() {
    local system=$1 nodes=$2 target=$3; shift 3
    local w
    for w in uncontended contended; do
        local extra=()
        [ "$w" = contended ] && extra=(--contended)
        say "$system, $nodes node(s), $w, $CLIENTS clients, ${RUN_SECS}s"
        if ! "$BENCH" "$target" "$@" --clients "$CLIENTS" --seconds "$RUN_SECS" "${extra[@]}" \
            --label "$system|$nodes" >> "$RESULTS"; then
            say "$system $nodes node(s) $w: the run failed (see above)"
        fi
    done
}

# one_client SYSTEM WHERE TARGET ARGS...: one client alone, uncontended, three nodes (latency);
# WHERE (leader, follower or any) names the node it talks to.
one_client() {
    local system=$1 where=$2 target=$3; shift 3
    say "$system, 3 node(s), uncontended, 1 client ($where), ${RUN_SECS}s"
    if ! "$BENCH" "$target" "$@" --clients 1 --seconds "$RUN_SECS" --label "$system|3|$where" >> "$RESULTS"; then
        say "$system 3 node(s) 1 client: the run failed (see above)"
    fi
}

# ---- lvs-lockmgr ----
lvs_node() { # lvs_node DIR CONFIG-TEXT
    local dir=$1
    mkdir -p "$dir"
    printf '%s\n' "$2" > "$dir/lockmgr.toml"
    "$LOCKMGR" -f --no-syslog --log-level warn --rundir "$dir/run" -c "$dir/lockmgr.toml" \
        </dev/null >"$dir/log" 2>&1 &
    PIDS+=($!)
}

if [ -z "${PROFILE:-}" ]; then
    lvs_node "$WORK/lvs1" "node_id = 1
state_dir = \"$WORK/lvs1/state\"
fsync = true"
    wait_until "lvs-lockmgr" 30 "$LOCKCTL" --rundir "$WORK/lvs1/run" status
    bench lvs-lockmgr 1 lvs --rundir "$WORK/lvs1/run"
    stop_all
fi

# cpu_ms PID: user and system CPU time of a process so far, "USER SYS" in milliseconds.
cpu_ms() {
    local tck
    tck=$(getconf CLK_TCK)
    awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%d %d\n", $12 * 1000 / t, $13 * 1000 / t }' "/proc/$1/stat"
}
# ctxsw PID: voluntary + involuntary context switches of every thread of a process so far.
ctxsw() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}

# snapshot FILE: "NODE USER_MS SYS_MS SWITCHES" of each of the three nodes so far, a line each.
snapshot() {
    local i
    for i in 1 2 3; do
        echo "$i $(cpu_ms "${PIDS[$((i - 1))]}") $(ctxsw "${PIDS[$((i - 1))]}")"
    done >"$1"
}
# since FILE: "NODE USER_MS SYS_MS SWITCHES" of each node since the snapshot FILE.
since() {
    snapshot "$1.now"
    paste -d' ' "$1" "$1.now" | awk '{ print $1, $6 - $2, $7 - $3, $8 - $4 }'
}
# result FILE: "OPS RATE P50 P99" of one lvs-lockbench answer.
result() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["ops"], "%.0f" % r["ops_per_s"], r["p50_ms"], r["p99_ms"])' "$1"
}

# profile LEADER: the costs of every process per lock+unlock in one uncontended run, the
# same run under perf (leader and a follower), one client alone, and the machine's costs.
profile() {
    local leader=$1 follower=$(( $1 % 3 + 1 )) out="$WORK/profile.json" n rate p50 p99
    role() { if [ "$1" = "$leader" ]; then echo leader; else echo follower; fi; }
    snapshot "$WORK/before"
    # The client's CPU: `times` in the subshell that ran it (its children's user and system).
    ( "$BENCH" lvs "${ALL3[@]}" --clients "$CLIENTS" --seconds "$RUN_SECS" --label "profile" > "$out"
      times > "$WORK/bench.times" )
    local bu bs
    read -r bu bs < <(sed -n 2p "$WORK/bench.times" | awk '
        function ms(t) { split(t, a, "m"); sub(/s$/, "", a[2]); return int((a[1] * 60 + a[2]) * 1000) }
        { print ms($1), ms($2) }')
    read -r n rate p50 p99 < <(result "$out")
    echo
    echo "Profile: 3 nodes, uncontended, $CLIENTS clients over the three, ${RUN_SECS}s, $(nproc) CPUs, $(uname -r);"
    echo "load average before: $LOAD_BEFORE. $rate lock+unlock/s (p50 $p50 ms, p99 $p99 ms), $n in all."
    echo
    echo "| process | user µs/op | system µs/op | CPU µs/op | context switches/op |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    local node du ds dc tot=$(( bu + bs ))
    while read -r node du ds dc; do
        tot=$(( tot + du + ds ))
        awk -v r="node $node ($(role "$node"))" -v u="$du" -v s="$ds" -v c="$dc" -v n="$n" \
            'BEGIN { printf "| %s | %.1f | %.1f | %.1f | %.2f |\n", r, u*1000/n, s*1000/n, (u+s)*1000/n, c/n }'
    done < <(since "$WORK/before")
    awk -v u="$bu" -v s="$bs" -v n="$n" -v k="$CLIENTS" \
        'BEGIN { printf "| lvs-lockbench (%s clients) | %.1f | %.1f | %.1f | - |\n", k, u*1000/n, s*1000/n, (u+s)*1000/n }'
    awk -v t="$tot" -v n="$n" -v c="$(nproc)" -v secs="$RUN_SECS" \
        'BEGIN { printf "| all | | | %.1f | |\n\nCPU used: %.2f of %d CPUs; at that cost %d CPUs give at most %.0f lock+unlock/s.\n", t*1000/n, t/1000/secs, c, c, c*1e6/(t*1000/n) }'

    # The same run again under perf (its own cost lowers the rate: printed).
    local who pl pf
    perf record -q -F 499 -g -p "${PIDS[$((leader - 1))]}" -o "$WORK/leader.perf" >/dev/null 2>&1 &
    pl=$!
    perf record -q -F 499 -g -p "${PIDS[$((follower - 1))]}" -o "$WORK/follower.perf" >/dev/null 2>&1 &
    pf=$!
    sleep 0.5 # perf attaches asynchronously; nothing to poll for
    "$BENCH" lvs "${ALL3[@]}" --clients "$CLIENTS" --seconds "$RUN_SECS" --label "perf" > "$WORK/perf.json"
    kill -INT "$pl" "$pf"
    wait "$pl" "$pf" 2>/dev/null || true
    read -r n rate p50 p99 < <(result "$WORK/perf.json")
    echo
    echo "Under perf: $rate lock+unlock/s."
    for who in leader follower; do
        echo
        echo "perf record -g of the $who (node $([ $who = leader ] && echo "$leader" || echo "$follower")), 499 Hz, on-CPU samples: by binary, then symbols"
        echo '```'
        perf report -q -i "$WORK/$who.perf" --no-children --sort dso --stdio -g none --percent-limit 1 2>/dev/null | grep -v '^ *$' | head -n 8
        echo "-- self, top symbols:"
        perf report -q -i "$WORK/$who.perf" --no-children --sort sym --stdio -g none --percent-limit 1.5 2>/dev/null | grep -v '^ *$' | head -n 20
        echo "-- inclusive, by system call (the kernel's time charged to the call that entered it):"
        perf report -q -i "$WORK/$who.perf" --children --sort sym --stdio -g none 2>/dev/null |
            awk '$NF ~ /^__(x64|se|do)_sys_/ && $1 + 0 >= 0.5 { print }' | head -n 14
        echo "-- self, lvs-lockmgr's own functions (top; percent of all samples):"
        perf report -q -i "$WORK/$who.perf" --no-children --dsos lvs-lockmgr --sort sym --stdio -g none --percent-limit 0.3 2>/dev/null | grep -v "^ *$" | head -n 12 || true
        echo '```'
    done

    # One client on the leader's node: its latency, and what one lock+unlock costs alone.
    snapshot "$WORK/before"
    "$BENCH" lvs --rundir "$WORK/lvs3-$leader/run" --clients 1 --seconds "$RUN_SECS" --label one > "$out"
    read -r n rate p50 p99 < <(result "$out")
    echo
    echo "One client on the leader's node: $rate lock+unlock/s, p50 $p50 ms, p99 $p99 ms."
    echo "| process | CPU µs/op | context switches/op |"
    echo "| --- | ---: | ---: |"
    while read -r node du ds dc; do
        awk -v r="node $node ($(role "$node"))" -v t="$(( du + ds ))" -v c="$dc" -v n="$n" \
            'BEGIN { printf "| %s | %.1f | %.2f |\n", r, t*1000/n, c/n }'
    done < <(since "$WORK/before")

    # What this machine charges for the two things every command waits for.
    echo
    local pipe_us dsync
    pipe_us=$(perf bench sched pipe -l 20000 2>/dev/null | awk '/usecs\/op/ { print $1 }')
    dsync=$(dd if=/dev/zero of="$WORK/dsync" bs=512 count=2000 oflag=dsync 2>&1 | awk '/copied/ { printf "%.3f", $(NF-3) / 2000 * 1000 }')
    echo "Reference, same run: a wake-up round trip between two processes (perf bench sched pipe)"
    echo "$pipe_us µs; one 512-byte write with O_DSYNC in the same directory (dd) $dsync ms."
}

# Three nodes, if this lvs-lockmgr knows peers: the config is checked first.
KEY="$WORK/peer.key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$KEY"
chmod 600 "$KEY"
peers="peers = ["
for i in 1 2 3; do peers+="{ id = $i, address = \"127.0.0.1:$((BASE + i))\" }, "; done
peers="${peers%, }]"
conf3() {
    printf 'node_id = %s\nstate_dir = "%s"\nfsync = true\nkey_file = "%s"\n%s\n' \
        "$1" "$WORK/lvs3-$1/state" "$KEY" "$peers"
}
ALL3=(--rundir "$WORK/lvs3-1/run" --rundir "$WORK/lvs3-2/run" --rundir "$WORK/lvs3-3/run")
# leader_of: the leader's node id, as node 1 sees it.
leader_of() { "$LOCKCTL" --rundir "$WORK/lvs3-1/run" status | sed -n 's/^leader: *\([0-9]*\).*/\1/p'; }
mkdir -p "$WORK/lvs3-check"
conf3 1 > "$WORK/lvs3-check/lockmgr.toml"
LVS3="3-node: not available yet"
if "$LOCKMGR" --check-config -c "$WORK/lvs3-check/lockmgr.toml" >"$WORK/lvs3-check/log" 2>&1; then
    for i in 1 2 3; do lvs_node "$WORK/lvs3-$i" "$(conf3 "$i")"; done
    leader_known() {
        local i
        for i in 1 2 3; do
            # Not `| grep -q`: grep leaving early fails lvs-lockctl's write under pipefail.
            grep -Eq '^leader: +[0-9]+' <<<"$("$LOCKCTL" --rundir "$WORK/lvs3-$i/run" status 2>/dev/null)" || return 1
        done
    }
    if wait_until "a leader among the three lvs-lockmgr nodes" 60 leader_known; then
        if [ -n "${PROFILE:-}" ]; then
            profile "$(leader_of)"
            exit 0
        fi
        bench lvs-lockmgr 3 lvs "${ALL3[@]}"
        leader=$(leader_of)
        follower=$((leader % 3 + 1))
        one_client lvs-lockmgr leader lvs --rundir "$WORK/lvs3-$leader/run"
        one_client lvs-lockmgr follower lvs --rundir "$WORK/lvs3-$follower/run"
        LVS3=""
    else
        LVS3="3-node: the cluster did not elect a leader (logs: $(tail -n 3 "$WORK"/lvs3-1/log | tr '\n' ' '))"
    fi
    stop_all
else
    LVS3="3-node: not available yet ($(head -n 1 "$WORK/lvs3-check/log"))"
fi
[ -n "$LVS3" ] && say "lvs-lockmgr $LVS3"

# ---- etcd ----
etcd_cluster() { # etcd_cluster N: members e1..eN, client ports BASE+10+i, peer ports BASE+20+i
    local n=$1 i cluster=""
    for i in $(seq 1 "$n"); do cluster+="e$i=http://127.0.0.1:$((BASE + 20 + i)),"; done
    cluster=${cluster%,}
    for i in $(seq 1 "$n"); do
        mkdir -p "$WORK/etcd$n-$i"
        etcd --name "e$i" --data-dir "$WORK/etcd$n-$i/data" \
            --listen-client-urls "http://127.0.0.1:$((BASE + 10 + i))" \
            --advertise-client-urls "http://127.0.0.1:$((BASE + 10 + i))" \
            --listen-peer-urls "http://127.0.0.1:$((BASE + 20 + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 20 + i))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "lvs-lockbench-$n" \
            </dev/null >"$WORK/etcd$n-$i/log" 2>&1 &
        PIDS+=($!)
    done
    ETCD_ENDPOINTS=()
    for i in $(seq 1 "$n"); do
        wait_until "etcd member e$i" 60 etcdctl --endpoints "http://127.0.0.1:$((BASE + 10 + i))" endpoint health
        ETCD_ENDPOINTS+=(--endpoint "127.0.0.1:$((BASE + 10 + i))")
    done
}
etcd_cluster 1
bench etcd 1 etcd "${ETCD_ENDPOINTS[@]}"
stop_all
etcd_cluster 3
bench etcd 3 etcd "${ETCD_ENDPOINTS[@]}"
one_client etcd any etcd "${ETCD_ENDPOINTS[@]}"
stop_all

# ---- Redis ----
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$((BASE + 30))" --dir "$WORK/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize no \
    </dev/null >"$WORK/redis/log" 2>&1 &
PIDS+=($!)
wait_until "redis-server" 30 redis-cli -p "$((BASE + 30))" ping
bench redis 1 redis --endpoint "127.0.0.1:$((BASE + 30))"
stop_all

# ---- the table ----
echo
echo "Lock+unlock, $CLIENTS clients, ${RUN_SECS}s per run, $(nproc) CPUs, $(uname -r), loopback;"
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "Durability: lvs-lockmgr fsync = true; etcd WAL fsync per commit (its default);"
echo "Redis appendonly yes + appendfsync always (same durability as ours); all on $(df --output=source "$WORK" | tail -n 1)."
echo "etcd: /v3/lock/lock + /v3/lock/unlock with a lease, JSON gateway, keep-alive. Redis: SET NX PX + DEL;"
echo "contended Redis clients retry SET NX at once (no queue: they spin), Redis's best case."
[ -n "$LVS3" ] && echo "lvs-lockmgr $LVS3"
echo
python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    system, nodes, *where = r["label"].split("|")
    w = r["workload"] + (", 1 client" if where else "")
    by[(system, nodes, w)] = r
    if where and where[0] != "any":
        by[(system, nodes, f"{w} ({where[0]})")] = r
def ratio(a, b):
    return f"{a / b:.2f}x" if b else "-"
print("| system | nodes | workload | ops/s | p50 ms | p99 ms | vs etcd (same nodes) | vs Redis |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
order = [("lvs-lockmgr", "1"), ("lvs-lockmgr", "3"), ("etcd", "1"), ("etcd", "3"), ("redis", "1")]
for system, nodes in order:
    for w in ("uncontended", "contended", "uncontended, 1 client (leader)",
              "uncontended, 1 client (follower)", "uncontended, 1 client"):
        r = by.get((system, nodes, w))
        if system != "etcd" and w == "uncontended, 1 client":
            continue
        if r is None:
            continue
        ops = r["ops_per_s"]
        e = by.get(("etcd", nodes, w.split(" (")[0]))
        rd = by.get(("redis", "1", w))
        vs_e = ratio(ops, e["ops_per_s"]) if e and system != "etcd" else "-"
        vs_r = ratio(ops, rd["ops_per_s"]) if rd and system != "redis" else "-"
        err = " (errors: %s)" % "; ".join(r["errors"]) if r["errors"] else ""
        print(f"| {system} | {nodes} | {w} | {ops:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {vs_e} | {vs_r} |{err}")
PY
