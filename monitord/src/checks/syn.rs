//! The half-open TCP probe (`type = "syn"`, or `tcp_probe = "syn"` for the implicit checks):
//! a SYN from a raw socket, judged by what comes back, with no socket per check.
//!
//! # What it proves, and what it does not
//!
//! A SYN-ACK from the server's address and port, acknowledging our SYN, proves what a
//! completed `connect()` proves on a Linux server: the server is up, its kernel has a socket
//! *listening* on the port, and the accept queue of that socket has room (Linux drops a SYN
//! when the accept queue is full, so a saturated server fails both probes alike). Neither
//! probe proves that the application calls `accept()` or answers a request: use an HTTP, DNS
//! or script check for that. A RST fails the check at once ("connection refused"); silence
//! fails it at its timeout. Unlike `connect()`, an ICMP error (no route, host unreachable) is
//! not seen: such a failure is reported at the timeout, which does not change the detection
//! time (`fall` runs are counted either way).
//!
//! The server's kernel answers the SYN itself, the application never sees a connection
//! (no empty connections in its logs, no worker woken). Our kernel has no socket for the
//! SYN-ACK and answers it with a RST, which frees the server's half-open entry at once.
//!
//! # How
//!
//! One raw `IPPROTO_TCP` socket per address family, with a classic BPF filter so that it only
//! receives segments for our source port; the port itself is reserved by a TCP socket bound to
//! it (never listening), so that no connection of this host ever uses it. The SYNs of all
//! checks due at one wake-up leave with one `sendmmsg`, and replies are read with `recvmmsg`,
//! so a thousand checks a second cost a few dozen system calls instead of five per check. The
//! initial sequence number carries the check's slot and a per-run counter (mixed with a
//! random secret), so a reply finds its check without a table, and a late reply to an earlier
//! run is ignored. The TCP checksum needs the source address the kernel will use: it is asked
//! once per destination (a UDP `connect`, no packet sent) and kept for [`SOURCE_TTL`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::sys::{
    MAX_BATCH, SockAddr, attach_filter, bind, local_addr, recv_batch, send_batch, socket,
};

/// How long a looked-up source address is trusted (routes rarely change; a wrong one makes
/// probes fail, and is looked up again after this long).
pub const SOURCE_TTL: Duration = Duration::from_secs(60);
/// SYNs sent per `sendmmsg`, replies read per `recvmmsg`.
const BATCH: usize = MAX_BATCH;
/// Bytes of a reply we look at: an IPv4 header with options and a TCP header.
const SNAP: usize = 128;
/// Our SYN: a 20-byte TCP header and an MSS option, as an ordinary SYN has.
const SYN_LEN: usize = 24;

/// What came back for one of our SYNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynReply {
    /// The server's address and port.
    pub from: SocketAddr,
    /// The sequence number of our SYN (the reply's acknowledgment number minus one).
    pub seq: u32,
    /// SYN-ACK (true: listening) or RST (false: refused).
    pub open: bool,
}

/// A SYN waiting for the next [`SynSocket::flush`].
#[derive(Debug, Clone, Copy)]
struct Pending {
    key: usize,
    src: IpAddr,
    dst: SocketAddr,
    seq: u32,
}

fn sum16(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(u16::from_be_bytes([*b, 0]));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// The TCP checksum of `segment` from `src` to `dst` (same family; RFC 793 / RFC 8200
/// pseudo-header).
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(0);
    let mut sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum16(&d.octets(), sum16(&s.octets(), 0)) + 6 + len,
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum16(&d.octets(), sum16(&s.octets(), 0)) + 6 + (len >> 16) + (len & 0xffff)
        }
        _ => 0,
    };
    sum = sum16(segment, sum);
    fold(sum)
}

