#!/usr/bin/env bash
# The network-namespace testbed: a client, a router, a director and three real servers, all in
# namespaces this script makes (nothing in the caller's namespace is touched).
#
#   client (P-c) 198.51.100.2 --- 198.51.100.1 router (P-rt) 203.0.113.254 ---+
#                2001:db8:51::2   2001:db8:51::1       2001:db8::fe           |
#                                                                             | LAN: bridge br0
#   director (P-d) 203.0.113.1, VIP 203.0.113.100 ----------------------------+ in namespace P-sw
#                  2001:db8::1, VIP 2001:db8::100                             |
#   real servers (P-r1..P-r3) 203.0.113.11 .12 .13 ---------------------------+
#                             2001:db8::11 ::12 ::13                          |
#   backup director (P-d2) 203.0.113.2, 2001:db8::2, only after `backup` -----+
#
# Every link is dual stack: each IPv4 address has an IPv6 one beside it (documentation prefix
# 2001:db8::/32, RFC 3849), and the director holds an IPv6 VIP too. IPv6 addresses are added
# `nodad` (and duplicate-address detection is off in every namespace) so that nothing waits
# for DAD; the router forwards both families.
#
# The router routes the client's traffic to the LAN, where the director answers ARP for the
# VIP: the classic LVS layout, which serves VS/NAT (real servers route through the director),
# VS/DR (real servers hold the VIP on lo and answer the client through the router) and VS/TUN.
# Addresses are documentation ranges (RFC 5737, RFC 3849), reachable only inside these
# namespaces. For IPv6 the router reaches the VIP on the LAN by neighbour discovery, which only
# the director answers: a real server holds the IPv6 VIP on lo, and Linux answers a
# neighbour solicitation only for an address of the interface it arrived on.
#
# Usage:
#   scripts/testbed.sh up PREFIX [nat|dr|tun]   build it; the mode sets the real servers' routes
#   scripts/testbed.sh down PREFIX              remove every namespace of PREFIX
#   scripts/testbed.sh mode PREFIX nat|dr|tun [GW [GW6]]
#                                               switch the real servers' routes (nat: default
#                                               routes via GW and GW6, default the director's
#                                               addresses; give floating addresses that move
#                                               with the VIP when two directors share the work)
#   scripts/testbed.sh backup PREFIX            add a second director P-d2, 203.0.113.2 and
#                                               2001:db8::2 on the LAN
#   scripts/testbed.sh http PREFIX              start a tiny HTTP server on port 80 of each real
#                                               server (both families), answering with its name
#   scripts/testbed.sh exec PREFIX NODE CMD...  run CMD in P-NODE (c, rt, d, r1, r2, r3, d2)
set -euo pipefail

VIP=203.0.113.100
RS=(203.0.113.11 203.0.113.12 203.0.113.13)
DIRECTOR=203.0.113.1
BACKUP=203.0.113.2
ROUTER_LAN=203.0.113.254
VIP6=2001:db8::100
RS6=(2001:db8::11 2001:db8::12 2001:db8::13)
DIRECTOR6=2001:db8::1
BACKUP6=2001:db8::2
ROUTER_LAN6=2001:db8::fe

die() { echo "testbed: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
cmd=${1:-}; P=${2:-}
[ -n "$cmd" ] && [ -n "$P" ] || die "usage: $0 up|down|mode|backup|http|exec PREFIX ..."
case "$P" in *[!a-zA-Z0-9_-]*) die "prefix must be [a-zA-Z0-9_-]";; esac
[ ${#P} -le 10 ] || die "prefix must be at most 10 characters (interface names are short)"

nodes=(c rt d r1 r2 r3 sw)
all_nodes=(c rt d d2 r1 r2 r3 sw)
inns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

# A new namespace: lo up, and no duplicate-address detection on any interface made in it
# (set before the interfaces exist, so that their link-local addresses do not wait either).
new_ns() {
    ip netns add "$P-$1"
    inns "$1" ip link set lo up
    inns "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0
    inns "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0
}

# An IPv6 address without DAD: usable at once.
addr6() { inns "$1" ip -6 addr add "$2" dev "$3" nodad; }

# No segmentation offloads on the virtual wires: a veth hands 64 KiB TSO/GSO packets across
# unsegmented, which no real NIC would deliver to the director. Checksum offload stays on, so
# the director sees the partial checksums of locally generated packets, as it must handle.
# Without ethtool (a demo on a bare machine) the offloads stay on; under scripts/test.sh
# (LVS_TESTS_REQUIRE_ALL) that would change what the tests see, so it is an error there.
no_offload() {
    if command -v ethtool >/dev/null; then
        inns "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
    elif [ "${LVS_TESTS_REQUIRE_ALL:-0}" != 0 ]; then
        die "ethtool is missing (Debian package ethtool; scripts/test.sh installs it)"
    fi
}

down() {
    for n in "${all_nodes[@]}"; do
        if [ -f "/run/lvs-testbed/$P-$n.pids" ]; then
            xargs -r kill 2>/dev/null < "/run/lvs-testbed/$P-$n.pids" || true
            rm -f "/run/lvs-testbed/$P-$n.pids"
        fi
        # Anything still running inside goes too, so that the namespace can really go away.
        pids=$(ip netns pids "$P-$n" 2>/dev/null || true)
        [ -n "$pids" ] && kill $pids 2>/dev/null || true
        ip netns del "$P-$n" 2>/dev/null || true
    done
}

# Connect P-$1's interface $2 to the LAN bridge.
lan_port() {
    local node=$1 ifname=$2
    local port="${node}-lan"
    ip -n "$P-sw" link add "$port" type veth peer name "$ifname" netns "$P-$node"
    ip -n "$P-sw" link set "$port" master br0 up
    no_offload sw "$port"
    no_offload "$node" "$ifname"
}

set_mode() {
    local gw gw6
    case "$1" in
        nat) gw=${2:-$DIRECTOR} ;;
        dr|tun) gw=$ROUTER_LAN ;;
        *) die "mode must be nat, dr or tun" ;;
    esac
    case "$1" in
        nat) gw6=${3:-$DIRECTOR6} ;;
        *) gw6=$ROUTER_LAN6 ;;
    esac
    for i in 1 2 3; do
        inns "r$i" ip route replace default via "$gw"
        inns "r$i" ip -6 route replace default via "$gw6"
        if [ "$1" = dr ] || [ "$1" = tun ]; then
            inns "r$i" ip addr replace "$VIP/32" dev lo
            inns "r$i" ip -6 addr replace "$VIP6/128" dev lo nodad
        else
            inns "r$i" ip addr del "$VIP/32" dev lo 2>/dev/null || true
            inns "r$i" ip -6 addr del "$VIP6/128" dev lo 2>/dev/null || true
        fi
    done
}

