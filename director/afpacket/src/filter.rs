//! The receive filter: a classic BPF socket filter (`SO_ATTACH_FILTER`) on every receive
//! ring, so that the kernel drops a frame the data plane would not act on before it copies
//! the frame into a ring or wakes a worker.
//!
//! A socket filter on a `SOCK_RAW` packet socket runs on the frame from its link-layer
//! header (`packet_rcv`/`tpacket_rcv` push the MAC header back before `run_filter`): the
//! ethertype is at byte 12 and the network header at byte 14, as the ring shows the frame
//! (an offloaded VLAN tag is not in it). A frame is accepted when:
//!
//! * IPv4: its destination is a VIP, or its source one of the VS/NAT real servers (their
//!   replies), or it is ICMP (errors about tracked connections, to a VIP or to the
//!   director's own tunnel source);
//! * IPv6: likewise with IPv6 addresses; or its next header is neither TCP nor UDP
//!   (ICMPv6 errors, extension headers: the data plane's parser decides);
//! * the ethertype is a VLAN tag the kernel left in the frame (0x8100, 0x88A8);
//! * its IP header is one the data plane counts as malformed whatever the addresses (too
//!   short to hold them, wrong version or header length, a length the frame does not hold,
//!   a wrong IPv4 header checksum), so that its drop counters stay as they were.
//!
//! Everything else (ARP, other ethertypes, IP traffic to and from other hosts) is dropped.
//! The ICMP and other-header rules hold only for a family with an address in the filter: a
//! connection and the errors about it are of one family (the director tunnels IPv4 in IPv4
//! and IPv6 in IPv6 only), so with no address at all (no layer-4 service) every IP frame is
//! dropped.
//!
//! A filter is replaced with another `SO_ATTACH_FILTER`, which swaps atomically.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use libc::sock_filter;

use crate::error::{Error, Result};
use crate::fanout::{
    ALU_ADD_X, ALU_AND_K, ALU_RSH_K, ALU_SUB_K, JEQ_K, JGE_K, JGE_X, L, LD_B_ABS, LD_H_ABS,
    LD_W_ABS, LD_W_LEN, LDX_MEM, Op, RET_K, ST, TAX, TXA, assemble,
};
use crate::iface::Interface;
use crate::sys;

/// What an accepting filter returns: the whole frame (the ring's own snap length applies).
const ACCEPT: u32 = u32::MAX;
/// IPv4 comparisons per run of a chain (a conditional jump reaches at most 255 ahead).
const GROUP: usize = 200;
/// IPv6 addresses per run of a chain: each takes eight instructions.
const GROUP6: usize = 30;
/// Offsets in the frame (Ethernet header of 14 bytes first).
const ETHERTYPE: u32 = 12;
const V4_PROTO: u32 = 14 + 9;
const V4_SRC: u32 = 14 + 12;
const V4_DST: u32 = 14 + 16;
const V6_NEXT: u32 = 14 + 6;
const V6_SRC: u32 = 14 + 8;
const V6_DST: u32 = 14 + 24;
const V4_TOTAL_LEN: u32 = 14 + 2;
const V6_PAYLOAD_LEN: u32 = 14 + 4;
/// The shortest frames whose addresses the filter can read.
const V4_MIN: u32 = 14 + 20;
const V6_MIN: u32 = 14 + 40;

/// The addresses the data plane acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxFilter {
    /// Destinations: every VIP (and firewall-mark rule address).
    pub vips: Vec<IpAddr>,
    /// Sources: the VS/NAT real servers, whose replies come back through the director.
    pub nat_servers: Vec<IpAddr>,
}

impl RxFilter {
    /// The filter's program; `None` when it would be longer than the kernel takes
    /// (`BPF_MAXINSNS`): too many addresses for one program. Pure: no system call.
    pub fn program(&self) -> Option<Vec<sock_filter>> {
        let prog = assemble(&ops(self));
        let max = usize::try_from(libc::BPF_MAXINSNS).unwrap_or(4096);
        (prog.len() <= max).then_some(prog)
    }