/// Our SYN from `src`:`sport` to `dst`, with sequence number `seq` and a valid checksum.
pub fn syn_segment(src: IpAddr, sport: u16, dst: SocketAddr, seq: u32) -> [u8; SYN_LEN] {
    let mut p = [0u8; SYN_LEN];
    p[0..2].copy_from_slice(&sport.to_be_bytes());
    p[2..4].copy_from_slice(&dst.port().to_be_bytes());
    p[4..8].copy_from_slice(&seq.to_be_bytes());
    p[12] = 6 << 4; // data offset: 6 words
    p[13] = 0x02; // SYN
    p[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
    p[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    let c = tcp_checksum(src, dst.ip(), &p);
    p[16..18].copy_from_slice(&c.to_be_bytes());
    p
}

/// Parses a TCP segment (`v4`: with its IPv4 header, as IPv4 raw sockets deliver it) from
/// `from` to our port `sport`: a SYN-ACK or a RST acknowledging one of our SYNs.
pub fn parse_reply(buf: &[u8], from: IpAddr, sport: u16, v4: bool) -> Option<SynReply> {
    let tcp = if v4 {
        let ihl = usize::from(buf.first()? & 0x0f) * 4;
        if ihl < 20 || *buf.get(9)? != 6 {
            return None;
        }
        buf.get(ihl..)?
    } else {
        buf
    };
    let be16 = |at: usize| Some(u16::from_be_bytes([*tcp.get(at)?, *tcp.get(at + 1)?]));
    if be16(2)? != sport {
        return None;
    }
    let ack = u32::from_be_bytes(tcp.get(8..12)?.try_into().ok()?);
    let flags = *tcp.get(13)?;
    let (syn, rst, has_ack) = (flags & 0x02 != 0, flags & 0x04 != 0, flags & 0x10 != 0);
    let open = match (syn, rst, has_ack) {
        (true, false, true) => true,
        (false, true, true) => false,
        _ => return None,
    };
    Some(SynReply {
        from: SocketAddr::new(from, be16(0)?),
        seq: ack.wrapping_sub(1),
        open,
    })
}

/// The classic BPF program: accept TCP segments whose destination port is `port`.
fn port_filter(port: u16, v4: bool) -> Vec<libc::sock_filter> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: u16::try_from(code).unwrap_or(0),
        jt,
        jf,
        k,
    };
    let mut f = Vec::new();
    if v4 {
        // x = IP header length; a = the 16 bits at x + 2 (the destination port).
        f.push(op(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH, 0, 0, 0));
        f.push(op(libc::BPF_LD | libc::BPF_H | libc::BPF_IND, 0, 0, 2));
    } else {
        f.push(op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 2));
    }
    f.push(op(
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        0,
        1,
        u32::from(port),
    ));
    f.push(op(libc::BPF_RET | libc::BPF_K, 0, 0, 0xffff));
    f.push(op(libc::BPF_RET | libc::BPF_K, 0, 0, 0));
    f
}

/// The raw socket of one address family, with its reserved port, source cache and batches.
pub(crate) struct SynSocket {
    fd: OwnedFd,
    /// Bound to our source port (never listening): keeps every other socket of this host off
    /// it, and makes our kernel answer SYN-ACKs with a RST.
    _reserve: OwnedFd,
    v4: bool,
    port: u16,
    sources: HashMap<IpAddr, (IpAddr, Instant)>,
    pending: Vec<Pending>,
    // Reused buffers: nothing is allocated per probe once they have grown.
    packets: Vec<[u8; SYN_LEN]>,
    addrs: Vec<SockAddr>,
    rx: Vec<[u8; SNAP]>,
    rx_addrs: Vec<SockAddr>,
    rx_lens: Vec<usize>,
}

