//! Steering: `PACKET_FANOUT` with a classic BPF program that sends both directions of a
//! VS/NAT connection to the same worker.
//!
//! A request is `client:cport -> VIP:vport`, its NAT reply `realserver:rport -> client:cport`:
//! what they share is the client's address and port, so that is what we hash.
//!
//! * IPv4, not an ICMP error: if the destination is a VIP, hash (source address, source
//!   port), else (destination address, destination port).
//! * ICMP error (type 3, 11 or 12): the rule applied to the embedded original header,
//!   reversed: if its source is a VIP, hash (embedded destination, embedded destination
//!   port), else (embedded source, embedded source port).
//! * Ports are read for TCP and UDP only, and not from fragments (0 otherwise).
//! * IPv6 (ethertype 0x86DD): the same rules, with ICMPv6 errors (types 1 to 4) in place of
//!   ICMP errors. The 16-byte address is folded into 32 bits (the XOR of its four words)
//!   before the same mix with the port; the VIP comparison uses all 16 bytes.
//! * IPv6 extension headers are walked as the data plane walks them (hop-by-hop 0, routing
//!   43, destination options 60, authentication 51, fragment 44; up to [`EXT_HEADERS`]), in
//!   the packet and in the one an ICMPv6 error quotes, so that a flow whose packets carry such
//!   headers in one direction only still hashes the same both ways, and a first fragment
//!   (offset 0, which the data plane forwards) goes with its flow. A later fragment, any other
//!   next header or a longer chain gives no ports: such a packet hashes by address alone, the
//!   same for all of them from one client (the data plane drops them anyway).
//! * Everything else (not IP, too short to read what the rule needs) goes to member 0; so
//!   does all IPv6 when no VIP is IPv6 (the IPv6 part of the program is left out then: it
//!   costs about 600 of the 4096 instructions a program may have).
//!
//! IPv4 headers are assumed to be 20 bytes long (the director drops IP options).
//!
//! A fanout program runs on the skb as the protocol layer sees it: data starts at the
//! network header, not at the Ethernet header (`fanout_demux_bpf` in af_packet.c), the
//! ethertype comes from the ancillary `SKF_AD_PROTOCOL` load, an out-of-bounds load ends
//! the program with 0, and the member is the return value modulo the number of members.
//! Members are numbered in the order they joined; [`open_fanout`] joins them in order.
//!
//! [`fanout_hash`] is the same function in Rust, for tests and for backends (AF_XDP) that
//! steer in user space; [`client_hash`] is its value for a known client address and port.

use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};

use libc::sock_filter;

use crate::error::{Error, Result};
use crate::iface::Interface;
use crate::rx::{RxConfig, RxRing};
use crate::sys;

/// First multiplier of the hash (golden ratio).
const K1: u32 = 0x9e37_79b1;
/// Second multiplier of the hash (murmur3's).
const K2: u32 = 0x85eb_ca6b;
/// IPv4 VIP comparisons per run of the chain (a conditional jump reaches at most 255 ahead).
const GROUP: usize = 128;
/// IPv6 VIPs per run of the chain: each takes eight instructions (four loads, four
/// compares).
const GROUP6: usize = 31;
/// IPv6 extension headers walked before the transport header is given up on (as many as the
/// data plane's parser walks).
pub const EXT_HEADERS: usize = 8;
/// Ethertypes.
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

/// The steering hash of an (address, port) pair.
pub const fn mix(addr: u32, port: u16) -> u32 {
    let h = addr.wrapping_mul(K1) ^ port as u32;
    let h = h.wrapping_mul(K2);
    h ^ (h >> 16)
}

/// An IPv6 address folded into 32 bits: the XOR of its four big-endian words.
pub const fn fold(addr: Ipv6Addr) -> u32 {
    let w = words(addr);
    w[0] ^ w[1] ^ w[2] ^ w[3]
}

const fn words(addr: Ipv6Addr) -> [u32; 4] {
    let o = addr.octets();
    [
        u32::from_be_bytes([o[0], o[1], o[2], o[3]]),
        u32::from_be_bytes([o[4], o[5], o[6], o[7]]),
        u32::from_be_bytes([o[8], o[9], o[10], o[11]]),
        u32::from_be_bytes([o[12], o[13], o[14], o[15]]),
    ]
}

/// The steering hash of a flow whose client is `addr:port`: what [`fanout_hash`] gives every
/// packet of it, both directions (for a TCP or UDP flow of a VIP).
pub fn client_hash(addr: IpAddr, port: u16) -> u32 {
    match addr {
        IpAddr::V4(a) => mix(u32::from(a), port),
        IpAddr::V6(a) => mix(fold(a), port),
    }
}

/// The steering hash of a frame as the ring shows it (from its Ethernet header; the kernel
/// has already removed an offloaded VLAN tag). Member = hash % members.
pub fn fanout_hash(frame: &[u8], vips: &[IpAddr]) -> u32 {
    match frame {
        [_, _, _, _, _, _, _, _, _, _, _, _, a, b, l3 @ ..] => {
            fanout_hash_l3(u16::from_be_bytes([*a, *b]), l3, vips)
        }
        _ => 0,
    }
}

/// The steering hash of a network-layer packet with the given ethertype.
pub fn fanout_hash_l3(ethertype: u16, packet: &[u8], vips: &[IpAddr]) -> u32 {
    match ethertype {
        IPV4 => {
            let v4: Vec<u32> = vips.iter().filter_map(|v| v4_bits(*v)).collect();
            reference(packet, &v4).unwrap_or(0)
        }
        IPV6 => {
            let v6: Vec<[u32; 4]> = vips.iter().filter_map(|v| v6_words(*v)).collect();
            if v6.is_empty() {
                return 0;
            }
            reference6(packet, &v6).unwrap_or(0)
        }
        _ => 0,
    }
}

fn v4_bits(a: IpAddr) -> Option<u32> {
    match a {
        IpAddr::V4(a) => Some(a.into()),
        IpAddr::V6(_) => None,
    }
}

fn v6_words(a: IpAddr) -> Option<[u32; 4]> {
    match a {
        IpAddr::V6(a) => Some(words(a)),
        IpAddr::V4(_) => None,
    }
}

/// Big-endian loads from a packet; `None` out of bounds, where the program would end with 0.
struct Loads<'a>(&'a [u8]);

