#!/usr/bin/env bash
# Network benchmark on the namespace testbed (scripts/testbed.sh): every figure next to its peer,
# measured in the same run, printed as Markdown tables (for docs/PERFORMANCE.md).
#
#   1. Small UDP packets per second, client -> router -> LAN -> director namespace -> LAN ->
#      real servers. Peer: the kernel's own IP forwarding in the director namespace (the router
#      sends the real servers' addresses to the director, which routes them back out of eth0 to
#      the servers: the same veth hops and namespaces as VS/DR and VS/NAT). Then lvs-director
#      in VS/NAT and VS/DR. Sender and receivers are small C programs (udpblast.c, udpsink.c,
#      compiled here with gcc): sendmmsg / recvmmsg, 18-byte payloads (60-byte frames).
#   2. New TCP connections per second (wrk, `Connection: close`: one connection per request) and
#      requests per second over keep-alive, against: one real server directly (upper bound),
#      HAProxy `mode tcp` in the director namespace in front of the three servers (the peer),
#      and lvs-director in VS/DR and VS/NAT. The real servers run nginx (1 worker, tiny body).
#   3. The director's CPU per forwarded packet, for each director row of 1 and 2: the
#      lvs-director process's CPU time over the measurement (utime+stime of all its threads,
#      /proc/PID/stat, in ticks of 1/CLK_TCK s) divided by the packets it forwarded (InPkts +
#      OutPkts of its service, `lvsadm -L -n --stats --exact`), in ns per packet. On veth a
#      transmit runs the receiving side synchronously in the sender's context (the bridge,
#      and the real server's or router's IP and TCP receive), so this figure includes that
#      work, which a real NIC would do elsewhere: an upper bound of the director's own cost.
#   Both are measured over IPv4 and then over IPv6 (the testbed is dual stack): the IPv6 UDP
#   rows are compared with the kernel's IPv6 forwarding, the IPv6 TCP rows with going straight
#   to the server over IPv6, and a last table puts each IPv6 director row next to its IPv4 twin.
#
# Usage: scripts/bench/net.sh [--quick] [--only udp|tcp] [--family 4|6] [--out FILE]
#   --quick   ~2 s per measurement instead of ~10 s (smoke run)
#   --only    run one half
#   --family  run one address family (default: both)
#   --out     also write the final tables to FILE
# Tuning (environment): BENCH_DURATION (seconds per measurement), BENCH_UDP_SENDERS (counts of
# parallel udpblast processes; every UDP path is measured once per count, default "1 2"),
# BENCH_UDP_FLOWS (source ports per sender, default 8),
# BENCH_WRK_THREADS (2), BENCH_WRK_CONNS (100), LVS_DIRECTOR / LVSADM (binaries; default
# target/release/lvs-director and target/release/lvsadm), BENCH_TPACKET (receive ring versions
# to measure each director row with, e.g. "2 3": the row is then measured once per version,
# labelled TPACKET_Vn, with [ring] tpacket_version = n; default: the director's own default,
# unlabelled).
#
# Needs root. Installs wrk, haproxy, nginx-light, gcc with apt-get when missing. All traffic
# stays inside namespaces named bn<pid>-*, removed on exit (also on failure or Ctrl-C).
# The CPU column is in % of one core (see the machine line): machine idle and
# softirq, the load generator (sender or wrk), the processes of the director namespace (d) and of
# the real servers (r), ksoftirqd, and "bg": busy CPU measured just before the measurement with
# nothing of ours running (other users of the machine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
BENCH_DIR=$ROOT/scripts/bench

die() { echo "bench/net: $*" >&2; exit 1; }
log() { echo "bench/net: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }

QUICK=0 ONLY=all OUT="" FAMILIES="4 6"
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --family) [ $# -ge 2 ] || usage; FAMILIES=$2; shift ;;
        --family=*) FAMILIES=${1#--family=} ;;
        --only) [ $# -ge 2 ] || usage; ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --out) [ $# -ge 2 ] || usage; OUT=$2; shift ;;
        --out=*) OUT=${1#--out=} ;;
        -h|--help) usage 0 ;;
        *) log "unknown option $1"; usage ;;
    esac
    shift
done
case $ONLY in all|udp|tcp) ;; *) die "--only takes udp or tcp" ;; esac
case $FAMILIES in "4 6"|4|6) ;; *) die "--family takes 4 or 6" ;; esac
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
if [ -n "$OUT" ]; then
    case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
    : > "$OUT" || die "cannot write $OUT"
fi

