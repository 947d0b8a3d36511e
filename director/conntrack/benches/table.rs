//! The connection table at one million entries: memory per entry, lookup hit
//! (both directions), lookup miss, a packet's state update, and insert + remove.
//!
//! `cargo bench -p lvs-conntrack --bench table`; the memory figures are printed
//! before the timings, for `docs/PERFORMANCE.md`: for a million IPv4 entries, then for a
//! million IPv6 entries (issue 14: IPv4 at most 128 B per entry, IPv6 at most 160 B).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lvs_conntrack::*;

const ENTRIES: u32 = 1_000_000;
const VIP: Endpoint = Endpoint::v4([198, 51, 100, 1], 80);

fn client(i: u32) -> Endpoint {
    let [_, a, b, c] = i.to_be_bytes();
    Endpoint::v4(
        [100, a, b, c],
        1024 + u16::try_from(i % 50_000).unwrap_or(0),
    )
}

fn dest(i: u32) -> (Endpoint, u32) {
    let d = i % 16;
    (
        Endpoint::v4([10, 0, 0, u8::try_from(d + 1).unwrap_or(1)], 8080),
        d,
    )
}

fn new_conn(i: u32) -> NewConn {
    let (dest, dest_id) = dest(i);
    NewConn {
        proto: Proto::Tcp,
        client: client(i),
        virt: VIP,
        dest,
        forward: Forward::Nat,
        service: 1,
        dest_id,
    }
}

/// 2001:db8:<net>::<i>.
fn v6(net: u8, i: u32, port: u16) -> Endpoint {
    let mut o = [0x20, 0x01, 0x0d, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    o[12..].copy_from_slice(&i.to_be_bytes());
    Endpoint::new(Addr::v6(o), port)
}

/// The IPv6 twin of [`new_conn`].
fn new_conn6(i: u32) -> NewConn {
    let d = i % 16;
    NewConn {
        client: v6(0xc, i, client(i).port),
        virt: v6(0xa, 1, 80),
        dest: v6(0xb, d + 1, 8080),
        ..new_conn(i)
    }
}

/// A table holding `ENTRIES` established NAT connections.
fn full_table() -> Table {
    full_table_of(new_conn)
}

/// A table holding `ENTRIES` established NAT connections made by `conn`.
fn full_table_of(conn: fn(u32) -> NewConn) -> Table {
    let mut cfg = Config::with_capacity(ENTRIES as usize);
    // Re-inserted entries are half-open; with the default 90% threshold the next
    // insert would drop them and the table would shrink while being measured.
    cfg.drop_threshold = cfg.capacity;
    let mut t = Table::new(cfg, 0).expect("config");
    for i in 0..ENTRIES {
        let id = t.insert(&conn(i), None, 0).expect("room");
        t.on_packet(id, Dir::In, TcpFlags::SYN, 0).expect("live");
        t.on_packet(id, Dir::Out, TcpFlags::SYN_ACK, 0)
            .expect("live");
        t.on_packet(id, Dir::In, TcpFlags::ACK, 0).expect("live");
    }
    t
}

/// A fixed pseudo-random visiting order, so lookups miss the CPU caches the way
/// real traffic spread over a million flows does.
fn order(n: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = usize::try_from(x % (i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
    v
}

/// The memory line of `family`'s full table.
fn print_memory(family: &str, t: &Table) {
    let fp = t.footprint();
    println!(
        "conntrack memory at {} {family} entries: entry {} B, slab slot {} B, index {:.1} B/entry, \
         wheel {:.1} B/entry, half-open list {:.1} B/entry; total {} B = {:.1} B/entry",
        fp.capacity,
        fp.entry_bytes,
        fp.slot_bytes,
        per(fp.index_bytes, fp.capacity),
        per(fp.wheel_bytes, fp.capacity),
        per(fp.half_open_bytes, fp.capacity),
        fp.total_bytes,
        fp.bytes_per_entry(),
    );
    assert_eq!(t.len(), ENTRIES as usize);
}

fn bench(c: &mut Criterion) {
    let mut t = full_table();
    print_memory("IPv4", &t);
    print_memory("IPv6", &full_table_of(new_conn6));

    let order = order(ENTRIES);
    let in_keys: Vec<FlowKey> = order
        .iter()
        .map(|&i| FlowKey::new(Proto::Tcp, client(i), VIP))
        .collect();
    let out_keys: Vec<FlowKey> = order
        .iter()
        .map(|&i| FlowKey::new(Proto::Tcp, dest(i).0, client(i)))
        .collect();
    // Same clients, a VIP port nobody uses: same buckets, full comparisons, no hit.
    let miss_keys: Vec<FlowKey> = order
        .iter()
        .map(|&i| FlowKey::new(Proto::Tcp, client(i), Endpoint::new(VIP.addr, 443)))
        .collect();

    let mut g = c.benchmark_group("conntrack_1M");
    let mut i = 0usize;
    g.bench_function("lookup_in_hit", |b| {
        b.iter(|| {
            i = (i + 1) % in_keys.len();
            black_box(t.lookup_in(black_box(&in_keys[i])))
        })
    });
    g.bench_function("lookup_out_hit", |b| {
        b.iter(|| {
            i = (i + 1) % out_keys.len();
            black_box(t.lookup_out(black_box(&out_keys[i])))
        })
    });
    g.bench_function("lookup_miss", |b| {
        b.iter(|| {
            i = (i + 1) % miss_keys.len();
            black_box(t.lookup_in(black_box(&miss_keys[i])))
        })
    });
    g.bench_function("lookup_in_hit_and_on_packet", |b| {
        let mut now = 1;
        b.iter(|| {
            i = (i + 1) % in_keys.len();
            now += 1;
            if let Some(id) = t.lookup_in(&in_keys[i]) {
                black_box(t.on_packet(id, Dir::In, TcpFlags::ACK, now).ok());
            }
        })
    });
    g.bench_function("remove_then_insert", |b| {
        b.iter(|| {
            i = (i + 1) % in_keys.len();
            if let Some(id) = t.lookup_in(&in_keys[i]) {
                t.remove(id, 0).ok();
                black_box(t.insert(&new_conn(order[i]), None, 0).ok());
            }
        })
    });
    g.finish();
    assert_eq!(t.len(), ENTRIES as usize);
    assert_eq!(t.stats().half_open_dropped, 0);
}

fn per(bytes: usize, n: usize) -> f64 {
    // Display only.
    #[allow(clippy::cast_precision_loss)]
    let v = bytes as f64 / n as f64;
    v
}

criterion_group!(benches, bench);
criterion_main!(benches);
