#!/usr/bin/env bash
# Anycast benchmark, printed as Markdown: three active directors behind an FRR router with
# ECMP. For each run, one director fails, and the script times two things from that moment:
#
#   withdrawn  the router's route to the VIP no longer has the director as a nexthop;
#   served     a round of 20 new connections from 20 source ports (a line sent and its answer
#              read, 200 ms timeout each) all succeed. Some of those ports hashed to the dead
#              director before.
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
# Then, with BFD, the connections lost per 1000 established ones (goal: 0): a client holds
# CONNS connections (default 1000) spread over the three directors and sends a line on each
# after each step; a connection is lost when it fails or is answered by another real server
# than the one it began on. Each step's figure is per 1000 of the connections alive before
# it:
#
#   kill    SIGKILL of every daemon of director 0, its route withdrawn
#   join    CONNS more connections opened over the two directors left, then director 0
#           restarted, its route back (announced once its bulk resync is done). The new
#           connections are what a join can break: the older ones that survived the kill
#           hash, with three nexthops again, to the director they began on
#   drain   lvs-heartbeatd --drain on director 1, its route withdrawn
#
# The testbed matches heartbeatd/tests/anycast.rs:
#   - a router (10.77.1.1) running FRR zebra+bgpd+bfdd with etc/frr/lvs-router-*.conf,
#     between the client (10.77.0.2) and the segment 10.77.1.0/24;
#   - three directors (10.77.1.11-13), each with lvs-director (active-active: mh, connection
#     sync with the other two; VS/DR), BIRD 2 with
#     etc/bird/lvs-anycast.conf, and lvs-heartbeatd in mode = "anycast";
#   - two real servers (10.77.1.21-22) holding the VIP 10.77.9.100 on lo, each answering
#     every line with its name (scripts/lib/line_server.py; the client of the losses is
#     scripts/lib/line_client.py, both shared with the tests).
#
# The peer, measured in the same run right after lvs-rs, on a fresh testbed: the same
# settings and losses with three HAProxy load balancers (Debian's haproxy, mode tcp, client
# and server timeouts 1 h) in place of lvs-director + lvs-heartbeatd in the three director
# namespaces. Each binds the VIP on lo and proxies to the real servers'
# own addresses; BIRD announces the VIP with the same configuration (BFD 100 ms x 3) but a
# static route that is always enabled. A failure is SIGKILL/SIGSTOP of haproxy and BIRD; a
# drain is `birdc disable vip_10_77_9_100` while haproxy keeps running. A connection is lost
# as for lvs-rs: it fails or another real server answers it. The router's multipath is the
# kernel's hash-threshold, so which of haproxy's connections a change of nexthops breaks
# depends on their order in the route (the order the BGP paths arrived in): its join and
# drain losses vary from run to run (a drain can break every connection left). Last, a
# table of both side by side and the ratios (haproxy / lvs-rs).
#
# Usage: sudo scripts/bench/anycast.sh [N]      (N runs per setting, default 10)
# Env: BIN=target/release (where lvs-director, lvsadm, lvs-heartbeatd and the mh plugin are)
#      SLOW=1 to run setting 4 too.
#      CONNS=1000 connections held for the losses.
#      PEER=haproxy (default) or none: lvs-rs alone.
# Needs root, bird2, frr and, for the peer, haproxy (apt-get install bird2 frr haproxy; the
# haproxy service need not run, the script starts its own). Namespaces ab<pid>* are removed
# on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${1:-10}
BIN=${BIN:-target/release}
SLOW=${SLOW:-0}
CONNS=${CONNS:-1000}
PEER=${PEER:-haproxy}
AP=ab$$
ADIR=/tmp/lvs-bench-$AP

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for b in lvs-director lvsadm lvs-heartbeatd liblvs_sched_mh.so; do
    [ -e "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release --workspace (or set BIN)"
done
BIN=$(cd "$BIN" && pwd)
command -v bird >/dev/null && [ -x /usr/lib/frr/bgpd ] ||
    die "needs bird2 and frr: apt-get install bird2 frr"
case $PEER in
    haproxy) command -v haproxy >/dev/null || die "needs haproxy for the peer: apt-get install haproxy (or PEER=none)" ;;
    none) ;;
    *) die "PEER is haproxy or none" ;;
esac
# shellcheck source=scripts/lib/anycast-bed.sh
. scripts/lib/anycast-bed.sh
trap ac_down EXIT
trap 'exit 1' INT TERM
ac_up

# KIND: lvs-rs or haproxy, the directors of the current part.
KIND=lvs-rs
start_director() { # I BFD
    if [ "$KIND" = haproxy ]; then ac_start_haproxy_director "$@"; else ac_start_director "$@"; fi
}
# drain I on|off: withdraw director I's route while it keeps forwarding, or announce it again.
# An HAProxy director has nothing that drives BIRD: its static protocol is switched by hand.
drain() {
    if [ "$KIND" = haproxy ]; then
        birdc -s "$ADIR/bird$1.ctl" "$([ "$2" = on ] && echo disable || echo enable)" vip_10_77_9_100 >/dev/null
    else
        "$BIN/lvs-heartbeatd" --rundir "$ADIR/run$1" "$([ "$2" = on ] && echo --drain || echo --undrain)" >/dev/null
    fi
}

