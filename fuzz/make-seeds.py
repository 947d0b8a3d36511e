#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/.

The seeds are committed; run this again only to change them (it rewrites every file it
makes, and leaves other files alone). Sources: packets built here field by field with real
checksums, the sample configurations in etc/, lvsadm command lines from the grammar's tests
(fuzz/seeds/lvsadm-lines.txt), and frames of the control protocol encoded as bincode's
standard configuration does.
"""

import hashlib
import hmac
import os
import re
import struct
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
SEEDS = os.path.join(FUZZ, "seeds")


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip(src, dst, proto, payload, ttl=64, df=True, ident=0x1234, tos=0):
    total = 20 + len(payload)
    flags = 0x4000 if df else 0
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, ident, flags, ttl, proto, 0, bytes(src), bytes(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def l4(src, dst, proto, seg, csum_off, udp_zero=False):
    if udp_zero:
        return seg
    pseudo = struct.pack("!4s4sBBH", bytes(src), bytes(dst), 0, proto, len(seg))
    c = csum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:csum_off] + struct.pack("!H", c) + seg[csum_off + 2:]


def tcp(src, dst, sport, dport, flags=0x02, payload=b""):
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return ip(src, dst, 6, l4(src, dst, 6, seg, 16))


def udp(src, dst, sport, dport, payload=b"", zero=False):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ip(src, dst, 17, l4(src, dst, 17, seg, 6, zero))


def icmp(src, dst, typ, code, rest, body):
    msg = struct.pack("!BBH", typ, code, 0) + rest + body
    msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
    return ip(src, dst, 1, msg, df=False)


def eth(packet, vlan=None, ether_type=0x0800):
    hdr = bytes([2, 0, 0, 0, 0, 0xAA]) + bytes([2, 0, 0, 0, 0, 0xBB])
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, vlan)
    return hdr + struct.pack("!H", ether_type) + packet


# IPv6 (RFC 8200). An extension header is (next-header value that names it, its bytes); the
# first byte of each, its own next header, is filled in when the chain is laid out.
HOP_BY_HOP, ROUTING, FRAGMENT, AUTH, DEST_OPTS = 0, 43, 44, 51, 60


def opts_header(kind, units=0):
    """Hop-by-hop or destination options of (units + 1) * 8 bytes, filled with PadN."""
    pad = (units + 1) * 8 - 2
    return kind, bytes([0, units, 1, pad - 2]) + bytes(pad - 2)


def routing_header(segments_left=0):
    """A segment routing header (type 4) naming one address."""
    return ROUTING, bytes([0, 2, 4, segments_left]) + bytes(4) + bytes(VIP6)


def fragment_header(offset, more, ident=0x1234):
    return FRAGMENT, struct.pack("!BBHI", 0, 0, offset | int(more), ident)


def auth_header():
    """An authentication header (RFC 4302) with a 12-byte ICV: (4 + 2) * 4 bytes."""
    return AUTH, struct.pack("!BBHII", 0, 4, 0, 0x100, 1) + bytes(12)


def ip6(src, dst, nh, payload, hlim=64, tclass=0, flow=0, ext=()):
    chain = b""
    kinds = [k for k, _ in ext] + [nh]
    for (_, h), following in zip(ext, kinds[1:]):
        chain += bytes([following]) + h[1:]
    first = (6 << 28) | (tclass << 20) | flow
    h = struct.pack("!IHBB16s16s", first, len(chain) + len(payload), kinds[0], hlim, bytes(src), bytes(dst))
    return h + chain + payload


def l4_6(src, dst, proto, seg, csum_off):
    pseudo = struct.pack("!16s16sI3xB", bytes(src), bytes(dst), len(seg), proto)
    c = csum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:csum_off] + struct.pack("!H", c) + seg[csum_off + 2:]


def tcp6(src, dst, sport, dport, flags=0x02, payload=b"", **kw):
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return ip6(src, dst, 6, l4_6(src, dst, 6, seg, 16), **kw)


def udp6(src, dst, sport, dport, payload=b"", **kw):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ip6(src, dst, 17, l4_6(src, dst, 17, seg, 6), **kw)


def icmp6(src, dst, typ, code, rest, body, **kw):
    msg = struct.pack("!BBH", typ, code, 0) + rest + body
    return ip6(src, dst, 58, l4_6(src, dst, 58, msg, 2), **kw)


def eth6(packet, vlan=None):
    return eth(packet, vlan, 0x86DD)


CLIENT6 = [0x20, 0x01, 0x0D, 0xB8, 0, 1] + [0] * 9 + [7]
VIP6 = [0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [0x10]
RS6 = [0xFD] + [0] * 14 + [0x21]
ROUTER6 = [0xFD] + [0] * 14 + [1]


def packet_params(flags, cut, addr, port, mtu):
    """The parameter block of fuzz_targets/packet.rs (lvs_fuzz::packet_input): flags (1: partial
    checksum, 2: cut, 4: IPv6 address, 8: tunnel source of the other family, 16: fix the
    checksums before parsing), bytes to cut, port, MTU, then the address in 16 bytes (IPv4 in
    the first four)."""
    return struct.pack("!BBHH16s", flags, cut, port, mtu, bytes(addr).ljust(16, b"\0"))


def packet_seeds():
    client, vip, rs = [198, 51, 100, 7], [192, 0, 2, 10], [10, 0, 0, 2]
    frames = {
        "tcp-syn": eth(tcp(client, vip, 40000, 80)),
        "tcp-data": eth(tcp(client, vip, 40000, 80, 0x18, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
        "tcp-reply": eth(tcp(rs, client, 8080, 40000, 0x12)),
        "tcp-vlan": eth(tcp(client, vip, 40001, 443), vlan=42),
        "tcp-ttl1": eth(ip(client, vip, 6, l4(client, vip, 6, struct.pack("!HHIIBBHHH", 1, 80, 0, 0, 0x50, 2, 1, 0, 0), 16), ttl=1)),
        "tcp-big-df": eth(tcp(client, vip, 40002, 80, 0x18, b"x" * 1460)),
        "udp-dns": eth(udp(client, vip, 5353, 53, b"\x12\x34\x01\x00\x00\x01")),
        "udp-nocsum": eth(udp(client, vip, 5353, 53, b"abc", zero=True)),
        "udp-padded": eth(udp(client, vip, 1, 2, b"")) + b"\0" * 18,
        "icmp-echo": eth(icmp(client, vip, 8, 0, b"\0\1\0\1", b"ping")),
        "icmp-unreach-tcp": eth(icmp(client, vip, 3, 4, b"\0\0\x05\xdc", tcp(vip, client, 80, 40000, 0x10)[:28])),
        "icmp-unreach-udp": eth(icmp(rs, client, 3, 3, b"\0" * 4, udp(client, rs, 5353, 53, b"q"))),
        "icmp-time-exceeded": eth(icmp([10, 0, 0, 1], client, 11, 0, b"\0" * 4, tcp(client, rs, 40000, 8080)[:40])),
        "icmp-unreach-icmp": eth(icmp(client, vip, 3, 1, b"\0" * 4, icmp(vip, client, 8, 0, b"\0\1\0\1", b""))),
    }
    # The base seeds have their checksums fixed, so that their mutations reach past them; a cut
    # of 5 bytes makes a stale Packet; -other gives every rewrite an address of the other
    # family, which it must refuse.
    v4_params = {
        "": packet_params(16, 0, rs, 8080, 1500),
        "-partial": packet_params(1, 0, [10, 0, 0, 3], 80, 1480),
        "-stale": packet_params(2, 5, vip, 443, 576),
        "-other": packet_params(4, 0, RS6, 8080, 1500),
    }
    for name, frame in frames.items():
        for suffix, p in v4_params.items():
            write("packet", name + suffix, p + frame)

    reply6 = tcp6(VIP6, CLIENT6, 80, 40000, 0x10, b"HTTP/1.1 200 OK\r\n")
    echo6 = icmp6(CLIENT6, VIP6, 128, 0, b"\0\1\0\1", b"ping")
    frames6 = {
        "tcp6-syn": eth6(tcp6(CLIENT6, VIP6, 40000, 80, tclass=0xB8, flow=0x12345)),
        "tcp6-data": eth6(tcp6(CLIENT6, VIP6, 40000, 80, 0x18, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
        "tcp6-reply": eth6(tcp6(RS6, CLIENT6, 8080, 40000, 0x12)),
        "tcp6-vlan": eth6(tcp6(CLIENT6, VIP6, 40001, 443), vlan=42),
        "tcp6-hlim1": eth6(tcp6(CLIENT6, VIP6, 40000, 80, hlim=1)),
        "tcp6-big": eth6(tcp6(CLIENT6, VIP6, 40002, 80, 0x18, b"x" * 1440)),
        "udp6-dns": eth6(udp6(CLIENT6, VIP6, 5353, 53, b"\x12\x34\x01\x00\x00\x01")),
        "udp6-padded": eth6(udp6(CLIENT6, VIP6, 1, 2, b"")) + b"\0" * 18,
        "icmp6-echo": eth6(echo6),
        "icmp6-unreach-tcp": eth6(icmp6(CLIENT6, VIP6, 1, 4, b"\0" * 4, reply6)),
        "icmp6-too-big-tcp": eth6(icmp6(CLIENT6, VIP6, 2, 0, struct.pack("!I", 1280), reply6[:48])),
        "icmp6-time-exceeded": eth6(icmp6(ROUTER6, CLIENT6, 3, 0, b"\0" * 4, tcp6(CLIENT6, RS6, 40000, 8080)[:48])),
        "icmp6-unreach-udp": eth6(icmp6(RS6, CLIENT6, 1, 4, b"\0" * 4, udp6(CLIENT6, RS6, 5353, 53, b"q"))),
        "icmp6-unreach-icmp6": eth6(icmp6(VIP6, CLIENT6, 1, 0, b"\0" * 4, echo6)),
        "icmp6-unreach-ext": eth6(icmp6(CLIENT6, VIP6, 1, 4, b"\0" * 4,
                                        tcp6(VIP6, CLIENT6, 80, 40000, 0x10, ext=[opts_header(DEST_OPTS, 1)]))),
        "ext-hbh-tcp": eth6(tcp6(CLIENT6, VIP6, 40000, 80, ext=[opts_header(HOP_BY_HOP)])),
        "ext-dst-udp": eth6(udp6(CLIENT6, VIP6, 5353, 53, b"q", ext=[opts_header(DEST_OPTS, 2)])),
        "ext-frag-atomic": eth6(tcp6(CLIENT6, VIP6, 40000, 80, ext=[fragment_header(0, False)])),
        "ext-frag-first": eth6(tcp6(CLIENT6, VIP6, 40000, 80, ext=[fragment_header(0, True)])),
        "ext-frag-later": eth6(ip6(CLIENT6, VIP6, 6, b"y" * 16, ext=[fragment_header(1480, False)])),
        "ext-ah-tcp": eth6(tcp6(CLIENT6, VIP6, 40000, 80, ext=[auth_header()])),
        "ext-routing-left": eth6(tcp6(CLIENT6, VIP6, 40000, 80, ext=[routing_header(1)])),
        "ext-chain": eth6(tcp6(CLIENT6, VIP6, 40000, 80, 0x18, b"z", ext=[
            opts_header(HOP_BY_HOP), opts_header(DEST_OPTS, 1), routing_header(0),
            fragment_header(0, False), opts_header(DEST_OPTS)])),
    }
    v6_params = {
        "": packet_params(20, 0, RS6, 8080, 1500),
        "-partial": packet_params(5, 0, VIP6, 80, 1480),
        "-stale": packet_params(6, 5, VIP6, 443, 1280),
        "-other": packet_params(0, 0, rs, 8080, 1500),
        "-mixed-tunnel": packet_params(12, 0, RS6, 8080, 1500),
    }
    for name, frame in frames6.items():
        for suffix, p in v6_params.items():
            write("packet", name + suffix, p + frame)
    return frames


def http_seeds():
    reqs = {
        "get": b"GET / HTTP/1.1\r\nHost: www.example\r\n\r\n",
        "routed": b"GET /a/17 HTTP/1.1\r\nHost: img.example:8080\r\nX-Pool: 1\r\nConnection: keep-alive\r\n\r\n",
        "post-length": b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "post-chunked": b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "http10": b"GET /old HTTP/1.0\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
        "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "partial": b"GET / HTTP/1.1\r\nHost: a\r\n",
    }
    for k, v in reqs.items():
        write("l7_request", k, v)
    resps = {
        "ok-length": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        "close": b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nbody",
        "no-content": b"HTTP/1.1 204 No Content\r\n\r\n",
        "continue": b"HTTP/1.1 100 Continue\r\n\r\n",
        "keep-alive-10": b"HTTP/1.0 304 Not Modified\r\nConnection: keep-alive\r\n\r\n",
    }
    for i, (k, v) in enumerate(resps.items()):
        write("l7_response", k, bytes([0xFF - i]) + v)
    write("l7_response", "head", b"\x01HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    chunks = {
        "simple": b"5\r\nhello\r\n0\r\n\r\n",
        "ext-trailer": b"3;name=v\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n",
        "hex": b"1A\r\n" + b"z" * 26 + b"\r\nA\r\n0123456789\r\n0\r\n\r\nNEXT",
        "incomplete": b"10\r\nabc",
    }
    for k, v in chunks.items():
        write("l7_chunked", k, b"\x04" + v)


KEY = b"0123456789abcdef0123456789abcdef"


def wire_seeds():
    for state in range(4):
        for medium in (0, 1):
            body = bytearray(56)
            body[0:4] = b"LVHB"
            body[4] = 1
            body[5] = state
            struct.pack_into("!HIHB", body, 6, 0x0001, 2, 100, medium)
            struct.pack_into("!QQQQI", body, 16, 0x1122334455667788, 1 + state, 3, 1_700_000_000_000, 9)
            sealed = bytes(body) + hmac.new(KEY, bytes(body), hashlib.sha256).digest()
            write("heartbeat_wire", "sealed-%d-%d" % (state, medium), bytes([medium << 1]) + sealed)
            write("heartbeat_wire", "body-%d-%d" % (state, medium), bytes([1 | (medium << 1)]) + bytes(body))

    def record(proto, fwd, state, cport):
        v4 = lambda a: bytes(10) + b"\xff\xff" + bytes(a)
        return (bytes([proto, fwd, state, 0]) + v4([198, 51, 100, 7]) + struct.pack("!H", cport)
                + v4([192, 0, 2, 10]) + struct.pack("!H", 80) + v4([10, 0, 0, 2]) + struct.pack("!H", 8080)
                + struct.pack("!II", 900_000, 0))

    for kind in range(1, 6):
        recs = [record(6, 0, 3, 40000), record(17, 1, 11, 5353)] if kind in (1, 3) else []
        hdr = bytearray(36)
        hdr[0:4] = b"LVSY"
        hdr[4] = 1
        hdr[5] = kind
        hdr[7] = 1
        struct.pack_into("!QQIIH", hdr, 8, 0xABCDEF, 7, 1 if kind >= 2 else 0, 0, len(recs))
        body = bytes(hdr) + b"".join(recs)
        sealed = body + hmac.new(KEY, body, hashlib.sha256).digest()
        write("sync_wire", "sealed-kind%d" % kind, b"\0" + sealed)
        write("sync_wire", "body-kind%d" % kind, b"\1" + body)


def frame(body):
    return struct.pack("!I", len(body)) + body


def proto_seeds():
    # bincode standard(): varint integers (< 251: one byte), enum variants as varint u32,
    # strings and vectors with a varint length.
    hello = bytes([0, 1, 0])  # ClientFrame::Hello(Hello { version: 1, role: Lvsadm })
    ping = bytes([1, 7, 0])  # ClientFrame::Request { id: 7, request: Ping }
    subscribe = bytes([1, 8, 1, 2, 0, 2])  # Request::Subscribe { topics: [Servers, Config] }
    hello_ok = bytes([0, 1, 12]) + b"lvs-director"  # ServerFrame::HelloOk
    error = bytes([1, 2, 5]) + b"nope!"  # ServerFrame::Error { code, message }
    write("proto_frame", "hello-ping", b"\x05" + frame(hello) + frame(ping))
    write("proto_frame", "subscribe", b"\x02" + frame(subscribe))
    write("proto_frame", "hello-ok", b"\x09" + frame(hello_ok) + frame(error))
    write("proto_frame", "truncated", b"\x01" + frame(ping)[:5])
    write("proto_frame", "too-large", b"\x00" + struct.pack("!I", 1 << 20) + b"x")


def config_seeds():
    etc = os.path.join(ROOT, "etc")
    pairs = {
        "config_director": ["lvs-director.toml"],
        "config_monitord": ["lvs-monitord.toml"],
        "config_heartbeatd": ["lvs-heartbeatd.toml"],
        "config_lockmgr": ["lvs-lockmgr.toml", "lvs-lockmgr-cluster.toml"],
        "config_webmon": ["lvs-webmon.toml"],
    }
    for target, files in pairs.items():
        for f in files:
            text = open(os.path.join(etc, f)).read()
            write(target, f, text)
            # The sample with its commented-out examples switched on.
            write(target, "uncommented-" + f, re.sub(r"(?m)^# ?", "", text))
    director = open(os.path.join(etc, "lvs-director.toml")).read()
    start = director.find("# [[content_service]]")
    # The example is one commented block: it ends at the first blank line (other examples follow).
    block = []
    for l in director[start:].splitlines():
        if not l.strip():
            break
        block.append(l)
    example = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in block)
    write("config_l7", "sample-example", example)
    write("config_director", "content-example", example)
    write("config_l7", "rules", """[[content_service]]
