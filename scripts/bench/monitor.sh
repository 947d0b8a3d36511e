#!/usr/bin/env bash
# Health-check benchmark on the namespace testbed (scripts/testbed.sh), printed as Markdown:
#
#   1. Detection time (the HTTP server of r2 is killed -> r2 out of scheduling) and recovery
#      time (its HTTP server is back -> r2 scheduled again), median of N runs, with DEFAULT
#      settings: lvs-monitord (TCP connect, interval 1 s, fall 3, rise 2; "out" = weight 0 in
#      `lvsadm -L -n`, in front of lvs-director, VS/NAT) and, in the same run on the same
#      servers, HAProxy's own health checks (`server ... check`: TCP connect, inter 2 s,
#      fall 3, rise 2; "out" = DOWN in `show stat` on its stats socket). Polled every 20 ms.
#      Next to them, keepalived's and ldirectord's documented defaults.
#   2. The CPU lvs-monitord uses checking 1000 real servers once a second (1000 addresses that
#      a peer namespace behind a veth pair has as local addresses, one listening socket), from
#      /proc/PID/stat over BENCH_CPU_SECS seconds, in % of one core, for both TCP probes
#      (`tcp_probe = "connect"`, the default, and `"syn"`), and HAProxy checking the same 1000
#      servers once a second (`check inter 1s`) for comparison. To keep the two sides apart,
#      the monitor is pinned to CPU 0 and the receive processing of both veth ends is steered
#      to CPU 1 (RPS): the monitor's figure is its own system calls and user time; the
#      packet processing of both network stacks (the servers' SYN handling, SYN-ACKs, RSTs)
#      is reported beside it as CPU 1's softirq time (approximate on a shared machine), and
#      the listener's accept()/close() as its own process time.
#
# Usage: sudo scripts/bench/monitor.sh [N]      (N runs per figure, default 10)
# Needs root, a release build (cargo build --release --workspace; BENCH_BIN=DIR to take the
# binaries from another directory) and haproxy (apt-get install haproxy when missing).
# Namespaces bm<pid>-* and bc<pid>{a,b} are removed on exit. BENCH_CPU_ONLY=1 skips part 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${1:-10}
CPU_SECS=${BENCH_CPU_SECS:-30}
P=bm$$
RUNDIR=/tmp/lvs-bench-$P
VIP=203.0.113.100
RS=(203.0.113.11 203.0.113.12 203.0.113.13)
BIN=${BENCH_BIN:-target/release}
CA=bc$$a
CB=bc$$b

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for b in lvs-monitord ${BENCH_CPU_ONLY:+-}lvs-director ${BENCH_CPU_ONLY:+-}lvsadm; do
    [ "${b#-}" = "$b" ] || continue
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release --workspace"
done
if ! command -v haproxy >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi

cleanup() {
    for f in "$RUNDIR"/*.pid "$RUNDIR"/*/*.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.5
    scripts/testbed.sh down "$P" >/dev/null 2>&1 || true
    ip netns del "$CA" 2>/dev/null || true
    ip netns del "$CB" 2>/dev/null || true
    rm -rf "$RUNDIR"
}
trap cleanup EXIT
mkdir -p "$RUNDIR"

inns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
adm() { inns d "$BIN/lvsadm" --rundir "$RUNDIR" "$@"; }
now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wait_until() { # TIMEOUT_S CMD...: poll every 20 ms
    local end; end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.02
    done
}
kill_r2() { ip netns pids "$P-r2" | xargs -r kill -9; }
start_r2() { scripts/testbed.sh http "$P" >/dev/null 2>&1; } # r1, r3 already listen

if [ -z "${BENCH_CPU_ONLY:-}" ]; then
scripts/testbed.sh up "$P" nat >/dev/null
scripts/testbed.sh http "$P" >/dev/null
{
    echo "-A -t $VIP:80 -s rr"
    for rs in "${RS[@]}"; do echo "-a -t $VIP:80 -r $rs:80 -m -w 1"; done
} > "$RUNDIR/rules"
printf 'workers = 2\nrules_file = "%s"\n' "$RUNDIR/rules" > "$RUNDIR/director.toml"
inns d "$BIN/lvs-director" --rundir "$RUNDIR" -c "$RUNDIR/director.toml" --no-syslog -f \
    </dev/null >"$RUNDIR/director.log" 2>&1 &
wait_until 10 adm -L -n >/dev/null 2>&1 || die "lvs-director did not start"

# ---- lvs-monitord, defaults (no checks configured: TCP connect to the port) ---------------
{
    printf '[[service]]\nvip = "%s"\nport = 80\n' "$VIP"
    for rs in "${RS[@]}"; do printf '[[service.server]]\naddress = "%s"\n' "$rs"; done
} > "$RUNDIR/monitord.toml"
inns d "$BIN/lvs-monitord" --rundir "$RUNDIR" -c "$RUNDIR/monitord.toml" --no-syslog -f \
    </dev/null >"$RUNDIR/monitord.log" 2>&1 &
