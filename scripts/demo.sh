#!/usr/bin/env bash
# The main job (README): a whole LVS cluster in network namespaces, with real traffic.
#
#   sudo scripts/demo.sh        build (release), bring up the testbed (prefix lvsdemo: a client,
#                               a router, the director, three real servers with HTTP servers),
#                               then one act after the other, each checking its own result:
#                                 1. VS/NAT with rr, set up with lvsadm: HTTP from the client
#                                    1b. the same over IPv6: an IPv6 VIP, curl -6
#                                 2. VS/DR with wrr weights 3:2:1
#                                 3. lvs-monitord: r2's HTTP server stops, r2 is removed from
#                                    the service (on_failure = "remove") and comes back
#                                 4. content switching (layer 7) on VIP:8080: /static/ to one
#                                    pool (r1, r2), everything else to another (r3)
#                                 5. failover: a backup director (P-d2) with connection sync,
#                                    lvs-heartbeatd on both (UDP + a serial line over a pty
#                                    pair), back in VS/NAT through a floating gateway; the
#                                    primary's daemons are SIGKILLed while 101 connections are
#                                    open: the backup takes over, they all go on; the primary
#                                    comes back as the backup
#                                 6. lvs-webmon, the web console, on https://127.0.0.1:8443/
#                                 7. active-active: three directors (lvs-director in
#                                    active-active mode, BIRD 2, lvs-heartbeatd anycast) behind
#                                    an FRR router with ECMP (namespaces lvsdemo-a*), a client
#                                    holding 300 connections; one director's daemons are
#                                    SIGKILLed while they are open: its route goes, every
#                                    connection goes on, on its own real server
#                               and prints a PASS/FAIL summary. Everything is left running.
#   sudo scripts/demo.sh stop   stop every daemon (SIGTERM: the directors remove their nftables
#                               tables) and remove the namespaces.
#
# Env: CARGO_TARGET_DIR (default target/), WEB_PORT (default 8443) for the console.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

P=lvsdemo
RUNDIR=/run/lvsdemo          # the primary director's daemons
RUNDIR2=/run/lvsdemo-d2      # the backup director's daemons
WEBDIR=/run/lvsdemo-web      # lvs-webmon: config, users, certificate, pidfile
LOG=/tmp/lvsdemo-director.log
LOG2=/tmp/lvsdemo-director2.log
MONLOG=/tmp/lvsdemo-monitord.log
MONLOG2=/tmp/lvsdemo-monitord2.log
HBLOG=/tmp/lvsdemo-heartbeatd.log
HBLOG2=/tmp/lvsdemo-heartbeatd2.log
# Act 7's testbed (scripts/lib/anycast-bed.sh): namespaces $AP*, files and logs in $ADIR.
AP=lvsdemo-a
ADIR=/run/lvsdemo-anycast
WEBLOG=/tmp/lvsdemo-webmon.log
CLIENTLOG=/tmp/lvsdemo-client.log
VIP=203.0.113.100
GW=203.0.113.253             # the real servers' gateway in the failover act: moves with the VIP
D1=203.0.113.1
D2=203.0.113.2
RS=(203.0.113.11 203.0.113.12 203.0.113.13)
VIP6=2001:db8::100           # the testbed is dual stack (scripts/testbed.sh)
RS6=(2001:db8::11 2001:db8::12 2001:db8::13)
WEB_PORT=${WEB_PORT:-8443}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release

die() { echo "demo: $*" >&2; exit 1; }
say() { printf '\n== %s ==\n' "$*"; }
[ "$(id -u)" -eq 0 ] || die "needs root for network namespaces: sudo $0 ${1:-}"

# Act results, printed again at the end.
results=()
verdict() { # ACT OK(0/1) DETAIL
    local r=FAIL
    [ "$2" = 0 ] && r=PASS
    results+=("$r  $1: $3")
    printf '%s: %s (%s)\n' "$r" "$1" "$3"
}
wait_until() { # SECONDS CMD...: poll every 50 ms until CMD succeeds
    local end; end=$(( $(date +%s%N) / 1000000 + $1 * 1000 )); shift
    until "$@"; do
        [ $(( $(date +%s%N) / 1000000 )) -lt "$end" ] || return 1
        sleep 0.05
    done
}