impl Loads<'_> {
    fn b(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    fn h(&self, at: usize) -> Option<u16> {
        self.0
            .get(at..at + 2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
    fn w(&self, at: usize) -> Option<u32> {
        self.0
            .get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn addr6(&self, at: usize) -> Option<[u32; 4]> {
        Some([
            self.w(at)?,
            self.w(at + 4)?,
            self.w(at + 8)?,
            self.w(at + 12)?,
        ])
    }
}

/// The IPv4 program's logic, load for load: `None` where the program would read out of
/// bounds.
fn reference(p: &[u8], vips: &[u32]) -> Option<u32> {
    let p = Loads(p);
    let icmp_error = p.b(9)? == 1 && matches!(p.b(20)?, 3 | 11 | 12);
    // (checked address, its port, other address, its port) and where to find them.
    let (checked, other, proto_at, frag_at, checked_port_at, other_port_at) = if icmp_error {
        (p.w(40)?, p.w(44)?, 37, 34, 48, 50)
    } else {
        (p.w(16)?, p.w(12)?, 9, 6, 22, 20)
    };
    let (checked_port, other_port) =
        if matches!(p.b(proto_at)?, 6 | 17) && p.h(frag_at)? & 0x3fff == 0 {
            (p.h(checked_port_at)?, p.h(other_port_at)?)
        } else {
            (0, 0)
        };
    Some(if vips.contains(&checked) {
        mix(other, other_port)
    } else {
        mix(checked, checked_port)
    })
}

/// Where a walk along an IPv6 header chain ended.
enum Landed {
    /// A TCP or UDP header at this offset.
    Ports(usize),
    /// An ICMPv6 header at this offset (only looked for in the outer packet).
    Icmp(usize),
    /// A fragment header, another protocol, or too many extension headers: no ports.
    Nothing,
}

/// Follows extension headers from `next` (the first next-header value) at `at`.
fn walk(p: &Loads<'_>, mut next: u8, mut at: usize, outer: bool) -> Option<Landed> {
    for _ in 0..EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: (length + 1) * 8 bytes.
            0 | 43 | 60 => {
                let after = p.b(at)?;
                at += (usize::from(p.b(at + 1)?) + 1) * 8;
                next = after;
            }
            // Authentication header: (length + 2) * 4 bytes.
            51 => {
                let after = p.b(at)?;
                at += (usize::from(p.b(at + 1)?) + 2) * 4;
                next = after;
            }
            // Fragment: a first fragment carries the ports, a later one does not.
            44 => {
                if p.h(at + 2)? & 0xfff8 != 0 {
                    return Some(Landed::Nothing);
                }
                next = p.b(at)?;
                at += 8;
            }
            _ => break,
        }
    }
    Some(match next {
        6 | 17 => Landed::Ports(at),
        58 if outer => Landed::Icmp(at),
        _ => Landed::Nothing,
    })
}

/// The IPv6 program's logic, load for load.
fn reference6(p: &[u8], vips: &[[u32; 4]]) -> Option<u32> {
    let p = Loads(p);
    let dst = p.addr6(24)?;
    let src = p.addr6(8)?;
    let (checked, other, checked_port, other_port) = match walk(&p, p.b(6)?, 40, true)? {
        Landed::Ports(at) => (dst, src, p.h(at + 2)?, p.h(at)?),
        Landed::Nothing => (dst, src, 0, 0),
        Landed::Icmp(at) if matches!(p.b(at)?, 1..=4) => {
            // An error about a packet that went the other way: its source is our destination.
            let (quoted_src, quoted_dst) = (p.addr6(at + 16)?, p.addr6(at + 32)?);
            match walk(&p, p.b(at + 14)?, at + 48, false)? {
                Landed::Ports(q) => (quoted_src, quoted_dst, p.h(q)?, p.h(q + 2)?),
                _ => (quoted_src, quoted_dst, 0, 0),
            }
        }
        Landed::Icmp(_) => (dst, src, 0, 0),
    };
    let fold = |w: [u32; 4]| w[0] ^ w[1] ^ w[2] ^ w[3];
    Some(if vips.contains(&checked) {
        mix(fold(other), other_port)
    } else {
        mix(fold(checked), checked_port)
    })
}

/// Builds the classic BPF fanout program.
#[derive(Debug, Clone, Copy)]
pub struct FanoutProgram;

impl FanoutProgram {
    /// IPv4 VIPs a program can hold within the kernel's 4096-instruction limit (when no VIP
    /// is IPv6).
    pub const MAX_VIPS: usize = 3900;
    /// IPv6 VIPs a program can hold (when no VIP is IPv4). An IPv6 VIP costs about as much as
    /// eight IPv4 ones, and IPv6 itself about 700 instructions: a mixed set fits when
    /// `v4 + 8 * v6` stays within about 3300.
    pub const MAX_VIPS6: usize = 400;

    /// The program for this VIP set (duplicates are ignored). Pure: no system call.
    /// Longer than `BPF_MAXINSNS` if there are too many VIPs (see [`Self::MAX_VIPS`] and
    /// [`Self::MAX_VIPS6`]); installing it then fails with a clear error.
    pub fn build(vips: &[IpAddr]) -> Vec<sock_filter> {
        let mut v4: Vec<u32> = vips.iter().filter_map(|v| v4_bits(*v)).collect();
        v4.sort_unstable();
        v4.dedup();
        let mut v6: Vec<[u32; 4]> = vips.iter().filter_map(|v| v6_words(*v)).collect();
        v6.sort_unstable();
        v6.dedup();
        assemble(&program(&v4, &v6))
    }
}

/// Jump targets, resolved by [`assemble`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum L {
    Next,
    Ip,
    Plain,
    PlainPorts,
    IcmpErr,
    EmbPorts,
    NoPorts,
    Chain,
    Match,
    Hash,
    /// The trampoline of IPv4 VIP group n.
    Tramp(usize),
    /// The start of IPv4 VIP group n.
    Group(usize),
    /// Neither IPv4 nor IPv6.
    Other,
    /// IPv6: the fixed header.
    Ip6,
    /// IPv6 walk `w` (0 outer, 1 quoted), step n: its start, its options-type header (hop-by-
    /// hop, routing, destination options), its authentication header, a later fragment, and
    /// its way out (to `Done`).
    Step(usize, usize),
    Options(usize, usize),
    Auth(usize, usize),
    Later(usize, usize),
    Exit(usize, usize),
    /// IPv6 walk `w` has found the header after the extension headers.
    Done(usize),
    /// IPv6 walk `w` ended on TCP or UDP.
    Ports6(usize),
    /// IPv6 walk `w` ended without ports.
    NoPorts6(usize),
    /// IPv6: the outer walk ended on ICMPv6, and it is an error.
    Icmp6,
    Icmp6Err,
    /// IPv6: fold the addresses, then compare the checked one with the VIPs.
    Fold6,
    /// IPv6 VIP n's comparison (n = the number of VIPs: none was it).
    Vip6(usize),
    /// The trampoline of IPv6 VIP group n.
    Tramp6(usize),
    /// A label of the receive filter (`crate::filter`), numbered as it is made.
    Seq(usize),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Label(L),
    Stmt(u16, u32),
    Jump(u16, u32, L, L),
    Ja(L),
}

/// A classic BPF opcode as the 16-bit `code` field (the constants are `u32` in libc).
const fn op(code: u32) -> u16 {
    let [lo, hi, b2, b3] = code.to_le_bytes();
    assert!(b2 == 0 && b3 == 0, "BPF opcode beyond 16 bits");
    u16::from_le_bytes([lo, hi])
}

