#!/usr/bin/env bash
# CPU per received sync record (docs/SCALING.md): two directors in active-active mode, A and
# B, sync with each other. A client sends N TCP SYNs to A (raw socket, each from its own
# address and port): each is a new connection, whose record A sends to B. The script then
# prints the following:
#
#   live   B's CPU (all threads, from /proc/PID/task/*/schedstat) from the first SYN until B
#          has applied every record A sent, less B's idle CPU over as long, per record
#          applied; and each thread's share (lvs-sync receives and checks the datagrams,
#          lvs-worker-0 inserts the entries);
#   bulk   B restarted: the time until its bulk resync of the N entries is complete, and
#          B's CPU since its start, per entry.
#
# Usage: sudo scripts/bench/sync-cpu.sh [N]        (default 300000)
# Env: BIN=target/release (lvs-director, lvsadm and the mh plugin).
# Namespaces sc<pid>* are removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${1:-300000}
BIN=${BIN:-target/release}
P=sc$$
D=/tmp/lvs-bench-$P
die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for b in lvs-director lvsadm liblvs_sched_mh.so; do
    [ -e "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release --workspace (or set BIN)"
done
BIN=$(cd "$BIN" && pwd)

cleanup() {
    for f in "$D"/*.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    for n in s a b c; do ip netns del "$P$n" 2>/dev/null || true; done
    rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
mkdir -p "$D"

for n in s a b c; do ip netns add "$P$n"; ip -n "$P$n" link set lo up; done
ip -n "${P}s" link add br0 type bridge
ip -n "${P}s" link set br0 up
k=1
for n in a b c; do
    ip -n "${P}s" link add "v$n" type veth peer name eth0 netns "$P$n"
    ip -n "${P}s" link set "v$n" master br0 up
    ip -n "$P$n" link set eth0 up
    ip -n "$P$n" addr add "10.9.0.$k/24" dev eth0
    k=$((k + 1))
done
ip -n "${P}c" route add 10.9.9.9/32 via 10.9.0.1
(umask 077 && head -c 32 /dev/urandom >"$D/key")
printf -- '-A -t 10.9.9.9:80\n-a -t 10.9.9.9:80 -r 10.9.0.50:80 -g\n' >"$D/rules"

start() { # NAME PEER
    mkdir -p "$D/run$1" "$D/sync$1"
    cat >"$D/$1.toml" <<EOT
workers = 1
interfaces = ["eth0"]
rules_file = "$D/rules"
conn_table_size = 1048576
[cluster]
mode = "active-active"
[sync]
listen = "0.0.0.0:8848"
peers = ["$2:8848"]
key_file = "$D/key"
state_dir = "$D/sync$1"
EOT
    rm -f "$D/run$1/director.sock"
    ip netns exec "$P$1" "$BIN/lvs-director" -f --no-syslog --rundir "$D/run$1" -c "$D/$1.toml" \
        2>>"$D/$1.log" &
    echo $! >"$D/$1.pid"
    disown
    for _ in $(seq 200); do [ -S "$D/run$1/director.sock" ] && return; sleep 0.05; done
    die "director $1 did not start: $(tail -3 "$D/$1.log")"
}
daemon() { "$BIN/lvsadm" --rundir "$D/run$1" -L --daemon; }
cpu() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%d", s }'; }
threads() { # PID: each thread's CPU in ms
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s ms; ' "$(cat "$t/comm")" "$(awk '{ printf "%.1f", $1 / 1e6 }' "$t/schedstat")"
    done
}
now() { date +%s%N; }

start a 10.9.0.2
start b 10.9.0.1
until daemon b | grep -q "bulk resync complete: yes"; do sleep 0.1; done
B=$(cat "$D/b.pid")

c0=$(cpu "$B"); t0=$(now); sleep 5; c1=$(cpu "$B"); t1=$(now)
idle=$(( (c1 - c0) * 1000 / ((t1 - t0) / 1000000) ))   # ns of CPU per s
echo "B idle: $idle ns of CPU per second; threads: $(threads "$B")"

c0=$(cpu "$B"); t0=$(now)
ip netns exec "${P}c" python3 - 10.9.9.9 "$N" <<'PY'
import socket, struct, sys
vip = socket.inet_aton(sys.argv[1]); n = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
for i in range(n):
    src = socket.inet_aton("10.%d.%d.%d" % (100 + (i >> 16) % 100, (i >> 8) & 255, i & 255))
    tcp = struct.pack("!HHIIBBHHH", 1024 + i % 60000, 80, i, 0, 5 << 4, 2, 64240, 0, 0)
    c = csum(src + vip + struct.pack("!BBH", 0, 6, 20) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xffff, 0, 64, 6, 0, src, vip)
    s.sendto(ip + tcp, (sys.argv[1], 0))
PY
# Until A's count of records sent stops growing and B has applied them all (a SYN the kernel
# dropped on the way is no record). Polls every 0.2 s: each poll costs B's main thread a
# little.
sent=0 got=0 last=-1
for _ in $(seq 300); do
    sent=$(daemon a | awk '/^sent:/ { print $4 }')
    got=$(daemon b | awk '/^received:/ { print $4 }')
    [ "$sent" -gt 0 ] && [ "$sent" = "$last" ] && [ "$got" -ge "$sent" ] && break
    last=$sent
    sleep 0.2
done
c1=$(cpu "$B"); t1=$(now)
secs=$(awk -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", t / 1e9 }')
busy=$(( c1 - c0 - idle * (t1 - t0) / 1000000000 ))
echo "live: A sent $sent records, B applied $got in $secs s; B's CPU less idle: $((busy / 1000000)) ms, $((busy / (got > 0 ? got : 1))) ns per record"
echo "      B's threads since its start: $(threads "$B")"

kill -9 "$B"
sleep 0.5
t0=$(now)
start b 10.9.0.1
B=$(cat "$D/b.pid")
until daemon b | grep -q "bulk resync complete: yes"; do sleep 0.02; done
t1=$(now)
c1=$(cpu "$B")
got=$(daemon b | awk '/^received:/ { print $4 }')
echo "bulk: B restarted, $got entries applied, complete after $(( (t1 - t0) / 1000000 )) ms; B's CPU since its start $((c1 / 1000000)) ms, $((c1 / (got > 0 ? got : 1))) ns per entry (start included)"
echo "      B's threads: $(threads "$B")"

# The whole table through lvsadm, as a sysadmin lists it: paged over the control socket.
t0=$(now)
lines=$("$BIN/lvsadm" --rundir "$D/runb" -L -n -c 2>&1 | wc -l)
t1=$(now)
echo "list: lvsadm -L -n -c on B printed $((lines - 2)) connections in $(( (t1 - t0) / 1000000 )) ms"