impl std::fmt::Debug for SynSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynSocket")
            .field("fd", &self.fd)
            .field("v4", &self.v4)
            .field("port", &self.port)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl SynSocket {
    /// Opens the raw socket (needs `CAP_NET_RAW`) and reserves a source port.
    pub(crate) fn open(v6: bool) -> io::Result<SynSocket> {
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        let reserve = socket(family, libc::SOCK_STREAM, 0)?;
        let any = if v6 {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0u8; 4], 0))
        };
        bind(reserve.as_fd(), &SockAddr::new(any))?;
        let port = local_addr(reserve.as_fd())?
            .port()
            .ok_or_else(|| io::Error::other("getsockname: not an IP address"))?;
        let fd = socket(family, libc::SOCK_RAW, libc::IPPROTO_TCP).map_err(|e| {
            io::Error::new(e.kind(), format!("raw TCP socket (needs CAP_NET_RAW): {e}"))
        })?;
        let filter = port_filter(port, !v6);
        attach_filter(fd.as_fd(), &filter)?;
        // Segments that arrived between socket() and the filter: not ours, drop them.
        let mut s = SynSocket {
            fd,
            _reserve: reserve,
            v4: !v6,
            port,
            sources: HashMap::new(),
            pending: Vec::with_capacity(BATCH),
            packets: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            rx: vec![[0u8; SNAP]; BATCH],
            rx_addrs: vec![SockAddr::empty(); BATCH],
            rx_lens: vec![0; BATCH],
        };
        let mut drained = Vec::new();
        while s.recv(&mut drained)? > 0 {
            drained.clear();
        }
        Ok(s)
    }

    /// The source address the kernel uses towards `dst`, cached.
    fn source(&mut self, dst: IpAddr, now: Instant) -> io::Result<IpAddr> {
        if let Some(&(src, at)) = self.sources.get(&dst)
            && now.saturating_duration_since(at) < SOURCE_TTL
        {
            return Ok(src);
        }
        let any: SocketAddr = if dst.is_ipv6() {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0u8; 4], 0))
        };
        // connect() on a UDP socket only looks the route up: no packet leaves.
        let u = UdpSocket::bind(any)?;
        u.connect(SocketAddr::new(dst, 9))?;
        let src = u.local_addr()?.ip();
        self.sources.insert(dst, (src, now));
        Ok(src)
    }

    /// Queues a SYN to `dst` with `seq` for slot `key`; sent by [`SynSocket::flush`].
    pub(crate) fn queue(
        &mut self,
        key: usize,
        dst: SocketAddr,
        seq: u32,
        now: Instant,
    ) -> io::Result<()> {
        let src = self.source(dst.ip(), now)?;
        self.pending.push(Pending { key, src, dst, seq });
        Ok(())
    }

    /// True when SYNs wait for [`SynSocket::flush`].
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends every queued SYN, `BATCH` per system call. The slots whose SYN could not be sent
    /// are appended to `failed` with the error.
    pub(crate) fn flush(&mut self, failed: &mut Vec<(usize, io::Error)>) {
        let mut done = 0;
        while done < self.pending.len() {
            let end = (done + BATCH).min(self.pending.len());
            self.packets.clear();
            self.addrs.clear();
            for p in &self.pending[done..end] {
                self.packets
                    .push(syn_segment(p.src, self.port, p.dst, p.seq));
                // Raw sockets take the port of the protocol, not of the peer.
                self.addrs
                    .push(SockAddr::new(SocketAddr::new(p.dst.ip(), 0)));
            }
            let n = end - done;
            let mut sent = 0;
            while sent < n {
                match send_batch(self.fd.as_fd(), &self.packets[sent..], &self.addrs[sent..]) {
                    Ok(k) => sent += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // The first unsent one failed (no route, ...): report it, go on
                        // after it.
                        let p = self.pending[done + sent];
                        self.sources.remove(&p.dst.ip());
                        failed.push((p.key, e));
                        sent += 1;
                    }
                }
            }
            done = end;
        }
        self.pending.clear();
    }

    /// Reads the replies waiting (up to a few batches) into `out`; the number of segments
    /// read (0: nothing was waiting).
    pub(crate) fn recv(&mut self, out: &mut Vec<SynReply>) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let r = recv_batch(
                self.fd.as_fd(),
                &mut self.rx,
                &mut self.rx_addrs,
                &mut self.rx_lens,
            );
            let n = match r {
                Ok(n) => n,
                Err(e) => {
                    return match e.kind() {
                        io::ErrorKind::WouldBlock => Ok(total),
                        io::ErrorKind::Interrupted => continue,
                        _ => Err(e),
                    };
                }
            };
            let got = self.rx.iter().zip(&self.rx_addrs).zip(&self.rx_lens);
            for ((buf, addr), &len) in got.take(n) {
                let Some(from) = addr.ip() else {
                    continue;
                };
                if let Some(reply) = parse_reply(&buf[..len], from, self.port, self.v4) {
                    out.push(reply);
                }
            }
            total += n;
            if n < BATCH {
                return Ok(total);
            }
        }
    }
}

