//! Shared by the host's integration tests: where the built plugins are, temporary
//! directories, and compiling C plugins with gcc.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use lvs_sched_host::{Dest, Flow, Instance, Registry, SearchPath, ServiceSpec};

#[allow(unused_imports)] // not every test file makes temporary directories
pub use lvs_testsupport::TempDir;

/// The cargo output directory holding the bundled plugins (`target/debug` for `cargo test`).
/// They are built by `cargo build --workspace`, which `scripts/test.sh` runs first.
pub fn built_plugin_dir() -> PathBuf {
    lvs_testsupport::built_dir("liblvs_sched_rr.so")
}

/// The directory of `lvs_sched.h`.
pub fn header_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi/include")
}

/// Compile C source into `out` (a `.so`), failing the test with gcc's message.
pub fn compile_c_plugin(source: &str, out: &Path) {
    let src = out.with_extension("c");
    std::fs::write(&src, source).expect("write C source");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I"])
        .arg(header_dir())
        .arg("-o")
        .arg(out)
        .arg(&src)
        .output()
        .expect("run gcc (scripts/test.sh installs it)");
    assert!(
        status.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::remove_file(&src).ok();
}

/// A registry over exactly `dirs`.
pub fn registry(dirs: &[&Path]) -> Registry {
    Registry::new(SearchPath::from_dirs(dirs.iter().map(|d| d.to_path_buf())))
}

/// An IPv4 destination 10.0.0.<n>:80 with this id and weight.
pub fn dest(id: u32, weight: u32) -> Dest {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[10, 0, 0, u8::try_from(id % 250).unwrap() + 1]);
    Dest {
        addr,
        port: 80,
        family: lvs_sched_abi::AF_INET,
        weight,
        id,
        ..Dest::default()
    }
}

/// A TCP flow from 192.0.2.x:port to the VIP.
pub fn flow(src: u32, port: u16) -> Flow {
    let mut src_addr = [0u8; 16];
    src_addr[..4].copy_from_slice(&src.to_be_bytes());
    let mut dst_addr = [0u8; 16];
    dst_addr[..4].copy_from_slice(&[198, 51, 100, 1]);
    Flow {
        src_addr,
        dst_addr,
        src_port: port,
        dst_port: 80,
        family: lvs_sched_abi::AF_INET,
        protocol: 6,
        reserved: [0; 2],
    }
}

/// A TCP service on port 80 with these scheduler options.
pub fn spec(options: &str) -> ServiceSpec {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[198, 51, 100, 1]);
    ServiceSpec {
        addr,
        port: 80,
        family: 2,
        protocol: 6,
        flags: 0,
        options: options.into(),
    }
}

/// An instance of the plugin `name` from `reg`, with these destinations added in order.
pub fn instance(reg: &mut Registry, name: &str, options: &str, dests: &[Dest]) -> Instance {
    let plugin = reg.get(name).unwrap_or_else(|e| panic!("{e}"));
    let mut inst = Instance::new(plugin, spec(options)).unwrap_or_else(|e| panic!("{e}"));
    for d in dests {
        inst.add_dest(*d).expect("add_dest");
    }
    inst
}

/// `n` picks for flows from distinct sources, as destination ids.
pub fn picks(inst: &mut Instance, n: u32) -> Vec<Option<u32>> {
    (0..n)
        .map(|i| {
            inst.schedule(&flow(0xC000_0200 + i, 40000))
                .map(|k| inst.dests()[k].id)
        })
        .collect()
}