if [ "$QUICK" = 1 ]; then DUR=${BENCH_DURATION:-2}; BGSAMPLE=0.5; else DUR=${BENCH_DURATION:-10}; BGSAMPLE=1; fi
case $DUR in ''|*[!0-9]*) die "BENCH_DURATION must be whole seconds" ;; esac
[ "$DUR" -ge 1 ] && [ "$DUR" -le 300 ] || die "BENCH_DURATION must be 1..300"
UDP_SENDER_SETS=${BENCH_UDP_SENDERS:-1 2}
for n in $UDP_SENDER_SETS; do
    case $n in [1-8]) ;; *) die "BENCH_UDP_SENDERS: counts of 1..8, e.g. \"1 2\"" ;; esac
done
UDP_SENDERS=1
UDP_FLOWS=${BENCH_UDP_FLOWS:-8}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
WRK_CONNS=${BENCH_WRK_CONNS:-100}
TPACKETS=${BENCH_TPACKET:-}
for v in $TPACKETS; do
    case $v in 2|3) ;; *) die "BENCH_TPACKET: versions 2 and 3, e.g. \"2 3\"" ;; esac
done
DIRECTOR_BIN=${LVS_DIRECTOR:-$ROOT/target/release/lvs-director}
LVSADM_BIN=${LVSADM:-$ROOT/target/release/lvsadm}

VIP4=203.0.113.100
RS4=(203.0.113.11 203.0.113.12 203.0.113.13)
DIRECTOR_IP4=203.0.113.1
# The testbed's IPv6 twins (scripts/testbed.sh).
VIP6=2001:db8::100
RS6=(2001:db8::11 2001:db8::12 2001:db8::13)
DIRECTOR_IP6=2001:db8::1
# The family being measured: set by use_family. HOST() is an address as a URL or lvsadm
# endpoint takes it (IPv6 in brackets); SUFFIX labels the rows.
FAM=4 VIP=$VIP4 RS=("${RS4[@]}") DIRECTOR_IP=$DIRECTOR_IP4 SUFFIX=""
use_family() {
    FAM=$1
    if [ "$FAM" = 6 ]; then
        VIP=$VIP6 RS=("${RS6[@]}") DIRECTOR_IP=$DIRECTOR_IP6 SUFFIX=" (IPv6)"
    else
        VIP=$VIP4 RS=("${RS4[@]}") DIRECTOR_IP=$DIRECTOR_IP4 SUFFIX=""
    fi
}
host() { case $1 in *:*) echo "[$1]" ;; *) echo "$1" ;; esac; }
UDP_PORT=9000
UDP_PAYLOAD=18
P="bn$$"; P=${P:0:10}
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

TMP=$(mktemp -d /tmp/lvs-bench-net.XXXXXX)
BG_PIDS=()
cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM
    for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 1 20); do
        local alive=0
        for pid in "${BG_PIDS[@]}"; do alive "$pid" && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${BG_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    "$ROOT/scripts/testbed.sh" down "$P" >/dev/null 2>&1
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

inns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
# A process that has exited but is not yet reaped (a zombie) counts as gone.
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null; }
gone() { ! alive "$1"; }

# ---------------------------------------------------------------------------------------------
# Tools