# Medians by "KIND|setting|w" (withdrawn), "KIND|setting|s" (served), "KIND|kill" ... (lost
# per 1000), for the comparison at the end.
declare -A RES
SETTINGS=()

# Times from the failure (SIGNAL to director 0) to the withdrawal and to a fully served round,
# in ms: "withdrawn served". The client starts before the failure (its start-up, ~100 ms
# here, would otherwise be the floor of both times), says `ready`, then reads the time of the
# failure. A thread watches the router's route every 5 ms, so that rounds that wait for
# timeouts (200 ms each) do not delay the withdrawal's time. The served time has the
# rounds' grain: a killed lvs-rs director's namespace drops the packets of the ports that
# still hash to it, so its first round waits 200 ms; a killed haproxy's answers a reset (the
# VIP is still on its lo) and the client tries again at once.
CLIENT='
import socket, struct, subprocess, sys, threading, time
vip = sys.argv[1]; router = sys.argv[2]
print("ready", flush=True)
t0 = float(sys.stdin.readline())
withdrawn = served = None
def watch_route():
    global withdrawn
    while time.time() - t0 < 600:
        out = subprocess.run(["ip", "-n", router, "-4", "route", "show", vip],
                             capture_output=True, text=True).stdout
        if "10.77.1.11 " not in out:
            withdrawn = (time.time() - t0) * 1000
            return
        time.sleep(0.005)
def round_ok():
    for port in range(41000, 41020):
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Closed by a reset: no TIME_WAIT on this port for the next round.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.bind(("0.0.0.0", port)); s.settimeout(0.2)
            s.connect((vip, 80)); s.sendall(b"ping\n")
            reply = s.makefile("rb").readline()
            s.close()
            if not reply.startswith(b"rs"):
                return False
        except OSError:
            return False
    return True
watcher = threading.Thread(target=watch_route, daemon=True)
watcher.start()
while time.time() - t0 < 600 and served is None:
    if round_ok():
        served = (time.time() - t0) * 1000
    time.sleep(0.005)
watcher.join(max(0, 600 - (time.time() - t0)))
print("%.0f %.0f" % (withdrawn or -1, served or -1), flush=True)
'

run_setting() { # NAME SIGNAL BFD
    local name=$1 sig=$2 bfd=$3 w=() s=()
    ac_stop_router
    for i in 0 1 2; do ac_stop_director "$i"; done
    ac_start_router "$bfd"
    for i in 0 1 2; do start_director "$i" "$bfd"; done
    ac_wait_nexthops 3 60
    for _ in $(seq "$N"); do
        [ "$bfd" = yes ] && ac_wait_bfd_fast 0
        local t0 ready a b pid
        rm -f "$ADIR/timer.in" "$ADIR/timer.out"
        mkfifo "$ADIR/timer.in" "$ADIR/timer.out"
        ip netns exec "${AP}c" python3 -c "$CLIENT" $AVIP "${AP}r" \
            <"$ADIR/timer.in" >"$ADIR/timer.out" 2>>"$ADIR/timer.log" &
        pid=$!
        echo "$pid" >"$ADIR/timer.pid"
        exec 5>"$ADIR/timer.in" 6<"$ADIR/timer.out"
        read -r ready <&6 || true
        [ "$ready" = ready ] || die "the timing client did not start: $(tail -3 "$ADIR/timer.log")"
        t0=$(date +%s.%N)
        ac_signal_director 0 "$sig"
        echo "$t0" >&5
        read -r a b <&6 || die "the timing client died: $(tail -3 "$ADIR/timer.log")"
        exec 5>&- 6<&-
        wait "$pid" || true
        rm -f "$ADIR/timer.pid"
        w+=("$a")
        s+=("$b")
        ac_stop_director 0
        start_director 0 "$bfd"
        ac_wait_nexthops 3 60
    done
    printf '| %s | %s | %s |\n' "$name" "$(stats "${w[@]}")" "$(stats "${s[@]}")"
    RES["$KIND|$name|w"]=$(median "${w[@]}")
    RES["$KIND|$name|s"]=$(median "${s[@]}")
    [ "$KIND" != lvs-rs ] || SETTINGS+=("$name")
}

median() { stats "$@" | cut -d' ' -f1; }

stats() { # median (min-max) of the arguments
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f ms (%.0f-%.0f)", m, v[1], v[NR] }'
}

