# shellcheck shell=bash
# The anycast testbed of scripts/bench/anycast.sh and act 7 of scripts/demo.sh (the same as
# heartbeatd/tests/anycast.rs): a router running FRR (zebra, bgpd with ECMP, bfdd) between a
# client and one segment; on it three directors, each with lvs-director in active-active
# mode (mh, connection sync with the other two, VS/DR), BIRD 2 and lvs-heartbeatd in
# mode = "anycast", and two real servers answering every line with their name
# (scripts/lib/line_server.py).
#
#   router 10.77.1.1 (client side 10.77.0.1), client 10.77.0.2, directors 10.77.1.11-13,
#   real servers 10.77.1.21-22, VIP 10.77.9.100
#
# Source it from the repository's root with AP (namespace prefix: ${AP}r, ${AP}d0, ...),
# ADIR (a directory of its own), BIN (absolute: lvs-director, lvsadm, lvs-heartbeatd and the
# mh plugin) and a die function set; then ac_up, ac_start_router, ac_start_director I BFD
# (or ac_start_haproxy_director I BFD, the benchmark's peer). ac_down stops everything and
# removes the namespaces.

AVIP=10.77.9.100
AROUTER=10.77.1.1
ANODES=(sw r c d0 d1 d2 rs0 rs1)