address = "192.0.2.10"
port = 80
default_pool = "a"
client_address = "forwarded"
[[content_service.rule]]
host = "*.img.example"
path_regex = "^/x/[0-9]+$"
methods = ["GET", "HEAD"]
headers = [{ name = "X-Pool", value = "b" }]
pool = "b"
[[pool]]
name = "a"
servers = [{ address = "10.0.0.1", port = 80 }, { address = "::1", port = 8080 }]
[[pool]]
scheduler = "mh"
name = "b"
options = "table_size=251,port"
servers = [{ address = "10.0.0.2", port = 80, weight = 3 }]
""")
    monitord = open(os.path.join(etc, "lvs-monitord.toml")).read()
    alert = []
    for line in monitord[monitord.index("[alert]"):].splitlines():
        line = re.sub(r"^# ?", "", line)
        if line.strip() and "=" not in line and not line.startswith("["):
            break
        alert.append(re.sub(r"^\[alert\.?", "[", line))
    alert = "\n".join(alert).replace("[]", "", 1)
    write("config_alert", "from-monitord-sample", alert)
    write("config_alert", "mail", """node = "lb1"
dedup_window_secs = 300
flap_changes = 5
flap_window_secs = 60
[mail]
server = "127.0.0.1"
port = 25
from = "lvs@example.com"
to = ["ops@example.com", "Admin <admin@example.com>"]
starttls = "never"
[notify]
command = ["/usr/local/bin/page"]
""")
    for i, o in enumerate(["table_size=65537,port", "sh-port,sh-fallback", "a=1, b ,c=x,,", "", "offset=-1"]):
        write("sched_options", "opt%d" % i, o)


def lvsadm_seeds():
    lines = [l.rstrip("\n") for l in open(os.path.join(SEEDS, "lvsadm-lines.txt")) if l.strip()]
    for i, line in enumerate(lines):
        write("lvsadm_grammar", "line%03d" % i, "\0".join(line.split()))
    write("lvsadm_grammar", "rules-file", "\n".join(
        ["-A -t 192.0.2.1:80 -s rr", "-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1",
         "-A -u 192.0.2.1:53 -s sh -b sh-port -p 300", "-a -u 192.0.2.1:53 -r 10.0.0.3:53 -g -w 2",
         "-A -f 7 -s wlc", "-a -f 7 -r 10.0.0.4 -i -x 100 -y 50", ""]))


def main():
    packet_seeds()
    http_seeds()
    wire_seeds()
    proto_seeds()
    config_seeds()
    lvsadm_seeds()
    for t in sorted(os.listdir(SEEDS)):
        p = os.path.join(SEEDS, t)
        if os.path.isdir(p):
            print("%-20s %3d seeds" % (t, len(os.listdir(p))))


if __name__ == "__main__":
    sys.exit(main())
