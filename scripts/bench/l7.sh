#!/usr/bin/env bash
# Layer-7 benchmark, printed as Markdown (for docs/PERFORMANCE.md): requests per second, p99
# latency (wrk) and CPU per request through
#   1. lvs-director's content service (HTTP mode),
#   2. HAProxy in `mode http`,
#   3. nginx as a reverse proxy,
# all three in the same director namespace at the same time (on ports 80, 81 and 82 of the
# VIP), with the same rules (path prefix /app/ -> pool "app" on r2, everything else -> pool
# "static" on r1), upstream keep-alive on, one worker thread/process each. The wrk script
# alternates "/app/P" and "/P", so consecutive requests go to both pools.
#
# Rows (ROWS, space-separated; the number is wrk's client connections, any count works):
#   kaN        keep-alive, short body ("rN\n", 3 bytes: nginx `return` from memory)
#   closeN     a new connection per request (Connection: close), short body
#   bigkaN     keep-alive, 64 KiB body (/big and /app/big: a 65,536-byte file in tmpfs
#              (/dev/shm), sent by the real servers' nginx with sendfile and open_file_cache)
#   bigcloseN  a new connection per request, 64 KiB body
# Default: ka64 close64 ka256 close256 ka1000 close1000 bigka64 bigclose64.
#
# Columns: median requests/s and p99 over the rounds; both as a ratio to HAProxy's; proxy CPU
# per request in microseconds: the proxy's CPU time (utime+stime of /proc/PID/stat) during the
# wrk run divided by the requests wrk completed: for lvs-director its l7-worker-* threads
# (the whole process, which also runs the packet dataplane threads, in brackets), for HAProxy
# its process, for nginx its master and worker processes; "user + sys" of the median round;
# machine busy CPU per request: all CPUs' busy time (/proc/stat: user, nice, system, irq,
# softirq, steal) divided by the same requests, so it includes wrk, the real servers and any
# other user of the machine; notes: wrk's errors (non-2xx answers, socket errors) summed over
# the rounds, and "short bodies" when a 64 KiB row read less than 64 KiB per request.
# The kernel accounts CPU time in ticks (1/CLK_TCK s, 10 ms): the CPU columns resolve
# 10 ms / requests of the run (0.05 µs at 40,000 requests/s for 5 s); the user/sys split is
# the kernel's sample of the ticks, the sum follows the precise run time.
# Under the table: per row, the 1-minute load average before each round (it includes this
# benchmark's own previous rounds) and the machine's busy CPU over BGSAMPLE seconds just before
# each round with nothing of ours running ("bg", % of all CPUs): other users of the machine.
#
# Testbed: one bridge (namespace "sw", bridge netfilter off); client 10.90.0.2, director
# 10.90.0.1 with the VIP 10.90.0.100, real servers 10.90.0.11 and .12. Namespaces b7<pid>* and
# /tmp/lvs-bench-b7<pid>, /dev/shm/lvs-bench-b7<pid> are removed on exit.
#
# The machine may be shared: in each row the three proxies are measured in turn, ROUNDS times,
# and the medians are printed, so that a load change hits all three alike. Duration: about
# rows x ROUNDS x (3 x SECS + BGSAMPLE) seconds plus a few seconds of setup (default: 8 x 3 x
# 16 s, about 6.5 minutes).
#
# Usage: sudo scripts/bench/l7.sh [SECONDS]       (per wrk run; same as SECS)
# Env: SECS=5 (seconds per wrk run), ROUNDS=3, ROWS (see above), BGSAMPLE=1 (seconds of the
#      idle sample before each round; 0: none), BIN=target/release (lvs-director and the rr
#      plugin).
# Needs root; installs Debian's wrk, haproxy and nginx-light when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SECS=${1:-${SECS:-5}}
ROUNDS=${ROUNDS:-3}
ROWS=${ROWS:-ka64 close64 ka256 close256 ka1000 close1000 bigka64 bigclose64}
BGSAMPLE=${BGSAMPLE:-1}
BIN=${BIN:-target/release}
P=b7$$
DIR=/tmp/lvs-bench-$P
SHM=/dev/shm/lvs-bench-$P
VIP=10.90.0.100
NODES=(sw c d r1 r2)
BIG=65536
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
START=$SECONDS

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "SECS must be a whole number of seconds, not '$SECS'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
[[ $BGSAMPLE =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BGSAMPLE must be seconds, not '$BGSAMPLE'"

# row NAME -> sets ROW_MODE (ka|close), ROW_BODY (small|big), ROW_CONNS, ROW_LABEL.
row() {
    local name=$1
    ROW_BODY=small
    case $name in big*) ROW_BODY=big; name=${name#big} ;; esac
    case $name in
        ka*) ROW_MODE=ka; ROW_CONNS=${name#ka} ;;
        close*) ROW_MODE=close; ROW_CONNS=${name#close} ;;
        *) die "row '$1': want kaN, closeN, bigkaN or bigcloseN" ;;
    esac
    [[ $ROW_CONNS =~ ^[1-9][0-9]*$ ]] || die "row '$1': N must be a connection count"
    [ "$ROW_CONNS" -le 50000 ] || die "row '$1': at most 50000 connections (local ports)"
    if [ "$ROW_MODE" = ka ]; then ROW_LABEL="keep-alive"; else ROW_LABEL="new connection per request"; fi
    ROW_LABEL="$ROW_LABEL, $(fmt_int "$ROW_CONNS") conns"
    [ "$ROW_BODY" = big ] && ROW_LABEL="$ROW_LABEL, 64 KiB"
    return 0
}
fmt_int() { awk -v n="$1" 'BEGIN{s=sprintf("%.0f", n); o=""; while (length(s) > 3) { o="," substr(s, length(s)-2) o; s=substr(s, 1, length(s)-3) } print s o}'; }

# Every row is checked before anything starts; wrk needs a descriptor per connection.
ulimit -n 65536 2>/dev/null || true
MAXCONNS=0
for r in $ROWS; do row "$r"; [ "$ROW_CONNS" -gt "$MAXCONNS" ] && MAXCONNS=$ROW_CONNS; done
[ "$MAXCONNS" -gt 0 ] || die "ROWS is empty"
[ "$(ulimit -n)" -ge $((MAXCONNS + 100)) ] || die "ulimit -n is $(ulimit -n): too low for $MAXCONNS connections"

for b in lvs-director liblvs_sched_rr.so; do
    [ -e "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release -p lvs-director -p lvs-sched-rr (or set BIN)"
done
BIN=$(cd "$BIN" && pwd)
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v nginx >/dev/null || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for c in wrk haproxy nginx; do command -v $c >/dev/null || die "$c could not be installed"; done
# Debian starts the packaged services; the bench runs its own copies in namespaces only.

cleanup() {
    local f n pids
    for f in "$DIR"/*.pid; do
        if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
    done
    for n in "${NODES[@]}"; do
        pids=$(ip netns pids "$P$n" 2>/dev/null || true)
        # shellcheck disable=SC2086 # one pid per word
        if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; fi
        ip netns del "$P$n" 2>/dev/null || true
    done
    rm -rf "$DIR" "$SHM"
}
trap cleanup EXIT
mkdir -p "$DIR" "$SHM"
inns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }

for n in "${NODES[@]}"; do ip netns add "$P$n"; inns "$n" ip link set lo up; done
# A real switch does not run netfilter on the frames it bridges. With br_netfilter loaded, the
# kernel does so by default in every new namespace (bridge-nf-call-*=1), which costs every frame
# through br0 an iptables, ip6tables or arptables pass that no peer pays on real hardware.
# -e: the keys exist only while br_netfilter is loaded (then there is nothing to switch off).
inns sw sysctl -qew net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
    net.bridge.bridge-nf-call-arptables=0
BRNF=$(inns sw sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null || echo "not loaded")
case $BRNF in 0) BRNF=off ;; 1) BRNF=on ;; esac
inns sw ip link add br0 type bridge
inns sw ip link set br0 up
port() {
    ip -n "$P"sw link add "$1-lan" type veth peer name eth0 netns "$P$1"
    ip -n "$P"sw link set "$1-lan" master br0 up
    inns "$1" ip addr add "$2/24" dev eth0
    inns "$1" ip link set eth0 up
}
port c 10.90.0.2
port d 10.90.0.1
port r1 10.90.0.11
port r2 10.90.0.12
inns d ip addr add "$VIP/32" dev eth0
for n in c d r1 r2; do inns "$n" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"; done
for n in c d; do inns "$n" sysctl -qw net.ipv4.tcp_tw_reuse=1; done

# Real servers: nginx answering the short body from memory and the 64 KiB body from a file in
# tmpfs (sendfile, descriptor cached), keep-alive without a request limit. Each body starts
# with the server's name so that the routing check can tell them apart.
for i in 1 2; do
    { printf 'r%s\n' "$i"; head -c $((BIG - 3)) /dev/zero | tr '\0' 'x'; } > "$SHM/r$i-big"
    cat > "$DIR/r$i.conf" <<NGX
user root root;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $DIR/r$i.pid;
error_log $DIR/r$i.err;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;
    sendfile on;
    open_file_cache max=16 inactive=1h;
    open_file_cache_valid 1h;
    default_type application/octet-stream;
    client_body_temp_path $DIR/r$i-body;
    server {
        listen 80 reuseport backlog=4096;
        location = /big { alias $SHM/r$i-big; }
        location = /app/big { alias $SHM/r$i-big; }
        location / { return 200 "r$i\n"; }
    }
}
NGX
    inns "r$i" nginx -c "$DIR/r$i.conf" -p "$DIR"
done

# 1. lvs-director, content service on VIP:80.
cat > "$DIR/director.toml" <<TOML
workers = 1
interfaces = ["eth0"]
[[content_service]]
address = "$VIP"
port = 80
default_pool = "static"
[[content_service.rule]]
name = "app"
path_prefix = "/app/"
pool = "app"
[[pool]]
name = "static"
scheduler = "rr"
servers = [{ address = "10.90.0.11", port = 80 }]
[[pool]]
name = "app"
scheduler = "rr"
servers = [{ address = "10.90.0.12", port = 80 }]
TOML
LVS_PLUGIN_PATH="$BIN" inns d "$BIN/lvs-director" -f --no-syslog --rundir "$DIR" -c "$DIR/director.toml" \
    2> "$DIR/director.log" &
echo $! > "$DIR/director.pid"

# 2. HAProxy on VIP:81.
cat > "$DIR/haproxy.cfg" <<HAP
global
    nbthread 1
    maxconn 8000
    pidfile $DIR/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend fe
    bind $VIP:81
    acl is_app path_beg /app/
    use_backend app if is_app
    default_backend static
backend static
    server r1 10.90.0.11:80
backend app
    server r2 10.90.0.12:80
HAP
inns d haproxy -D -f "$DIR/haproxy.cfg"

# 3. nginx on VIP:82. Upstream keep-alive cache as large as the largest row's client count, so
# that it keeps its upstream connections as the other two do; proxy buffers large enough for a
# 64 KiB body, so that it is not spooled to a temporary file.
cat > "$DIR/proxy.conf" <<NGX
user root root;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $DIR/proxy.pid;
error_log $DIR/proxy.err;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    proxy_temp_path $DIR/proxy-tmp;
    client_body_temp_path $DIR/proxy-body;
    proxy_buffers 32 4k;
    upstream static { server 10.90.0.11:80; keepalive 1024; }
    upstream app { server 10.90.0.12:80; keepalive 1024; }
    server {
        listen $VIP:82 backlog=4096;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /app/ { proxy_pass http://app; }
        location / { proxy_pass http://static; }
    }
}
NGX
inns d nginx -c "$DIR/proxy.conf" -p "$DIR"

# wrk scripts: small.lua alternates /app/x and /x, big.lua /app/big and /big.
for body in small big; do
    if [ $body = small ]; then leaf=x; else leaf=big; fi
    cat > "$DIR/$body.lua" <<LUA
local n = 0
request = function()
    n = n + 1
    if n % 2 == 0 then return wrk.format("GET", "/app/$leaf") end
    return wrk.format("GET", "/$leaf")
end
LUA
done

ready() {
    for _ in $(seq 1 100); do
        if inns c curl -s -o /dev/null --max-time 1 "http://$VIP:$1/app/x"; then return 0; fi
        sleep 0.1
    done
    die "nothing answers on $VIP:$1 (see $DIR)"
}
for p in 80 81 82; do ready $p; done
# The routing must be the same on all three before anything is measured, for both bodies.
for p in 80 81 82; do
    a=$(inns c curl -s "http://$VIP:$p/app/x"); b=$(inns c curl -s "http://$VIP:$p/x")
    { [ "$a" = r2 ] && [ "$b" = r1 ]; } || die "port $p routes /app/x to '$a' and /x to '$b'"
    for want in "app/big r2" "big r1"; do
        path=${want% *}
        size=$(inns c curl -s -o "$DIR/got" -w '%{size_download}' "http://$VIP:$p/$path")
        got=$(head -n1 "$DIR/got")
        { [ "$got" = "${want#* }" ] && [ "$size" = "$BIG" ]; } ||
            die "port $p answers /$path with $size bytes from '$got' (want $BIG from ${want#* })"
    done
done

# CPU accounting: the stat files whose utime+stime are the proxy's CPU time.
DPID=$(cat "$DIR/director.pid")
L7_STATS=()
for t in /proc/"$DPID"/task/*; do
    case $(cat "$t/comm") in l7-worker-*) L7_STATS+=("$t/stat") ;; esac
done
[ ${#L7_STATS[@]} -gt 0 ] || die "no l7-worker thread in the director (pid $DPID)"
NGX_MASTER=$(cat "$DIR/proxy.pid")
NGX_STATS=("/proc/$NGX_MASTER/stat")
for w in $(pgrep -P "$NGX_MASTER"); do NGX_STATS+=("/proc/$w/stat"); done
declare -A STATS
STATS[80]="${L7_STATS[*]}"
STATS[81]="/proc/$(cat "$DIR/haproxy.pid")/stat"
STATS[82]="${NGX_STATS[*]}"
# stat files... -> "user sys" in ticks. The name field may hold spaces: fields count after ")".
ticks() { awk '{sub(/^.*\) /, ""); u += $12; s += $13} END {print u + 0, s + 0}' "$@"; }
machine_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
machine_idle() { awk '/^cpu /{print $5+$6; exit}' /proc/stat; }

# Busy % of all CPUs over BGSAMPLE seconds, nothing of ours running.
bg_busy() {
    [ "$BGSAMPLE" = 0 ] && { echo "-"; return; }
    local b0 i0 b1 i1
    b0=$(machine_busy); i0=$(machine_idle); sleep "$BGSAMPLE"; b1=$(machine_busy); i1=$(machine_idle)
    awk -v b=$((b1 - b0)) -v i=$((i1 - i0)) 'BEGIN { if (b + i > 0) printf "%.0f", b * 100 / (b + i); else print 0 }'
}

# run PORT BODY CONNS WRK-ARGS... -> "rps p99 user_us sys_us proc_us machine_us [errors]"
run() {
    local port=$1 body=$2 conns=$3 out u0 u1 p0 p1 m0 m1
    shift 3
    # shellcheck disable=SC2086 # the stat file lists are one path per word
    u0=$(ticks ${STATS[$port]})
    p0=$(ticks "/proc/$DPID/stat")
    m0=$(machine_busy)
    out=$(inns c wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "$DIR/$body.lua" "$@" "http://$VIP:$port/" 2>&1) ||
        out="$out wrk failed"
    m1=$(machine_busy)
    p1=$(ticks "/proc/$DPID/stat")
    # shellcheck disable=SC2086
    u1=$(ticks ${STATS[$port]})
    [ "$port" = 80 ] || p1=$u1 p0=$u0
    awk -v u0="$u0" -v u1="$u1" -v p0="$p0" -v p1="$p1" -v m=$((m1 - m0)) -v hz="$HZ" \
        -v body="$body" -v big="$BIG" '
        function bytes(v) {
            if (v ~ /GB$/) return v * 1024 ^ 3; if (v ~ /MB$/) return v * 1024 ^ 2
            if (v ~ /KB$/) return v * 1024; return v + 0
        }
        function ms(v) {
            if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
            if (v ~ /m$/) return v * 60000; return v * 1000
        }
        / requests in / { reqs = $1; read = bytes($5) }
        /^Requests\/sec/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx|Socket errors|wrk failed|unable to/ { err = err " " $0 }
        END {
            if (reqs + 0 == 0) { print "0 0 0 0 0 0 no requests" err; exit }
            split(u0, a, " "); split(u1, b, " "); split(p0, c, " "); split(p1, d, " ")
            f = 1e6 / hz / reqs
            if (body == "big" && read / reqs < big) err = err sprintf(" short bodies (%.0f bytes/request)", read / reqs)
            printf "%d %.2f %.1f %.1f %.1f %.1f%s\n", rps, p99, (b[1] - a[1]) * f, (b[2] - a[2]) * f,
                (d[1] + d[2] - c[1] - c[2]) * f, m * f, err
        }' <<<"$out"
}

# Values on stdin, one a word -> their median.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# Values on stdin, one a word -> the (1-based) position of the median.
median_at() { tr ' ' '\n' | grep -v '^$' | awk '{print NR, $1}' | sort -k2,2g | awk '{i[NR]=$1} END {print i[int((NR+1)/2)]}'; }
nth() { awk -v n="$1" '{print $n}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

CPU_MODEL=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
echo "## Layer 7: requests/s, p99 and CPU per request ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo
echo "- machine: $NCPU CPUs, ${CPU_MODEL:-unknown CPU}, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "- wrk -t1 -d${SECS}s, alternating two pools, median of $ROUNDS rounds (the three proxies in turn in each round)"
echo "- real servers: nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'); short body \"rN\\n\" from memory, 64 KiB body from a file in tmpfs (sendfile)"
echo "- proxies: lvs-director $BIN/lvs-director, HAProxy $(haproxy -v | awk 'NR==1{print $3}'), nginx; bridge netfilter in the switch namespace: $BRNF"
echo
echo "| row | proxy | requests/s | p99 ms | vs HAProxy req/s | vs HAProxy p99 | proxy CPU µs/req (user + sys) | machine busy µs/req | notes |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
LOADNOTES=()
for r in $ROWS; do
    row "$r"
    extra=()
    [ "$ROW_MODE" = close ] && extra=(-H "Connection: close")
    declare -A RPS LAT USR SYS PRC MCH ERR
    for p in 80 81 82; do RPS[$p]=""; LAT[$p]=""; USR[$p]=""; SYS[$p]=""; PRC[$p]=""; MCH[$p]=""; ERR[$p]=""; done
    loads="" bgs=""
    for _ in $(seq 1 "$ROUNDS"); do
        loads="$loads${loads:+ / }$(cut -d' ' -f1 /proc/loadavg)"
        bgs="$bgs${bgs:+ / }$(bg_busy)"
        for p in 81 80 82; do
            read -r rps lat usr sys prc mch err <<<"$(run $p "$ROW_BODY" "$ROW_CONNS" "${extra[@]}")"
            RPS[$p]+=" $rps"; LAT[$p]+=" $lat"; USR[$p]+=" $usr"; SYS[$p]+=" $sys"
            PRC[$p]+=" $prc"; MCH[$p]+=" $mch"; ERR[$p]+="${err:+ $err}"
        done
    done
    LOADNOTES+=("$r: $loads (bg $bgs %)")
    declare -A MRPS MLAT
    for p in 80 81 82; do MRPS[$p]=$(median <<<"${RPS[$p]}"); MLAT[$p]=$(median <<<"${LAT[$p]}"); done
    for p in 80 81 82; do
        case $p in 80) name="lvs-director (content service)";; 81) name="HAProxy mode http";; 82) name="nginx reverse proxy";; esac
        # CPU: the round whose user+sys is the median, so that its split adds up.
        tot=$(awk -v u="${USR[$p]}" -v s="${SYS[$p]}" 'BEGIN { n = split(u, a, " "); split(s, b, " "); for (i = 1; i <= n; i++) printf "%s ", a[i] + b[i] }')
        at=$(median_at <<<"$tot")
        usr=$(nth "$at" <<<"${USR[$p]}"); sys=$(nth "$at" <<<"${SYS[$p]}")
        cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.1f (%.1f + %.1f)", u + s, u, s }')
        [ $p = 80 ] && cpu="$cpu [process $(median <<<"${PRC[$p]}")]"
        echo "| $ROW_LABEL | $name | $(fmt_int "${MRPS[$p]}") | ${MLAT[$p]} | $(ratio "${MRPS[$p]}" "${MRPS[81]}") |" \
            "$(ratio "${MLAT[$p]}" "${MLAT[81]}") | $cpu | $(median <<<"${MCH[$p]}") | ${ERR[$p]} |"
    done
done
echo
echo "- load average (1 min) before each round (it includes this run's own previous rounds), and \"bg\": the machine's busy CPU over ${BGSAMPLE} s just before each round with nothing of ours running (% of all $NCPU CPUs; other users of the machine):"
for l in "${LOADNOTES[@]}"; do echo "  - $l"; done
echo "- run took $(( (SECONDS - START) / 60 )) min $(( (SECONDS - START) % 60 )) s"
