//! `lvs-lockbench`: lock-and-unlock operations per second and latency, from N client threads
//! (one connection each), against lvs-lockmgr, etcd 3 or Redis with the same loop, so that the
//! client's own cost is the same for all three. `scripts/bench/lock.sh` runs it.
//!
//! ```text
//! lvs-lockbench lvs   --rundir DIR [--rundir DIR2 ...]   [--clients N] [--seconds S] [--contended]
//! lvs-lockbench etcd  --endpoint HOST:PORT [--endpoint ...] [...]
//! lvs-lockbench redis --endpoint HOST:PORT [...]
//! ```
//!
//! One operation is one lock (waiting until granted) followed by its unlock; its latency is
//! the time of both. Uncontended: client i locks its own name; contended: all lock one name.
//! Prints one JSON object on stdout.

mod etcd;
mod http;
mod redis;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use lvs_lockclient::{LockClient, LockError, LockFlags, LockHandle, LockMode};

/// Why a benchmark client stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The server answered something unexpected.
    #[error("{0}")]
    Protocol(String),
    /// lvs-lockmgr refused.
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl BenchError {
    fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }
}

/// A lock client of one system, locking one name.
pub trait Locker: Send {
    /// Takes the lock, waiting as long as it takes.
    fn lock(&mut self) -> Result<(), BenchError>;
    /// Releases it.
    fn unlock(&mut self) -> Result<(), BenchError>;
}

/// lvs-lockmgr through the blocking client library.
struct Lvs {
    client: LockClient,
    name: String,
    held: Option<LockHandle>,
}

impl Locker for Lvs {
    fn lock(&mut self) -> Result<(), BenchError> {
        let g = self
            .client
            .lock("bench", &self.name, LockMode::EX, LockFlags::NONE, None)?;
        self.held = Some(g.handle);
        Ok(())
    }

    fn unlock(&mut self) -> Result<(), BenchError> {
        let h = self
            .held
            .take()
            .ok_or_else(|| BenchError::Protocol("unlock without a lock".into()))?;
        self.client.unlock(h, None)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// lvs-lockmgr over its Unix socket
    Lvs,
    /// etcd 3's lock API over its HTTP/JSON gateway
    Etcd,
    /// Redis SET NX PX / DEL
    Redis,
}

/// Lock-and-unlock load generator.
#[derive(Debug, Parser)]
#[command(name = "lvs-lockbench", version, about)]
struct Cli {
    /// The system under test
    target: Target,
    /// lvs: a run directory of lvs-lockmgr (repeat for several nodes; clients are spread)
    #[arg(long)]
    rundir: Vec<PathBuf>,
    /// etcd/redis: HOST:PORT (repeat for several nodes; clients are spread)
    #[arg(long)]
    endpoint: Vec<String>,
    /// Client threads, one connection each
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long to run
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// All clients lock one name (default: each its own)
    #[arg(long)]
    contended: bool,
    /// A label for the output (e.g. the number of nodes)
    #[arg(long, default_value = "")]
    label: String,
}

fn connect(cli: &Cli, i: usize, run: Duration) -> Result<Box<dyn Locker>, BenchError> {
    let name = if cli.contended {
        "shared".to_owned()
    } else {
        format!("client-{i}")
    };
    let pick = |v: &[String]| -> Result<String, BenchError> {
        v.get(i % v.len().max(1))
            .cloned()
            .ok_or_else(|| BenchError::Protocol("no --endpoint given".into()))
    };
    // Leases and key expiry far beyond the run, so nothing expires under load.
    let ttl_s = run.as_secs() + 120;
    Ok(match cli.target {
        Target::Lvs => {
            let dir = cli
                .rundir
                .get(i % cli.rundir.len().max(1))
                .ok_or_else(|| BenchError::Protocol("no --rundir given".into()))?;
            let client = LockClient::connect_socket(
                &lvs_proto::rundir::socket_path(dir, lvs_lockclient::protocol::DAEMON),
                &format!("lvs-lockbench-{i}"),
            )?;
            Box::new(Lvs {
                client,
                name,
                held: None,
            })
        }
        Target::Etcd => Box::new(etcd::Etcd::connect(&pick(&cli.endpoint)?, &name, ttl_s)?),
        Target::Redis => Box::new(redis::Redis::connect(
            &pick(&cli.endpoint)?,
            &name,
            &format!("client-{i}"),
            ttl_s * 1000,
        )?),
    })
}

/// What one client did.
struct Run {
    latencies_us: Vec<u32>,
    error: Option<String>,
}

fn client(mut l: Box<dyn Locker>, start: &Barrier, until: Duration) -> Run {
    let mut latencies_us = Vec::with_capacity(1 << 16);
    start.wait();
    let t0 = Instant::now();
    let mut error = None;
    while t0.elapsed() < until {
        let t = Instant::now();
        if let Err(e) = l.lock().and_then(|()| l.unlock()) {
            error = Some(e.to_string());
            break;
        }
        latencies_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    Run {
        latencies_us,
        error,
    }
}

fn percentile(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    f64::from(sorted[i]) / 1000.0
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let until = match Duration::try_from_secs_f64(cli.seconds) {
        Ok(d) if !d.is_zero() && cli.clients > 0 => d,
        _ => {
            eprintln!("lvs-lockbench: --clients and --seconds must be positive");
            return ExitCode::FAILURE;
        }
    };
    // Every client connects (and etcd's get their lease) before the clock starts.
    let mut lockers = Vec::with_capacity(cli.clients);
    for i in 0..cli.clients {
        match connect(&cli, i, until) {
            Ok(l) => lockers.push(l),
            Err(e) => {
                eprintln!("lvs-lockbench: client {i}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let start = Arc::new(Barrier::new(cli.clients + 1));
    let threads: Vec<_> = lockers
        .into_iter()
        .map(|l| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || client(l, &start, until))
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let runs: Vec<Run> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    let elapsed = t0.elapsed().as_secs_f64();
    let errors: Vec<String> = runs.iter().filter_map(|r| r.error.clone()).collect();
    let mut all: Vec<u32> = runs.into_iter().flat_map(|r| r.latencies_us).collect();
    all.sort_unstable();
    let ops = all.len();
    let out = serde_json::json!({
        "target": format!("{:?}", cli.target).to_lowercase(),
        "label": cli.label,
        "clients": cli.clients,
        "workload": if cli.contended { "contended" } else { "uncontended" },
        "ops": ops,
        "seconds": elapsed,
        "ops_per_s": f64::from(u32::try_from(ops).unwrap_or(u32::MAX)) / elapsed,
        "p50_ms": percentile(&all, 50),
        "p99_ms": percentile(&all, 99),
        "errors": errors,
    });
    println!("{out}");
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        for e in &errors {
            eprintln!("lvs-lockbench: {e}");
        }
        ExitCode::FAILURE
    }
}