ac_down() {
    for f in "$ADIR"/*.pid "$ADIR"/frr/*.pid; do
        [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    for n in "${ANODES[@]}"; do ip netns del "$AP$n" 2>/dev/null || true; done
    rm -rf "$ADIR"
}

ac_inns() { local n=$1; shift; ip netns exec "$AP$n" "$@"; }
# Daemons are started with `ip netns exec ... &` itself (not through ac_inns): ip execs the
# program, so $! is the daemon's pid, which the runs signal.

# The network, the real servers, the directors' rules file and sync key.
ac_up() {
    mkdir -p "$ADIR"
    # The directors' services, loaded before sync starts (a restarted director's bulk resync
    # finds them): active-active, so the scheduler is mh.
    printf -- '-A -t %s:80\n-a -t %s:80 -r 10.77.1.21:80 -g\n-a -t %s:80 -r 10.77.1.22:80 -g\n' \
        $AVIP $AVIP $AVIP >"$ADIR/rules"
    (umask 077 && head -c 32 /dev/urandom >"$ADIR/sync.key")
    for n in "${ANODES[@]}"; do ip netns add "$AP$n"; ip -n "$AP$n" link set lo up; done
    ip -n "${AP}sw" link add br0 type bridge
    ip -n "${AP}sw" link set br0 up
    for n in r d0 d1 d2 rs0 rs1; do
        ip -n "${AP}sw" link add "${n}l" type veth peer name eth0 netns "$AP$n"
        ip -n "${AP}sw" link set "${n}l" master br0 up
        ip -n "$AP$n" link set eth0 up
    done
    ip -n "${AP}r" addr add $AROUTER/24 dev eth0
    for i in 0 1 2; do
        ip -n "${AP}d$i" addr add "10.77.1.1$((i + 1))/24" dev eth0
        ip -n "${AP}d$i" route add default via $AROUTER
    done
    ip -n "${AP}r" link add eth1 type veth peer name eth0 netns "${AP}c"
    ip -n "${AP}r" addr add 10.77.0.1/24 dev eth1
    ip -n "${AP}r" link set eth1 up
    ip -n "${AP}c" link set eth0 up
    ip -n "${AP}c" addr add 10.77.0.2/24 dev eth0
    ip -n "${AP}c" route add default via 10.77.0.1
    ac_inns r sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
    ac_inns c sysctl -qw net.ipv4.tcp_tw_reuse=1
    for i in 0 1; do
        ip -n "${AP}rs$i" addr add "10.77.1.2$((i + 1))/24" dev eth0
        ip -n "${AP}rs$i" addr add $AVIP/32 dev lo
        ip -n "${AP}rs$i" route add default via $AROUTER
        ac_inns "rs$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
            net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2
        ip netns exec "${AP}rs$i" python3 scripts/lib/line_server.py "rs$i" >/dev/null 2>&1 &
        echo $! >"$ADIR/server$i.pid"
        disown
    done
}

# --- the router: FRR as its frr user, its files in $ADIR/frr
ac_start_router() { # BFD: yes|no
    local frr=$ADIR/frr
    rm -rf "$frr"
    mkdir -p "$frr"
    echo "hostname router" >"$frr/zebra.conf"
    cp etc/frr/lvs-router-bfdd.conf "$frr/bfdd.conf"
    sed -e "s/192\.0\.2\.1$/$AROUTER/; s/192\.0\.2\.0\/24/10.77.1.0\/24/" \
        etc/frr/lvs-router-bgpd.conf >"$frr/bgpd.conf"
    if [ "$1" = no ]; then
        sed -i -e '/ bfd/d' -e '/timers 1 3/d' "$frr/bgpd.conf"
    fi
    chown -R frr:frr "$frr"
    for d in zebra bfdd bgpd; do
        local extra=()
        [ "$d" = bgpd ] && extra=(-p 179)
        ac_inns r "/usr/lib/frr/$d" -d -u frr -g frr -P 0 -f "$frr/$d.conf" -i "$frr/$d.pid" \
            -z "$frr/zserv.api" --vty_socket "$frr" --log "file:$frr/$d.log" "${extra[@]}" \
            >/dev/null 2>&1
    done
}

ac_stop_router() {
    for d in bgpd bfdd zebra; do
        [ -f "$ADIR/frr/$d.pid" ] && kill "$(cat "$ADIR/frr/$d.pid")" 2>/dev/null || true
    done
    sleep 1
}

ac_wait_socket() { # SOCKET LOG
    for _ in $(seq 300); do [ -S "$1" ] && return; sleep 0.05; done
    tail -5 "$2" >&2
    die "$1 did not appear"
}

# --- a director: lvs-director, BIRD, lvs-heartbeatd
ac_start_director() { # I BFD
    local i=$1 bfd=$2 run=$ADIR/run$1
    mkdir -p "$run"
    local peers=() p
    for p in 0 1 2; do [ "$p" = "$i" ] || peers+=("\"10.77.1.1$((p + 1)):8848\""); done
    mkdir -p "$ADIR/sync$i"
    cat >"$ADIR/director$i.toml" <<EOF
workers = 1
interfaces = ["eth0"]
rules_file = "$ADIR/rules"
[cluster]
mode = "active-active"
[sync]
listen = "0.0.0.0:8848"
peers = [$(IFS=,; echo "${peers[*]}")]
key_file = "$ADIR/sync.key"
state_dir = "$ADIR/sync$i"
EOF
    rm -f "$run/director.sock"
    ip netns exec "${AP}d$i" "$BIN/lvs-director" -f --no-syslog --rundir "$run" -c "$ADIR/director$i.toml" \
        2>>"$ADIR/director$i.log" &
    echo $! >"$ADIR/director$i.pid"
    disown
    ac_wait_socket "$run/director.sock" "$ADIR/director$i.log"
    ac_bird_conf "$i" "$bfd" >"$ADIR/bird$i.conf"
    ac_start_bird "$i"
    cat >"$ADIR/heartbeatd$i.toml" <<EOF
mode = "anycast"
node_id = $((i + 1))
check_interval_ms = 100
[bgp]
control_socket = "$ADIR/bird$i.ctl"
sessions = ["upstream"]
[[vip]]
addr = "$AVIP"
EOF
    ip netns exec "${AP}d$i" "$BIN/lvs-heartbeatd" -f --no-syslog --rundir "$run" -c "$ADIR/heartbeatd$i.toml" \
        2>>"$ADIR/heartbeatd$i.log" &
    echo $! >"$ADIR/heartbeatd$i.pid"
    disown
}

# BIRD's configuration for director I: etc/bird/lvs-anycast.conf with the bed's addresses;
# without BFD (BFD=no), BIRD's default BGP timers.
ac_bird_conf() { # I BFD
    local me="10.77.1.1$(($1 + 1))"
    sed -e "s/192\.0\.2\.11/$me/g; s/neighbor 192\.0\.2\.1 /neighbor $AROUTER /" \
        -e "s/203\.0\.113\.100/$AVIP/; s/vip_203_0_113_100/vip_10_77_9_100/" \
        -e "s/log syslog all;/log stderr all;/" etc/bird/lvs-anycast.conf |
        if [ "$2" = no ]; then
            sed -e '/bfd on;/d' -e '/hold time 3;/d' -e '/keepalive time 1;/d'
        else
            cat
        fi
}

ac_start_bird() { # I: with $ADIR/birdI.conf, until its control socket is there
    local i=$1
    rm -f "$ADIR/bird$i.ctl"
    ip netns exec "${AP}d$i" bird -f -c "$ADIR/bird$i.conf" -s "$ADIR/bird$i.ctl" -P "$ADIR/bird$i.bpid" \
        2>>"$ADIR/bird$i.log" &
    echo $! >"$ADIR/bird$i.pid"
    disown
    ac_wait_socket "$ADIR/bird$i.ctl" "$ADIR/bird$i.log"
}

# --- the peer of scripts/bench/anycast.sh: an HAProxy director (mode tcp, Debian's haproxy)
# in place of lvs-director + lvs-heartbeatd. The VIP sits on lo (not every kernel has dummy
# devices) so that haproxy can bind it; haproxy proxies to the real servers' own addresses
# (line_server.py listens on all of them). BIRD has an lvs-rs director's configuration but
# for the static route, which points into lo and is enabled from the start: nothing drives
# BIRD, and a drain is `birdc disable vip_10_77_9_100`. haproxy runs in the foreground
# (-db), never as the system service; its pid is in $ADIR/haproxyI.pid (signalled with
# BIRD's by ac_signal_director, killed by ac_down).
ac_start_haproxy_director() { # I BFD
    local i=$1 bfd=$2 n
    # grep without -q: an early exit could fail the pipeline (pipefail).
    ip -n "${AP}d$i" -4 addr show dev lo | grep " $AVIP/32 " >/dev/null ||
        ip -n "${AP}d$i" addr add $AVIP/32 dev lo
    cat >"$ADIR/haproxy$i.cfg" <<EOF
global
    maxconn 8000
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
frontend vip
    bind $AVIP:80
    default_backend rs
backend rs
    balance roundrobin
    server rs0 10.77.1.21:80
    server rs1 10.77.1.22:80
EOF
    ip netns exec "${AP}d$i" haproxy -db -f "$ADIR/haproxy$i.cfg" >>"$ADIR/haproxy$i.log" 2>&1 &
    echo $! >"$ADIR/haproxy$i.pid"
    disown
    for n in $(seq 300); do
        ac_inns "d$i" ss -ltnH "sport = :80" | grep . >/dev/null && break
        [ "$n" -lt 300 ] || { tail -5 "$ADIR/haproxy$i.log" >&2; die "haproxy $i never listened"; }
        sleep 0.05
    done
    ac_bird_conf "$i" "$bfd" | sed -e '/^    disabled yes;/d' -e 's/"lvs-vip0"/"lo"/' >"$ADIR/bird$i.conf"
    ac_start_bird "$i"
}

ac_signal_director() { # I SIGNAL
    for d in heartbeatd bird director haproxy; do
        [ -f "$ADIR/$d$1.pid" ] && kill "-$2" "$(cat "$ADIR/$d$1.pid")" 2>/dev/null || true
    done
}

ac_stop_director() {
    ac_signal_director "$1" CONT
    ac_signal_director "$1" KILL
    sleep 0.2
}

ac_nexthops() { ip -n "${AP}r" -4 route show $AVIP | grep -o 'via [0-9.]*' | wc -l; }

ac_wait_nexthops() { # COUNT LIMIT_S
    local end=$((SECONDS + $2))
    until [ "$(ac_nexthops)" -eq "$1" ]; do
        [ $SECONDS -lt $end ] || die "the router never had $1 nexthops for $AVIP"
        sleep 0.05
    done
}

# BFD starts slow (1 s intervals) and speeds up to 100 ms once up: a run starts only then.
ac_wait_bfd_fast() { # I
    local end=$((SECONDS + 30))
    until birdc -s "$ADIR/bird$1.ctl" show bfd sessions | grep -q " Up .* 0\.100 "; do
        [ $SECONDS -lt $end ] || die "director $1's BFD session never ran at 100 ms"
        sleep 0.1
    done
}

# The client (scripts/lib/line_client.py) in the client's namespace, on file descriptors 7
# (its commands) and 8 (its answers, one JSON line each).
ac_client_start() {
    mkfifo "$ADIR/client.in" "$ADIR/client.out"
    ip netns exec "${AP}c" python3 scripts/lib/line_client.py $AVIP 10 \
        <"$ADIR/client.in" >"$ADIR/client.out" 2>>"$ADIR/client.log" &
    echo $! >"$ADIR/client.pid"
    disown
    exec 7>"$ADIR/client.in" 8<"$ADIR/client.out"
}

ac_client_stop() {
    exec 7>&- 8<&-
    rm -f "$ADIR/client.in" "$ADIR/client.out"
}

ac_client_step() { # CMD: sets LOST (failed or moved since the last step), OK and OPENED
    echo "$1" >&7
    ac_client_read
}

ac_client_read() { # the answer to a command sent to fd 7: sets LOST, OK and OPENED
    local line
    read -r line <&8 || die "the client died"
    read -r LOST OK OPENED < <(python3 -c 'import json, sys
r = json.loads(sys.argv[1])
print(sum(r["lost"].values()) + r["moved"], r["ok"], r["opened"])' "$line")
}