pub(crate) const LD_W_ABS: u16 = op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
pub(crate) const LD_H_ABS: u16 = op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS);
pub(crate) const LD_B_ABS: u16 = op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS);
const LD_W_IND: u16 = op(libc::BPF_LD | libc::BPF_W | libc::BPF_IND);
const LD_H_IND: u16 = op(libc::BPF_LD | libc::BPF_H | libc::BPF_IND);
const LD_B_IND: u16 = op(libc::BPF_LD | libc::BPF_B | libc::BPF_IND);
const LD_IMM: u16 = op(libc::BPF_LD | libc::BPF_IMM);
const LD_MEM: u16 = op(libc::BPF_LD | libc::BPF_MEM);
const LDX_IMM: u16 = op(libc::BPF_LDX | libc::BPF_IMM);
pub(crate) const ST: u16 = op(libc::BPF_ST);
const ALU_ADD_K: u16 = op(libc::BPF_ALU | libc::BPF_ADD | libc::BPF_K);
pub(crate) const ALU_ADD_X: u16 = op(libc::BPF_ALU | libc::BPF_ADD | libc::BPF_X);
const ALU_LSH_K: u16 = op(libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K);
const ALU_MUL_K: u16 = op(libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K);
const ALU_XOR_X: u16 = op(libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X);
pub(crate) const ALU_RSH_K: u16 = op(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K);
pub(crate) const TAX: u16 = op(libc::BPF_MISC | libc::BPF_TAX);
pub(crate) const TXA: u16 = op(libc::BPF_MISC | libc::BPF_TXA);
pub(crate) const JEQ_K: u16 = op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
const JSET_K: u16 = op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K);
const JA: u16 = op(libc::BPF_JMP | libc::BPF_JA);
pub(crate) const RET_K: u16 = op(libc::BPF_RET | libc::BPF_K);
const RET_A: u16 = op(libc::BPF_RET | libc::BPF_A);
/// Used by the receive filter only (`crate::filter`).
pub(crate) const LD_W_LEN: u16 = op(libc::BPF_LD | libc::BPF_W | libc::BPF_LEN);
pub(crate) const LDX_MEM: u16 = op(libc::BPF_LDX | libc::BPF_MEM);
pub(crate) const ALU_SUB_K: u16 = op(libc::BPF_ALU | libc::BPF_SUB | libc::BPF_K);
pub(crate) const ALU_AND_K: u16 = op(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K);
pub(crate) const JGE_K: u16 = op(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K);
pub(crate) const JGE_X: u16 = op(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_X);
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the skb's protocol (ethertype), host order.
const AD_PROTOCOL: u32 =
    u32::from_ne_bytes((libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL).to_ne_bytes());

/// Scratch cells: the checked address and its port, the other address and its port (IPv6:
/// the folded addresses).
const M_CHECKED: u32 = 0;
const M_CHECKED_PORT: u32 = 1;
const M_OTHER: u32 = 2;
const M_OTHER_PORT: u32 = 3;
/// IPv6: the four words of the checked address, then of the other one.
const M_CHECKED6: u32 = 4;
const M_OTHER6: u32 = 8;
/// IPv6: the next-header value while the offset is being advanced.
const M_NEXT: u32 = 12;

fn program(vips: &[u32], vips6: &[[u32; 4]]) -> Vec<Op> {
    use Op::{Ja, Jump, Label, Stmt};
    let mut p = vec![
        Stmt(LD_H_ABS, AD_PROTOCOL),
        Jump(JEQ_K, u32::from(IPV4), L::Ip, L::Next),
    ];
    if !vips6.is_empty() {
        // The IPv6 part sits after the IPv4 VIP chain: too far for a conditional jump.
        p.extend([
            Jump(JEQ_K, u32::from(IPV6), L::Next, L::Other),
            Ja(L::Ip6),
            Label(L::Other),
        ]);
    }
    p.extend([
        Stmt(RET_K, 0),
        Label(L::Ip),
        Stmt(LD_B_ABS, 9),
        Jump(JEQ_K, 1, L::Next, L::Plain),
        Stmt(LD_B_ABS, 20),
        Jump(JEQ_K, 3, L::IcmpErr, L::Next),
        Jump(JEQ_K, 11, L::IcmpErr, L::Next),
        Jump(JEQ_K, 12, L::IcmpErr, L::Plain),
        // Not an ICMP error: checked = destination, other = source.
        Label(L::Plain),
        Stmt(LD_W_ABS, 16),
        Stmt(ST, M_CHECKED),
        Stmt(LD_W_ABS, 12),
        Stmt(ST, M_OTHER),
        Stmt(LD_B_ABS, 9),
        Jump(JEQ_K, 6, L::PlainPorts, L::Next),
        Jump(JEQ_K, 17, L::PlainPorts, L::NoPorts),
        Label(L::PlainPorts),
        Stmt(LD_H_ABS, 6),
        Jump(JSET_K, 0x3fff, L::NoPorts, L::Next),
        Stmt(LD_H_ABS, 22),
        Stmt(ST, M_CHECKED_PORT),
        Stmt(LD_H_ABS, 20),
        Stmt(ST, M_OTHER_PORT),
        Ja(L::Chain),
        // ICMP error: checked = embedded source, other = embedded destination.
        Label(L::IcmpErr),
        Stmt(LD_W_ABS, 40),
        Stmt(ST, M_CHECKED),
        Stmt(LD_W_ABS, 44),
        Stmt(ST, M_OTHER),
        Stmt(LD_B_ABS, 37),
        Jump(JEQ_K, 6, L::EmbPorts, L::Next),
        Jump(JEQ_K, 17, L::EmbPorts, L::NoPorts),
        Label(L::EmbPorts),
        Stmt(LD_H_ABS, 34),
        Jump(JSET_K, 0x3fff, L::NoPorts, L::Next),
        Stmt(LD_H_ABS, 48),
        Stmt(ST, M_CHECKED_PORT),
        Stmt(LD_H_ABS, 50),
        Stmt(ST, M_OTHER_PORT),
        Ja(L::Chain),
        Label(L::NoPorts),
        Stmt(LD_IMM, 0),
        Stmt(ST, M_CHECKED_PORT),
        Stmt(ST, M_OTHER_PORT),
        // Is the checked address a VIP?
        Label(L::Chain),
        Stmt(LD_MEM, M_CHECKED),
    ]);
    let groups: Vec<&[u32]> = vips.chunks(GROUP).collect();
    for (g, group) in groups.iter().enumerate() {
        p.push(Label(L::Group(g)));
        p.extend(
            group
                .iter()
                .map(|&vip| Jump(JEQ_K, vip, L::Tramp(g), L::Next)),
        );
        p.push(Ja(if g + 1 < groups.len() {
            L::Group(g + 1)
        } else {
            L::Hash
        }));
        p.push(Label(L::Tramp(g)));
        p.push(Ja(L::Match));
    }
    if groups.is_empty() {
        p.push(Ja(L::Hash));
    }
    if !vips6.is_empty() {
        p.extend(program6(vips6));
    }
    p.extend([
        // A VIP: hash the other side instead.
        Label(L::Match),
        Stmt(LD_MEM, M_OTHER),
        Stmt(ST, M_CHECKED),
        Stmt(LD_MEM, M_OTHER_PORT),
        Stmt(ST, M_CHECKED_PORT),
        // mix(M[0], M[1]).
        Label(L::Hash),
        Stmt(LD_MEM, M_CHECKED),
        Stmt(ALU_MUL_K, K1),
        Stmt(TAX, 0),
        Stmt(LD_MEM, M_CHECKED_PORT),
        Stmt(ALU_XOR_X, 0),
        Stmt(ALU_MUL_K, K2),
        Stmt(TAX, 0),
        Stmt(ALU_RSH_K, 16),
        Stmt(ALU_XOR_X, 0),
        Stmt(RET_A, 0),
    ]);
    p
}