apt_install() {
    log "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}
ensure() { # COMMAND PACKAGE [FALLBACK_PACKAGE]
    command -v "$1" >/dev/null 2>&1 && return 0
    apt_install "$2" || { [ -n "${3:-}" ] && apt_install "$3"; } || die "cannot install $2"
    command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 not found"
}
ensure ip iproute2
ensure ethtool ethtool
if [ "$ONLY" != tcp ]; then
    ensure gcc gcc
    for prog in udpblast udpsink; do
        gcc -O2 -Wall -o "$TMP/$prog" "$BENCH_DIR/$prog.c" || die "cannot compile $prog.c"
    done
fi
if [ "$ONLY" != udp ]; then
    ensure wrk wrk
    ensure haproxy haproxy
    ensure nginx nginx-light nginx
    NGINX=$(command -v nginx)
    HAPROXY=$(command -v haproxy)
fi

# ---------------------------------------------------------------------------------------------
# CPU accounting (ticks of 1/HZ s). Process times include the softirq work done in their context.

ns_ticks() { # NODE... -> utime+stime of every process in those namespaces
    local sum=0 node pid st
    for node in "$@"; do
        for pid in $(ip netns pids "$P-$node" 2>/dev/null); do
            st=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
            st=${st##*) }
            # shellcheck disable=SC2086
            set -- $st
            sum=$((sum + ${12} + ${13}))
        done
    done
    echo "$sum"
}
ksoftirqd_ticks() {
    local sum=0 pid st
    for pid in $(pgrep -x 'ksoftirqd/[0-9]+' 2>/dev/null || pgrep '^ksoftirqd/'); do
        st=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        st=${st##*) }
        # shellcheck disable=SC2086
        set -- $st
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}
machine_ticks() { # -> "busy idle softirq"
    awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6, $8; exit}' /proc/stat
}
# Busy CPU before a measurement, nothing of ours running: other users of the machine.
BG=0
bg_sample() {
    local a b
    a=$(machine_ticks); sleep "$BGSAMPLE"; b=$(machine_ticks)
    BG=$(awk -v a="$a" -v b="$b" -v s="$BGSAMPLE" -v hz="$HZ" \
        'BEGIN{split(a,x," "); split(b,y," "); printf "%.0f", (y[1]-x[1])*100/hz/s}')
}
# The director process alone: its CPU ticks and the packets it forwarded (every service).
director_ticks() {
    local st
    st=$(cat "/proc/$DIRECTOR_PID/stat" 2>/dev/null) || { echo 0; return; }
    st=${st##*) }
    # shellcheck disable=SC2086
    set -- $st
    echo $((${12} + ${13}))
}
director_pkts() {
    lvsadm -L -n --stats --exact 2>/dev/null |
        awk '$1=="TCP" || $1=="UDP" { s += $3 + $4 } END { printf "%.0f\n", s }'
}
CPU_T0=0 CPU_M0="" CPU_D0=0 CPU_R0=0 CPU_K0=0 DIR_T0=0 DIR_P0=0
cpu_begin() {
    if [ -n "$DIRECTOR_PID" ]; then DIR_T0=$(director_ticks); DIR_P0=$(director_pkts); fi
    CPU_M0=$(machine_ticks); CPU_D0=$(ns_ticks d); CPU_R0=$(ns_ticks r1 r2 r3)
    CPU_K0=$(ksoftirqd_ticks); CPU_T0=$(date +%s.%N)
}
# cpu_end LOADGEN_SECONDS(user+sys, from `time`) -> CPU column text in $CPU; with a director
# running, its forwarded packets and CPU seconds in DIR_PKTS and DIR_SECS.
CPU="" DIR_PKTS=0 DIR_SECS=0
cpu_end() {
    local m1 d1 r1 k1 t1
    m1=$(machine_ticks); d1=$(ns_ticks d); r1=$(ns_ticks r1 r2 r3); k1=$(ksoftirqd_ticks)
    t1=$(date +%s.%N)
    DIR_PKTS=0 DIR_SECS=0
    if [ -n "$DIRECTOR_PID" ]; then
        DIR_SECS=$(awk -v a="$DIR_T0" -v b="$(director_ticks)" -v hz="$HZ" 'BEGIN{print (b-a)/hz}')
        DIR_PKTS=$(( $(director_pkts) - DIR_P0 ))
    fi
    CPU=$(awk -v a="$CPU_M0" -v b="$m1" -v d0="$CPU_D0" -v d1="$d1" -v r0="$CPU_R0" -v r1="$r1" \
        -v k0="$CPU_K0" -v k1="$k1" -v t0="$CPU_T0" -v t1="$t1" -v hz="$HZ" -v lg="$1" \
        -v bg="$BG" -v ncpu="$NCPU" 'BEGIN{
            split(a,x," "); split(b,y," "); s=t1-t0; f=100/hz/s
            printf "idle %.0f, softirq %.0f; load gen %.0f, d %.0f, r %.0f, ksoftirqd %.0f; bg %s",
                (y[2]-x[2])*f, (y[3]-x[3])*f, lg*100/s, (d1-d0)*f, (r1-r0)*f, (k1-k0)*f, bg }')
}
fmt_int() { awk -v n="$1" 'BEGIN{s=sprintf("%.0f", n); o=""; while (length(s) > 3) { o="," substr(s, length(s)-2) o; s=substr(s, 1, length(s)-3) } print s o}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "—" }'; }

# Polls CMD until it succeeds, for at most SECONDS. wait_for SECONDS CMD...
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------------------------
# The director (lvs-director + lvsadm). Each director measurement starts it, configures one
# service, waits until `lvsadm -L -n` shows it, runs the load and stops it with SIGTERM.

DIRECTOR_PID="" DIRECTOR_RUNDIR="" DIRECTOR_WHY="" DIRECTOR_TPACKET=""
director_built() { [ -x "$DIRECTOR_BIN" ] && [ -x "$LVSADM_BIN" ]; }
lvsadm() { inns d "$LVSADM_BIN" --rundir "$DIRECTOR_RUNDIR" "$@"; }
service_listed() { # PROTO(TCP|UDP) PORT
    local out
    local rs n=0
    out=$(lvsadm -L -n 2>/dev/null) || return 1
    grep -qF "$1  $(host "$VIP"):$2 " <<<"$out" || return 1
    for rs in "${RS[@]}"; do grep -qF -- "-> $(host "$rs"):$2 " <<<"$out" && n=$((n + 1)); done
    [ "$n" -eq 3 ]
}
# director_start -t|-u PORT -m|-g ; on failure sets DIRECTOR_WHY and returns 1
director_start() {
    local proto=$1 port=$2 method=$3 name rs
    [ "$proto" = -t ] && name=TCP || name=UDP
    DIRECTOR_RUNDIR=$TMP/director-run
    rm -rf "$DIRECTOR_RUNDIR"; mkdir -m 700 "$DIRECTOR_RUNDIR"
    cat > "$TMP/director.toml" <<EOF
# Generated by scripts/bench/net.sh for one measurement.
interfaces = ["eth0"]
EOF
    if [ -n "$DIRECTOR_TPACKET" ]; then
        printf '[ring]\ntpacket_version = %s\n' "$DIRECTOR_TPACKET" >> "$TMP/director.toml"
    fi
    ip netns exec "$P-d" "$DIRECTOR_BIN" -f --rundir "$DIRECTOR_RUNDIR" -c "$TMP/director.toml" \
        >> "$TMP/director.log" 2>&1 &
    DIRECTOR_PID=$!
    BG_PIDS+=("$DIRECTOR_PID")
    if ! wait_for 15 lvsadm -L -n; then
        DIRECTOR_WHY="control socket not up in 15 s"
        alive "$DIRECTOR_PID" || DIRECTOR_WHY="lvs-director exited"
        director_stop; return 1
    fi
    if ! lvsadm -A "$proto" "$(host "$VIP"):$port" -s rr >> "$TMP/director.log" 2>&1; then
        DIRECTOR_WHY="lvsadm -A failed"; director_stop; return 1
    fi
    for rs in "${RS[@]}"; do
        if ! lvsadm -a "$proto" "$(host "$VIP"):$port" -r "$(host "$rs"):$port" "$method" >> "$TMP/director.log" 2>&1; then
            DIRECTOR_WHY="lvsadm -a failed"; director_stop; return 1
        fi
    done
    if ! wait_for 10 service_listed "$name" "$port"; then
        DIRECTOR_WHY="service not listed by lvsadm -L -n in 10 s"; director_stop; return 1
    fi
}
director_stop() {
    [ -n "$DIRECTOR_PID" ] || return 0
    if alive "$DIRECTOR_PID"; then
        { echo "--- lvsadm -L -n --stats"; lvsadm -L -n --stats 2>&1; } >> "$TMP/director.log" || true
        kill -TERM "$DIRECTOR_PID" 2>/dev/null || true
        wait_for 10 gone "$DIRECTOR_PID" || {
            log "lvs-director did not stop on SIGTERM in 10 s; killing it"
            kill -KILL "$DIRECTOR_PID" 2>/dev/null || true
        }
    fi
    wait "$DIRECTOR_PID" 2>/dev/null || true
    DIRECTOR_PID=""
}
director_log_tail() {
    [ -s "$TMP/director.log" ] && { log "director log (last lines):"; tail -n 15 "$TMP/director.log" >&2; }
    : > "$TMP/director.log"
}

# ---------------------------------------------------------------------------------------------
# UDP

UDP_ROWS=()
SENT=0 RECV=0 SECS=0 RCVBUF=0 BACKLOG=0
udp_rcvbuf_errors() { # sum of Udp RcvbufErrors over the real servers
    local sum=0 i v
    for i in 1 2 3; do
        v=$(inns "r$i" awk '/^Udp: /{ if (!h) { for (i=2;i<=NF;i++) c[$i]=i; h=1 } else { print $c["RcvbufErrors"]; exit } }' /proc/net/snmp)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
softnet_drops() { awk '{ s += strtonum("0x" $2) } END { print s }' /proc/net/softnet_stat 2>/dev/null || echo 0; }

# udp_run DST[,DST...]: receivers on the three real servers, a warm-up, then the measured blast.
udp_run() {
    local dsts=$1 i pids=() sp spids=() rb0 bl0 out
    for i in 1 2 3; do
        ip netns exec "$P-r$i" "$TMP/udpsink" -p "$UDP_PORT" -t $((DUR + 60)) > "$TMP/sink$i.out" &
        pids+=($!); BG_PIDS+=($!)
    done
    for i in 1 2 3; do
        wait_for 10 grep -q ready "$TMP/sink$i.out" || die "udpsink on r$i did not start"
    done
    # Warm-up: neighbour entries, the director's connection entries. Then zero the receivers.
    inns c "$TMP/udpblast" -d "$dsts" -p "$UDP_PORT" -f "$UDP_FLOWS" -s "$UDP_PAYLOAD" -t 0.5 >/dev/null
    sleep 0.3
    kill -USR1 "${pids[@]}"
    sleep 0.1
    bg_sample
    rb0=$(udp_rcvbuf_errors); bl0=$(softnet_drops)
    cpu_begin
    local t0=$SECONDS
    TIMEFORMAT='%U %S'
    { time {
        for sp in $(seq 1 "$UDP_SENDERS"); do
            inns c timeout $((DUR + 30)) "$TMP/udpblast" -d "$dsts" -p "$UDP_PORT" -f "$UDP_FLOWS" \
                -s "$UDP_PAYLOAD" -t "$DUR" > "$TMP/blast$sp.out" &
            spids+=($!)
        done
        wait "${spids[@]}"
    } ; } 2> "$TMP/blast.time"
    cpu_end "$(tail -n 1 "$TMP/blast.time" | awk '{print $1+$2}')"
    sleep 0.5   # what is in flight arrives
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    SENT=0 SECS=0 RECV=0
    for sp in $(seq 1 "$UDP_SENDERS"); do
        out=$(cat "$TMP/blast$sp.out")
        SENT=$((SENT + $(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$out")))
        SECS=$(awk -v a="$SECS" -v b="$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")" 'BEGIN{print (b>a)?b:a}')
    done
    for i in 1 2 3; do
        RECV=$((RECV + $(sed -n 's/^recv=\([0-9]*\)$/\1/p' "$TMP/sink$i.out")))
    done
    RCVBUF=$(( $(udp_rcvbuf_errors) - rb0 ))
    BACKLOG=$(( $(softnet_drops) - bl0 ))
    [ $((SECONDS - t0)) -le $((DUR + 40)) ] || log "UDP measurement overran its time"
}
declare -A KERNEL_UDP_PPS UDP_PPS
FAMILY_ROWS=()
# family_row LABEL KEY4 KEY6 TABLE: an IPv6 figure next to its IPv4 twin, when both were measured.
family_row() {
    local -n tbl=$4
    [ -n "${tbl[$2]:-}" ] && [ -n "${tbl[$3]:-}" ] || return 0
    FAMILY_ROWS+=("| $1 | $(fmt_int "${tbl[$2]}") | $(fmt_int "${tbl[$3]}") | $(ratio "${tbl[$3]}" "${tbl[$2]}") |")
}
udp_row() { # KEY LABEL ; uses FAM UDP_SENDERS SENT RECV SECS RCVBUF BACKLOG CPU
    local spps rpps loss vs key=$1
    shift
    spps=$(awk -v n="$SENT" -v s="$SECS" 'BEGIN{print n/s}')
    rpps=$(awk -v n="$RECV" -v s="$SECS" 'BEGIN{print n/s}')
    loss=$(awk -v s="$SENT" -v r="$RECV" 'BEGIN{ if (s > 0) printf "%.2f%%", (s-r)*100/s; else print "—" }')
    [ -n "${KERNEL_UDP_PPS[$FAM-$UDP_SENDERS]:-}" ] || KERNEL_UDP_PPS[$FAM-$UDP_SENDERS]=$rpps
    UDP_PPS[$key-$FAM-$UDP_SENDERS]=$rpps
    vs=$(ratio "$rpps" "${KERNEL_UDP_PPS[$FAM-$UDP_SENDERS]}")
    UDP_ROWS+=("| $1 | $UDP_SENDERS | $(fmt_int "$spps") | $(fmt_int "$rpps") | $loss (rcvbuf $RCVBUF, backlog $BACKLOG) | $vs | $CPU |")
    log "$1, $UDP_SENDERS sender(s): sent $(fmt_int "$spps") pps, received $(fmt_int "$rpps") pps, loss $loss"
}

udp_kernel() {
    local rs dsts
    log "UDP: kernel IPv$FAM forwarding through $P-d (peer), $UDP_SENDERS sender(s)"
    "$ROOT/scripts/testbed.sh" mode "$P" nat
    if [ "$FAM" = 6 ]; then
        for rs in "${RS[@]}"; do ip -n "$P-rt" -6 route replace "$rs/128" via "$DIRECTOR_IP"; done
        inns d sysctl -qw net.ipv6.conf.all.forwarding=1
    else
        for rs in "${RS[@]}"; do ip -n "$P-rt" route replace "$rs/32" via "$DIRECTOR_IP"; done
        inns d sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
            net.ipv4.conf.eth0.send_redirects=0
    fi
    dsts=$(IFS=,; echo "${RS[*]}")
    udp_run "$dsts"
    udp_row kernel "kernel IP forwarding in the director namespace (peer)$SUFFIX"
    if [ "$FAM" = 6 ]; then
        for rs in "${RS[@]}"; do ip -n "$P-rt" -6 route del "$rs/128" via "$DIRECTOR_IP"; done
        inns d sysctl -qw net.ipv6.conf.all.forwarding=0
    else
        for rs in "${RS[@]}"; do ip -n "$P-rt" route del "$rs/32" via "$DIRECTOR_IP"; done
        inns d sysctl -qw net.ipv4.ip_forward=0 net.ipv4.conf.all.send_redirects=1 \
            net.ipv4.conf.eth0.send_redirects=1
    fi
}

# Each director row once per receive ring version of BENCH_TPACKET (or once, unlabelled).
per_tpacket() { # FUNCTION ARGS...
    local v
    for v in ${TPACKETS:-default}; do
        [ "$v" = default ] && DIRECTOR_TPACKET="" || DIRECTOR_TPACKET=$v
        "$@"
    done
    DIRECTOR_TPACKET=""
}
# The label suffix and key suffix of the ring version being measured.
tpacket_label() { [ -z "$DIRECTOR_TPACKET" ] || echo ", TPACKET_V$DIRECTOR_TPACKET"; }
tpacket_key() { [ -z "$DIRECTOR_TPACKET" ] || echo "-v$DIRECTOR_TPACKET"; }

CPU_ROWS=()
# cpu_row LABEL WHAT: the director's CPU per forwarded packet of the measurement just made.
cpu_row() {
    local ns
    ns=$(awk -v s="$DIR_SECS" -v n="$DIR_PKTS" 'BEGIN{ if (n > 0) printf "%.0f", s*1e9/n; else print "—" }')
    CPU_ROWS+=("| $1 | $2 | $(fmt_int "$DIR_PKTS") | $(awk -v s="$DIR_SECS" 'BEGIN{printf "%.2f", s}') | $ns |")
}

udp_director() { # nat|dr
    per_tpacket udp_director_one "$@"
}
udp_director_one() { # nat|dr
    local mode=$1 flag label
    [ "$mode" = nat ] && { flag=-m; label="lvs-director VS/NAT"; } || { flag=-g; label="lvs-director VS/DR"; }
    label+=$SUFFIX$(tpacket_label)
    if ! director_built; then
        UDP_ROWS+=("| $label | $UDP_SENDERS | not built | | | | |"); log "$label: not built"; return 0
    fi
    log "UDP: $label, $UDP_SENDERS sender(s)"
    "$ROOT/scripts/testbed.sh" mode "$P" "$mode"
    if ! director_start -u "$UDP_PORT" "$flag"; then
        UDP_ROWS+=("| $label | $UDP_SENDERS | failed: $DIRECTOR_WHY | | | | |"); director_log_tail; return 0
    fi
    udp_run "$VIP"
    director_stop
    udp_row "director-$mode$(tpacket_key)" "$label"
    cpu_row "$label" "UDP, $UDP_SENDERS sender(s)"
    director_log_tail
}

# ---------------------------------------------------------------------------------------------
# TCP

TCP_ROWS=()
declare -A TCP_RPS
nginx_start() {
    local i dir
    for i in 1 2 3; do
        dir=$TMP/nginx-r$i
        mkdir -p "$dir"
        cat > "$dir/nginx.conf" <<EOF
# Generated by scripts/bench/net.sh: a fast static responder for the real server r$i.
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
    access_log off;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 80 backlog=4096;
        listen [::]:80 backlog=4096;
        location / { default_type text/plain; return 200 "r$i\n"; }
    }
}
EOF
        ip netns exec "$P-r$i" "$NGINX" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >> "$dir/error.log" 2>&1 &
        BG_PIDS+=($!)
    done
    for i in 1 2 3; do
        wait_for 10 inns "r$i" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' ||
            { cat "$TMP/nginx-r$i/error.log" >&2; die "nginx on r$i did not start"; }
    done
}

HAPROXY_PID=""
haproxy_start() {
    local rs n=0
    {
        echo "# Generated by scripts/bench/net.sh: HAProxy mode tcp, the peer of the director."
        echo "global"
        echo "    maxconn 9000"     # two descriptors per connection; the fd limit here is 20000
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 5s"
        echo "    timeout client 30s"
        echo "    timeout server 30s"
        echo "frontend fe"
        echo "    bind $VIP:80"
        echo "    default_backend be"
        echo "backend be"
        echo "    balance roundrobin"
        for rs in "${RS[@]}"; do n=$((n + 1)); echo "    server r$n $rs:80"; done
    } > "$TMP/haproxy.cfg"
    ip netns exec "$P-d" "$HAPROXY" -db -f "$TMP/haproxy.cfg" > "$TMP/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    BG_PIDS+=("$HAPROXY_PID")
    wait_for 10 inns c bash -c "exec 3<>/dev/tcp/$VIP/80" ||
        { cat "$TMP/haproxy.log" >&2; die "haproxy did not start"; }
}
haproxy_stop() {
    [ -n "$HAPROXY_PID" ] || return 0
    kill -TERM "$HAPROXY_PID" 2>/dev/null || true
    wait_for 10 gone "$HAPROXY_PID" || kill -KILL "$HAPROXY_PID" 2>/dev/null || true
    wait "$HAPROXY_PID" 2>/dev/null || true
    HAPROXY_PID=""
}

# wrk_run URL close|keepalive -> RPS LAT50 LAT99 ERRS CPU
RPS=0 LAT50="" LAT99="" ERRS=""
wrk_run() {
    local url=$1 kind=$2 hdr=() out
    [ "$kind" = close ] && hdr=(-H 'Connection: close')
    # Warm-up: neighbour entries, accept queues.
    inns c timeout 10 wrk -t1 -c4 -d1s "${hdr[@]}" "$url" >/dev/null 2>&1 || true
    bg_sample
    cpu_begin
    TIMEFORMAT='%U %S'
    { time inns c timeout $((DUR + 30)) wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DUR}s" --timeout 2s \
        --latency "${hdr[@]}" "$url" > "$TMP/wrk.out" 2>&1 ; } 2> "$TMP/wrk.time" || true
    cpu_end "$(tail -n 1 "$TMP/wrk.time" | awk '{print $1+$2}')"
    out=$(cat "$TMP/wrk.out")
    RPS=$(awk '/^Requests\/sec:/{print $2}' <<<"$out"); RPS=${RPS:-0}
    LAT50=$(awk '/Latency Distribution/{f=1} f && $1=="50%"{print $2; exit}' <<<"$out")
    LAT99=$(awk '/Latency Distribution/{f=1} f && $1=="99%"{print $2; exit}' <<<"$out")
    ERRS=$(awk '/Socket errors:/{sub(/^ *Socket errors: */,""); printf "%s; ", $0} /Non-2xx/{printf "non-2xx %s; ", $NF}' <<<"$out")
    ERRS=${ERRS%; }; ERRS=${ERRS:-none}; LAT50=${LAT50:-—}; LAT99=${LAT99:-—}
    [ "$RPS" != 0 ] || { log "wrk found nothing: $out"; ERRS="wrk failed"; }
}
tcp_row() { # KEY LABEL KIND ; uses FAM RPS ...
    local key=$1 label=$2 kind=$3 conn vs_h vs_s
    [ "$kind" = close ] && conn="new per request (Connection: close)" || conn="keep-alive"
    TCP_RPS[$key-$FAM-$kind]=$RPS
    vs_s=$(ratio "$RPS" "${TCP_RPS[straight-$FAM-$kind]:-0}")
    vs_h=$(ratio "$RPS" "${TCP_RPS[haproxy-$FAM-$kind]:-0}")
    [ -n "${TCP_RPS[haproxy-$FAM-$kind]:-}" ] || vs_h="—"
    [ "$key" = straight ] && vs_h="—"
    TCP_ROWS+=("| $label | $conn | $(fmt_int "$RPS") | $vs_h | $vs_s | $LAT50 / $LAT99 | $ERRS | $CPU |")
    log "$label, $conn: $(fmt_int "$RPS") requests/s"
}
tcp_measure() { # KEY LABEL URL
    local kind
    for kind in close keepalive; do
        wrk_run "$3" "$kind"
        tcp_row "$1" "$2" "$kind"
        if [ -n "$DIRECTOR_PID" ] && [ "$kind" = close ]; then
            cpu_row "$2" "HTTP, new connection per request"
        elif [ -n "$DIRECTOR_PID" ]; then
            cpu_row "$2" "HTTP, keep-alive"
        fi
    done
}

tcp_straight() {
    log "TCP: straight to one real server"
    "$ROOT/scripts/testbed.sh" mode "$P" dr
    tcp_measure straight "straight to one real server (upper bound)$SUFFIX" "http://$(host "${RS[0]}")/"
}
tcp_haproxy() {
    log "TCP: HAProxy mode tcp in $P-d"
    "$ROOT/scripts/testbed.sh" mode "$P" dr
    haproxy_start
    tcp_measure haproxy "HAProxy mode tcp, $("$HAPROXY" -v 2>/dev/null | awk 'NR==1{print $3}'), director namespace (peer)" "http://$VIP/"
    haproxy_stop
}
tcp_director() { # dr|nat
    per_tpacket tcp_director_one "$@"
}
tcp_director_one() { # dr|nat
    local mode=$1 flag label key kind
    [ "$mode" = nat ] && { flag=-m; label="lvs-director VS/NAT"; } || { flag=-g; label="lvs-director VS/DR"; }
    label+=$SUFFIX$(tpacket_label)
    key=director-$mode$(tpacket_key)
    if ! director_built; then
        for kind in close keepalive; do
            [ "$kind" = close ] && conn="new per request (Connection: close)" || conn="keep-alive"
            TCP_ROWS+=("| $label | $conn | not built | | | | | |")
        done
        log "$label: not built"; return 0
    fi
    log "TCP: $label"
    "$ROOT/scripts/testbed.sh" mode "$P" "$mode"
    if ! director_start -t 80 "$flag"; then
        TCP_ROWS+=("| $label | | failed: $DIRECTOR_WHY | | | | | |"); director_log_tail; return 0
    fi
    tcp_measure "$key" "$label" "http://$(host "$VIP")/"
    director_stop
    director_log_tail
}

# ---------------------------------------------------------------------------------------------
# Run

CPU_MODEL=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
HEADER="## Network benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- machine: $NCPU CPUs, ${CPU_MODEL:-unknown CPU}, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)
- $DUR s per measurement$([ "$QUICK" = 1 ] && echo " (--quick)"); testbed prefix $P
- director: $(director_built && echo "$DIRECTOR_BIN" || echo "$DIRECTOR_BIN not built: its rows say so")"
echo "$HEADER"

log "testbed up ($P)"
"$ROOT/scripts/testbed.sh" up "$P" dr
for node in c d; do
    inns "$node" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
done
inns c sysctl -qw net.ipv4.tcp_tw_reuse=1

if [ "$ONLY" != tcp ]; then
    for f in $FAMILIES; do
        use_family "$f"
        for UDP_SENDERS in $UDP_SENDER_SETS; do
            udp_kernel
            udp_director nat
            udp_director dr
        done
    done
fi
if [ "$ONLY" != udp ]; then
    nginx_start
    for f in $FAMILIES; do
        use_family "$f"
        tcp_straight
        # HAProxy is the peer of the IPv4 rows; the IPv6 rows compare with going straight.
        [ "$f" = 4 ] && tcp_haproxy
        tcp_director dr
        tcp_director nat
    done
fi
for n in $UDP_SENDER_SETS; do
    for k in kernel director-nat director-dr; do
        family_row "UDP pps received, $k, $n sender(s)" "$k-4-$n" "$k-6-$n" UDP_PPS
    done
done
for k in straight director-dr director-nat; do
    for kind in close keepalive; do
        family_row "HTTP requests/s, $k, $kind" "$k-4-$kind" "$k-6-$kind" TCP_RPS
    done
done

{
    echo "$HEADER"
    if [ "$ONLY" != tcp ]; then
        echo
        echo "### Small UDP packets end to end (client -> router -> LAN -> director namespace -> LAN -> 3 real servers)"
        echo
        echo "udpblast processes (senders) x $UDP_FLOWS flows each, $UDP_PAYLOAD-byte payloads (60-byte frames), sendmmsg; udpsink (recvmmsg) on each real server; no rate limit. Each row is compared with the kernel row of the same sender count. CPU in % of one core."
        echo
        echo "| path | senders | sent pps | received pps | loss (drops at receiver sockets, backlog) | received vs kernel | CPU (% of one core) |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
        printf '%s\n' "${UDP_ROWS[@]}"
    fi
    if [ "$ONLY" != udp ]; then
        echo
        echo "### HTTP through the director namespace: wrk -t$WRK_THREADS -c$WRK_CONNS in the client namespace, nginx (1 worker) on each real server"
        echo
        echo "With \`Connection: close\` every request is a new TCP connection: requests/s = new connections/s. CPU in % of one core."
        echo
        echo "| target | connections | requests/s | vs HAProxy | vs straight | latency p50 / p99 | errors | CPU (% of one core) |"
        echo "| --- | --- | ---: | ---: | ---: | --- | --- | --- |"
        printf '%s\n' "${TCP_ROWS[@]}"
    fi
    if [ ${#CPU_ROWS[@]} -gt 0 ]; then
        echo
        echo "### The director's CPU per forwarded packet (same measurements)"
        echo
        echo "lvs-director's CPU time (utime+stime, all threads) over the measurement, divided by the packets it forwarded (InPkts + OutPkts). On veth this includes the receiving side's stack (bridge, real server or router receive) run synchronously in the director's transmit: an upper bound of the director's own cost."
        echo
        echo "| director | load | packets forwarded | director CPU (s) | ns per packet |"
        echo "| --- | --- | ---: | ---: | ---: |"
        printf '%s\n' "${CPU_ROWS[@]}"
    fi
    if [ ${#FAMILY_ROWS[@]} -gt 0 ]; then
        echo
        echo "### IPv6 against IPv4 (same run)"
        echo
        echo "| measurement | IPv4 | IPv6 | IPv6 / IPv4 |"
        echo "| --- | ---: | ---: | ---: |"
        printf '%s\n' "${FAMILY_ROWS[@]}"
    fi
} > "$TMP/table.md"

sed '1,/^- director:/d' "$TMP/table.md"
if [ -n "$OUT" ]; then cp "$TMP/table.md" "$OUT"; log "table written to $OUT"; fi
