//! Shows every scheduler plugin at work through the real loaded `.so` files: which plugins the
//! search path holds, and how each spreads 60 new connections over three real servers with
//! weights 3, 2 and 1. `scripts/demo.sh` runs it until the director exists.

use lvs_sched_abi::{AF_INET, Dest, Flow};
use lvs_sched_host::{Instance, Registry, SearchPath, ServiceSpec};

fn main() {
    let search = SearchPath::from_env();
    println!("plugin search path:");
    for d in search.dirs() {
        println!("  {}", d.display());
    }
    let mut reg = Registry::new(search);
    let report = reg.rescan();
    for p in &report.problems {
        println!("problem: {p}");
    }
    println!(
        "\n{:<6} {:<48} {:>6} {:>6} {:>6}  first picks",
        "name", "file", "w=3", "w=2", "w=1"
    );
    for (name, path) in &report.found {
        let plugin = match reg.get(name) {
            Ok(p) => p,
            Err(e) => {
                println!("{name}: {e}");
                continue;
            }
        };
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[192, 0, 2, 10]);
        let spec = ServiceSpec {
            addr,
            port: 80,
            family: AF_INET,
            protocol: 6,
            flags: 0,
            options: String::new(),
        };
        let mut inst = match Instance::new(plugin, spec) {
            Ok(i) => i,
            Err(e) => {
                println!("{name}: {e}");
                continue;
            }
        };
        for (i, w) in [3u32, 2, 1].into_iter().enumerate() {
            let id = u32::try_from(i).unwrap_or(0) + 1;
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[10, 0, 0, u8::try_from(id).unwrap_or(0) + 1]);
            inst.add_dest(Dest {
                addr: a,
                port: 80,
                family: AF_INET,
                weight: w,
                id,
                ..Dest::default()
            })
            .expect("add_dest");
        }
        let mut counts = [0u32; 3];
        let mut first = String::new();
        for c in 0..60u32 {
            let mut src = [0u8; 16];
            src[..4].copy_from_slice(&(0xC633_6400 + c * 17).to_be_bytes());
            let flow = Flow {
                src_addr: src,
                dst_addr: addr,
                src_port: 40000,
                dst_port: 80,
                family: AF_INET,
                protocol: 6,
                reserved: [0; 2],
            };
            if let Some(k) = inst.schedule(&flow) {
                counts[k] += 1;
                // Each new connection stays open: the connection-counting schedulers see it.
                let d = inst.dests()[k];
                inst.set_conns(k, d.active_conns + 1, d.inactive_conns, 0);
                if c < 12 {
                    first.push(char::from(b'A' + u8::try_from(k).unwrap_or(0)));
                }
            }
        }
        println!(
            "{name:<6} {:<48} {:>6} {:>6} {:>6}  {first}",
            path.display().to_string(),
            counts[0],
            counts[1],
            counts[2]
        );
    }
}
