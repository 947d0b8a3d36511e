#!/usr/bin/env bash
# Layer-7 benchmark, printed as Markdown: requests per second and p99 latency (wrk) through
#   1. lvs-director's content service (HTTP mode),
#   2. HAProxy in `mode http`,
#   3. nginx as a reverse proxy,
# all three in the same director namespace at the same time (on ports 80, 81 and 82 of the
# VIP), with the same rules (path prefix /app/ -> pool "app" on r2, everything else -> pool
# "static" on r1), upstream keep-alive on, one worker thread/process each. The wrk script
# alternates "/app/x" and "/x", so consecutive requests go to both pools. Two client modes:
# keep-alive, and a new connection per request (Connection: close). Real servers: nginx
# answering a short body from memory.
#
# Testbed: one bridge; client 10.90.0.2, director 10.90.0.1 with the VIP 10.90.0.100, real
# servers 10.90.0.11 and .12. Namespaces b7<pid>* are removed on exit.
#
# The machine may be shared: the three proxies are measured in turn, ROUNDS times, and the
# medians are printed, so that a load change hits all three alike.
#
# Usage: sudo scripts/bench/l7.sh [SECONDS]       (per run, default 5)
# Env: BIN=target/release (lvs-director and the rr plugin), CONNS=64 (wrk connections),
#      ROUNDS=3.
# Needs root; installs Debian's wrk, haproxy and nginx-light when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
BIN=${BIN:-target/release}
CONNS=${CONNS:-64}
P=b7$$
DIR=/tmp/lvs-bench-$P
VIP=10.90.0.100
NODES=(sw c d r1 r2)

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for b in lvs-director liblvs_sched_rr.so; do
    [ -e "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release --workspace (or set BIN)"
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
    for f in "$DIR"/*.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    for n in "${NODES[@]}"; do
        pids=$(ip netns pids "$P$n" 2>/dev/null || true)
        [ -n "$pids" ] && kill $pids 2>/dev/null || true
        ip netns del "$P$n" 2>/dev/null || true
    done
    rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR"
ulimit -n 65536 2>/dev/null || true
inns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }

for n in "${NODES[@]}"; do ip netns add "$P$n"; inns "$n" ip link set lo up; done
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

# Real servers: nginx answering from memory, keep-alive without a request limit.
for i in 1 2; do
    cat > "$DIR/r$i.conf" <<NGX
user root root;
worker_processes 1;
pid $DIR/r$i.pid;
error_log $DIR/r$i.err;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $DIR/r$i-body;
    server { listen 80 reuseport backlog=4096; location / { return 200 "r$i\n"; } }
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

# 3. nginx on VIP:82.
cat > "$DIR/proxy.conf" <<NGX
user root root;
worker_processes 1;
pid $DIR/proxy.pid;
error_log $DIR/proxy.err;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    proxy_temp_path $DIR/proxy-tmp;
    client_body_temp_path $DIR/proxy-body;
    upstream static { server 10.90.0.11:80; keepalive 256; }
    upstream app { server 10.90.0.12:80; keepalive 256; }
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

cat > "$DIR/alt.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    if n % 2 == 0 then return wrk.format("GET", "/app/x") end
    return wrk.format("GET", "/x")
end
LUA

ready() {
    for _ in $(seq 1 100); do
        if inns c curl -s -o /dev/null --max-time 1 "http://$VIP:$1/app/x"; then return 0; fi
        sleep 0.1
    done
    die "nothing answers on $VIP:$1 (see $DIR)"
}
for p in 80 81 82; do ready $p; done
# The routing must be the same on all three before anything is measured.
for p in 80 81 82; do
    a=$(inns c curl -s "http://$VIP:$p/app/x"); b=$(inns c curl -s "http://$VIP:$p/x")
    [ "$a" = r2 ] && [ "$b" = r1 ] || die "port $p routes /app/x to '$a' and /x to '$b'"
done

# wrk: "Requests/sec: N" and the 99% line of --latency (converted to ms).
run() {
    local port=$1 extra=$2 out
    out=$(inns c wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$DIR/alt.lua" $extra "http://$VIP:$port/" 2>&1)
    local rps p99
    rps=$(awk '/^Requests\/sec/ {printf "%d", $2}' <<<"$out")
    p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; printf "%.2f", v}' <<<"$out")
    local errs
    errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    echo "$rps $p99 ${errs:-}"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "## Layer 7: requests/s and p99 (wrk -t1 -c$CONNS -d${SECS}s, alternating two pools, median of $ROUNDS rounds)"
echo
echo "| mode | proxy | requests/s | p99 ms | vs HAProxy req/s | vs HAProxy p99 | notes |"
echo "| --- | --- | ---: | ---: | ---: | ---: | --- |"
for mode in keepalive close; do
    extra=""
    [ "$mode" = close ] && extra="-H Connection:close"
    declare -A RPS LAT ERR
    RPS=([80]="" [81]="" [82]=""); LAT=([80]="" [81]="" [82]=""); ERR=([80]="" [81]="" [82]="")
    for _ in $(seq 1 "$ROUNDS"); do
        for p in 81 80 82; do
            read -r r q e <<<"$(run $p "$extra")"
            RPS[$p]="${RPS[$p]} $r"; LAT[$p]="${LAT[$p]} $q"; ERR[$p]="${ERR[$p]}${e:+ $e}"
        done
    done
    for p in 80 81 82; do
        RPS[$p]=$(median <<<"${RPS[$p]}"); LAT[$p]=$(median <<<"${LAT[$p]}")
    done
    for p in 80 81 82; do
        case $p in 80) name="lvs-director (content service)";; 81) name="HAProxy mode http";; 82) name="nginx reverse proxy";; esac
        ratio=$(awk -v a="${RPS[$p]}" -v b="${RPS[81]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        pr=$(awk -v a="${LAT[$p]}" -v b="${LAT[81]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
        echo "| $mode | $name | ${RPS[$p]} | ${LAT[$p]} | $ratio | $pr | ${ERR[$p]} |"
    done
done
