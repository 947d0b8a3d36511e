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
//! * Everything else (not IPv4, too short to read what the rule needs) goes to member 0.
//!
//! Both IP headers are assumed to be 20 bytes long (the director drops IP options).
//!
//! A fanout program runs on the skb as the protocol layer sees it: data starts at the
//! network header, not at the Ethernet header (`fanout_demux_bpf` in af_packet.c), the
//! ethertype comes from the ancillary `SKF_AD_PROTOCOL` load, an out-of-bounds load ends
//! the program with 0, and the member is the return value modulo the number of members.
//! Members are numbered in the order they joined; [`open_fanout`] joins them in order.
//!
//! [`fanout_hash`] is the same function in Rust, for tests and for backends (AF_XDP) that
//! steer in user space.

use std::net::Ipv4Addr;
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
/// VIP comparisons per run of the chain (a conditional jump reaches at most 255 ahead).
const GROUP: usize = 128;

/// The steering hash of an (address, port) pair.
pub const fn mix(addr: u32, port: u16) -> u32 {
    let h = addr.wrapping_mul(K1) ^ port as u32;
    let h = h.wrapping_mul(K2);
    h ^ (h >> 16)
}

/// The steering hash of a frame as the ring shows it (from its Ethernet header; the kernel
/// has already removed an offloaded VLAN tag). Member = hash % members.
pub fn fanout_hash(frame: &[u8], vips: &[Ipv4Addr]) -> u32 {
    match frame {
        [_, _, _, _, _, _, _, _, _, _, _, _, a, b, l3 @ ..] => {
            fanout_hash_l3(u16::from_be_bytes([*a, *b]), l3, vips)
        }
        _ => 0,
    }
}

/// The steering hash of a network-layer packet with the given ethertype.
pub fn fanout_hash_l3(ethertype: u16, packet: &[u8], vips: &[Ipv4Addr]) -> u32 {
    if ethertype != 0x0800 {
        return 0;
    }
    reference(packet, vips).unwrap_or(0)
}

/// The program's logic, load for load: `None` where the program would read out of bounds.
fn reference(p: &[u8], vips: &[Ipv4Addr]) -> Option<u32> {
    let b = |at: usize| p.get(at).copied();
    let h = |at: usize| p.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
    let w = |at: usize| {
        p.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let icmp_error = b(9)? == 1 && matches!(b(20)?, 3 | 11 | 12);
    // (checked address, its port, other address, its port) and where to find them.
    let (checked, other, proto_at, frag_at, checked_port_at, other_port_at) = if icmp_error {
        (w(40)?, w(44)?, 37, 34, 48, 50)
    } else {
        (w(16)?, w(12)?, 9, 6, 22, 20)
    };
    let (checked_port, other_port) = if matches!(b(proto_at)?, 6 | 17) && h(frag_at)? & 0x3fff == 0
    {
        (h(checked_port_at)?, h(other_port_at)?)
    } else {
        (0, 0)
    };
    let is_vip = vips.iter().any(|&v| u32::from(v) == checked);
    Some(if is_vip {
        mix(other, other_port)
    } else {
        mix(checked, checked_port)
    })
}

/// Builds the classic BPF fanout program.
#[derive(Debug, Clone, Copy)]
pub struct FanoutProgram;

impl FanoutProgram {
    /// VIPs a program can hold within the kernel's 4096-instruction limit.
    pub const MAX_VIPS: usize = 3900;

    /// The program for this VIP set (duplicates are ignored). Pure: no system call.
    /// Longer than `BPF_MAXINSNS` if there are more than [`Self::MAX_VIPS`] VIPs; installing
    /// it then fails with a clear error.
    pub fn build(vips: &[Ipv4Addr]) -> Vec<sock_filter> {
        let mut vips: Vec<u32> = vips.iter().map(|&v| u32::from(v)).collect();
        vips.sort_unstable();
        vips.dedup();
        assemble(&program(&vips))
    }
}

/// Jump targets, resolved by [`assemble`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum L {
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
    /// The trampoline of VIP group n.
    Tramp(usize),
    /// The start of VIP group n.
    Group(usize),
}

#[derive(Clone, Copy, Debug)]
enum Op {
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

const LD_W_ABS: u16 = op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
const LD_H_ABS: u16 = op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS);
const LD_B_ABS: u16 = op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS);
const LD_IMM: u16 = op(libc::BPF_LD | libc::BPF_IMM);
const LD_MEM: u16 = op(libc::BPF_LD | libc::BPF_MEM);
const ST: u16 = op(libc::BPF_ST);
const ALU_MUL_K: u16 = op(libc::BPF_ALU | libc::BPF_MUL | libc::BPF_K);
const ALU_XOR_X: u16 = op(libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X);
const ALU_RSH_K: u16 = op(libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K);
const TAX: u16 = op(libc::BPF_MISC | libc::BPF_TAX);
const JEQ_K: u16 = op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
const JSET_K: u16 = op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K);
const JA: u16 = op(libc::BPF_JMP | libc::BPF_JA);
const RET_K: u16 = op(libc::BPF_RET | libc::BPF_K);
const RET_A: u16 = op(libc::BPF_RET | libc::BPF_A);
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the skb's protocol (ethertype), host order.
const AD_PROTOCOL: u32 =
    u32::from_ne_bytes((libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL).to_ne_bytes());

