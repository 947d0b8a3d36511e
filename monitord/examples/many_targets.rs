//! CPU cost of checking many servers: TCP-connect checks of COUNT consecutive addresses from
//! FIRST, once a second (default timing: interval 1 s, timeout 800 ms), for SECONDS seconds;
//! prints the results and the CPU time this process used (getrusage).
//!
//! ```text
//! many_targets FIRST COUNT PORT [SECONDS]      e.g. many_targets 10.78.0.1 1000 9000 30
//! ```
//!
//! Run it where the addresses are reachable (the benchmark: in a namespace routed to a peer
//! namespace that has the whole range local, `ip route add local 10.78.0.0/22 dev lo`, and
//! one listener on 0.0.0.0:PORT). Output, one `key=value` line:
//! `targets=1000 seconds=30 results=30000 ok=30000 failed=0 cpu_user_s=.. cpu_sys_s=.. cpu_pct_of_one_core=..`

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_monitord::checks::Engine;
use lvs_monitord::config::Check;
use lvs_proto::director::Protocol;

fn cpu_seconds() -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage struct into the valid, writable buffer we pass.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    // SAFETY: getrusage succeeded, so it initialised the struct (and it was zeroed anyway).
    let ru = unsafe { ru.assume_init() };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = || {
        eprintln!("usage: many_targets FIRST_IPV4 COUNT PORT [SECONDS]");
        ExitCode::from(2)
    };
    if args.len() < 4 {
        return usage();
    }
    let (Ok(first), Ok(count), Ok(port)) = (
        args[1].parse::<Ipv4Addr>(),
        args[2].parse::<u32>(),
        args[3].parse::<u16>(),
    ) else {
        return usage();
    };
    let seconds: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut engine = match Engine::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("many_targets: {e}");
            return ExitCode::FAILURE;
        }
    };
    let check = Check::default_for(Protocol::Tcp, port);
    let base = u32::from(first);
    for i in 0..count {
        let addr = IpAddr::V4(Ipv4Addr::from(base.wrapping_add(i)));
        engine.add_target(addr, port, std::slice::from_ref(&check));
    }
    let (u0, s0) = cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut first_failure = None;
    let mut results = Vec::new();
    while Instant::now() < end {
        if let Err(e) = engine.poll(Some(end - Instant::now()), &mut results) {
            eprintln!("many_targets: poll: {e}");
            return ExitCode::FAILURE;
        }
        for r in results.drain(..) {
            if r.ok {
                ok += 1;
            } else {
                failed += 1;
                first_failure.get_or_insert(r.detail);
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let (u1, s1) = cpu_seconds();
    let (user, sys) = (u1 - u0, s1 - s0);
    println!(
        "targets={count} seconds={wall:.1} results={} ok={ok} failed={failed} cpu_user_s={user:.3} cpu_sys_s={sys:.3} cpu_pct_of_one_core={:.2}",
        ok + failed,
        100.0 * (user + sys) / wall
    );
    if let Some(d) = first_failure {
        println!("first_failure=\"{d}\"");
    }
    ExitCode::SUCCESS
}
