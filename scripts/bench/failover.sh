#!/usr/bin/env bash
# Failover benchmark, printed as Markdown: the time from the master director being killed
# (SIGKILL of all its daemons: lvs-director and the failover daemon) to the first successful
# new connection (TCP connect + HTTP 200) from the client to the VIP through the other
# director. Median, min and max of N runs for:
#
#   1. lvs-heartbeatd, default timers (keepalive 200 ms, deadtime 1 s)
#   2. lvs-heartbeatd, the fastest timers we recommend (keepalive 50 ms, deadtime 200 ms)
#   3. keepalived VRRP (Debian's keepalived), default timers (advert_int 1)
#   4. keepalived VRRP, advert_int 0.1 (VRRPv3, centisecond adverts)
#
# and, per run, how many of 100 established keep-alive connections opened through the old
# master still answer a request afterwards (connection sync; 0 without it).
#
# Same testbed for all: one bridge with the client (10.89.0.2), two directors (10.89.0.11/.12,
# each with lvs-director in VS/NAT and a failover daemon) and three real HTTP servers
# (10.89.1.21-23, default route via the NAT gateway address 10.89.1.254, which moves with the
# VIP 10.89.0.100). lvs-heartbeatd runs UDP heartbeats plus a serial line (a pty pair relayed
# by a small python process). The killed master is restarted after each run and comes back as
# the backup (auto_failback = false, keepalived nopreempt), so runs alternate directions. The
# client's connection attempts time out after 30 ms and are repeated, so the figures are
# within ~30 ms.
#
# Usage: sudo scripts/bench/failover.sh [N]            (N runs per setting, default 10)
# Env: BIN=target/release (where lvs-director, lvsadm, lvs-heartbeatd and the rr plugin are),
#      SYNC=1 to configure the directors' [sync] section (connection sync).
# Needs root and keepalived (apt-get install keepalived when missing). Namespaces fo<pid>*
# are removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

N=${1:-10}
BIN=${BIN:-target/release}
SYNC=${SYNC:-0}
P=fo$$
DIR=/tmp/lvs-bench-$P
VIP=10.89.0.100
GW=10.89.1.254
CLIENT=10.89.0.2
RS=(10.89.1.21 10.89.1.22 10.89.1.23)
NODES=(sw c d0 d1 r1 r2 r3)

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
for b in lvs-director lvsadm lvs-heartbeatd liblvs_sched_rr.so; do
    [ -e "$BIN/$b" ] || die "$BIN/$b missing: cargo build --release --workspace (or set BIN)"
done
BIN=$(cd "$BIN" && pwd)
if ! command -v keepalived >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq keepalived >/dev/null
fi
command -v keepalived >/dev/null || die "keepalived could not be installed"

