//! Test bed: two network namespaces joined by a veth pair, removed on drop.
//!
//! Sockets are created inside a namespace on a dedicated thread that enters it with
//! setns(2) and then exits (a thread that changed namespace is never reused). A socket stays
//! in the namespace it was created in, so it can be used from the test thread afterwards.

#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lvs_afpacket::{FrameMeta, RxRing};

#[allow(unused_imports)] // not every test binary uses it
pub use lvs_testsupport::root_or_skip;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("lvsafp-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        // No IPv6 chatter (router solicitations, DAD) in the rings.
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    /// Runs a command inside the namespace and asserts it succeeds.
    pub fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        ip(&args);
    }

    /// Runs `f` on a fresh thread that has entered this namespace; the thread ends with `f`.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).expect("open netns");
                // SAFETY: setns on a valid namespace fd only changes this thread's network
                // namespace; the thread runs `f` and exits, it is never reused.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
pub const IP_A: [u8; 4] = [10, 77, 0, 1];
pub const IP_B: [u8; 4] = [10, 77, 0, 2];

/// Namespace `a` (interface `va`, 10.77.0.1, MAC_A) and `b` (`vb`, 10.77.0.2, MAC_B),
/// joined by a veth pair, with static neighbours (no ARP).
#[derive(Debug)]
pub struct Testbed {
    pub a: Netns,
    pub b: Netns,
}

impl Testbed {
    pub fn new() -> Self {
        let (a, b) = (Netns::new(), Netns::new());
        ip(&[
            "link",
            "add",
            "va",
            "netns",
            &a.name,
            "address",
            "02:00:00:00:00:0a",
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            "netns",
            &b.name,
            "address",
            "02:00:00:00:00:0b",
        ]);
        for (ns, dev, addr, peer, peer_mac) in [
            (&a, "va", "10.77.0.1/24", "10.77.0.2", "02:00:00:00:00:0b"),
            (&b, "vb", "10.77.0.2/24", "10.77.0.1", "02:00:00:00:00:0a"),
        ] {
            ns.exec(&["ip", "addr", "add", addr, "dev", dev]);
            ns.exec(&["ip", "link", "set", dev, "up"]);
            ns.exec(&[
                "ip",
                "neigh",
                "replace",
                peer,
                "lladdr",
                peer_mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
        let bed = Self { a, b };
        bed.wait_carrier();
        bed
    }

    /// Waits (polling, with a deadline) until both ends report carrier.
    pub fn wait_carrier(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for (ns, dev) in [(&self.a, "va"), (&self.b, "vb")] {
            loop {
                let out = Command::new("ip")
                    .args(["-n", &ns.name, "-o", "link", "show", dev])
                    .output()
                    .expect("run ip");
                let ok = String::from_utf8_lossy(&out.stdout).contains("LOWER_UP");
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "{dev} has no carrier");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Frames received until `want` matched or the deadline passed: copies of the bytes and
/// the metadata of every frame for which `pred` holds.
pub fn collect(
    rx: &mut RxRing,
    want: usize,
    timeout: Duration,
    pred: impl Fn(&[u8]) -> bool,
) -> Vec<(Vec<u8>, FrameMeta)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        while let Some(mut block) = rx.next_block() {
            for frame in block.frames() {
                if pred(frame.data()) {
                    got.push((frame.data().to_vec(), frame.meta));
                }
            }
        }
        let now = Instant::now();
        if got.len() >= want || now >= deadline {
            return got;
        }
        rx.wait(Some((deadline - now).min(Duration::from_millis(20))))
            .expect("wait");
    }
}

/// A small ring for tests, of the default version.
pub fn small_ring() -> lvs_afpacket::RxConfig {
    small_ring_of(lvs_afpacket::RingVersion::default())
}

/// A small ring for tests of `version`: 256 KiB for TPACKET_V3, whose blocks pack small
/// frames densely; 1 MiB (512 slots of 2 KiB) for TPACKET_V2, so that it holds as many of
/// the tests' bursts of small frames.
pub fn small_ring_of(version: lvs_afpacket::RingVersion) -> lvs_afpacket::RxConfig {
    let block_count = match version {
        lvs_afpacket::RingVersion::V2 => 16,
        lvs_afpacket::RingVersion::V3 => 4,
    };
    lvs_afpacket::RxConfig {
        version,
        block_size: 64 * 1024,
        block_count,
        ..Default::default()
    }
}

/// An Ethernet + IPv4 + UDP frame with correct checksums.
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).expect("build udp frame");
    v
}

/// An Ethernet + IPv4 + TCP SYN frame.
pub fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1, 64240)
        .syn();
    let mut v = Vec::with_capacity(b.size(0));
    b.write(&mut v, &[]).expect("build tcp frame");
    v
}

/// An ICMP error (type/code) from `src` to `dst` quoting the first 28 bytes of `quoted`'s
/// IP packet (`quoted` is a whole frame).
pub fn icmp_error(src: [u8; 4], dst: [u8; 4], icmp_type: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, 64)
        .icmpv4_raw(icmp_type, code, [0, 0, 5, 0xdc]);
    let payload = &quoted[14..14 + 28];
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, payload).expect("build icmp frame");
    v
}

/// UDP destination port of an IPv4 frame with a 20-byte header (0 if not UDP).
pub fn udp_dport(frame: &[u8]) -> u16 {
    if frame.len() >= 38 && frame[12..14] == [0x08, 0x00] && frame[23] == 17 {
        u16::from_be_bytes([frame[36], frame[37]])
    } else {
        0
    }
}