up() {
    local mode=${1:-nat}
    down
    for n in "${nodes[@]}"; do
        new_ns "$n"
    done
    # No multicast snooping: neighbour solicitations go to solicited-node groups, and a
    # snooping bridge without an MLD querier may stop flooding them.
    inns sw ip link add br0 type bridge mcast_snooping 0
    inns sw ip link set br0 up
    # A real switch forwards frames without looking at IP. With br_netfilter loaded (built
    # into some kernels), a new namespace starts with bridge-nf-call-* = 1, and every frame
    # crossing br0 then runs the IPv4/IPv6/ARP netfilter hooks in the sender's context:
    # cost no LAN has, charged to whoever sends (the director's workers in the benchmarks).
    # Without br_netfilter the keys do not exist, and there is nothing to switch off.
    local key
    for key in iptables ip6tables arptables; do
        [ -e "/proc/sys/net/bridge/bridge-nf-call-$key" ] || continue
        inns sw sysctl -qw "net.bridge.bridge-nf-call-$key=0"
    done

    # Client <-> router: a point-to-point veth.
    ip -n "$P-c" link add eth0 type veth peer name eth0 netns "$P-rt"
    no_offload c eth0
    no_offload rt eth0
    inns c ip addr add 198.51.100.2/24 dev eth0
    addr6 c 2001:db8:51::2/64 eth0
    inns c ip link set eth0 up
    inns c ip route add default via 198.51.100.1
    inns c ip -6 route add default via 2001:db8:51::1
    inns rt ip addr add 198.51.100.1/24 dev eth0
    addr6 rt 2001:db8:51::1/64 eth0
    inns rt ip link set eth0 up

    lan_port rt eth1
    inns rt ip addr add "$ROUTER_LAN/24" dev eth1
    addr6 rt "$ROUTER_LAN6/64" eth1
    inns rt ip link set eth1 up
    inns rt sysctl -qw net.ipv4.ip_forward=1
    inns rt sysctl -qw net.ipv6.conf.all.forwarding=1

    lan_port d eth0
    inns d ip addr add "$DIRECTOR/24" dev eth0
    inns d ip addr add "$VIP/32" dev eth0
    addr6 d "$DIRECTOR6/64" eth0
    addr6 d "$VIP6/128" eth0
    inns d ip link set eth0 up
    inns d ip route add default via "$ROUTER_LAN"
    inns d ip -6 route add default via "$ROUTER_LAN6"

    for i in 1 2 3; do
        lan_port "r$i" eth0
        inns "r$i" ip addr add "${RS[$((i-1))]}/24" dev eth0
        addr6 "r$i" "${RS6[$((i-1))]}/64" eth0
        inns "r$i" ip link set eth0 up
        # VS/DR: the real server holds the VIP on lo but must never answer ARP for it.
        inns "r$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1
        inns "r$i" sysctl -qw net.ipv4.conf.all.arp_announce=2
        inns "r$i" sysctl -qw net.ipv4.conf.eth0.arp_ignore=1
        inns "r$i" sysctl -qw net.ipv4.conf.eth0.arp_announce=2
    done
    set_mode "$mode"
}

# A second director on the LAN, for failover (lvs-heartbeatd) and connection sync.
backup() {
    new_ns d2
    lan_port d2 eth0
    inns d2 ip addr add "$BACKUP/24" dev eth0
    addr6 d2 "$BACKUP6/64" eth0
    inns d2 ip link set eth0 up
    inns d2 ip route add default via "$ROUTER_LAN"
    inns d2 ip -6 route add default via "$ROUTER_LAN6"
}

# A tiny HTTP/1.1 server per real server, naming itself in every answer; keep-alive capable.
http() {
    mkdir -p /run/lvs-testbed
    for i in 1 2 3; do
        inns "r$i" python3 -c '
import http.server, socket, socketserver, sys
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
    # One socket for both families: IPv4 clients arrive as ::ffff:a.b.c.d.
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
S(("::", 80), H).serve_forever()
' "r$i" >/dev/null 2>&1 &
        echo $! >> "/run/lvs-testbed/$P-r$i.pids"
    done
    # Ready when each answers locally.
    for i in 1 2 3; do
        for _ in $(seq 1 100); do
            inns "r$i" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' 2>/dev/null && break
            sleep 0.05
        done
    done
}

case "$cmd" in
    up) up "${3:-nat}" ;;
    down) down ;;
    mode) set_mode "${3:?mode}" "${4:-}" "${5:-}" ;;
    backup) backup ;;
    http) http ;;
    exec) shift 2; node=$1; shift; inns "$node" "$@" ;;
    *) die "unknown command $cmd" ;;
esac