/// Four word loads of an IPv6 address at `at` (absolute, or relative to X) into `cell`..
fn load_addr6(p: &mut Vec<Op>, code: u16, at: u32, cell: u32) {
    for i in 0..4 {
        p.push(Op::Stmt(code, at + 4 * i));
        p.push(Op::Stmt(ST, cell + i));
    }
}

/// The walk along an extension-header chain: A holds the next-header value, X the offset of
/// that header. Ends at `Ports6(w)` (X at TCP/UDP), `Icmp6` (outer walk only, X at ICMPv6) or
/// `NoPorts6(w)`. Every step leaves through a local `Ja` (or moves on to the next step), so
/// no conditional jump reaches past its own step.
fn walk6(p: &mut Vec<Op>, w: usize) {
    use Op::{Ja, Jump, Label, Stmt};
    // X += (P[X + 1] + add) << shift; A = the next header, read first.
    let advance = |p: &mut Vec<Op>, add: u32, shift: u32, step: usize| {
        p.extend([
            Stmt(LD_B_IND, 0),
            Stmt(ST, M_NEXT),
            Stmt(LD_B_IND, 1),
            Stmt(ALU_ADD_K, add),
            Stmt(ALU_LSH_K, shift),
            Stmt(ALU_ADD_X, 0),
            Stmt(TAX, 0),
            Stmt(LD_MEM, M_NEXT),
            Ja(L::Step(w, step + 1)),
        ]);
    };
    for step in 0..EXT_HEADERS {
        p.extend([
            Label(L::Step(w, step)),
            Jump(JEQ_K, 0, L::Options(w, step), L::Next),
            Jump(JEQ_K, 43, L::Options(w, step), L::Next),
            Jump(JEQ_K, 60, L::Options(w, step), L::Next),
            Jump(JEQ_K, 51, L::Auth(w, step), L::Next),
            Jump(JEQ_K, 44, L::Next, L::Exit(w, step)),
            // Fragment: 8 bytes; a later fragment (offset not 0) has no ports.
            Stmt(LD_H_IND, 2),
            Jump(JSET_K, 0xfff8, L::Later(w, step), L::Next),
            Stmt(LD_B_IND, 0),
            Stmt(ST, M_NEXT),
            Stmt(TXA, 0),
            Stmt(ALU_ADD_K, 8),
            Stmt(TAX, 0),
            Stmt(LD_MEM, M_NEXT),
            Ja(L::Step(w, step + 1)),
            Label(L::Options(w, step)),
        ]);
        advance(p, 1, 3, step);
        p.push(Label(L::Auth(w, step)));
        advance(p, 2, 2, step);
        p.extend([
            // "No next header": not a transport protocol.
            Label(L::Later(w, step)),
            Stmt(LD_IMM, 59),
            Label(L::Exit(w, step)),
            Ja(L::Done(w)),
        ]);
    }
    p.extend([
        Label(L::Step(w, EXT_HEADERS)),
        Label(L::Done(w)),
        Jump(JEQ_K, 6, L::Ports6(w), L::Next),
    ]);
    if w == 0 {
        // ICMPv6 goes on to `Icmp6`, right after the walk.
        p.push(Jump(JEQ_K, 17, L::Ports6(w), L::Next));
        p.push(Jump(JEQ_K, 58, L::Next, L::NoPorts6(w)));
    } else {
        p.push(Jump(JEQ_K, 17, L::Ports6(w), L::NoPorts6(w)));
    }
}

/// The ends of walk `w`: TCP or UDP at X (the checked port at X + `checked`, the other at
/// X + `other`), or no ports; both go on to `Fold6`.
fn ports6(p: &mut Vec<Op>, w: usize, checked: u32, other: u32) {
    p.extend([
        Op::Label(L::Ports6(w)),
        Op::Stmt(LD_H_IND, checked),
        Op::Stmt(ST, M_CHECKED_PORT),
        Op::Stmt(LD_H_IND, other),
        Op::Stmt(ST, M_OTHER_PORT),
        Op::Ja(L::Fold6),
        Op::Label(L::NoPorts6(w)),
        Op::Stmt(LD_IMM, 0),
        Op::Stmt(ST, M_CHECKED_PORT),
        Op::Stmt(ST, M_OTHER_PORT),
        Op::Ja(L::Fold6),
    ]);
}

/// The IPv6 part: entered at `Ip6`, leaves for `Match` or `Hash` with M[0..4] filled.
fn program6(vips6: &[[u32; 4]]) -> Vec<Op> {
    use Op::{Ja, Jump, Label, Stmt};
    let mut p = vec![Label(L::Ip6)];
    // Checked = destination, other = source, unless an ICMPv6 error says otherwise.
    load_addr6(&mut p, LD_W_ABS, 24, M_CHECKED6);
    load_addr6(&mut p, LD_W_ABS, 8, M_OTHER6);
    p.push(Stmt(LD_B_ABS, 6));
    p.push(Stmt(LDX_IMM, 40));
    walk6(&mut p, 0);
    p.extend([
        Label(L::Icmp6),
        Stmt(LD_B_IND, 0),
        Jump(JEQ_K, 1, L::Icmp6Err, L::Next),
        Jump(JEQ_K, 2, L::Icmp6Err, L::Next),
        Jump(JEQ_K, 3, L::Icmp6Err, L::Next),
        Jump(JEQ_K, 4, L::Icmp6Err, L::NoPorts6(0)),
    ]);
    // Checked port = destination port.
    ports6(&mut p, 0, 2, 0);
    // The quoted packet went the other way: checked = its source, other = its destination,
    // ports likewise.
    p.push(Label(L::Icmp6Err));
    load_addr6(&mut p, LD_W_IND, 16, M_CHECKED6);
    load_addr6(&mut p, LD_W_IND, 32, M_OTHER6);
    p.extend([
        Stmt(LD_B_IND, 14),
        Stmt(ST, M_NEXT),
        Stmt(TXA, 0),
        Stmt(ALU_ADD_K, 48),
        Stmt(TAX, 0),
        Stmt(LD_MEM, M_NEXT),
    ]);
    walk6(&mut p, 1);
    // Checked port = the quoted source port.
    ports6(&mut p, 1, 0, 2);
    // M[0] = fold(checked), M[2] = fold(other).
    p.push(Label(L::Fold6));
    for (words, folded) in [(M_CHECKED6, M_CHECKED), (M_OTHER6, M_OTHER)] {
        p.push(Stmt(LD_MEM, words));
        for i in 1..4 {
            p.extend([Stmt(TAX, 0), Stmt(LD_MEM, words + i), Stmt(ALU_XOR_X, 0)]);
        }
        p.push(Stmt(ST, folded));
    }
    // Is the checked address an IPv6 VIP? Four words compared; a mismatch moves on to the
    // next VIP, past the group's trampoline after its last one.
    let mut n = 0;
    for (g, group) in vips6.chunks(GROUP6).enumerate() {
        for vip in group {
            p.push(Label(L::Vip6(n)));
            for (i, &word) in (0u32..).zip(vip) {
                p.push(Stmt(LD_MEM, M_CHECKED6 + i));
                let hit = if i == 3 { L::Tramp6(g) } else { L::Next };
                p.push(Jump(JEQ_K, word, hit, L::Vip6(n + 1)));
            }
            n += 1;
        }
        p.push(Label(L::Tramp6(g)));
        p.push(Ja(L::Match));
    }
    p.push(Label(L::Vip6(n)));
    p.push(Ja(L::Hash));
    p
}