adm() { ip netns exec "$P-d" "$BIN/lvsadm" --rundir "$RUNDIR" "$@"; }
adm2() { ip netns exec "$P-d2" "$BIN/lvsadm" --rundir "$RUNDIR2" "$@"; }
show() { echo "\$ lvsadm $*"; adm "$@"; }
show2() { echo "[backup] \$ lvsadm $*"; adm2 "$@"; }
client() { ip netns exec "$P-c" "$@"; }
ask() { client curl -s -m 5 "$@" || echo FAILED; }
requests() { # N URL: N requests, one line of answers; the answers also in $answers
    local i a; answers=""
    for i in $(seq 1 "$1"); do
        a=$(ask "$2"); a=${a//$'\n'/}
        printf '%s ' "$a"; answers+="$a "
    done
    echo
}

alive() { # PID: running (a zombie waiting for its parent to reap it counts as gone)
    kill -0 "$1" 2>/dev/null && [[ $(cat "/proc/$1/stat" 2>/dev/null) != *") Z "* ]]
}
stop_pidfile() { # FILE: SIGTERM to the pid in FILE, wait up to 10 s
    local pid
    if [ -f "$1" ]; then
        pid=$(cat "$1")
        if kill -TERM "$pid" 2>/dev/null; then
            for _ in $(seq 1 200); do
                alive "$pid" || break
                sleep 0.05
            done
            alive "$pid" && echo "demo: $1: $pid did not stop" >&2
        fi
        rm -f "$1"
    fi
    return 0
}

stop() {
    # Act 7's daemons (SIGKILL: their namespaces go with them) and namespaces.
    # shellcheck source=scripts/lib/anycast-bed.sh
    . scripts/lib/anycast-bed.sh
    ac_down
    stop_pidfile "$RUNDIR/client.pid"
    stop_pidfile "$WEBDIR/webmon.pid"
    # The heartbeat daemons before the directors (SIGTERM: each releases its addresses).
    stop_pidfile "$RUNDIR2/heartbeatd.pid"
    stop_pidfile "$RUNDIR/heartbeatd.pid"
    for d in "$RUNDIR" "$RUNDIR2"; do
        stop_pidfile "$d/monitord.pid"
        stop_pidfile "$d/director.pid"
    done
    stop_pidfile "$RUNDIR/serial.pid"
    if ip netns list | grep -q "^$P-"; then
        scripts/testbed.sh down "$P"
    fi
    rm -rf "$RUNDIR" "$RUNDIR2" "$WEBDIR"
}

case "${1:-start}" in
    stop) stop; echo "demo: stopped (daemons gone, namespaces $P-* removed)"; exit 0 ;;
    start) ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
T0=$(date +%s)

# What the demo needs from Debian, installed when missing.
declare -A need=([ip]=iproute2 [ethtool]=ethtool [nft]=nftables [python3]=python3 [curl]=curl
                 [gcc]=gcc [sysctl]=procps [openssl]=openssl [bird]=bird2 [/usr/lib/frr/bgpd]=frr)
missing=()
for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "demo: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" libc6-dev
fi

# Build as the user who ran sudo (their toolchain, their file ownership), else as root.
say "building (release, into $TARGET)"
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    sudo -u "$SUDO_USER" env HOME="$home" PATH="$home/.cargo/bin:$PATH" \
        ${CARGO_TARGET_DIR:+CARGO_TARGET_DIR="$CARGO_TARGET_DIR"} \
        cargo build --release --workspace --locked
else
    if ! command -v cargo >/dev/null; then
        for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
            [ -x "$c" ] && PATH="$(dirname "$c"):$PATH" && break
        done
    fi
    command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain (rustup)"
    cargo build --release --workspace --locked
fi

say "testbed $P: client 198.51.100.2, router, director $D1 with VIP $VIP, real servers ${RS[*]}"
stop >/dev/null 2>&1 || true
scripts/testbed.sh up "$P" nat
scripts/testbed.sh http "$P"
mkdir -p "$RUNDIR" "$RUNDIR2" "$WEBDIR"
# One key for the heartbeats and connection sync (HMAC-SHA256), readable by root only.
head -c 32 /dev/urandom > "$RUNDIR/ha.key"
chmod 600 "$RUNDIR/ha.key"

# The directors' configuration: two workers, connection sync with the other director (the
# backup only appears in act 5; until then the primary's sync datagrams go nowhere).
director_conf() { # OWN PEER [CONTENT_FILE [RULES_FILE]]
    printf 'workers = 2\n'
    [ -z "${4:-}" ] || printf 'rules_file = "%s"\n' "$4"
    mkdir -p "$RUNDIR/sync-$1"
    printf '\n[sync]\nlisten = "%s:8848"\npeers = ["%s:8848"]\nkey_file = "%s"\nstate_dir = "%s"\n' \
        "$1" "$2" "$RUNDIR/ha.key" "$RUNDIR/sync-$1"
    [ -z "${3:-}" ] || cat "$3"
}
start_director() { # NS RUNDIR LOG
    ip netns exec "$1" setsid "$BIN/lvs-director" -f --no-syslog --rundir "$2" \
        -c "$2/director.toml" </dev/null >>"$3" 2>&1 &
    disown # no "Killed" notice from bash when act 5 kills it
    wait_until 10 ip netns exec "$1" "$BIN/lvsadm" --rundir "$2" -L -n >/dev/null 2>&1 ||
        { tail "$3" >&2; die "lvs-director in $1 did not start"; }
}

say "starting lvs-director (2 workers, log: $LOG)"
director_conf "$D1" "$D2" > "$RUNDIR/director.toml"
: > "$LOG"
start_director "$P-d" "$RUNDIR" "$LOG"
echo "lvs-director running, pid $(cat "$RUNDIR/director.pid")"

# --- act 1 ---------------------------------------------------------------------------------
say "act 1, VS/NAT: one virtual service, round robin over three real servers"
show -A -t "$VIP:80" -s rr
for rs in "${RS[@]}"; do show -a -t "$VIP:80" -r "$rs:80" -m; done
show -L -n

