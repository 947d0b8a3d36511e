#!/usr/bin/env bash
# The main job (README): a whole LVS cluster in network namespaces, with real traffic.
#
#   sudo scripts/demo.sh        build (release), bring up the testbed (prefix lvsdemo: a client,
#                               a router, the director, three real servers with HTTP servers),
#                               start lvs-director with two workers, configure VS/NAT with rr,
#                               send HTTP from the client and show lvsadm's listings; then switch
#                               to VS/DR with wrr weights; finally start lvs-monitord with HTTP
#                               checks, stop the HTTP server on r2 and watch it leave scheduling
#                               (weight 0) and come back. Everything is left running.
#   sudo scripts/demo.sh stop   stop lvs-monitord and the director (SIGTERM: it removes its
#                               nftables table) and remove the namespaces.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

P=lvsdemo
RUNDIR=/run/lvsdemo
LOG=/tmp/lvsdemo-director.log
MONLOG=/tmp/lvsdemo-monitord.log
VIP=203.0.113.100
RS=(203.0.113.11 203.0.113.12 203.0.113.13)

die() { echo "demo: $*" >&2; exit 1; }
say() { printf '\n== %s ==\n' "$*"; }
[ "$(id -u)" -eq 0 ] || die "needs root for network namespaces: sudo $0 ${1:-}"

adm() { ip netns exec "$P-d" target/release/lvsadm --rundir "$RUNDIR" "$@"; }
show() { echo "\$ lvsadm $*"; adm "$@"; }
client() { ip netns exec "$P-c" "$@"; }

stop_daemon() { # NAME: SIGTERM to <rundir>/NAME.pid, wait up to 10 s
    if [ -f "$RUNDIR/$1.pid" ]; then
        pid=$(cat "$RUNDIR/$1.pid")
        if kill -TERM "$pid" 2>/dev/null; then
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && echo "demo: lvs-$1 ($pid) did not stop" >&2
        fi
    fi
    return 0
}

stop() {
    stop_daemon monitord
    stop_daemon director
    if ip netns list | grep -q "^$P-"; then
        scripts/testbed.sh down "$P"
    fi
    rm -rf "$RUNDIR"
}

case "${1:-start}" in
    stop) stop; echo "demo: stopped (director gone, namespaces $P-* removed)"; exit 0 ;;
    start) ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

# What the demo needs from Debian, installed when missing.
declare -A need=([ip]=iproute2 [ethtool]=ethtool [nft]=nftables [python3]=python3 [curl]=curl
                 [gcc]=gcc [sysctl]=procps)
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
say "building (release)"
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    sudo -u "$SUDO_USER" env HOME="$home" PATH="$home/.cargo/bin:$PATH" \
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

say "testbed $P: client 198.51.100.2, router, director 203.0.113.1 with VIP $VIP, real servers ${RS[*]}"
stop >/dev/null 2>&1 || true
scripts/testbed.sh up "$P" nat
scripts/testbed.sh http "$P"

say "starting lvs-director (2 workers, log: $LOG)"
mkdir -p "$RUNDIR"
printf 'workers = 2\n' > "$RUNDIR/director.toml"
ip netns exec "$P-d" setsid target/release/lvs-director -f --no-syslog --rundir "$RUNDIR" \
    -c "$RUNDIR/director.toml" </dev/null >"$LOG" 2>&1 &
for _ in $(seq 1 100); do
    adm -L -n >/dev/null 2>&1 && break
    sleep 0.1
done
adm -L -n >/dev/null 2>&1 || { cat "$LOG" >&2; die "lvs-director did not start"; }
echo "lvs-director running, pid $(cat "$RUNDIR/director.pid")"

say "VS/NAT: one virtual service, round robin over three real servers"
show -A -t "$VIP:80" -s rr
for rs in "${RS[@]}"; do show -a -t "$VIP:80" -r "$rs:80" -m; done
show -L -n

say "30 HTTP requests from the client to http://$VIP/"
for i in $(seq 1 30); do
    printf '%s ' "$(client curl -s -m 5 "http://$VIP/" || echo FAILED)"
    [ $((i % 10)) -eq 0 ] && echo
done

say "a burst: 600 requests, 8 at a time, one connection each"
client curl -s -m 30 -H 'Connection: close' --parallel --parallel-max 8 \
    "http://$VIP/?n=[1-600]" 2>/dev/null | sort | uniq -c
sleep 3 # the rate estimator samples every 2 s
show -L -n --stats
show -L -n --rate
echo "\$ lvsadm -L -n -c | head"
adm -L -n -c | head