/// Resolves labels into relative jump offsets.
pub(crate) fn assemble(ops: &[Op]) -> Vec<sock_filter> {
    let mut at = std::collections::HashMap::new();
    let mut pc = 0usize;
    for op in ops {
        match op {
            Op::Label(l) => {
                at.insert(*l, pc);
            }
            _ => pc += 1,
        }
    }
    let target = |from: usize, l: L| -> usize {
        if l == L::Next {
            return 0;
        }
        let to = at[&l];
        assert!(to > from, "backward jump in a BPF program");
        to - from - 1
    };
    let short = |from: usize, l: L| -> u8 {
        u8::try_from(target(from, l)).expect("BPF program: conditional jump beyond 255")
    };
    let mut out = Vec::with_capacity(pc);
    for op in ops {
        let pc = out.len();
        let ins = match *op {
            Op::Label(_) => continue,
            Op::Stmt(code, k) => sock_filter {
                code,
                jt: 0,
                jf: 0,
                k,
            },
            Op::Jump(code, k, jt, jf) => sock_filter {
                code,
                jt: short(pc, jt),
                jf: short(pc, jf),
                k,
            },
            Op::Ja(l) => sock_filter {
                code: JA,
                jt: 0,
                jf: 0,
                k: u32::try_from(target(pc, l)).unwrap_or(u32::MAX),
            },
        };
        out.push(ins);
    }
    out
}

/// How to form a fanout group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanoutConfig {
    /// Members (workers), 1 to 256. Every interface's group must have the same number, so
    /// that both directions of a connection land on the same worker index.
    pub members: usize,
    /// The VIPs the program recognises, IPv4 and IPv6.
    pub vips: Vec<IpAddr>,
    /// The group id (unique per network namespace); `None` lets the kernel pick a free one.
    pub group_id: Option<u16>,
}

/// Changes a fanout group's program and its members' receive filter while they run. Holds
/// a duplicate of every member's socket: drop it together with the rings.
#[derive(Debug)]
pub struct FanoutControl {
    /// Member 0's socket first.
    fds: Vec<OwnedFd>,
    iface: Interface,
    group_id: u16,
    members: usize,
    /// Frames the members' sockets have taken, as read so far (reading resets the kernel's).
    frames: u64,
}

impl FanoutControl {
    /// The kernel's id of the group.
    pub fn group_id(&self) -> u16 {
        self.group_id
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.members
    }

    /// Replaces the program for a new VIP set (`PACKET_FANOUT_DATA`); takes effect for the
    /// next frame, atomically for the whole group.
    pub fn set_vips(&self, vips: &[IpAddr]) -> Result<()> {
        set_program(
            self.fds[0].as_fd(),
            &self.iface,
            &FanoutProgram::build(vips),
        )
    }

    /// Frames every member's ring has taken since the group was opened (the kernel's
    /// `PACKET_STATISTICS`: frames a receive filter dropped are not among them). Reading
    /// resets the kernel's counters, which [`RxRing::stats`] reads too: use one or the other.
    pub fn frames(&mut self) -> Result<u64> {
        for fd in &self.fds {
            let st = crate::rx::read_stats(fd.as_fd(), &self.iface)?;
            self.frames += u64::from(st.tp_packets);
        }
        Ok(self.frames)
    }

    /// Replaces every member's receive filter (see [`crate::RxFilter`]); each swap is atomic.
    pub fn set_filter(&self, prog: &[sock_filter]) -> Result<()> {
        self.fds
            .iter()
            .try_for_each(|fd| crate::filter::attach(fd.as_fd(), &self.iface, prog))
    }
}

fn set_program(
    fd: std::os::fd::BorrowedFd<'_>,
    iface: &Interface,
    prog: &[sock_filter],
) -> Result<()> {
    let max = usize::try_from(libc::BPF_MAXINSNS).unwrap_or(4096);
    let len = u16::try_from(prog.len())
        .ok()
        .filter(|&n| usize::from(n) <= max)
        .ok_or_else(|| {
            Error::config(
                "fanout program",
                iface.name(),
                format!(
                    "{} instructions (at most {max}): too many VIPs (at most {} IPv4 ones, or {} \
                     IPv6 ones; an IPv6 VIP costs as much as eight IPv4 ones)",
                    prog.len(),
                    FanoutProgram::MAX_VIPS,
                    FanoutProgram::MAX_VIPS6,
                ),
            )
        })?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    sys::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &fprog).map_err(|e| {
        Error::sys(
            "install the fanout program",
            iface.name(),
            "setsockopt(PACKET_FANOUT_DATA)",
            e,
        )
    })
}

/// A socket filter that accepts nothing: members receive nothing until the group is whole.
fn drop_all(fd: std::os::fd::BorrowedFd<'_>, iface: &Interface) -> Result<()> {
    let ret0 = [sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    crate::filter::attach(fd, iface, &ret0)
}

fn join(fd: std::os::fd::BorrowedFd<'_>, iface: &Interface, id: u16, flags: u32) -> Result<()> {
    let arg: u32 = u32::from(id) | ((libc::PACKET_FANOUT_CBPF | flags) << 16);
    sys::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg).map_err(|e| {
        Error::sys(
            "join the fanout group",
            iface.name(),
            "setsockopt(PACKET_FANOUT)",
            e,
        )
    })
}