echo "30 HTTP requests from the client to http://$VIP/:"
requests 30 "http://$VIP/"
nat_answers=$answers
echo "a burst: 600 requests, 8 at a time, one connection each"
burst=$(client curl -s -m 30 -H 'Connection: close' --parallel --parallel-max 8 \
    "http://$VIP/?n=[1-600]" 2>/dev/null | sort | uniq -c || true)
echo "$burst"
sleep 3 # the rate estimator samples every 2 s: let it see the burst
show -L -n --stats
show -L -n --rate
echo "\$ lvsadm -L -n -c | head"
adm -L -n -c | head
n=$(awk '{s += $1} END {print s + 0}' <<< "$burst")
ok=1
[[ $nat_answers != *FAILED* ]] && [ "$(grep -c -E '^ *[0-9]+ r[123]$' <<< "$burst")" = 3 ] &&
    [ "$n" = 600 ] && [[ $nat_answers == *r1* && $nat_answers == *r2* && $nat_answers == *r3* ]] && ok=0
verdict "act 1, VS/NAT" $ok "30 + $n/600 requests answered by r1, r2 and r3"

# --- act 1b --------------------------------------------------------------------------------
say "act 1b, VS/NAT over IPv6: the same real servers behind the IPv6 VIP $VIP6, round robin"
show -A -t "[$VIP6]:80" -s rr
for rs in "${RS6[@]}"; do show -a -t "[$VIP6]:80" -r "[$rs]:80" -m; done
show -L -n
echo "6 HTTP requests with curl -6 from the client to http://[$VIP6]/:"
v6_answers=""
for _ in 1 2 3 4 5 6; do
    a=$(ask -6 -g "http://[$VIP6]/"); a=${a//$'\n'/}
    printf '%s ' "$a"; v6_answers+="$a "
done
echo
echo "\$ lvsadm -L -n -c | grep '$VIP6'"
adm -L -n -c | grep -F "[$VIP6]" || true
cnt6() { grep -o "$1" <<< "$v6_answers" | wc -l; }
ok=1
[ "$(cnt6 r1)" = 2 ] && [ "$(cnt6 r2)" = 2 ] && [ "$(cnt6 r3)" = 2 ] && ok=0
verdict "act 1b, VS/NAT over IPv6" $ok "6 requests: r1 $(cnt6 r1), r2 $(cnt6 r2), r3 $(cnt6 r3)"
# The next acts move the real servers' routes away from VS/NAT: the IPv6 service goes.
show -D -t "[$VIP6]:80"

# --- act 2 ---------------------------------------------------------------------------------
say "act 2, VS/DR: the real servers answer the client directly; weighted round robin 3:2:1"
scripts/testbed.sh mode "$P" dr
# The service is made again rather than edited with -E/-e: lvs-director keeps the old VS/NAT
# entries (TIME_WAIT) and would forward a new SYN that reuses one's client port the old way.
show -D -t "$VIP:80"
show -A -t "$VIP:80" -s wrr
w=(3 2 1)
for i in 0 1 2; do show -a -t "$VIP:80" -r "${RS[$i]}:80" -g -w "${w[$i]}"; done
echo "12 requests:"
requests 12 "http://$VIP/"
dr_answers=$answers
burst=$(client curl -s -m 30 -H 'Connection: close' --parallel --parallel-max 8 \
    "http://$VIP/?n=[1-300]" 2>/dev/null | sort | uniq -c || true)
echo "$burst"
show -L -n --stats
echo "(OutPkts stay 0: with VS/DR the replies go from the real servers straight to the router)"
cnt() { grep -o "$1" <<< "$dr_answers" | wc -l; }
n=$(awk '{s += $1} END {print s + 0}' <<< "$burst")
ok=1
[ "$(cnt r1)" = 6 ] && [ "$(cnt r2)" = 4 ] && [ "$(cnt r3)" = 2 ] && [ "$n" = 300 ] && ok=0
verdict "act 2, VS/DR wrr 3:2:1" $ok "12 requests: r1 $(cnt r1), r2 $(cnt r2), r3 $(cnt r3); $n/300 in the burst"

# --- act 3 ---------------------------------------------------------------------------------
say "act 3, lvs-monitord: HTTP checks of the three servers (interval 1 s, fall 3, rise 2; log: $MONLOG)"
# on_failure = "remove": a dead server leaves the service and its connection entries expire at
# once, so a client reusing a source port is scheduled again (with "quiesce", weight 0, the
# director would still send a SYN matching an old TIME_WAIT entry to the dead server).
mon() { ip netns exec "$P-d" "$BIN/lvs-monitord" ctl --rundir "$RUNDIR" "$@"; }
weight_of() { adm -L -n | awk -v rs="$1:80" '$1 == "->" && $2 == rs { print $4 }'; }
{
    printf '[[service]]\nvip = "%s"\nport = 80\non_failure = "remove"\n' "$VIP"
    printf '[[service.check]]\ntype = "http"\npath = "/"\n'
    for i in 0 1 2; do
        printf '[[service.server]]\naddress = "%s"\nweight = %s\n' "${RS[$i]}" "${w[$i]}"
    done
} > "$RUNDIR/monitord.toml"
start_monitord() { # NS RUNDIR LOG
    ip netns exec "$1" setsid "$BIN/lvs-monitord" -f --no-syslog --rundir "$2" \
        -c "$RUNDIR/monitord.toml" </dev/null >>"$3" 2>&1 &
    disown
    wait_until 10 ip netns exec "$1" "$BIN/lvs-monitord" ctl --rundir "$2" list >/dev/null 2>&1 ||
        { tail "$3" >&2; die "lvs-monitord in $1 did not start"; }
}
: > "$MONLOG"
start_monitord "$P-d" "$RUNDIR" "$MONLOG"
echo "lvs-monitord running, pid $(cat "$RUNDIR/monitord.pid")"
wait_until 10 bash -c "[ \$(ip netns exec $P-d $BIN/lvs-monitord ctl --rundir $RUNDIR list | grep -c -w up) -ge 3 ]" || true
echo "\$ lvs-monitord ctl list"
mon list

echo
echo "-- the HTTP server on r2 (${RS[1]}) stops"
ip netns pids "$P-r2" | xargs -r kill
t0=$(date +%s.%N)
out_ok=1
wait_until 10 eval '[ -z "$(weight_of "${RS[1]}")" ]' && out_ok=0
t1=$(date +%s.%N)
out_s=$(python3 -c "print(round($t1 - $t0, 1))")
echo "r2 removed from the service $out_s s after its HTTP server stopped"
show -L -n
echo "12 requests (r1 and r3 only):"
requests 12 "http://$VIP/"
[[ $answers == *r2* || $answers == *FAILED* ]] && out_ok=1
grep -E 'event=(server_down|director_update)' "$MONLOG" | tail -2

echo
echo "-- the HTTP server on r2 is back: it is added again with its weight"
scripts/testbed.sh http "$P" # r1 and r3 already listen: only r2's new server stays
t0=$(date +%s.%N)
back_ok=1
wait_until 10 eval '[ "$(weight_of "${RS[1]}")" = "${w[1]}" ]' && back_ok=0
t1=$(date +%s.%N)
back_s=$(python3 -c "print(round($t1 - $t0, 1))")
show -L -n
echo "12 requests:"
requests 12 "http://$VIP/"
[[ $answers == *r2* && $answers != *FAILED* ]] || back_ok=1
grep -E 'event=(server_up|director_update)' "$MONLOG" | tail -2
ok=1
[ $out_ok = 0 ] && [ $back_ok = 0 ] && ok=0
verdict "act 3, lvs-monitord" $ok "r2 out after $out_s s, back after $back_s s"

# --- act 4 ---------------------------------------------------------------------------------
say "act 4, content switching (layer 7): VIP:8080, /static/ to pool static (r1, r2), the rest to pool app (r3)"
cat > "$RUNDIR/content.toml" <<EOF

[[content_service]]
address = "$VIP"
port = 8080
mode = "http"
default_pool = "app"

[[content_service.rule]]
name = "static"
path_prefix = "/static/"
pool = "static"

[[pool]]
name = "static"
scheduler = "rr"
servers = [{ address = "${RS[0]}", port = 80 }, { address = "${RS[1]}", port = 80 }]

[[pool]]
name = "app"
scheduler = "rr"
servers = [{ address = "${RS[2]}", port = 80 }]
EOF
# A reload applies the whole file: the services made with lvsadm are saved to a rules file
# first, and the configuration names it (without rules_file a reload would delete them).
echo "\$ lvsadm -S -n > $RUNDIR/rules"
adm -S -n > "$RUNDIR/rules"
director_conf "$D1" "$D2" "$RUNDIR/content.toml" "$RUNDIR/rules" > "$RUNDIR/director.toml"
echo "added to $RUNDIR/director.toml: rules_file = \"$RUNDIR/rules\", and"
sed 's/^/    /' "$RUNDIR/content.toml"
echo "\$ kill -HUP \$(cat $RUNDIR/director.pid)    # applied without a restart"
kill -HUP "$(cat "$RUNDIR/director.pid")"
wait_until 10 eval 'adm -L -n | grep -q "$VIP:8080"' || tail -5 "$LOG"
show -L -n
echo "the port-80 service (IP load balancing) and the port-8080 content service share the VIP"
echo "6 requests for http://$VIP:8080/static/logo.png:"
requests 6 "http://$VIP:8080/static/logo.png"
static_answers=$answers
echo "6 requests for http://$VIP:8080/cart:"
requests 6 "http://$VIP:8080/cart"
app_answers=$answers
echo "one keep-alive connection, two requests of each kind alternating:"
ka=$(client curl -s -m 5 "http://$VIP:8080/static/a.css" "http://$VIP:8080/login" \
    "http://$VIP:8080/static/b.js" "http://$VIP:8080/api/x" -w '(new connections: %{num_connects}) ' | tr '\n' ' ' || true)
echo "$ka"
ok=1
[[ $static_answers != *FAILED* && $static_answers != *r3* && $static_answers == *r1* &&
   $static_answers == *r2* && $app_answers == "r3 r3 r3 r3 r3 r3 " ]] &&
    adm -L -n | grep -q "^TCP  $VIP:80 " && ok=0
verdict "act 4, content switching" $ok "/static/: ${static_answers% }; /cart: ${app_answers% }"

# --- act 5 ---------------------------------------------------------------------------------
say "act 5, failover: a backup director with connection sync and lvs-heartbeatd on both"
scripts/testbed.sh backup "$P"
echo "backup director $P-d2 ($D2) on the LAN; both directors' services back to VS/NAT, the real"
echo "servers' gateway is now $GW, an address lvs-heartbeatd moves with the VIP"
# The service is made again for VS/NAT (as in act 2: deleting it also drops the old VS/DR
# entries).
adm -D -t "$VIP:80"
adm -A -t "$VIP:80" -s wrr
for i in 0 1 2; do adm -a -t "$VIP:80" -r "${RS[$i]}:80" -m -w "${w[$i]}"; done
director_conf "$D2" "$D1" "$RUNDIR/content.toml" > "$RUNDIR2/director.toml"
: > "$LOG2"
start_director "$P-d2" "$RUNDIR2" "$LOG2"
adm -S | adm2 -R
: > "$MONLOG2"
start_monitord "$P-d2" "$RUNDIR2" "$MONLOG2"
echo "backup: lvs-director pid $(cat "$RUNDIR2/director.pid"), lvs-monitord pid $(cat "$RUNDIR2/monitord.pid")"

# The serial line: two ptys relayed to each other (a null-modem cable).
python3 - "$RUNDIR" >/dev/null 2>&1 <<'EOF' &
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
EOF
echo $! > "$RUNDIR/serial.pid"
disown
wait_until 10 test -e "$RUNDIR/tty1" || die "no serial line"

hb_conf() { # NODE(1|2) OWN PEER TTY
    cat <<EOF
node_id = $1
priority = $(( $1 == 1 ? 200 : 100 ))
peers = [$(( 3 - $1 ))]
auth_key_file = "$RUNDIR/ha.key"
epoch_file = "$(if [ "$1" = 1 ]; then echo "$RUNDIR"; else echo "$RUNDIR2"; fi)/epoch"
auto_failback = false
[timers]
keepalive_ms = 200
deadtime_ms = 1000
warntime_ms = 500
initdead_ms = 2000
[udp]
bind = "$2:694"
peers = ["$3:694"]
[serial]
device = "$(readlink "$4")"
baud = 115200
[garp]
count = 5
interval_ms = 200
[[vip]]
addr = "$VIP/24"
interface = "eth0"
[[vip]]
addr = "$GW/24"
interface = "eth0"
EOF
}
start_hb() { # NS RUNDIR LOG
    rm -f "$2/heartbeatd.sock" # a SIGKILLed one leaves it behind
    ip netns exec "$1" setsid "$BIN/lvs-heartbeatd" -f --no-syslog --rundir "$2" \
        -c "$2/heartbeatd.toml" </dev/null >>"$3" 2>&1 &
    disown
    wait_until 10 test -S "$2/heartbeatd.sock" || { tail "$3" >&2; die "lvs-heartbeatd in $1 did not start"; }
}
has_vip() { [[ $(ip -n "$1" -4 addr show dev lvs-vip0 2>/dev/null) == *"inet $VIP/"* ]]; }
hb_conf 1 "$D1" "$D2" "$RUNDIR/tty0" > "$RUNDIR/heartbeatd.toml"
hb_conf 2 "$D2" "$D1" "$RUNDIR/tty1" > "$RUNDIR2/heartbeatd.toml"
# lvs-heartbeatd owns the VIP from now on, on its TUN device lvs-vip0.
ip -n "$P-d" addr del "$VIP/32" dev eth0
: > "$HBLOG"; : > "$HBLOG2"
start_hb "$P-d" "$RUNDIR" "$HBLOG"
wait_until 10 has_vip "$P-d" || { tail "$HBLOG" >&2; die "the primary did not take the VIP"; }
scripts/testbed.sh mode "$P" nat "$GW"
start_hb "$P-d2" "$RUNDIR2" "$HBLOG2"
wait_until 10 grep -q 'event=backup' "$HBLOG2" || { tail "$HBLOG2" >&2; die "the backup did not become backup"; }
wait_until 10 eval 'adm2 -L --daemon | grep -q "backup sync daemon"' || true
echo "primary: lvs-heartbeatd pid $(cat "$RUNDIR/heartbeatd.pid"): $(grep -o 'event=takeover_done.*' "$HBLOG" | tail -1)"
echo "backup:  lvs-heartbeatd pid $(cat "$RUNDIR2/heartbeatd.pid"): $(grep -o 'event=backup.*' "$HBLOG2" | tail -1)"
echo "\$ ip -n $P-d addr show dev lvs-vip0"
ip -n "$P-d" -4 addr show dev lvs-vip0
show -L --daemon
show2 -L --daemon

# The client: one connection asking every 100 ms, plus 100 idle keep-alive connections
# that each ask once more after the failover (when the file $RUNDIR/probe appears).
rm -f "$RUNDIR/probe"
ip netns exec "$P-c" python3 - "$VIP" "$RUNDIR/probe" > "$CLIENTLOG" 2>&1 <<'EOF' &
import os, re, socket, sys, threading, time
vip, trigger = sys.argv[1], sys.argv[2]
def get(s, buf, path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: vip\r\n\r\n")
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d: raise EOFError("closed by the peer")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"): raise ValueError(head.split(b"\r\n")[0].decode())
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < n:
        d = s.recv(4096)
        if not d: raise EOFError("closed by the peer")
        rest += d
    return rest[:n].decode().strip(), rest[n:]
idle = []
for _ in range(100):
    s = socket.create_connection((vip, 80), timeout=5)
    get(s, b"", b"/idle")
    idle.append(s)
print("opened 100", flush=True)
def probe():
    while not os.path.exists(trigger): time.sleep(0.05)
    kept = 0
    for s in idle:
        try: get(s, b"", b"/idle"); kept += 1
        except Exception: pass
    print("kept %d/100" % kept, flush=True)
threading.Thread(target=probe, daemon=True).start()
s = socket.create_connection((vip, 80), timeout=10)
port, buf, n = s.getsockname()[1], b"", 0
while True:
    try:
        who, buf = get(s, buf, b"/long")
        n += 1
        print("%.3f ok %d port=%d %s" % (time.time(), n, port, who), flush=True)
    except Exception as e:
        print("%.3f ERROR after %d answers: %r" % (time.time(), n, e), flush=True)
        sys.exit(1)
    time.sleep(0.1)
EOF
echo $! > "$RUNDIR/client.pid"
disown
wait_until 20 grep -q 'ok 5 ' "$CLIENTLOG" || { cat "$CLIENTLOG" >&2; die "the client's connections did not open"; }
lport=$(grep -o 'port=[0-9]*' "$CLIENTLOG" | head -1)
echo "client: 100 idle keep-alive connections open, and one ($lport) asking every 100 ms:"
tail -2 "$CLIENTLOG" | sed 's/^/    /'
echo "waiting until the backup's table has them (connection sync)..."
synced() { [ "$(adm2 -L -n -c | grep -c ESTABLISHED)" -ge 101 ]; }
wait_until 10 synced || true
echo "backup: $(adm2 -L -n -c | grep -c ESTABLISHED) established connections in its table (standby: it does not forward them)"

echo
echo "-- SIGKILL of the primary's lvs-director, lvs-heartbeatd and lvs-monitord"
pids="$(cat "$RUNDIR/director.pid") $(cat "$RUNDIR/heartbeatd.pid") $(cat "$RUNDIR/monitord.pid")"
tkill=$(date +%s.%N)
# Kill, then try a new connection every 30 ms until one gets an HTTP 200; print the ms.
failover_ms=$(ip netns exec "$P-c" python3 - "$VIP" $pids <<'EOF'
import os, signal, socket, sys, time
vip, pids = sys.argv[1], [int(p) for p in sys.argv[2:]]
t0 = time.monotonic()
for p in pids:
    try: os.kill(p, signal.SIGKILL)
    except ProcessLookupError: pass
while time.monotonic() - t0 < 20:
    s = socket.socket(); s.settimeout(0.03)
    try:
        s.connect((vip, 80)); s.settimeout(1)
        s.sendall(b"GET /new HTTP/1.0\r\nHost: vip\r\n\r\n")
        if s.recv(64).startswith(b"HTTP/1.1 200"):
            print("%.0f" % ((time.monotonic() - t0) * 1000)); break
    except OSError: pass
    finally: s.close()
else:
    print(-1)
EOF
)
echo "the first new connection through the backup succeeded $failover_ms ms after the kill"
wait_until 5 has_vip "$P-d2" || true
echo "backup: $(grep -o 'event=takeover_done.*' "$HBLOG2" | tail -1)"
grep -o 'event=takeover .*' "$HBLOG2" | tail -4 | sed 's/^/    /'
echo "\$ ip -n $P-d2 addr show dev lvs-vip0"
ip -n "$P-d2" -4 addr show dev lvs-vip0
echo "the router's neighbour entry for the VIP: $(ip -n "$P-rt" neigh show "$VIP")"
echo "the backup's MAC:                          $(ip -n "$P-d2" link show eth0 | awk '/link\/ether/ {print $2}')"
# The long-lived connection goes on: at least 10 more answers after the kill.
after() { awk -v t="$tkill" '$1 > t && $2 == "ok"' "$CLIENTLOG" | wc -l; }
wait_until 15 eval '[ "$(after)" -ge 10 ] || grep -q ERROR "$CLIENTLOG"' || true
touch "$RUNDIR/probe"
wait_until 15 grep -q '^kept' "$CLIENTLOG" || true
kept=$(grep -o '^kept [0-9]*/100' "$CLIENTLOG" | awk '{print $2}' || true)
gap=$(awk '$2 == "ok" { if (p) { d = $1 - p; if (d > m) m = d }; p = $1 } END { printf "%.2f", m }' "$CLIENTLOG")
echo "the long-lived connection ($lport), around the failover:"
awk -v t="$tkill" '$2 != "ok" || ($1 > t - 0.3 && $1 < t + 3)' "$CLIENTLOG" | grep -v '^opened' | head -8 | sed 's/^/    /'
echo "    ... $(after) answers on it since the kill; longest wait for an answer: $gap s (the request sent"
echo "    while no director forwarded is retransmitted by the client's TCP); errors: $(grep -c ERROR "$CLIENTLOG" || true)"
echo "the 100 idle keep-alive connections, each asked once more: ${kept:-none} answered"
echo "a new connection: $(ask "http://$VIP/" | tr -d '\n'); the content service through the backup: $(ask "http://$VIP:8080/static/x" | tr -d '\n')"
show2 -L -n --stats
ok=1
[ "$failover_ms" -gt 0 ] && [ "$(after)" -ge 10 ] && ! grep -q ERROR "$CLIENTLOG" &&
    [ "$kept" = 100/100 ] && [[ $(ask "http://$VIP/") == r[123]* ]] && ok=0
verdict "act 5, failover" $ok "new connections through the backup after $failover_ms ms; the long-lived connection kept ($(after) answers since, longest wait $gap s); $kept idle connections kept"
failover_line=${results[-1]}

echo
echo "-- the primary's daemons start again: with auto_failback = false it comes back as the backup"
: > "$LOG"; : > "$HBLOG"
director_conf "$D1" "$D2" "$RUNDIR/content.toml" > "$RUNDIR/director.toml"
start_director "$P-d" "$RUNDIR" "$LOG"
adm2 -S | adm -R
start_monitord "$P-d" "$RUNDIR" "$MONLOG"
start_hb "$P-d" "$RUNDIR" "$HBLOG"
ok=1
wait_until 15 grep -q 'event=backup' "$HBLOG" && has_vip "$P-d2" && ! has_vip "$P-d" && ok=0
echo "primary: $(grep -o 'event=backup.*' "$HBLOG" | tail -1)"
wait_until 10 eval 'adm -L --daemon | grep -q "backup sync daemon"' || true
show -L --daemon
echo "a new connection: $(ask "http://$VIP/" | tr -d '\n')"
verdict "act 5, the primary returns" $ok "it is the backup now; the VIP stays on $P-d2"

# --- act 6 ---------------------------------------------------------------------------------
say "act 6, lvs-webmon: the web console of the active director ($P-d2), on the host"
cat > "$WEBDIR/webmon.toml" <<EOF
listen = "127.0.0.1:$WEB_PORT"
cert = "$WEBDIR/cert.pem"
key = "$WEBDIR/key.pem"
self_signed = true
users_file = "$WEBDIR/users"
[sockets]
director = "$RUNDIR2/director.sock"
monitord = "$RUNDIR2/monitord.sock"
heartbeatd = "$RUNDIR2/heartbeatd.sock"
lockmgr = "$RUNDIR2/lockmgr.sock"
EOF
echo "(it runs in the host's namespace and reaches the backup's daemons by their Unix sockets)"
PW=$(head -c 12 /dev/urandom | base64 | tr '+/' 'xy')
echo "\$ echo PASSWORD | lvs-webmon -c $WEBDIR/webmon.toml --add-user admin --role admin"
echo "$PW" | "$BIN/lvs-webmon" -c "$WEBDIR/webmon.toml" --add-user admin --role admin
: > "$WEBLOG"
setsid "$BIN/lvs-webmon" -f --no-syslog --rundir "$WEBDIR" -c "$WEBDIR/webmon.toml" \
    </dev/null >>"$WEBLOG" 2>&1 &
disown
URL="https://127.0.0.1:$WEB_PORT/"
up() { curl -sk -o /dev/null -m 2 "$URL"; }
ok=1
web_detail="did not start (see $WEBLOG)"
if wait_until 20 up; then
    fp=$(openssl x509 -in "$WEBDIR/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2)
    logged=$(grep -o 'event=cert_generated.*' "$WEBLOG" | grep -o 'sha256=[0-9A-Fa-f:]*' | head -1 | cut -d= -f2 || true)
    jar=$WEBDIR/cookies
    login=$(curl -sk -m 5 -c "$jar" -o /dev/null -w '%{http_code}' \
        --data-urlencode username=admin --data-urlencode "password=$PW" "${URL}login")
    state=$(curl -sk -m 5 -b "$jar" "${URL}api/state" || true)
    summary=$(python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
d = s["directors"][0]
health = {}
for v in s["services"]:
    for r in v["servers"]:
        health[r["health"]] = health.get(r["health"], 0) + 1
print("director role %s (heartbeat %s, epoch %s, %d director(s) shown); services %s; real servers %s" % (
      d.get("role"), d.get("ha_state"), d.get("epoch"), len(s["directors"]),
      " ".join(v["address"] for v in s["services"]),
      " ".join("%s=%d" % kv for kv in sorted(health.items()))))' <<< "$state" 2>/dev/null || echo "no state")
    echo "curl -k ${URL}login with the admin's password: HTTP $login"
    echo "GET /api/state: $summary"
    [ "$login" = 303 ] && [[ $summary == *"role active"* ]] && [[ -n $fp ]] && ok=0
    [ -z "$logged" ] || [ "$logged" = "$fp" ] || { ok=1; echo "logged fingerprint $logged differs"; }
    web_detail="login HTTP $login; $summary"
fi
verdict "act 6, web console" $ok "$web_detail"
cat <<EOF

  console:      $URL      (from another machine: ssh -L $WEB_PORT:127.0.0.1:$WEB_PORT root@THIS-HOST)
  login:        admin / $PW
  certificate:  self-signed, $WEBDIR/cert.pem, SHA-256 fingerprint
                ${fp:-?}
EOF

# --- act 7 ---------------------------------------------------------------------------------
say "act 7, active-active: three directors behind an FRR router with ECMP, each announcing the VIP over BGP"
echo "testbed ${AP}*: router 10.77.1.1 (FRR: zebra, bgpd with maximum-paths, bfdd), client 10.77.0.2,"
echo "directors 10.77.1.11-13 (lvs-director active-active with mh and sync, BIRD 2 with BFD 100 ms x 3,"
echo "lvs-heartbeatd mode = \"anycast\"), real servers 10.77.1.21-22 (VS/DR) answering each line with their name"
ac_up
ac_start_router yes
for i in 0 1 2; do ac_start_director "$i" yes; done
has_nexthops() { [ "$(ac_nexthops)" -eq "$1" ]; }
aadm() { "$BIN/lvsadm" --rundir "$ADIR/run$1" "${@:2}"; }
ok=1
detail="the router never had three nexthops for $AVIP"
if wait_until 60 has_nexthops 3; then
    echo "\$ ip -n ${AP}r route show $AVIP        # one route, a nexthop per director"
    ip -n "${AP}r" route show $AVIP
    ac_client_start
    ac_client_step "open 300"
    opened=$OPENED
    echo "a client holds $opened connections; each director scheduled some of them:"
    for i in 0 1 2; do
        echo "  d$i: $(aadm "$i" -L -n --stats --exact -t $AVIP:80 | awk '$1 == "TCP" { print $3 " connections, " $4 " packets" }')"
    done
    wait_until 10 eval '[ "$(aadm 2 -L -n -c | grep -c ESTABLISHED)" -ge "$opened" ]' || true
    echo "each director knows all of them (many-to-many sync): d2 lists $(aadm 2 -L -n -c | grep -c ESTABLISHED)"
    echo "-- SIGKILL of d0's lvs-director, BIRD and lvs-heartbeatd while a line is on its way on every connection"
    echo round >&7
    t0=$(date +%s%N)
    ac_signal_director 0 KILL
    wait_until 10 has_nexthops 2 || true
    withdrawn_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "\$ ip -n ${AP}r route show $AVIP        # d0's nexthop gone after $withdrawn_ms ms"
    ip -n "${AP}r" route show $AVIP
    ac_client_read
    lost=$LOST
    ac_client_step round
    lost=$((lost + LOST))
    kept=$OK
    echo "the lines sent as d0 died, and one more on every connection: $kept answered by the real server they began on, $lost lost"
    ac_client_stop
    [ "$lost" = 0 ] && [ "$kept" = "$opened" ] && [ "$opened" -ge 300 ] &&
        [ "$withdrawn_ms" -lt 1000 ] && ok=0
    detail="d0 killed: route withdrawn after $withdrawn_ms ms; $kept/$opened connections kept, $lost lost"
fi
verdict "act 7, active-active" $ok "$detail"

# --- the end -------------------------------------------------------------------------------
say "still running; look around"
cat <<EOF
  ip netns exec $P-d2 $BIN/lvsadm --rundir $RUNDIR2 -L -n           # the active director now
  ip netns exec $P-d2 $BIN/lvsadm --rundir $RUNDIR2 -L -n --stats
  ip netns exec $P-d $BIN/lvsadm --rundir $RUNDIR -L --daemon      # the backup: sync state
  ip netns exec $P-c curl http://$VIP/            ip netns exec $P-c curl http://$VIP:8080/static/x
  ip netns exec $P-d2 nft list table inet lvs_director
  ip netns exec $P-d2 $BIN/lvs-monitord ctl --rundir $RUNDIR2 list
  tail -f $LOG2 $HBLOG2 $MONLOG2           # the active director's logs
  tail -f $LOG $HBLOG $MONLOG              # the backup's
  kill -9 \$(cat $RUNDIR2/heartbeatd.pid) \$(cat $RUNDIR2/director.pid)    # fail over again
  ip -n ${AP}r route show $AVIP                   # act 7: the router's ECMP route (d1, d2)
  $BIN/lvsadm --rundir $ADIR/run1 -L -n -c        # act 7: d1's connections
  $BIN/lvs-heartbeatd --rundir $ADIR/run1 --drain # act 7: drain d1
Remove everything with:
  sudo $0 stop

== summary ($(( $(date +%s) - T0 )) s) ==
EOF
fails=0
for r in "${results[@]}"; do
    echo "$r"
    [[ $r == PASS* ]] || fails=$((fails + 1))
done
[ "$fails" = 0 ] || { echo "demo: $fails act(s) failed"; exit 1; }
