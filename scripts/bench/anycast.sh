#!/usr/bin/env bash
# Anycast benchmark, printed as Markdown: three active directors behind an FRR router with
# ECMP. For each run, one director fails, and the script times two things from that moment:
#
#   withdrawn  the router's route to the VIP no longer has the director as a nexthop;
#   served     a round of 20 new connections from 20 source ports (HTTP GET, 200 ms timeout
#              each) all succeed. Some of those ports hashed to the dead director before.
#
# It reports the median, min and max of N runs for each of these settings:
#
#   1. kill,   BFD 100 ms x 3:  SIGKILL of every daemon of the director (lvs-director, BIRD,
#                               lvs-heartbeatd); BIRD's BGP session closes
#   2. freeze, BFD 100 ms x 3:  SIGSTOP of the director's daemons (a hung host): only BFD
#                               notices
#   3. kill,   default timers:  no BFD, BIRD's and FRR's default BGP timers
#   4. freeze, default timers:  no BFD, default timers: the hold time (FRR's 180 s, or
#                               BIRD's 240 s offer if lower) decides. Skipped unless
#                               SLOW=1: N runs of minutes each
#
# After each run the failed director is restarted and the script waits until the router
# has three nexthops again.
#
# The testbed matches heartbeatd/tests/anycast.rs:
#   - a router (10.77.1.1) running FRR zebra+bgpd+bfdd with etc/frr/lvs-router-*.conf,
#     between the client (10.77.0.2) and the segment 10.77.1.0/24;
#   - three directors (10.77.1.11-13), each with lvs-director (active-active: mh, connection
#     sync with the other two; VS/DR), BIRD 2 with
#     etc/bird/lvs-anycast.conf, and lvs-heartbeatd in mode = "anycast";
#   - two real HTTP servers (10.77.1.21-22) holding the VIP 10.77.9.100 on lo.
#
# Not measured yet: the connections lost per 1000 during a kill, a join and a drain. That
# needs the same-choice data plane (Maglev, sloppy TCP, many-to-many sync) and is added
# when it is merged.
#
# Usage: sudo scripts/bench/anycast.sh [N]      (N runs per setting, default 10)
# Env: BIN=target/release (where lvs-director, lvsadm, lvs-heartbeatd and the mh plugin are)
#      SLOW=1 to run setting 4 too.
# Needs root, bird2 and frr (apt-get install bird2 frr). Namespaces ab<pid>* are removed on
# exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${1:-10}
BIN=${BIN:-target/release}
SLOW=${SLOW:-0}
P=ab$$
DIR=/tmp/lvs-bench-$P
VIP=10.77.9.100
ROUTER=10.77.1.1
NODES=(sw r c d0 d1 d2 rs0 rs1)

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for b in lvs-director lvsadm lvs-heartbeatd liblvs_sched_mh.so; do
    [ -e "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release --workspace (or set BIN)"
done
BIN=$(cd "$BIN" && pwd)
command -v bird >/dev/null && [ -x /usr/lib/frr/bgpd ] ||
    die "needs bird2 and frr: apt-get install bird2 frr"

cleanup() {
    for f in "$DIR"/*.pid "$DIR"/frr/*.pid; do
        [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    for n in "${NODES[@]}"; do ip netns del "$P$n" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
mkdir -p "$DIR"
(umask 077 && head -c 32 /dev/urandom >"$DIR/sync.key")

inns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
# Daemons are started with `ip netns exec ... &` itself (not through inns): ip execs the
# program, so $! is the daemon's pid, which the runs signal.

# --- the network
for n in "${NODES[@]}"; do ip netns add "$P$n"; ip -n "$P$n" link set lo up; done
ip -n "${P}sw" link add br0 type bridge
ip -n "${P}sw" link set br0 up
for n in r d0 d1 d2 rs0 rs1; do
    ip -n "${P}sw" link add "${n}l" type veth peer name eth0 netns "$P$n"
    ip -n "${P}sw" link set "${n}l" master br0 up
    ip -n "$P$n" link set eth0 up
done
ip -n "${P}r" addr add $ROUTER/24 dev eth0
for i in 0 1 2; do
    ip -n "${P}d$i" addr add "10.77.1.1$((i + 1))/24" dev eth0
    ip -n "${P}d$i" route add default via $ROUTER
done
ip -n "${P}r" link add eth1 type veth peer name eth0 netns "${P}c"
ip -n "${P}r" addr add 10.77.0.1/24 dev eth1
ip -n "${P}r" link set eth1 up
ip -n "${P}c" link set eth0 up
ip -n "${P}c" addr add 10.77.0.2/24 dev eth0
ip -n "${P}c" route add default via 10.77.0.1
inns r sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
inns c sysctl -qw net.ipv4.tcp_tw_reuse=1
for i in 0 1; do
    ip -n "${P}rs$i" addr add "10.77.1.2$((i + 1))/24" dev eth0
    ip -n "${P}rs$i" addr add $VIP/32 dev lo
    ip -n "${P}rs$i" route add default via $ROUTER
    inns "rs$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
    ip netns exec "${P}rs$i" python3 -m http.server 80 --bind 0.0.0.0 --directory "$DIR" >/dev/null 2>&1 &
    echo $! >"$DIR/http$i.pid"
    disown
done

# --- the router: FRR as its frr user, its files in $DIR/frr
start_router() { # BFD: yes|no
    local frr=$DIR/frr
    rm -rf "$frr"
    mkdir -p "$frr"
    echo "hostname router" >"$frr/zebra.conf"
    cp etc/frr/lvs-router-bfdd.conf "$frr/bfdd.conf"
    sed -e "s/192\.0\.2\.1$/$ROUTER/; s/192\.0\.2\.0\/24/10.77.1.0\/24/" \
        etc/frr/lvs-router-bgpd.conf >"$frr/bgpd.conf"
    if [ "$1" = no ]; then
        sed -i -e '/ bfd/d' -e '/timers 1 3/d' "$frr/bgpd.conf"
    fi
    chown -R frr:frr "$frr"
    for d in zebra bfdd bgpd; do
        local extra=()
        [ "$d" = bgpd ] && extra=(-p 179)
        inns r "/usr/lib/frr/$d" -d -u frr -g frr -P 0 -f "$frr/$d.conf" -i "$frr/$d.pid" \
            -z "$frr/zserv.api" --vty_socket "$frr" --log "file:$frr/$d.log" "${extra[@]}" \
            >/dev/null 2>&1
    done
}

stop_router() {
    for d in bgpd bfdd zebra; do
        [ -f "$DIR/frr/$d.pid" ] && kill "$(cat "$DIR/frr/$d.pid")" 2>/dev/null || true
    done
    sleep 1
}

wait_socket() { # SOCKET LOG
    for _ in $(seq 300); do [ -S "$1" ] && return; sleep 0.05; done
    tail -5 "$2" >&2
    die "$1 did not appear"
}

# --- a director: lvs-director, BIRD, lvs-heartbeatd
start_director() { # I BFD
    local i=$1 bfd=$2 me="10.77.1.1$(($1 + 1))" run=$DIR/run$1
    mkdir -p "$run"
    local peers=() p
    for p in 0 1 2; do [ "$p" = "$i" ] || peers+=("\"10.77.1.1$((p + 1)):8848\""); done
    mkdir -p "$DIR/sync$i"
    cat >"$DIR/director$i.toml" <<EOF
workers = 1
interfaces = ["eth0"]
[cluster]
mode = "active-active"
[sync]
listen = "0.0.0.0:8848"
peers = [$(IFS=,; echo "${peers[*]}")]
key_file = "$DIR/sync.key"
state_dir = "$DIR/sync$i"
EOF
    rm -f "$run/director.sock"
    ip netns exec "${P}d$i" "$BIN/lvs-director" -f --no-syslog --rundir "$run" -c "$DIR/director$i.toml" \
        2>>"$DIR/director$i.log" &
    echo $! >"$DIR/director$i.pid"
    disown
    wait_socket "$run/director.sock" "$DIR/director$i.log"
    "$BIN/lvsadm" --rundir "$run" -A -t $VIP:80
    for rs in 10.77.1.21 10.77.1.22; do
        "$BIN/lvsadm" --rundir "$run" -a -t $VIP:80 -r $rs:80 -g
    done
    sed -e "s/192\.0\.2\.11/$me/g; s/neighbor 192\.0\.2\.1 /neighbor $ROUTER /" \
        -e "s/203\.0\.113\.100/$VIP/; s/vip_203_0_113_100/vip_10_77_9_100/" \
        -e "s/log syslog all;/log stderr all;/" etc/bird/lvs-anycast.conf >"$DIR/bird$i.conf"
    if [ "$bfd" = no ]; then
        sed -i -e '/bfd on;/d' -e '/hold time 3;/d' -e '/keepalive time 1;/d' "$DIR/bird$i.conf"
    fi
    rm -f "$DIR/bird$i.ctl"
    ip netns exec "${P}d$i" bird -f -c "$DIR/bird$i.conf" -s "$DIR/bird$i.ctl" -P "$DIR/bird$i.bpid" \
        2>>"$DIR/bird$i.log" &
    echo $! >"$DIR/bird$i.pid"
    disown
    wait_socket "$DIR/bird$i.ctl" "$DIR/bird$i.log"
    cat >"$DIR/heartbeatd$i.toml" <<EOF
mode = "anycast"
node_id = $((i + 1))
check_interval_ms = 100
[bgp]
control_socket = "$DIR/bird$i.ctl"
sessions = ["upstream"]
[[vip]]
addr = "$VIP"
EOF
    ip netns exec "${P}d$i" "$BIN/lvs-heartbeatd" -f --no-syslog --rundir "$run" -c "$DIR/heartbeatd$i.toml" \
        2>>"$DIR/heartbeatd$i.log" &
    echo $! >"$DIR/heartbeatd$i.pid"
    disown
}

signal_director() { # I SIGNAL
    for d in heartbeatd bird director; do
        [ -f "$DIR/$d$1.pid" ] && kill "-$2" "$(cat "$DIR/$d$1.pid")" 2>/dev/null || true
    done
}

stop_director() {
    signal_director "$1" CONT
    signal_director "$1" KILL
    sleep 0.2
}

nexthops() { ip -n "${P}r" -4 route show $VIP | grep -o 'via [0-9.]*' | wc -l; }

wait_nexthops() { # COUNT LIMIT_S
    local end=$((SECONDS + $2))
    until [ "$(nexthops)" -eq "$1" ]; do
        [ $SECONDS -lt $end ] || die "the router never had $1 nexthops for $VIP"
        sleep 0.05
    done
}

# BFD starts slow (1 s intervals) and speeds up to 100 ms once up: a run starts only then.
wait_bfd_fast() { # I
    local end=$((SECONDS + 30))
    until birdc -s "$DIR/bird$1.ctl" show bfd sessions | grep -q " Up .* 0\.100 "; do
        [ $SECONDS -lt $end ] || die "director $1's BFD session never ran at 100 ms"
        sleep 0.1
    done
}

# Times from the failure (SIGNAL to director 0) to the withdrawal and to a fully served round,
# in ms: "withdrawn served".
CLIENT='
import socket, sys, time
t0 = float(sys.argv[1]); vip = sys.argv[2]; router = sys.argv[3]
withdrawn = served = None
def route_has_d0():
    import subprocess
    out = subprocess.run(["ip", "-n", router, "-4", "route", "show", vip],
                         capture_output=True, text=True).stdout
    return "10.77.1.11 " in out
def round_ok():
    for port in range(41000, 41020):
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port)); s.settimeout(0.2)
            s.connect((vip, 80)); s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            reply = b""
            while True:  # to the server closing first: no TIME_WAIT on this port
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
            s.close()
            ok = reply.startswith(b"HTTP/1.0 200")
            if not ok:
                return False
        except OSError:
            return False
    return True
while time.time() - t0 < 600 and (withdrawn is None or served is None):
    if withdrawn is None and not route_has_d0():
        withdrawn = (time.time() - t0) * 1000
    if served is None and round_ok():
        served = (time.time() - t0) * 1000
    time.sleep(0.005)
print("%.0f %.0f" % (withdrawn or -1, served or -1))
'

run_setting() { # NAME SIGNAL BFD
    local name=$1 sig=$2 bfd=$3 w=() s=()
    stop_router
    for i in 0 1 2; do stop_director "$i"; done
    start_router "$bfd"
    for i in 0 1 2; do start_director "$i" "$bfd"; done
    wait_nexthops 3 60
    for _ in $(seq "$N"); do
        [ "$bfd" = yes ] && wait_bfd_fast 0
        local t0
        t0=$(date +%s.%N)
        signal_director 0 "$sig"
        read -r a b < <(ip netns exec "${P}c" python3 -c "$CLIENT" "$t0" $VIP "${P}r")
        w+=("$a")
        s+=("$b")
        stop_director 0
        start_director 0 "$bfd"
        wait_nexthops 3 60
    done
    printf '| %s | %s | %s |\n' "$name" "$(stats "${w[@]}")" "$(stats "${s[@]}")"
}

stats() { # median (min-max) of the arguments
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f ms (%.0f-%.0f)", m, v[1], v[NR] }'
}

echo "| setting ($N runs each) | route withdrawn: median (min-max) | all new connections served |"
echo "| --- | --- | --- |"
run_setting "SIGKILL, BFD 100 ms x 3" KILL yes
run_setting "SIGSTOP (frozen), BFD 100 ms x 3" STOP yes
run_setting "SIGKILL, default BGP timers" KILL no
if [ "$SLOW" = 1 ]; then
    run_setting "SIGSTOP (frozen), default BGP timers" STOP no
fi