say "VS/DR: the real servers answer the client directly; weighted round robin 3:2:1"
scripts/testbed.sh mode "$P" dr
show -E -t "$VIP:80" -s wrr
w=(3 2 1)
for i in 0 1 2; do show -e -t "$VIP:80" -r "${RS[$i]}:80" -g -w "${w[$i]}"; done
show -Z
echo "12 requests:"
for i in $(seq 1 12); do printf '%s ' "$(client curl -s -m 5 "http://$VIP/" || echo FAILED)"; done
echo
client curl -s -m 30 -H 'Connection: close' --parallel --parallel-max 8 \
    "http://$VIP/?n=[1-300]" 2>/dev/null | sort | uniq -c
show -L -n --stats
echo "(OutPkts stay 0: with VS/DR the replies go from the real servers straight to the router)"

say "lvs-monitord: HTTP checks of the three servers (interval 1 s, fall 3, rise 2; log: $MONLOG)"
mon() { ip netns exec "$P-d" target/release/lvs-monitord ctl --rundir "$RUNDIR" "$@"; }
weight_of() { adm -L -n | awk -v rs="$1:80" '$1 == "->" && $2 == rs { print $4 }'; }
{
    printf '[[service]]\nvip = "%s"\nport = 80\n' "$VIP"
    printf '[[service.check]]\ntype = "http"\npath = "/"\n'
    for i in 0 1 2; do
        printf '[[service.server]]\naddress = "%s"\nweight = %s\n' "${RS[$i]}" "${w[$i]}"
    done
} > "$RUNDIR/monitord.toml"
ip netns exec "$P-d" setsid target/release/lvs-monitord -f --no-syslog --rundir "$RUNDIR" \
    -c "$RUNDIR/monitord.toml" </dev/null >"$MONLOG" 2>&1 &
for _ in $(seq 1 100); do
    mon list >/dev/null 2>&1 && break
    sleep 0.1
done
mon list >/dev/null 2>&1 || { cat "$MONLOG" >&2; die "lvs-monitord did not start"; }
echo "lvs-monitord running, pid $(cat "$RUNDIR/monitord.pid")"
sleep 2
echo "\$ lvs-monitord ctl list"
mon list

say "the HTTP server on r2 (${RS[1]}) stops"
ip netns pids "$P-r2" | xargs -r kill
t0=$(date +%s.%N)
for _ in $(seq 1 100); do
    [ "$(weight_of "${RS[1]}")" = 0 ] && break
    sleep 0.1
done
t1=$(date +%s.%N)
[ "$(weight_of "${RS[1]}")" = 0 ] || { cat "$MONLOG" >&2; die "r2 did not leave scheduling"; }
echo "r2 out of scheduling $(python3 -c "print(round($t1 - $t0, 1))") s after its HTTP server stopped"
show -L -n
echo "12 requests (r1 and r3 only):"
for i in $(seq 1 12); do printf '%s ' "$(client curl -s -m 5 "http://$VIP/" || echo FAILED)"; done
echo
grep -E 'event=(server_down|director_update)' "$MONLOG" | tail -2

say "the HTTP server on r2 is back"
scripts/testbed.sh http "$P" # r1 and r3 already listen: only r2's new server stays
for _ in $(seq 1 100); do
    [ "$(weight_of "${RS[1]}")" = "${w[1]}" ] && break
    sleep 0.1
done
[ "$(weight_of "${RS[1]}")" = "${w[1]}" ] || { cat "$MONLOG" >&2; die "r2 did not come back"; }
show -L -n
echo "12 requests:"
for i in $(seq 1 12); do printf '%s ' "$(client curl -s -m 5 "http://$VIP/" || echo FAILED)"; done
echo
grep -E 'event=(server_up|director_update)' "$MONLOG" | tail -2

say "still running; look around"
cat <<EOF
  ip netns exec $P-d target/release/lvsadm --rundir $RUNDIR -L -n
  ip netns exec $P-d target/release/lvsadm --rundir $RUNDIR -L -n --stats
  ip netns exec $P-d target/release/lvsadm --rundir $RUNDIR -L -n -c
  ip netns exec $P-c curl http://$VIP/
  ip netns exec $P-d nft list table inet lvs_director
  kill -USR1 \$(cat $RUNDIR/director.pid); tail $LOG     # drop counters
  tail -f $LOG                                          # the director's log
  ip netns exec $P-d target/release/lvs-monitord ctl --rundir $RUNDIR list
  ip netns exec $P-d target/release/lvs-monitord ctl --rundir $RUNDIR maintenance on -t $VIP:80 -r ${RS[0]}:80
  tail -f $MONLOG                                 # the monitor's log
Remove everything with:
  sudo $0 stop
EOF