sleep 3
r2_weight() { adm -L -n | awk -v rs="${RS[1]}:80" '$1 == "->" && $2 == rs { print $4 }'; }
r2_out() { [ "$(r2_weight)" = 0 ]; }
r2_in() { [ "$(r2_weight)" = 1 ]; }
measure() { # OUT_CMD IN_CMD -> lines "detect recover"
    local i t0 t1 t2
    for i in $(seq 1 "$N"); do
        wait_until 20 "$2" || die "r2 is not in before run $i"
        sleep "0.$(( RANDOM % 10 ))" # kill at a random phase of the check interval
        kill_r2; t0=$(now)
        wait_until 30 "$1" || die "r2 was not taken out (run $i)"
        t1=$(now)
        start_r2; t2=$(now)
        wait_until 30 "$2" || die "r2 did not come back (run $i)"
        echo "$t0 $t1 $t2 $(now)" | awk '{ printf "%.3f %.3f\n", $2 - $1, $4 - $3 }'
    done
}
echo "lvs-monitord: $N runs ..." >&2
measure r2_out r2_in > "$RUNDIR/monitord.times"
kill "$(cat "$RUNDIR/monitord.pid")"

# ---- HAProxy, defaults ---------------------------------------------------------------------
cat > "$RUNDIR/haproxy.cfg" <<HAP
global
    stats socket $RUNDIR/haproxy.sock mode 600 level admin
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen web
    bind 127.0.0.1:8080
    server r1 ${RS[0]}:80 check
    server r2 ${RS[1]}:80 check
    server r3 ${RS[2]}:80 check
HAP
inns d haproxy -f "$RUNDIR/haproxy.cfg" -p "$RUNDIR/haproxy.pid" -D
hap_status() {
    inns d python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"show stat\n")
data = b""
while True:
    b = s.recv(65536)
    if not b: break
    data += b
for line in data.decode().splitlines():
    f = line.split(",")
    if len(f) > 17 and f[1] == "r2": print(f[17])
' "$RUNDIR/haproxy.sock"
}
hap_out() { [[ "$(hap_status)" == DOWN* ]]; }
hap_in() { [[ "$(hap_status)" == UP ]]; }
wait_until 20 hap_in || die "HAProxy does not see r2 up"
echo "HAProxy: $N runs ..." >&2
measure hap_out hap_in > "$RUNDIR/haproxy.times"
kill "$(cat "$RUNDIR/haproxy.pid")" 2>/dev/null || true

med() { awk -v c="$2" '{ print $c }' "$1" | median; }
minmax() { awk -v c="$2" '{ print $c }' "$1" | sort -n | sed -n '1p;$p' | paste -sd- -; }

fi

# ---- CPU for 1000 servers ------------------------------------------------------------------
ip netns add "$CA"; ip netns add "$CB"
ip link add bca$$ netns "$CA" type veth peer name bcb$$ netns "$CB"
ip -n "$CA" addr add 10.79.0.1/30 dev bca$$; ip -n "$CB" addr add 10.79.0.2/30 dev bcb$$
ip -n "$CA" link set bca$$ up; ip -n "$CB" link set bcb$$ up
ip -n "$CA" link set lo up; ip -n "$CB" link set lo up
ip -n "$CB" route add local 10.78.0.0/22 dev lo
ip -n "$CA" route add 10.78.0.0/22 via 10.79.0.2
# Both ends' receive processing on CPU 1 (RPS), the monitor on CPU 0: a veth otherwise runs
# the peer's whole network stack in the sender's system call, charging the servers' work to
# the monitor.
MONCPU=0
if [ "$(nproc)" -ge 2 ]; then
    ip netns exec "$CA" sh -c "echo 2 > /sys/class/net/bca$$/queues/rx-0/rps_cpus"
    ip netns exec "$CB" sh -c "echo 2 > /sys/class/net/bcb$$/queues/rx-0/rps_cpus"
fi
ip netns exec "$CB" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
' &
lpid=$!
echo $lpid > "$RUNDIR/listener.pid"
hz=$(getconf CLK_TCK)
ptime() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
softirq1() { awk '$1 == "cpu1" { print $8 }' /proc/stat; }
pct() { awk -v t="$1" -v hz="$hz" -v s="$CPU_SECS" 'BEGIN { printf "%.2f", t / hz / s * 100 }'; }
cpu_run() { # NAME PID -> "name monitor% listener% softirq1%" into cpu.rows
    local c0 l0 q0 c1 l1 q1
    sleep 3
    c0=$(ptime "$2"); l0=$(ptime "$lpid"); q0=$(softirq1)
    sleep "$CPU_SECS"
    c1=$(ptime "$2"); l1=$(ptime "$lpid"); q1=$(softirq1)
    echo "$1|$(pct $((c1 - c0)))|$(pct $((l1 - l0)))|$(pct $((q1 - q0)))" >> "$RUNDIR/cpu.rows"
}
: > "$RUNDIR/cpu.rows"
for probe in connect syn; do
    mkdir -p "$RUNDIR/cpu-$probe"
    {
        printf 'tcp_probe = "%s"\n[[service]]\nvip = "192.0.2.1"\nport = 9000\n' "$probe"
        for i in $(seq 1 1000); do
            printf '[[service.server]]\naddress = "10.78.%d.%d"\n' $(( (i - 1) / 250 )) $(( (i - 1) % 250 + 1 ))
        done
    } > "$RUNDIR/cpu-$probe/monitord.toml"
    ip netns exec "$CA" taskset -c $MONCPU "$BIN/lvs-monitord" --rundir "$RUNDIR/cpu-$probe" \
        -c "$RUNDIR/cpu-$probe/monitord.toml" --no-syslog -f </dev/null \
        >"$RUNDIR/cpu-$probe/monitord.log" 2>&1 &
    sleep 1
    mpid=$(cat "$RUNDIR/cpu-$probe/monitord.pid")
    echo "lvs-monitord (tcp_probe = $probe) with 1000 servers: ${CPU_SECS} s ..." >&2
    cpu_run "lvs-monitord, \`tcp_probe = \"$probe\"\`$([ $probe = connect ] && echo ' (default)')" "$mpid"
    up=$(ip netns exec "$CA" "$BIN/lvs-monitord" ctl --rundir "$RUNDIR/cpu-$probe" list | awk '$5 == "up"' | wc -l)
    sed -i '$ s/$/|'"$up"'/' "$RUNDIR/cpu.rows"
    kill "$mpid"
