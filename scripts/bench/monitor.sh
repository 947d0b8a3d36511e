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
#   2. The CPU lvs-monitord uses checking 1000 real servers once a second (TCP connect to 1000
#      addresses that a peer namespace has as local addresses), from /proc/PID/stat over
#      BENCH_CPU_SECS seconds, in % of one core.
#
# Usage: sudo scripts/bench/monitor.sh [N]      (N runs per figure, default 10)
# Needs root, a release build (cargo build --release --workspace) and haproxy (apt-get install
# haproxy when missing). Namespaces bm<pid>-* and bc<pid>{a,b} are removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${1:-10}
CPU_SECS=${BENCH_CPU_SECS:-30}
P=bm$$
RUNDIR=/tmp/lvs-bench-$P
VIP=203.0.113.100
RS=(203.0.113.11 203.0.113.12 203.0.113.13)
BIN=target/release
CA=bc$$a
CB=bc$$b

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for b in lvs-director lvsadm lvs-monitord; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release --workspace"
done
if ! command -v haproxy >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi

cleanup() {
    for f in "$RUNDIR"/*.pid; do
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

# ---- CPU for 1000 servers ------------------------------------------------------------------
ip netns add "$CA"; ip netns add "$CB"
ip link add bca$$ netns "$CA" type veth peer name bcb$$ netns "$CB"
ip -n "$CA" addr add 10.79.0.1/30 dev bca$$; ip -n "$CB" addr add 10.79.0.2/30 dev bcb$$
ip -n "$CA" link set bca$$ up; ip -n "$CB" link set bcb$$ up
ip -n "$CA" link set lo up; ip -n "$CB" link set lo up
ip -n "$CB" route add local 10.78.0.0/22 dev lo
ip -n "$CA" route add 10.78.0.0/22 via 10.79.0.2
ip netns exec "$CB" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
' &
echo $! > "$RUNDIR/listener.pid"
mkdir -p "$RUNDIR/cpu"
{
    printf '[[service]]\nvip = "192.0.2.1"\nport = 9000\n'
    for i in $(seq 1 1000); do
        printf '[[service.server]]\naddress = "10.78.%d.%d"\n' $(( (i - 1) / 250 )) $(( (i - 1) % 250 + 1 ))
    done
} > "$RUNDIR/cpu/monitord.toml"
ip netns exec "$CA" "$BIN/lvs-monitord" --rundir "$RUNDIR/cpu" -c "$RUNDIR/cpu/monitord.toml" \
    --no-syslog -f </dev/null >"$RUNDIR/cpu/monitord.log" 2>&1 &
sleep 3
mpid=$(cat "$RUNDIR/cpu/monitord.pid")
ticks() { awk '{ print $14 + $15 }' "/proc/$mpid/stat"; }
hz=$(getconf CLK_TCK)
echo "lvs-monitord with 1000 servers: ${CPU_SECS} s ..." >&2
c0=$(ticks); sleep "$CPU_SECS"; c1=$(ticks)
cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$CPU_SECS" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')
up=$(ip netns exec "$CA" "$BIN/lvs-monitord" ctl --rundir "$RUNDIR/cpu" list | awk '$5 == "up"' | wc -l)
kill "$mpid"

cat <<EOF

### Health checks: detection and recovery ($N runs each, median [min-max], seconds)

| monitor (default settings) | detection: killed -> out | recovery: back -> in |
| --- | --- | --- |
| lvs-monitord (TCP, interval 1 s, fall 3, rise 2) | $(med "$RUNDIR/monitord.times" 1) [$(minmax "$RUNDIR/monitord.times" 1)] | $(med "$RUNDIR/monitord.times" 2) [$(minmax "$RUNDIR/monitord.times" 2)] |
| HAProxy $(haproxy -v | head -1 | awk '{ print $3 }') (check: inter 2 s, fall 3, rise 2) | $(med "$RUNDIR/haproxy.times" 1) [$(minmax "$RUNDIR/haproxy.times" 1)] | $(med "$RUNDIR/haproxy.times" 2) [$(minmax "$RUNDIR/haproxy.times" 2)] |
| keepalived (documented defaults: delay_loop 60 s, retry 1) | 60-70 (docs) | 60 (docs) |
| ldirectord (documented defaults: checkinterval 10 s, checktimeout 5 s, failurecount 1) | 10-40 (docs) | 10 (docs) |

### lvs-monitord CPU, 1000 servers checked once a second (TCP connect)

| servers | up at the end | CPU over ${CPU_SECS} s (% of one core) |
| --- | --- | --- |
| 1000 | $up | $cpu |
EOF