# Connections lost per 1000 established ones during a kill, a join and a drain, with BFD.
run_losses() {
    local killed joined drained before_join before_drain
    ac_stop_router
    for i in 0 1 2; do ac_stop_director "$i"; done
    ac_start_router yes
    for i in 0 1 2; do start_director "$i" yes; done
    ac_wait_nexthops 3 60
    ac_client_start
    ac_client_step "open $CONNS"
    local opened=$OPENED
    [ "$LOST" -eq 0 ] && [ "$opened" -eq "$CONNS" ] ||
        die "only $opened of $CONNS connections opened ($LOST failed)"
    ac_signal_director 0 KILL
    ac_wait_nexthops 2 10
    ac_client_step round
    killed=$LOST
    ac_client_step "open $CONNS"
    [ "$LOST" -eq 0 ] && [ "$OPENED" -eq "$CONNS" ] ||
        die "only $OPENED of $CONNS connections opened over two directors ($LOST failed or lost)"
    before_join=$OK
    start_director 0 yes
    ac_wait_nexthops 3 60
    ac_client_step round
    joined=$LOST
    before_drain=$OK
    drain 1 on
    ac_wait_nexthops 2 10
    ac_client_step round
    drained=$LOST
    drain 1 off
    ac_client_stop
    per() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.1f", n * 1000 / t }'; }
    RES["$KIND|kill"]=$(per "$killed" "$opened")
    RES["$KIND|join"]=$(per "$joined" "$before_join")
    RES["$KIND|drain"]=$(per "$drained" "$before_drain")
    echo "| $CONNS + $CONNS connections, BFD 100 ms x 3 | ${RES["$KIND|kill"]} ($killed of $opened)" \
        "| ${RES["$KIND|join"]} ($joined of $before_join) | ${RES["$KIND|drain"]} ($drained of $before_drain) |"
}

# All of one part: the times of each setting, then the losses.
run_part() {
    echo "| $KIND: setting ($N runs each) | route withdrawn: median (min-max) | all new connections served |"
    echo "| --- | --- | --- |"
    run_setting "SIGKILL, BFD 100 ms x 3" KILL yes
    run_setting "SIGSTOP (frozen), BFD 100 ms x 3" STOP yes
    run_setting "SIGKILL, default BGP timers" KILL no
    if [ "$SLOW" = 1 ]; then
        run_setting "SIGSTOP (frozen), default BGP timers" STOP no
    fi
    echo
    echo "| $KIND: connections lost per 1000 alive (lost of alive) | kill | join | drain |"
    echo "| --- | --- | --- | --- |"
    run_losses
}

ratio() { # PEER OURS: PEER / OURS, "-" when OURS is 0 or either is missing
    awk -v p="$1" -v o="$2" 'BEGIN { if (o + 0 > 0 && p != "") printf "%.1fx", p / o; else printf "-" }'
}

echo "$(nproc) CPUs, $(uname -r), load average at the start $(cut -d' ' -f1-3 /proc/loadavg);" \
    "bird $(bird --version 2>&1 | awk '{ print $NF; exit }'), FRR $(dpkg-query -W -f='${Version}' frr 2>/dev/null)"
echo
echo "## lvs-rs: lvs-director (active-active, mh) + lvs-heartbeatd + BIRD"
echo
run_part
if [ "$PEER" = haproxy ]; then
    echo
    echo "## peer: haproxy $(haproxy -v | awk '{ print $3; exit }') (mode tcp) + BIRD, on a fresh testbed"
    echo
    ac_down
    ac_up
    KIND=haproxy
    run_part

    echo
    echo "## lvs-rs vs haproxy (medians; ratio = haproxy / lvs-rs)"
    echo
    echo "| setting | lvs-rs withdrawn | haproxy withdrawn | ratio | lvs-rs served | haproxy served | ratio |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    ratios=()
    for name in "${SETTINGS[@]}"; do
        lw=${RES["lvs-rs|$name|w"]} hw=${RES["haproxy|$name|w"]}
        lsv=${RES["lvs-rs|$name|s"]} hs=${RES["haproxy|$name|s"]}
        echo "| $name | $lw ms | $hw ms | $(ratio "$hw" "$lw") | $lsv ms | $hs ms | $(ratio "$hs" "$lsv") |"
        ratios+=("$name: withdrawn $(ratio "$hw" "$lw"), served $(ratio "$hs" "$lsv")")
    done
    echo
    echo "| connections lost per 1000, BFD 100 ms x 3 | lvs-rs lost/1000 | haproxy lost/1000 | ratio |"
    echo "| --- | --- | --- | --- |"
    for step in kill join drain; do
        echo "| $step | ${RES["lvs-rs|$step"]} | ${RES["haproxy|$step"]} | $(ratio "${RES["haproxy|$step"]}" "${RES["lvs-rs|$step"]}") |"
        ratios+=("lost at $step: ${RES["haproxy|$step"]} vs ${RES["lvs-rs|$step"]} per 1000")
    done
    echo
    all=$(IFS=";"; echo "${ratios[*]}")
    echo "ratios (haproxy / lvs-rs; - where lvs-rs is 0): ${all//;/; }"
fi
echo
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