done
{
    printf 'global\n    stats socket %s/haproxy-cpu.sock mode 600 level admin\n' "$RUNDIR"
    printf 'defaults\n    mode tcp\n    timeout connect 800ms\n    timeout client 30s\n    timeout server 30s\n'
    printf 'backend pool\n    default-server check inter 1s fall 3 rise 2\n'
    for i in $(seq 1 1000); do
        printf '    server s%d 10.78.%d.%d:9000\n' "$i" $(( (i - 1) / 250 )) $(( (i - 1) % 250 + 1 ))
    done
} > "$RUNDIR/haproxy-cpu.cfg"
ip netns exec "$CA" taskset -c $MONCPU haproxy -f "$RUNDIR/haproxy-cpu.cfg" -p "$RUNDIR/haproxy-cpu.pid" -D
sleep 1
hpid=$(head -1 "$RUNDIR/haproxy-cpu.pid")
echo "HAProxy with 1000 servers: ${CPU_SECS} s ..." >&2
cpu_run "HAProxy, \`check inter 1s\` (TCP connect)" "$hpid"
hup=$(ip netns exec "$CA" python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"show stat\n")
data = b""
while True:
    b = s.recv(65536)
    if not b: break
    data += b
print(sum(1 for l in data.decode().splitlines() if l.split(",")[1:2] != ["BACKEND"] and len(l.split(",")) > 17 and l.split(",")[17] == "UP"))
' "$RUNDIR/haproxy-cpu.sock")
sed -i '$ s/$/|'"$hup"'/' "$RUNDIR/cpu.rows"
kill "$hpid" 2>/dev/null || true
hap_cpu=$(awk -F'|' 'END { print $2 }' "$RUNDIR/cpu.rows")
cpu_table() {
    awk -F'|' -v hap="$hap_cpu" '{
        ratio = ($2 > 0 && hap > 0) ? sprintf("%.2f", $2 / hap) : "-"
        printf "| %s | %s | %s | %s | %s | %s |\n", $1, $5, $2, ratio, $3, $4
    }' "$RUNDIR/cpu.rows"
}

[ -z "${BENCH_CPU_ONLY:-}" ] && cat <<EOF

### Health checks: detection and recovery ($N runs each, median [min-max], seconds)

| monitor (default settings) | detection: killed -> out | recovery: back -> in |
| --- | --- | --- |
| lvs-monitord (TCP, interval 1 s, fall 3, rise 2) | $(med "$RUNDIR/monitord.times" 1) [$(minmax "$RUNDIR/monitord.times" 1)] | $(med "$RUNDIR/monitord.times" 2) [$(minmax "$RUNDIR/monitord.times" 2)] |
| HAProxy $(haproxy -v | head -1 | awk '{ print $3 }') (check: inter 2 s, fall 3, rise 2) | $(med "$RUNDIR/haproxy.times" 1) [$(minmax "$RUNDIR/haproxy.times" 1)] | $(med "$RUNDIR/haproxy.times" 2) [$(minmax "$RUNDIR/haproxy.times" 2)] |
| keepalived (documented defaults: delay_loop 60 s, retry 1) | 60-70 (docs) | 60 (docs) |
| ldirectord (documented defaults: checkinterval 10 s, checktimeout 5 s, failurecount 1) | 10-40 (docs) | 10 (docs) |
EOF
cat <<EOF

### CPU for 1000 servers checked once a second (${CPU_SECS} s each, % of one core)

The monitor's own process on CPU 0; beside it what the checks cost elsewhere: the listener
process of the 1000 "servers" (accept + close) and both network stacks' packet processing,
steered to CPU 1 (softirq, shared machine: approximate).

| monitor | servers up | monitor process | vs HAProxy | listener process | CPU 1 softirq |
| --- | --- | --- | --- | --- | --- |
$(cpu_table)
EOF