/// Opens one receive ring per member on `iface`, joined in order to a new fanout group that
/// runs the steering program: ring `i` is member `i` (worker `i`). Until every member has
/// joined, the sockets accept nothing, so no flow is steered by a half-formed group.
pub fn open_fanout(
    iface: &Interface,
    cfg: &RxConfig,
    fanout: &FanoutConfig,
) -> Result<(Vec<RxRing>, FanoutControl)> {
    if fanout.members == 0 || fanout.members > 256 {
        return Err(Error::config(
            "fanout group",
            iface.name(),
            format!("{} members (1 to 256)", fanout.members),
        ));
    }
    let prog = FanoutProgram::build(&fanout.vips);
    let mut rings = Vec::with_capacity(fanout.members);
    for _ in 0..fanout.members {
        let ring = RxRing::create(iface, cfg)?;
        drop_all(ring.as_fd(), iface)?;
        ring.bind()?;
        rings.push(ring);
    }
    let mut flags = if cfg.ignore_outgoing {
        libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING
    } else {
        0
    };
    let (id, first_flags) = match fanout.group_id {
        Some(id) => (id, 0),
        None => (0, libc::PACKET_FANOUT_FLAG_UNIQUEID),
    };
    if let Err(e) = join(rings[0].as_fd(), iface, id, flags | first_flags) {
        if flags == 0 || e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
        // A kernel before 6.8 lacks PACKET_FANOUT_FLAG_IGNORE_OUTGOING: outgoing frames are
        // then skipped by the frame iterator.
        flags = 0;
        join(rings[0].as_fd(), iface, id, first_flags)?;
    }
    let joined: u32 = sys::getsockopt(rings[0].as_fd(), libc::SOL_PACKET, libc::PACKET_FANOUT)
        .map_err(|e| {
            Error::sys(
                "read the fanout group id",
                iface.name(),
                "getsockopt(PACKET_FANOUT)",
                e,
            )
        })?;
    let id = u16::try_from(joined & 0xffff).unwrap_or(id);
    set_program(rings[0].as_fd(), iface, &prog)?;
    for ring in &rings[1..] {
        join(ring.as_fd(), iface, id, flags)?;
    }
    for ring in &rings {
        sys::setsockopt_empty(ring.as_fd(), libc::SOL_SOCKET, libc::SO_DETACH_FILTER).map_err(
            |e| {
                Error::sys(
                    "release held frames",
                    iface.name(),
                    "setsockopt(SO_DETACH_FILTER)",
                    e,
                )
            },
        )?;
    }
    let fds = rings
        .iter()
        .map(|ring| {
            ring.as_fd().try_clone_to_owned().map_err(|e| {
                Error::sys(
                    "keep a handle on the fanout group",
                    iface.name(),
                    "fcntl(F_DUPFD_CLOEXEC)",
                    e,
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let control = FanoutControl {
        fds,
        iface: iface.clone(),
        group_id: id,
        members: fanout.members,
        frames: 0,
    };
    Ok((rings, control))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A classic BPF interpreter for the instructions the program uses, with the kernel's
    /// semantics: loads relative to the network header, out-of-bounds loads return 0.
    pub(crate) fn run(prog: &[sock_filter], ethertype: u16, pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        let load = |k: u32, n: usize| -> Option<u32> {
            if k == AD_PROTOCOL {
                return Some(u32::from(ethertype));
            }
            let at = usize::try_from(k).ok()?;
            let bytes = pkt.get(at..at + n)?;
            Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        };
        let size = |code: u16| match code {
            LD_W_ABS | LD_W_IND => 4,
            LD_H_ABS | LD_H_IND => 2,
            _ => 1,
        };
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS | LD_H_ABS | LD_B_ABS => match load(i.k, size(i.code)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_W_IND | LD_H_IND | LD_B_IND => match load(x.wrapping_add(i.k), size(i.code)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_IMM => a = i.k,
                LD_W_LEN => a = u32::try_from(pkt.len()).unwrap(),
                LDX_MEM => x = mem[usize::try_from(i.k).unwrap()],
                ALU_SUB_K => a = a.wrapping_sub(i.k),
                ALU_AND_K => a &= i.k,
                JGE_K => pc += usize::from(if a >= i.k { i.jt } else { i.jf }),
                JGE_X => pc += usize::from(if a >= x { i.jt } else { i.jf }),
                LDX_IMM => x = i.k,
                ALU_ADD_K => a = a.wrapping_add(i.k),
                ALU_ADD_X => a = a.wrapping_add(x),
                ALU_LSH_K => a <<= i.k,
                TXA => a = x,
                LD_MEM => a = mem[usize::try_from(i.k).unwrap()],
                ST => mem[usize::try_from(i.k).unwrap()] = a,
                ALU_MUL_K => a = a.wrapping_mul(i.k),
                ALU_XOR_X => a ^= x,
                ALU_RSH_K => a >>= i.k,
                TAX => x = a,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                JA => pc += usize::try_from(i.k).unwrap(),
                RET_A => return a,
                RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn ip(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(l4);
        p
    }

    fn ports(sp: u16, dp: u16) -> Vec<u8> {
        let mut l4 = sp.to_be_bytes().to_vec();
        l4.extend_from_slice(&dp.to_be_bytes());
        l4.extend_from_slice(&[0; 16]);
        l4
    }

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const VIP: [u8; 4] = [10, 0, 0, 100];
    const RS: [u8; 4] = [10, 0, 1, 5];

    fn vips() -> Vec<IpAddr> {
        vec![VIP.into(), Ipv4Addr::new(192, 168, 7, 7).into()]
    }

    #[test]
    fn request_and_reply_hash_the_client() {
        let v = vips();
        let req = ip(6, CLIENT, VIP, &ports(40000, 80));
        let reply = ip(6, RS, CLIENT, &ports(8080, 40000));
        let want = mix(u32::from_be_bytes(CLIENT), 40000);
        assert_eq!(fanout_hash_l3(0x0800, &req, &v), want);
        assert_eq!(fanout_hash_l3(0x0800, &reply, &v), want);
        let prog = FanoutProgram::build(&v);
        assert_eq!(run(&prog, 0x0800, &req), want);
        assert_eq!(run(&prog, 0x0800, &reply), want);
    }

    #[test]
    fn icmp_errors_follow_their_connection() {
        let v = vips();
        let want = mix(u32::from_be_bytes(CLIENT), 40000);
        // "Fragmentation needed" from a router, about the director's reply VIP -> client.
        let embedded = ip(6, VIP, CLIENT, &ports(80, 40000)[..8]);
        let mut icmp = vec![3, 4, 0, 0, 0, 0, 5, 0xdc];
        icmp.extend_from_slice(&embedded);
        let err = ip(1, [172, 16, 0, 1], VIP, &icmp);
        assert_eq!(fanout_hash_l3(0x0800, &err, &v), want);
        assert_eq!(run(&FanoutProgram::build(&v), 0x0800, &err), want);
        // Port unreachable from the real server, about the forwarded request client -> RS.
        let embedded = ip(17, CLIENT, RS, &ports(40000, 53)[..8]);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&embedded);
        let err = ip(1, RS, CLIENT, &icmp);
        assert_eq!(fanout_hash_l3(0x0800, &err, &v), want);
        assert_eq!(run(&FanoutProgram::build(&v), 0x0800, &err), want);
    }

    #[test]
    fn non_ipv4_and_short_packets_go_to_member_zero() {
        let prog = FanoutProgram::build(&vips());
        let req = ip(6, CLIENT, VIP, &ports(40000, 80));
        assert_eq!(run(&prog, 0x0806, &req), 0);
        assert_eq!(fanout_hash_l3(0x0806, &req, &vips()), 0);
        // Without an IPv6 VIP, IPv6 is not looked at.
        assert_eq!(run(&prog, 0x86dd, &req), 0);
        assert_eq!(fanout_hash_l3(0x86dd, &req, &vips()), 0);
        assert_eq!(fanout_hash(&[0; 10], &vips()), 0);
        for cut in 0..23 {
            assert_eq!(run(&prog, 0x0800, &req[..cut]), 0, "cut at {cut}");
            assert_eq!(
                fanout_hash_l3(0x0800, &req[..cut], &vips()),
                0,
                "cut at {cut}"
            );
        }
    }

    /// A deterministic pseudo-random sequence.
    fn xorshift(mut seed: u32) -> impl FnMut() -> u32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        }
    }

    /// The kernel's view (the program, interpreted) and the reference agree on `pkt`.
    fn agree(prog: &[sock_filter], ethertype: u16, pkt: &[u8], vips: &[IpAddr]) {
        assert_eq!(
            run(prog, ethertype, pkt),
            fanout_hash_l3(ethertype, pkt, vips),
            "packet {pkt:02x?}"
        );
    }

    #[test]
    fn program_matches_reference_on_many_packets() {
        // Many VIPs so that the chain spans several trampolined groups.
        let mut v: Vec<IpAddr> = (0..700u32)
            .map(|i| Ipv4Addr::from(0x0a64_0000 + i * 3).into())
            .collect();
        v.push(VIP.into());
        let prog = FanoutProgram::build(&v);
        assert!(prog.len() < 4096);
        let mut rnd = xorshift(0x1234_5678);
        for n in 0..20_000 {
            let pick_vip = |r: u32| {
                // A VIP one time in three (`match`: `is_multiple_of` is newer than our MSRV).
                match r % 3 {
                    0 => match v[usize::try_from(r / 3).unwrap() % v.len()] {
                        IpAddr::V4(a) => a.octets(),
                        IpAddr::V6(_) => unreachable!(),
                    },
                    _ => r.to_be_bytes(),
                }
            };
            let proto = [1, 6, 17, 47][usize::try_from(rnd() % 4).unwrap()];
            let mut l4 = (0..40).map(|_| rnd().to_le_bytes()[0]).collect::<Vec<u8>>();
            if proto == 1 {
                l4[0] = [3, 11, 12, 8][usize::try_from(rnd() % 4).unwrap()];
                l4[8] = 0x45;
                l4[17] = [1, 6, 17][usize::try_from(rnd() % 3).unwrap()];
                l4[20..24].copy_from_slice(&pick_vip(rnd()));
                l4[24..28].copy_from_slice(&pick_vip(rnd()));
                if n % 2 == 0 {
                    l4[14] = 0;
                    l4[15] = 0;
                }
            }
            let mut pkt = ip(proto, pick_vip(rnd()), pick_vip(rnd()), &l4);
            if n % 2 == 0 {
                pkt[6] = 0x40;
                pkt[7] = 0;
            }
            let cut = usize::try_from(rnd() % 8).unwrap() * usize::from(n % 5 == 0);
            agree(&prog, 0x0800, &pkt[..pkt.len() - cut], &v);
        }
    }

    #[test]
    fn too_many_vips_is_refused_not_truncated() {
        let v: Vec<IpAddr> = (0..5000u32).map(|a| Ipv4Addr::from(a).into()).collect();
        let prog = FanoutProgram::build(&v);
        assert!(prog.len() > 4096);
        let ok: Vec<IpAddr> = (0..u32::try_from(FanoutProgram::MAX_VIPS).unwrap())
            .map(|a| Ipv4Addr::from(a).into())
            .collect();
        assert!(FanoutProgram::build(&ok).len() <= 4096);
        let ok6: Vec<IpAddr> = (0..u128::try_from(FanoutProgram::MAX_VIPS6).unwrap())
            .map(|a| Ipv6Addr::from(a).into())
            .collect();
        assert!(FanoutProgram::build(&ok6).len() <= 4096);
        let too_many6: Vec<IpAddr> = (0..430u128).map(|a| Ipv6Addr::from(a).into()).collect();
        assert!(FanoutProgram::build(&too_many6).len() > 4096);
        // Mixed: v4 + 8 * v6 within about 3300.
        let mixed: Vec<IpAddr> = (0..2500u32)
            .map(|a| Ipv4Addr::from(a).into())
            .chain((0..100u128).map(|a| Ipv6Addr::from(a).into()))
            .collect();
        assert!(FanoutProgram::build(&mixed).len() <= 4096);
    }

    #[test]
    fn spreads_client_ports_over_two_members() {
        let mut counts = [0u32; 2];
        for port in 1024..3072u16 {
            let h = fanout_hash_l3(0x0800, &ip(17, CLIENT, VIP, &ports(port, 53)), &vips());
            counts[usize::try_from(h % 2).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c > 900), "{counts:?}");
    }

    // ------------------------------------------------------------------ IPv6

    const CLIENT6: &str = "2001:db8:c::1";
    const VIP6: &str = "2001:db8:f::100";
    const RS6: &str = "2001:db8:1::5";

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn vips6() -> Vec<IpAddr> {
        vec![
            VIP.into(),
            a6(VIP6).into(),
            a6("2001:db8:f::101").into(),
            // Same first three words as VIP6: all four must be compared.
            a6("2001:db8:f::1:100").into(),
        ]
    }

    /// An IPv6 packet: fixed header, then `chain` (extension headers, each `(type, n)`), then
    /// the payload. An options-type header is 8 * (n + 1) bytes long, an authentication
    /// header 8 * n + 16, a fragment header 8 with a fragment offset of n (in 8-byte units).
    fn ip6(next: u8, src: &str, dst: &str, chain: &[(u8, usize)], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0];
        let first = chain.first().map_or(next, |h| h.0);
        p.push(first);
        p.push(64);
        p.extend_from_slice(&a6(src).octets());
        p.extend_from_slice(&a6(dst).octets());
        for (i, &(kind, len8)) in chain.iter().enumerate() {
            let after = chain.get(i + 1).map_or(next, |h| h.0);
            let n = u8::try_from(len8).unwrap();
            let h = match kind {
                44 => {
                    let [hi, lo] = (u16::from(n) << 3).to_be_bytes();
                    vec![after, 0, hi, lo, 0, 0, 0, 1]
                }
                51 => {
                    let mut h = vec![0u8; 8 * len8 + 16];
                    (h[0], h[1]) = (after, 2 * n + 2);
                    h
                }
                _ => {
                    let mut h = vec![0u8; 8 * (len8 + 1)];
                    (h[0], h[1]) = (after, n);
                    h
                }
            };
            p.extend(h);
        }
        p.extend_from_slice(payload);
        let plen = u16::try_from(p.len() - 40).unwrap();
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        p
    }

    /// An ICMPv6 error quoting `quoted` (a whole IPv6 packet).
    fn icmp6(kind: u8, src: &str, dst: &str, quoted: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, 0, 0, 0, 0, 0, 5, 0xdc];
        m.extend_from_slice(quoted);
        ip6(58, src, dst, &[], &m)
    }

    fn both(vips: &[IpAddr], pkt: &[u8]) -> u32 {
        let reference = fanout_hash_l3(0x86dd, pkt, vips);
        assert_eq!(
            run(&FanoutProgram::build(vips), 0x86dd, pkt),
            reference,
            "program and reference disagree on {pkt:02x?}"
        );
        reference
    }

    #[test]
    fn ipv6_request_reply_and_icmpv6_errors_hash_the_client() {
        let v = vips6();
        let want = mix(fold(a6(CLIENT6)), 40000);
        assert_eq!(client_hash(a6(CLIENT6).into(), 40000), want);
        for proto in [6, 17] {
            let req = ip6(proto, CLIENT6, VIP6, &[], &ports(40000, 80));
            let reply = ip6(proto, RS6, CLIENT6, &[], &ports(8080, 40000));
            assert_eq!(both(&v, &req), want);
            assert_eq!(both(&v, &reply), want);
            // Extension headers in one direction only: the walk finds the same ports. A first
            // fragment (offset 0) and an authentication header included.
            let chain = [(0, 0), (60, 2), (43, 1), (44, 0), (51, 1)];
            let req = ip6(proto, CLIENT6, VIP6, &chain, &ports(40000, 80));
            let reply = ip6(proto, RS6, CLIENT6, &chain[1..], &ports(8080, 40000));
            assert_eq!(both(&v, &req), want);
            assert_eq!(both(&v, &reply), want);
        }
        // Packet Too Big from a router, about the director's reply VIP -> client.
        let to_client = ip6(6, VIP6, CLIENT6, &[], &ports(80, 40000));
        assert_eq!(
            both(&v, &icmp6(2, "2001:db8:ff::1", VIP6, &to_client)),
            want
        );
        // Port unreachable from the real server about the forwarded request client -> RS,
        // the quoted packet with a destination-options header and cut after the ports.
        let to_rs = ip6(17, CLIENT6, RS6, &[(60, 0)], &ports(40000, 53));
        let err = icmp6(1, RS6, CLIENT6, &to_rs[..40 + 8 + 4]);
        assert_eq!(both(&v, &err), want);
        // Time exceeded (3) and parameter problem (4) too.
        for kind in [3, 4] {
            assert_eq!(
                both(&v, &icmp6(kind, "2001:db8:ff::1", VIP6, &to_client)),
                want
            );
        }
    }

    #[test]
    fn ipv6_without_ports_hashes_by_address() {
        let v = vips6();
        let client_only = mix(fold(a6(CLIENT6)), 0);
        // Echo request to the VIP and its reply; neither is an error.
        let echo = ip6(58, CLIENT6, VIP6, &[], &[128, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(both(&v, &echo), client_only);
        let echo_reply = ip6(58, VIP6, CLIENT6, &[], &[129, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(both(&v, &echo_reply), client_only);
        // Later fragments (offset not 0): no ports, so by the client's address.
        for chain in [&[(44, 1)][..], &[(0, 0), (44, 185)][..]] {
            let frag = ip6(17, CLIENT6, VIP6, chain, &ports(40000, 53));
            assert_eq!(both(&v, &frag), client_only);
        }
        // More extension headers than the walk follows (and the data plane accepts).
        let long = [(0, 0); EXT_HEADERS + 1];
        let pkt = ip6(6, CLIENT6, VIP6, &long, &ports(40000, 80));
        assert_eq!(both(&v, &pkt), client_only);
        let fits = [(0, 0); EXT_HEADERS];
        let pkt = ip6(6, CLIENT6, VIP6, &fits, &ports(40000, 80));
        assert_eq!(both(&v, &pkt), mix(fold(a6(CLIENT6)), 40000));
        // Not a VIP (differs in the last word only): hash the destination.
        let other = ip6(6, CLIENT6, "2001:db8:f::1:101", &[], &ports(40000, 80));
        assert_eq!(both(&v, &other), mix(fold(a6("2001:db8:f::1:101")), 80));
    }

    #[test]
    fn short_ipv6_packets_go_to_member_zero() {
        let v = vips6();
        let req = ip6(6, CLIENT6, VIP6, &[(60, 1)], &ports(40000, 80));
        // Cut anywhere before the end of the ports: member 0.
        for cut in 0..40 + 16 + 4 {
            assert_eq!(both(&v, &req[..cut]), 0, "cut at {cut}");
        }
        assert_ne!(both(&v, &req), 0);
    }

    #[test]
    fn ipv6_program_matches_reference_on_many_packets() {
        // Many IPv6 VIPs (several trampolined groups) beside IPv4 ones.
        let mut v: Vec<IpAddr> = (0..100u128)
            .map(|i| Ipv6Addr::from(u128::from(a6(VIP6)) + (i << 64) + i * 7).into())
            .collect();
        v.extend((0..300u32).map(|i| IpAddr::from(Ipv4Addr::from(0x0a64_0000 + i))));
        v.push(a6(VIP6).into());
        let prog = FanoutProgram::build(&v);
        assert!(prog.len() < 4096);
        let v6: Vec<Ipv6Addr> = v
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            })
            .collect();
        let mut rnd = xorshift(0x2545_f491);
        for n in 0..20_000 {
            // A VIP one time in three, else an address near one.
            let addr = |r: u32| match r % 3 {
                0 => v6[usize::try_from(r / 3).unwrap() % v6.len()].to_string(),
                _ => Ipv6Addr::from(u128::from(a6(VIP6)) ^ u128::from(r)).to_string(),
            };
            let (src, dst) = (addr(rnd()), addr(rnd()));
            let next = [6, 17, 58, 44, 50, 59][usize::try_from(rnd() % 6).unwrap()];
            let chain: Vec<(u8, usize)> = (0..rnd() % 10)
                .map(|_| {
                    let kind = [0, 43, 60, 44, 51][usize::try_from(rnd() % 5).unwrap()];
                    (kind, usize::try_from(rnd() % 3).unwrap())
                })
                .collect();
            let mut payload: Vec<u8> = (0..16).map(|_| rnd().to_le_bytes()[0]).collect();
            if next == 58 {
                payload[0] = [1, 2, 3, 4, 128, 135][usize::try_from(rnd() % 6).unwrap()];
                let qnext = [6, 17, 58][usize::try_from(rnd() % 3).unwrap()];
                let qchain: Vec<(u8, usize)> = (0..rnd() % 3).map(|_| (60, 0)).collect();
                let quoted = ip6(qnext, &dst, &src, &qchain, &ports(80, 40000));
                payload.truncate(8);
                payload.extend(quoted);
            }
            let pkt = ip6(next, &src, &dst, &chain, &payload);
            let cut = usize::try_from(rnd() % 24).unwrap() * usize::from(n % 5 == 0);
            agree(&prog, 0x86dd, &pkt[..pkt.len() - cut], &v);
        }
    }

    #[test]
    fn adding_ipv6_vips_leaves_ipv4_steering_alone() {
        let v4 = vips();
        let both_families = vips6();
        let (p4, p46) = (
            FanoutProgram::build(&v4),
            FanoutProgram::build(&both_families),
        );
        for port in 1024..1200u16 {
            for pkt in [
                ip(6, CLIENT, VIP, &ports(port, 80)),
                ip(6, RS, CLIENT, &ports(8080, port)),
                ip(17, [10, 9, 9, 9], RS, &ports(port, 53)),
            ] {
                assert_eq!(run(&p4, 0x0800, &pkt), run(&p46, 0x0800, &pkt));
                assert_eq!(
                    fanout_hash_l3(0x0800, &pkt, &v4),
                    fanout_hash_l3(0x0800, &pkt, &both_families)
                );
            }
        }
    }
}