    /// A program that accepts every frame (the fallback when [`Self::program`] gives none).
    pub fn accept_all() -> Vec<sock_filter> {
        vec![ret(ACCEPT)]
    }
}

const fn ret(k: u32) -> sock_filter {
    sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Sorted, without duplicates: IPv4 as integers, IPv6 as four big-endian words.
fn split(addrs: &[IpAddr]) -> (Vec<u32>, Vec<[u32; 4]>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for a in addrs {
        match a {
            IpAddr::V4(a) => v4.push(u32::from(*a)),
            IpAddr::V6(a) => {
                let o = a.octets();
                v6.push(std::array::from_fn(|i| {
                    u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                }));
            }
        }
    }
    v4.sort_unstable();
    v4.dedup();
    v6.sort_unstable();
    v6.dedup();
    (v4, v6)
}

/// Makes fresh labels.
struct Labels(usize);

impl Labels {
    fn next(&mut self) -> L {
        self.0 += 1;
        L::Seq(self.0)
    }
}

fn ops(f: &RxFilter) -> Vec<Op> {
    use Op::{Ja, Jump, Label, Stmt};
    let (vips4, vips6) = split(&f.vips);
    let (nat4, nat6) = split(&f.nat_servers);
    let any4 = !(vips4.is_empty() && nat4.is_empty());
    let any6 = !(vips6.is_empty() && nat6.is_empty());
    let mut l = Labels(0);
    let (v4, not_v4, v6, accept, reject) = (l.next(), l.next(), l.next(), l.next(), l.next());
    let mut p = vec![
        Stmt(LD_H_ABS, ETHERTYPE),
        Jump(JEQ_K, 0x0800, v4, L::Next),
        Jump(JEQ_K, 0x86dd, L::Next, not_v4),
        // The IPv6 part sits after the IPv4 chains: too far for a conditional jump.
        Ja(v6),
        Label(not_v4),
        Jump(JEQ_K, 0x8100, accept, L::Next),
        Jump(JEQ_K, 0x88a8, accept, reject),
        Label(accept),
        Stmt(RET_K, ACCEPT),
        Label(reject),
        Stmt(RET_K, 0),
        Label(v4),
    ];
    if any4 {
        let (long_enough, not_icmp) = (l.next(), l.next());
        p.extend([
            Stmt(LD_W_LEN, 0),
            Jump(JGE_K, V4_MIN, long_enough, L::Next),
            Stmt(RET_K, ACCEPT),
            Label(long_enough),
            Stmt(LD_B_ABS, V4_PROTO),
            Jump(JEQ_K, 1, L::Next, not_icmp),
            Stmt(RET_K, ACCEPT),
            Label(not_icmp),
        ]);
        chain4(&mut p, &mut l, V4_DST, &vips4);
        chain4(&mut p, &mut l, V4_SRC, &nat4);
        malformed4(&mut p, &mut l);
    }
    p.extend([Stmt(RET_K, 0), Label(v6)]);
    if any6 {
        let (long_enough, transport) = (l.next(), l.next());
        p.extend([
            Stmt(LD_W_LEN, 0),
            Jump(JGE_K, V6_MIN, long_enough, L::Next),
            Stmt(RET_K, ACCEPT),
            Label(long_enough),
            Stmt(LD_B_ABS, V6_NEXT),
            Jump(JEQ_K, 6, transport, L::Next),
            Jump(JEQ_K, 17, transport, L::Next),
            Stmt(RET_K, ACCEPT),
            Label(transport),
        ]);
        chain6(&mut p, &mut l, V6_DST, &vips6);
        chain6(&mut p, &mut l, V6_SRC, &nat6);
        malformed6(&mut p, &mut l);
    }
    p.push(Stmt(RET_K, 0));
    p
}

/// Accepts an IPv4 header the data plane counts as malformed whatever its addresses (or
/// refuses for its options): not version 4 with a 20-byte header, a total length the
/// frame does not hold, a wrong header checksum. Falls through for a well-formed one.
fn malformed4(p: &mut Vec<Op>, l: &mut Labels) {
    use Op::{Jump, Label, Stmt};
    let (accept, plain, fits) = (l.next(), l.next(), l.next());
    p.extend([
        Stmt(LD_B_ABS, 14),
        Jump(JEQ_K, 0x45, plain, accept),
        Label(plain),
        Stmt(LD_H_ABS, V4_TOTAL_LEN),
        Jump(JGE_K, 20, L::Next, accept),
        Stmt(TAX, 0),
        Stmt(LD_W_LEN, 0),
        Stmt(ALU_SUB_K, 14),
        Jump(JGE_X, 0, fits, accept),
        Label(fits),
        // The one's-complement sum of the header's ten 16-bit words: 0xffff when right.
        Stmt(LD_H_ABS, 14),
    ]);
    for at in (16..34).step_by(2) {
        p.extend([Stmt(TAX, 0), Stmt(LD_H_ABS, at), Stmt(ALU_ADD_X, 0)]);
    }
    for _ in 0..2 {
        // A = (A & 0xffff) + (A >> 16), through scratch cell 0.
        p.extend([
            Stmt(TAX, 0),
            Stmt(ALU_RSH_K, 16),
            Stmt(ST, 0),
            Stmt(TXA, 0),
            Stmt(ALU_AND_K, 0xffff),
            Stmt(LDX_MEM, 0),
            Stmt(ALU_ADD_X, 0),
        ]);
    }
    let well_formed = l.next();
    p.extend([
        Jump(JEQ_K, 0xffff, well_formed, accept),
        Label(accept),
        Stmt(RET_K, ACCEPT),
        Label(well_formed),
    ]);
}

/// Accepts an IPv6 header the data plane counts as malformed whatever its addresses: not
/// version 6, a payload length the frame does not hold. Falls through for a well-formed one.
fn malformed6(p: &mut Vec<Op>, l: &mut Labels) {
    use Op::{Jump, Label, Stmt};
    let (accept, version_ok, well_formed) = (l.next(), l.next(), l.next());
    p.extend([
        Stmt(LD_B_ABS, 14),
        Stmt(ALU_AND_K, 0xf0),
        Jump(JEQ_K, 0x60, version_ok, accept),
        Label(version_ok),
        Stmt(LD_H_ABS, V6_PAYLOAD_LEN),
        Stmt(ST, 0),
        Stmt(LD_W_LEN, 0),
        Stmt(ALU_SUB_K, V6_MIN),
        Stmt(LDX_MEM, 0),
        Jump(JGE_X, 0, well_formed, accept),
        Label(accept),
        Stmt(RET_K, ACCEPT),
        Label(well_formed),
    ]);
}

/// Accepts when the 32-bit word at `at` is one of `addrs`; falls through otherwise.
fn chain4(p: &mut Vec<Op>, l: &mut Labels, at: u32, addrs: &[u32]) {
    if addrs.is_empty() {
        return;
    }
    p.push(Op::Stmt(LD_W_ABS, at));
    for group in addrs.chunks(GROUP) {
        let (hit, past) = (l.next(), l.next());
        p.extend(group.iter().map(|&a| Op::Jump(JEQ_K, a, hit, L::Next)));
        p.extend([
            Op::Ja(past),
            Op::Label(hit),
            Op::Stmt(RET_K, ACCEPT),
            Op::Label(past),
        ]);
    }
}

/// Accepts when the 16 bytes at `at` are one of `addrs`; falls through otherwise.
fn chain6(p: &mut Vec<Op>, l: &mut Labels, at: u32, addrs: &[[u32; 4]]) {
    for group in addrs.chunks(GROUP6) {
        let hit = l.next();
        for addr in group {
            let miss = l.next();
            for (i, &word) in (0u32..).zip(addr) {
                p.push(Op::Stmt(LD_W_ABS, at + 4 * i));
                let on_match = if i == 3 { hit } else { L::Next };
                p.push(Op::Jump(JEQ_K, word, on_match, miss));
            }
            p.push(Op::Label(miss));
        }
        let past = l.next();
        p.extend([
            Op::Ja(past),
            Op::Label(hit),
            Op::Stmt(RET_K, ACCEPT),
            Op::Label(past),
        ]);
    }
}

/// Attaches (or atomically replaces) the socket filter of `fd`.
pub(crate) fn attach(fd: BorrowedFd<'_>, iface: &Interface, prog: &[sock_filter]) -> Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| {
        Error::config(
            "receive filter",
            iface.name(),
            format!("{} instructions: too long", prog.len()),
        )
    })?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog).map_err(|e| {
        Error::sys(
            "install the receive filter",
            iface.name(),
            "setsockopt(SO_ATTACH_FILTER)",
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::fanout::tests::run;

    fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn v4(proto: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let sum = p
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = (sum & 0xffff) + (sum >> 16);
        let csum = !u16::try_from(sum).unwrap();
        p[10..12].copy_from_slice(&csum.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        eth(0x0800, &p)
    }

    fn v6(next: u8, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, next, 64];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&[0; 20]);
        eth(0x86dd, &p)
    }

    fn accepts(f: &RxFilter, frame: &[u8]) -> bool {
        run(&f.program().unwrap(), 0, frame) != 0
    }

    const VIP: [u8; 4] = [10, 0, 0, 100];
    const RS: [u8; 4] = [10, 1, 0, 5];
    const CLIENT: [u8; 4] = [10, 9, 0, 1];

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn filter() -> RxFilter {
        RxFilter {
            vips: vec![VIP.into(), a6("2001:db8:f::100").into()],
            nat_servers: vec![RS.into(), a6("2001:db8:1::5").into()],
        }
    }

    #[test]
    fn ipv4_to_vips_and_from_nat_servers_and_icmp_pass() {
        let f = filter();
        assert!(accepts(&f, &v4(6, CLIENT, VIP)));
        assert!(accepts(&f, &v4(17, CLIENT, VIP)));
        assert!(accepts(&f, &v4(6, RS, CLIENT)));
        assert!(accepts(&f, &v4(1, [192, 0, 2, 1], [10, 0, 0, 1])));
        assert!(!accepts(&f, &v4(6, CLIENT, [10, 0, 0, 101])));
        assert!(!accepts(&f, &v4(17, VIP, CLIENT)));
        assert!(!accepts(&f, &eth(0x0806, &[0; 28])));
        assert!(!accepts(&f, &eth(0x88cc, &[0; 28])));
        assert!(accepts(&f, &eth(0x8100, &[0; 28])));
        assert!(accepts(&f, &eth(0x88a8, &[0; 28])));
    }

    #[test]
    fn malformed_headers_pass_for_the_data_plane_to_count() {
        let f = filter();
        let other = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut frame = v4(6, CLIENT, [10, 0, 0, 101]);
            edit(&mut frame);
            accepts(&f, &frame)
        };
        assert!(!other(&|_| {}), "well-formed, not ours");
        assert!(other(&|fr| fr.truncate(24)), "too short for the addresses");
        assert!(other(&|fr| fr[24] ^= 1), "bad header checksum");
        assert!(other(&|fr| fr[14] = 0x55), "version 5");
        assert!(other(&|fr| fr[14] = 0x44), "header length 16");
        assert!(other(&|fr| fr[14] = 0x46), "options");
        assert!(
            other(&|fr| fr.truncate(50)),
            "total length beyond the frame"
        );
        let other6 = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut frame = v6(6, a6("2001:db8:c::1"), a6("2001:db8:f::101"));
            edit(&mut frame);
            accepts(&f, &frame)
        };
        assert!(!other6(&|_| {}), "well-formed, not ours");
        assert!(other6(&|fr| fr.truncate(50)), "too short for the addresses");
        assert!(other6(&|fr| fr[14] = 0x40), "version 4");
        assert!(
            other6(&|fr| fr.truncate(70)),
            "payload length beyond the frame"
        );
        // Without an address of the family, nothing of it passes, malformed or not.
        let none = RxFilter::default();
        let mut short = v4(6, CLIENT, VIP);
        short.truncate(24);
        assert!(!accepts(&none, &short));
        let mut bad = v6(6, a6("::1"), a6("::2"));
        bad[14] = 0x40;
        assert!(!accepts(&none, &bad));
    }

    #[test]
    fn ipv6_by_address_and_non_transport_headers_pass() {
        let f = filter();
        let (client, vip, rs) = (
            a6("2001:db8:c::1"),
            a6("2001:db8:f::100"),
            a6("2001:db8:1::5"),
        );
        assert!(accepts(&f, &v6(6, client, vip)));
        assert!(accepts(&f, &v6(17, rs, client)));
        // Differs from the VIP in the last word only.
        assert!(!accepts(&f, &v6(6, client, a6("2001:db8:f::101"))));
        assert!(!accepts(&f, &v6(17, vip, client)));
        for next in [58, 0, 44, 60] {
            assert!(accepts(&f, &v6(next, client, a6("2001:db8:ff::1"))));
        }
    }

    #[test]
    fn a_family_without_addresses_is_dropped_whole() {
        let only4 = RxFilter {
            vips: vec![VIP.into()],
            nat_servers: Vec::new(),
        };
        assert!(accepts(&only4, &v4(1, CLIENT, [10, 0, 0, 1])));
        assert!(!accepts(&only4, &v6(58, a6("fe80::1"), a6("ff02::1"))));
        let only6 = RxFilter {
            vips: vec![a6("2001:db8:f::100").into()],
            nat_servers: Vec::new(),
        };
        assert!(!accepts(&only6, &v4(1, CLIENT, [10, 0, 0, 1])));
        assert!(!accepts(&only6, &v4(6, CLIENT, VIP)));
        assert!(accepts(&only6, &v6(58, a6("fe80::1"), a6("ff02::1"))));
    }

    #[test]
    fn no_service_drops_all_ip() {
        let f = RxFilter::default();
        assert!(!accepts(&f, &v4(1, CLIENT, VIP)));
        assert!(!accepts(&f, &v4(6, CLIENT, VIP)));
        assert!(!accepts(&f, &v6(58, a6("::1"), a6("::2"))));
        assert!(!accepts(&f, &eth(0x0806, &[0; 28])));
        assert!(accepts(&f, &eth(0x8100, &[0; 28])));
    }

    #[test]
    fn long_lists_span_groups_and_too_long_ones_give_no_program() {
        let vips: Vec<IpAddr> = (0..1000u32)
            .map(|i| Ipv4Addr::from(0x0a64_0000 + i * 3).into())
            .collect();
        let nat: Vec<IpAddr> = (0..100u128)
            .map(|i| Ipv6Addr::from((0x2001_0db8u128 << 96) + i * 5).into())
            .collect();
        let f = RxFilter {
            vips: vips.clone(),
            nat_servers: nat.clone(),
        };
        for (i, v) in vips.iter().enumerate() {
            let IpAddr::V4(a) = v else { unreachable!() };
            assert!(accepts(&f, &v4(6, CLIENT, a.octets())), "vip {i}");
            let near = Ipv4Addr::from(u32::from(*a) + 1).octets();
            assert!(!accepts(&f, &v4(6, CLIENT, near)), "vip {i} + 1");
        }
        for (i, n) in nat.iter().enumerate() {
            let IpAddr::V6(a) = n else { unreachable!() };
            assert!(accepts(&f, &v6(6, *a, a6("2001:db8:c::1"))), "server {i}");
            let near = Ipv6Addr::from(u128::from(*a) + 1);
            assert!(
                !accepts(&f, &v6(6, near, a6("2001:db8:c::1"))),
                "server {i} + 1"
            );
        }
        let too_many = RxFilter {
            vips: (0..5000u32).map(|i| Ipv4Addr::from(i).into()).collect(),
            nat_servers: Vec::new(),
        };
        assert!(too_many.program().is_none());
        assert_eq!(run(&RxFilter::accept_all(), 0, &[]), ACCEPT);
    }
}