impl AsRawFd for SynSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's SYN-ACK from port 80 to 40000 acknowledging our sequence 0x12345678.
    fn syn_ack_from_80() -> [u8; 20] {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&80u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[8..12].copy_from_slice(&0x1234_5679u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x12;
        tcp
    }

    #[test]
    fn syn_checksum_verifies_and_replies_parse() {
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let dst: SocketAddr = "192.0.2.9:80".parse().unwrap();
        let p = syn_segment(src, 40000, dst, 0x1234_5678);
        assert_eq!(tcp_checksum(src, dst.ip(), &p), 0);
        assert_eq!(p[13], 0x02);
        // The server's SYN-ACK, behind a 20-byte IPv4 header.
        let mut reply = vec![0x45u8, 0, 0, 44, 0, 0, 0, 0, 64, 6, 0, 0];
        reply.extend_from_slice(&[192, 0, 2, 9, 192, 0, 2, 1]);
        reply.extend_from_slice(&syn_ack_from_80());
        let from = dst.ip();
        assert_eq!(
            parse_reply(&reply, from, 40000, true),
            Some(SynReply {
                from: dst,
                seq: 0x1234_5678,
                open: true
            })
        );
        assert_eq!(parse_reply(&reply, from, 40001, true), None);
        reply[20 + 13] = 0x14; // RST|ACK
        assert_eq!(
            parse_reply(&reply, from, 40000, true).map(|r| r.open),
            Some(false)
        );
        reply[20 + 13] = 0x04; // a bare RST acknowledges nothing
        assert_eq!(parse_reply(&reply, from, 40000, true), None);
        assert_eq!(parse_reply(&reply[20..], from, 40000, false), None);
        for n in 0..reply.len() {
            let _ = parse_reply(&reply[..n], from, 40000, true);
            let _ = parse_reply(&reply[..n], from, 40000, false);
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let d6: SocketAddr = "[2001:db8::9]:443".parse().unwrap();
        assert_eq!(tcp_checksum(v6, d6.ip(), &syn_segment(v6, 1, d6, 7)), 0);
    }

    #[test]
    fn ipv6_segments_checksum_over_the_pseudo_header_and_replies_parse() {
        let src: IpAddr = "2001:db8::1".parse().unwrap();
        let dst: SocketAddr = "[2001:db8::9]:80".parse().unwrap();
        let p = syn_segment(src, 40000, dst, 0x1234_5678);
        // RFC 8200 8.1 by hand: source, destination, upper-layer length (32 bits), three zero
        // bytes and next header 6, then the segment with a zero checksum field.
        let mut pseudo = Vec::new();
        if let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst.ip()) {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
        }
        pseudo.extend_from_slice(&u32::try_from(SYN_LEN).unwrap().to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
        let mut zeroed = p;
        zeroed[16..18].copy_from_slice(&[0, 0]);
        pseudo.extend_from_slice(&zeroed);
        assert_eq!(
            u16::from_be_bytes([p[16], p[17]]),
            crate::checks::icmp::checksum(&pseudo)
        );
        // Another source changes it: the pseudo-header is in.
        assert_ne!(
            syn_segment("2001:db8::2".parse().unwrap(), 40000, dst, 0x1234_5678),
            p
        );
        // Replies come without the IPv6 header (raw IPv6 sockets strip it).
        let mut tcp = syn_ack_from_80();
        assert_eq!(
            parse_reply(&tcp, dst.ip(), 40000, false),
            Some(SynReply {
                from: dst,
                seq: 0x1234_5678,
                open: true
            })
        );
        tcp[13] = 0x14;
        assert_eq!(
            parse_reply(&tcp, dst.ip(), 40000, false).map(|r| r.open),
            Some(false)
        );
        assert_eq!(parse_reply(&tcp, dst.ip(), 40001, false), None);
    }
}
