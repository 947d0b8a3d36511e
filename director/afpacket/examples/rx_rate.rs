//! A rough rate meter, run by hand (as root):
//!
//! ```text
//! rx_rate rx <iface> [workers] [seconds]   # fanout group, one thread per member, counts frames
//! rx_rate tx <iface> [seconds]             # floods 64-byte UDP frames with sendmmsg batches
//! ```
//!
//! For example, on a veth pair between two namespaces:
//! `ip netns exec B rx_rate rx vb 2 5` and `ip netns exec A rx_rate tx va 5`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lvs_afpacket::{FanoutConfig, Interface, RxConfig, TxConfig, TxSocket, open_fanout};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("rx") if args.len() >= 3 => rx(&args[2], arg(&args, 3, 2), arg(&args, 4, 5)),
        Some("tx") if args.len() >= 3 => tx(&args[2], arg(&args, 3, 5)),
        _ => {
            eprintln!(
                "usage: rx_rate rx <iface> [workers] [seconds] | rx_rate tx <iface> [seconds]"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("rx_rate: {e}");
        std::process::exit(1);
    }
}

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn rx(iface: &str, workers: u64, secs: u64) -> lvs_afpacket::Result<()> {
    let iface = Interface::by_name(iface)?;
    let fanout = FanoutConfig {
        members: usize::try_from(workers).unwrap_or(1),
        vips: vec![Ipv4Addr::new(10, 0, 0, 100).into()],
        group_id: None,
    };
    let (rings, _control) = open_fanout(&iface, &RxConfig::default(), &fanout)?;
    let run_for = Duration::from_secs(secs);
    let handles: Vec<_> = rings
        .into_iter()
        .map(|mut ring| {
            std::thread::spawn(move || {
                let (mut frames, mut bytes, mut blocks) = (0u64, 0u64, 0u64);
                let start = Instant::now();
                while start.elapsed() < run_for {
                    ring.wait(Some(Duration::from_millis(100))).ok();
                    while let Some(mut block) = ring.next_block() {
                        blocks += 1;
                        for frame in block.frames() {
                            frames += 1;
                            bytes += u64::from(frame.meta.len);
                        }
                    }
                }
                let stats = ring.stats().unwrap_or_default();
                (frames, bytes, blocks, stats, start.elapsed())
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (frames, bytes, blocks, stats, took) = h.join().expect("worker");
        let secs = took.as_secs_f64();
        println!(
            "worker {i}: {:.0} frames/s, {:.1} Mbit/s, {:.1} frames/block, drops {} of {}, freezes {}",
            frames as f64 / secs,
            bytes as f64 * 8.0 / secs / 1e6,
            frames as f64 / blocks.max(1) as f64,
            stats.drops,
            stats.packets,
            stats.freezes
        );
    }
    Ok(())
}

fn tx(iface: &str, secs: u64) -> lvs_afpacket::Result<()> {
    let iface = Interface::by_name(iface)?;
    let mut sock = TxSocket::open(&TxConfig::default())?;
    // Many client ports so that a fanout group spreads them.
    let frames: Vec<Vec<u8>> = (0..1024u16)
        .map(|i| {
            let b =
                etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb])
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 100], 64)
                    .udp(10000 + i, 80);
            let mut v = Vec::with_capacity(b.size(18));
            b.write(&mut v, &[0; 18]).expect("frame");
            v
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let mut batch = sock.batch();
        for f in &frames {
            batch.push(iface.index(), f)?;
        }
        batch.flush()?;
    }
    let stats = sock.stats();
    let took = start.elapsed().as_secs_f64();
    println!(
        "sent {:.0} frames/s in {:.1} frames/syscall; dropped {} (congestion) {} (refused)",
        stats.sent as f64 / took,
        stats.sent as f64 / stats.syscalls.max(1) as f64,
        stats.dropped_congestion,
        stats.dropped_error
    );
    Ok(())
}