/// Scratch cells: the checked address and its port, the other address and its port.
const M_CHECKED: u32 = 0;
const M_CHECKED_PORT: u32 = 1;
const M_OTHER: u32 = 2;
const M_OTHER_PORT: u32 = 3;

fn program(vips: &[u32]) -> Vec<Op> {
    use Op::{Ja, Jump, Label, Stmt};
    let mut p = vec![
        Stmt(LD_H_ABS, AD_PROTOCOL),
        Jump(JEQ_K, 0x0800, L::Ip, L::Next),
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
    ];
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

/// Resolves labels into relative jump offsets.
fn assemble(ops: &[Op]) -> Vec<sock_filter> {
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
        assert!(to > from, "backward jump in the fanout program");
        to - from - 1
    };
    let short = |from: usize, l: L| -> u8 {
        u8::try_from(target(from, l)).expect("fanout program: conditional jump beyond 255")
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
    /// The VIPs the program recognises.
    pub vips: Vec<Ipv4Addr>,
    /// The group id (unique per network namespace); `None` lets the kernel pick a free one.
    pub group_id: Option<u16>,
}

/// Changes a fanout group's program while it runs. Holds a duplicate of member 0's socket:
/// drop it together with the rings.
#[derive(Debug)]
pub struct FanoutControl {
    fd: OwnedFd,
    iface: Interface,
    group_id: u16,
    members: usize,
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
    pub fn set_vips(&self, vips: &[Ipv4Addr]) -> Result<()> {
        set_program(self.fd.as_fd(), &self.iface, &FanoutProgram::build(vips))
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
                    "{} instructions (at most {max}): too many VIPs (at most {})",
                    prog.len(),
                    FanoutProgram::MAX_VIPS
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
    let fprog = libc::sock_fprog {
        len: 1,
        filter: ret0.as_ptr().cast_mut(),
    };
    sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog).map_err(|e| {
        Error::sys(
            "hold back frames",
            iface.name(),
            "setsockopt(SO_ATTACH_FILTER)",
            e,
        )
    })
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
    let fd = rings[0].as_fd().try_clone_to_owned().map_err(|e| {
        Error::sys(
            "keep a handle on the fanout group",
            iface.name(),
            "fcntl(F_DUPFD_CLOEXEC)",
            e,
        )
    })?;
    let control = FanoutControl {
        fd,
        iface: iface.clone(),
        group_id: id,
        members: fanout.members,
    };
    Ok((rings, control))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic BPF interpreter for the instructions the program uses, with the kernel's
    /// semantics: loads relative to the network header, out-of-bounds loads return 0.
    fn run(prog: &[sock_filter], ethertype: u16, pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        let load = |k: u32, n: usize| -> Option<u32> {
            if k == AD_PROTOCOL {
                return Some(u32::from(ethertype));
            }
            let at = usize::try_from(k).ok()?;
            let bytes = pkt.get(at..at + n)?;
            Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS | LD_H_ABS | LD_B_ABS => {
                    let n = match i.code {
                        LD_W_ABS => 4,
                        LD_H_ABS => 2,
                        _ => 1,
                    };
                    match load(i.k, n) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                LD_IMM => a = i.k,
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

    fn vips() -> Vec<Ipv4Addr> {
        vec![Ipv4Addr::from(VIP), Ipv4Addr::new(192, 168, 7, 7)]
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

    #[test]
    fn program_matches_reference_on_many_packets() {
        // Many VIPs so that the chain spans several trampolined groups.
        let mut v: Vec<Ipv4Addr> = (0..700u32)
            .map(|i| Ipv4Addr::from(0x0a64_0000 + i * 3))
            .collect();
        v.push(Ipv4Addr::from(VIP));
        let prog = FanoutProgram::build(&v);
        assert!(prog.len() < 4096);
        let mut seed = 0x1234_5678_u32;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for n in 0..20_000 {
            let pick_vip = |r: u32| {
                // A VIP one time in three (`match`: `is_multiple_of` is newer than our MSRV).
                match r % 3 {
                    0 => u32::from(v[usize::try_from(r / 3).unwrap() % v.len()]).to_be_bytes(),
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
            let len = pkt.len() - usize::try_from(rnd() % 8).unwrap() * usize::from(n % 5 == 0);
            let pkt = &pkt[..len];
            assert_eq!(
                run(&prog, 0x0800, pkt),
                fanout_hash_l3(0x0800, pkt, &v),
                "packet {pkt:02x?}"
            );
        }
    }

    #[test]
    fn too_many_vips_is_refused_not_truncated() {
        let v: Vec<Ipv4Addr> = (0..5000u32).map(Ipv4Addr::from).collect();
        let prog = FanoutProgram::build(&v);
        assert!(prog.len() > 4096);
        let ok: Vec<Ipv4Addr> = (0..u32::try_from(FanoutProgram::MAX_VIPS).unwrap())
            .map(Ipv4Addr::from)
            .collect();
        assert!(FanoutProgram::build(&ok).len() <= 4096);
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
}