cleanup() {
    for f in "$DIR"/*.pid "$DIR"/*.vrrp; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    for n in "${NODES[@]}"; do ip netns del "$P$n" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR"

# Background daemons are started with `ip netns exec` directly (it execs them: $! is their pid).
inns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
wait_until() { # TIMEOUT_S CMD...: poll every 20 ms
    local end; end=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.02
    done
}
has_vip() { [[ $(inns "d$1" ip -4 addr show) == *"inet $VIP/"* ]]; }
has_master() { has_vip 0 || has_vip 1; }
master() { if has_vip 0; then echo 0; elif has_vip 1; then echo 1; else echo -; fi; }

# --- network -------------------------------------------------------------------------------
for n in "${NODES[@]}"; do
    ip netns add "$P$n"
    inns "$n" ip link set lo up
done
inns sw ip link add br0 type bridge
inns sw ip link set br0 up
for n in "${NODES[@]:1}"; do
    ip -n "$P"sw link add "${n}l" type veth peer name eth0 netns "$P$n"
    ip -n "$P"sw link set "${n}l" master br0 up
    inns sw ethtool -K "${n}l" tso off gso off gro off >/dev/null 2>&1 || true
    inns "$n" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true
    inns "$n" ip link set eth0 up
done
inns c ip addr add "$CLIENT/24" dev eth0
for i in 0 1; do
    inns "d$i" ip addr add "10.89.0.1$((i + 1))/24" dev eth0
    inns "d$i" ip addr add "10.89.1.1$((i + 1))/24" dev eth0
done
for i in 1 2 3; do
    inns "r$i" ip addr add "${RS[$((i - 1))]}/24" dev eth0
    inns "r$i" ip route add default via "$GW"
    ip netns exec "${P}r$i" python3 -c '
import http.server, socketserver, sys
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
S(("0.0.0.0", 80), H).serve_forever()
' "r$i" >/dev/null 2>&1 &
    echo $! > "$DIR/http$i.pid"
done

# The serial line: two ptys relayed to each other; their paths in $DIR/tty0 and $DIR/tty1.
python3 -c '
import os, pty, select, sys
d = sys.argv[1]
a_m, a_s = pty.openpty(); b_m, b_s = pty.openpty()
for name, fd in (("tty0", a_s), ("tty1", b_s)):
    os.symlink(os.ttyname(fd), os.path.join(d, name))
while True:
    r, _, _ = select.select([a_m, b_m], [], [])
    for fd in r:
        data = os.read(fd, 4096)
        os.write(b_m if fd == a_m else a_m, data)
' "$DIR" &
echo $! > "$DIR/serial.pid"
wait_until 10 test -e "$DIR/tty1" || die "no serial line"

head -c 32 /dev/urandom > "$DIR/key"
chmod 600 "$DIR/key"

# --- daemons -------------------------------------------------------------------------------
start_director() { # I
    local i=$1 sync=""
    if [ "$SYNC" = 1 ]; then
        sync="[sync]
listen = \"10.89.0.1$((i + 1)):8848\"
peers = [\"10.89.0.1$((2 - i)):8848\"]
key_file = \"$DIR/key\"
state_dir = \"$DIR/sync$i\""
        mkdir -p "$DIR/sync$i"
    fi
    printf 'workers = 1\n%s\n' "$sync" > "$DIR/director$i.toml"
    rm -f "$DIR/run$i/director.sock"
    LVS_PLUGIN_PATH=$BIN ip netns exec "${P}d$i" "$BIN/lvs-director" -f --no-syslog --rundir "$DIR/run$i" \
        -c "$DIR/director$i.toml" 2>> "$DIR/director$i.log" &
    echo $! > "$DIR/director$i.pid"
    wait_until 15 "$BIN/lvsadm" --rundir "$DIR/run$i" -L -n >/dev/null 2>&1 || die "director $i did not start: $(tail -5 "$DIR/director$i.log")"
    "$BIN/lvsadm" --rundir "$DIR/run$i" -A -t "$VIP:80" -s rr
    for rs in "${RS[@]}"; do
        "$BIN/lvsadm" --rundir "$DIR/run$i" -a -t "$VIP:80" -r "$rs:80" -m
    done
}

HB_TIMERS=""
start_hb() { # I
    local i=$1
    cat > "$DIR/hb$i.toml" <<EOF
node_id = $((i + 1))
priority = $((i == 0 ? 200 : 100))
peers = [$((2 - i))]
auth_key_file = "$DIR/key"
epoch_file = "$DIR/epoch$i"
auto_failback = false
[timers]
$HB_TIMERS
[udp]
bind = "10.89.0.1$((i + 1)):694"
peers = ["10.89.0.1$((2 - i)):694"]
[serial]
device = "$(readlink "$DIR/tty$i")"
baud = 115200
[[vip]]
addr = "$VIP/24"
interface = "eth0"
[[vip]]
addr = "$GW/24"
interface = "eth0"
EOF
    : > "$DIR/hb$i.log"
    ip netns exec "${P}d$i" "$BIN/lvs-heartbeatd" -f --no-syslog --rundir "$DIR/run$i" -c "$DIR/hb$i.toml" \
        2>> "$DIR/hb$i.log" &
    echo $! > "$DIR/hb$i.pid"
}

KD_TIMERS=""
start_kd() { # I
    local i=$1
    cat > "$DIR/kd$i.conf" <<EOF
global_defs {
    router_id d$i
    enable_script_security
    $([ "$KD_TIMERS" = "0.1" ] && echo "vrrp_version 3")
}
vrrp_instance VI_1 {
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority $((i == 0 ? 200 : 100))
    advert_int ${KD_TIMERS:-1}
    virtual_ipaddress {
        $VIP/24 dev eth0
        $GW/24 dev eth0
    }
}
EOF
    # A killed keepalived leaves its addresses behind: remove them before it starts again.
    inns "d$i" ip addr del "$VIP/24" dev eth0 2>/dev/null || true
    inns "d$i" ip addr del "$GW/24" dev eth0 2>/dev/null || true
    : > "$DIR/kd$i.log"
    rm -f "$DIR/kd$i.main" "$DIR/kd$i.vrrp"
    ip netns exec "${P}d$i" keepalived -n -l -P -f "$DIR/kd$i.conf" -p "$DIR/kd$i.main" -r "$DIR/kd$i.vrrp" \
        >> "$DIR/kd$i.log" 2>&1 &
    echo $! > "$DIR/kd$i.pid"
}

stop_node() { # I: SIGKILL everything of director I
    local i=$1 f
    for f in "$DIR/director$i.pid" "$DIR/hb$i.pid" "$DIR/kd$i.pid" "$DIR/kd$i.vrrp"; do
        [ -f "$f" ] || continue
        kill -9 "$(cat "$f")" 2>/dev/null || true
        # Reap it (a zombie still "runs" for the next start's pidfile check).
        { wait "$(cat "$f")"; } 2>/dev/null || true
    done
    rm -f "$DIR/director$i.pid" "$DIR/hb$i.pid" "$DIR/kd$i.pid"
}

# Opens 100 keep-alive connections; on "kill", SIGKILLs the given pids and polls new
# connections (30 ms attempts) until one gets HTTP 200; prints the milliseconds, then how many
# of the 100 still answer.
MEASURE='
import os, signal, socket, sys, threading, time, http.client
vip, pids = sys.argv[1], [int(p) for p in sys.argv[2:]]
conns = []
for _ in range(100):
    c = http.client.HTTPConnection(vip, 80, timeout=3)
    try:
        c.request("GET", "/"); c.getresponse().read(); conns.append(c)
    except Exception:
        pass
t0 = time.monotonic()
for p in pids:
    try: os.kill(p, signal.SIGKILL)
    except ProcessLookupError: pass
ms = None
while time.monotonic() - t0 < 30:
    s = socket.socket()
    s.settimeout(0.03)
    try:
        s.connect((vip, 80))
        s.settimeout(1)
        s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        if s.recv(64).startswith(b"HTTP/1.1 200"):
            ms = (time.monotonic() - t0) * 1000
            break
    except OSError:
        pass
    finally:
        s.close()
ok = [0]
lock = threading.Lock()
def probe(c):
    try:
        c.request("GET", "/"); c.getresponse().read()
        with lock: ok[0] += 1
    except Exception:
        pass
ts = [threading.Thread(target=probe, args=(c,)) for c in conns]
for t in ts: t.start()
for t in ts: t.join()
print("%.0f %d %d" % (ms if ms is not None else -1, ok[0], len(conns)))
'

# One run: kill the current master's daemons, measure; restart them (they come back as the
# backup). Appends "ms survived opened" to $1.
one_run() { # OUT KIND
    local out=$1 kind=$2 m pids f
    m=$(master)
    [ "$m" != - ] || die "no master"
    pids=""
    for f in "$DIR/director$m.pid" "$DIR/hb$m.pid" "$DIR/kd$m.pid" "$DIR/kd$m.vrrp"; do
        [ -f "$f" ] && pids="$pids $(cat "$f")"
    done
    inns c python3 -c "$MEASURE" "$VIP" $pids >> "$out"
    stop_node "$m"
    start_director "$m"
    if [ "$kind" = hb ]; then
        start_hb "$m"
        wait_until 15 grep -q "event=backup" "$DIR/hb$m.log" || die "lvs-heartbeatd $m not backup: $(cat "$DIR/hb$m.log")"
    else
        start_kd "$m"
        wait_until 15 grep -q "Entering BACKUP STATE" "$DIR/kd$m.log" || die "keepalived $m not backup: $(cat "$DIR/kd$m.log")"
    fi
    # The new backup is heard for a while before the next kill.
    sleep 2
}

series() { # NAME KIND -> $DIR/NAME.txt
    local name=$1 kind=$2 i
    : > "$DIR/$name.txt"
    for i in 0 1; do stop_node "$i"; done
    for i in 0 1; do start_director "$i"; done
    if [ "$kind" = hb ]; then start_hb 0; start_hb 1; else start_kd 0; start_kd 1; fi
    wait_until 15 has_master || die "$name: nobody took the VIP"
    sleep 3
    for i in $(seq 1 "$N"); do
        one_run "$DIR/$name.txt" "$kind"
        echo "  $name run $i: $(tail -1 "$DIR/$name.txt")" >&2
    done
}

HB_TIMERS="keepalive_ms = 200
deadtime_ms = 1000
warntime_ms = 500
initdead_ms = 2000"
series hb-default hb
HB_TIMERS="keepalive_ms = 50
deadtime_ms = 200
warntime_ms = 100
initdead_ms = 1000"
series hb-fast hb
for i in 0 1; do stop_node "$i"; done
KD_TIMERS=1
series kd-default kd
KD_TIMERS=0.1
series kd-fast kd
for i in 0 1; do stop_node "$i"; done

stat() { # FILE -> "median min max survived/opened"
    local f=$1
    printf '%s %s %s %s/%s' \
        "$(awk '{print $1}' "$f" | median)" \
        "$(awk '{print $1}' "$f" | sort -n | head -1)" \
        "$(awk '{print $1}' "$f" | sort -n | tail -1)" \
        "$(awk '{s += $2} END {print s}' "$f")" \
        "$(awk '{s += $3} END {print s}' "$f")"
}
read -r hbd_med hbd_min hbd_max hbd_conn <<< "$(stat "$DIR/hb-default.txt")"
read -r hbf_med hbf_min hbf_max hbf_conn <<< "$(stat "$DIR/hb-fast.txt")"
read -r kdd_med kdd_min kdd_max kdd_conn <<< "$(stat "$DIR/kd-default.txt")"
read -r kdf_med kdf_min kdf_max kdf_conn <<< "$(stat "$DIR/kd-fast.txt")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }

echo
echo "Failover: master's daemons SIGKILLed -> first new connection through the other director"
echo "(median of $N runs, ms; connections: established before / still answering after, all runs)"
echo
echo "| failover daemon | timers | median ms | min | max | connections kept | keepalived / ours |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
echo "| lvs-heartbeatd | keepalive 200 ms, deadtime 1 s (default) | $hbd_med | $hbd_min | $hbd_max | $hbd_conn | $(ratio "$kdd_med" "$hbd_med") |"
echo "| lvs-heartbeatd | keepalive 50 ms, deadtime 200 ms | $hbf_med | $hbf_min | $hbf_max | $hbf_conn | $(ratio "$kdf_med" "$hbf_med") |"
echo "| keepalived $(keepalived --version 2>&1 | head -1 | awk '{print $2}') | advert_int 1 (default) | $kdd_med | $kdd_min | $kdd_max | $kdd_conn | |"
echo "| keepalived | advert_int 0.1 (VRRPv3) | $kdf_med | $kdf_min | $kdf_max | $kdf_conn | |"
