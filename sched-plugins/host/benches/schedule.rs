//! ns per `schedule()` through a loaded plugin `.so` versus the same algorithm called directly
//! in Rust, for rr, wlc and mh with 3, 100 and 1000 destinations.
//!
//! Needs the release plugins: `cargo build --release` first (`scripts/bench/sched.sh` does).
//! The plugin directory is `$LVS_PLUGIN_PATH` or `target/release`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lvs_sched_abi::{AF_INET, Dest, Flow, Ops, Options, Scheduler, Service};
use lvs_sched_host::{Instance, Plugin, Registry, SearchPath, ServiceSpec};
use std::sync::Arc;

const FLOWS: usize = 4096;
const FLOWS_U32: u32 = 4096;

fn plugin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LVS_PLUGIN_PATH") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/deps/<bench binary>
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf()
}

fn dests(n: u32) -> Vec<Dest> {
    (0..n)
        .map(|i| {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&(0x0A00_0000 + i + 1).to_be_bytes());
            Dest {
                addr,
                port: 80,
                family: AF_INET,
                weight: 1 + i % 4,
                // Uneven load so least-connection searches cannot stop early.
                active_conns: (i * 7919) % 97,
                inactive_conns: (i * 104_729) % 1013,
                id: i + 1,
                ..Dest::default()
            }
        })
        .collect()
}

fn flows() -> Vec<Flow> {
    (0..FLOWS_U32)
        .map(|i| {
            let mut src_addr = [0u8; 16];
            // Spread sources over the whole address space, as real clients are.
            src_addr[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            let mut dst_addr = [0u8; 16];
            dst_addr[..4].copy_from_slice(&[198, 51, 100, 1]);
            Flow {
                src_addr,
                dst_addr,
                src_port: 1024 + u16::try_from(i % 60000).unwrap_or(0),
                dst_port: 80,
                family: AF_INET,
                protocol: 6,
                reserved: [0; 2],
            }
        })
        .collect()
}

fn spec() -> ServiceSpec {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[198, 51, 100, 1]);
    ServiceSpec {
        addr,
        port: 80,
        family: AF_INET,
        protocol: 6,
        flags: 0,
        options: String::new(),
    }
}

fn direct<T: Scheduler>(list: &[Dest]) -> T {
    let svc = Service {
        addr: spec().addr,
        port: 80,
        family: AF_INET,
        protocol: 6,
        flags: 0,
        options: c"".as_ptr(),
        reserved: [0; 4],
    };
    let mut s = T::create(&svc, &Options::default()).expect("create");
    s.rebuild(list);
    s
}

/// The algorithm behind a call the optimiser cannot inline: what any call across a boundary
/// costs before the ABI adds anything.
#[inline(never)]
fn opaque<T: Scheduler>(algo: &mut T, flow: &Flow, list: &[Dest]) -> Option<usize> {
    algo.schedule(flow, list)
}

fn bench_one<T: Scheduler>(c: &mut Criterion, reg: &mut Registry, name: &str, ops: &'static Ops) {
    let flows = flows();
    let mut group = c.benchmark_group(format!("schedule/{name}"));
    for n in [3u32, 100, 1000] {
        let list = dests(n);
        let mut algo: T = direct(&list);
        group.bench_with_input(BenchmarkId::new("direct", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % FLOWS;
                black_box(algo.schedule(black_box(&flows[i]), &list))
            });
        });
        let mut algo: T = direct(&list);
        group.bench_with_input(BenchmarkId::new("direct-noinline", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % FLOWS;
                black_box(opaque(&mut algo, black_box(&flows[i]), &list))
            });
        });
        // The same table and thunks as the plugin, compiled into this binary: the ABI's cost
        // without the dynamic loader.
        let table = Plugin::from_static(ops, "built-in").expect("static table");
        let mut inst = Instance::new(Arc::new(table), spec()).expect("create");
        for d in &list {
            inst.add_dest(*d).expect("add_dest");
        }
        group.bench_with_input(BenchmarkId::new("static-table", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % FLOWS;
                black_box(inst.schedule(black_box(&flows[i])))
            });
        });
        // The thunk alone, called through the table without the host's `Instance`.
        let svc = Service {
            addr: spec().addr,
            port: 80,
            family: AF_INET,
            protocol: 6,
            flags: 0,
            options: c"".as_ptr(),
            reserved: [0; 4],
        };
        let (create, add, sched) = (
            ops.create.expect("create"),
            ops.add_dest.expect("add_dest"),
            ops.schedule.expect("schedule"),
        );
        let mut state: *mut std::ffi::c_void = std::ptr::null_mut();
        let mut err = [0 as std::ffi::c_char; 64];
        // SAFETY: valid pointers for the call, as the ABI requires.
        let code = unsafe { create(&svc, &mut state, err.as_mut_ptr(), err.len()) };
        assert_eq!(code, 0);
        for i in 0..list.len() {
            // SAFETY: the live state and a list of i + 1 valid destinations.
            unsafe { add(state, list.as_ptr(), i + 1, i) };
        }
        group.bench_with_input(BenchmarkId::new("raw-thunk", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % FLOWS;
                let mut chosen = 0usize;
                // SAFETY: the live state, the list and an out-parameter, valid for the call.
                let code = unsafe {
                    sched(
                        state,
                        black_box(&flows[i]),
                        list.as_ptr(),
                        list.len(),
                        &mut chosen,
                    )
                };
                black_box((code, chosen))
            });
        });
        let plugin = reg
            .get(name)
            .expect("plugin (run cargo build --release first)");
        let mut inst = Instance::new(plugin, spec()).expect("create");
        for d in &list {
            inst.add_dest(*d).expect("add_dest");
        }
        group.bench_with_input(BenchmarkId::new("plugin", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % FLOWS;
                black_box(inst.schedule(black_box(&flows[i])))
            });
        });
    }
    group.finish();
}

static RR: Ops = lvs_sched_abi::ops_for::<lvs_sched_algos::Rr>(c"rr", c"");
static WLC: Ops = lvs_sched_abi::ops_for::<lvs_sched_algos::Wlc>(c"wlc", c"");
static MH: Ops = lvs_sched_abi::ops_for::<lvs_sched_algos::Mh>(c"mh", c"");

fn schedule(c: &mut Criterion) {
    let mut reg = Registry::new(SearchPath::from_dirs([plugin_dir()]));
    bench_one::<lvs_sched_algos::Rr>(c, &mut reg, "rr", &RR);
    bench_one::<lvs_sched_algos::Wlc>(c, &mut reg, "wlc", &WLC);
    bench_one::<lvs_sched_algos::Mh>(c, &mut reg, "mh", &MH);
}

criterion_group!(benches, schedule);
criterion_main!(benches);
