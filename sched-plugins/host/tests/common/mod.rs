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

/// The address family of a test's service, servers and clients. The IPv6 addresses embed the
/// IPv4 ones in their last 32 bits, under a prefix per role, so a test reads the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The ABI's family number.
    pub fn code(self) -> u8 {
        match self {
            Family::V4 => lvs_sched_abi::AF_INET,
            Family::V6 => lvs_sched_abi::AF_INET6,
        }
    }

    /// `v4` itself, or `2001:db8:<net>::<v4>`.
    pub fn addr(self, net: u16, v4: [u8; 4]) -> [u8; 16] {
        let mut addr = [0u8; 16];
        match self {
            Family::V4 => addr[..4].copy_from_slice(&v4),
            Family::V6 => {
                addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                addr[4..6].copy_from_slice(&net.to_be_bytes());
                addr[12..].copy_from_slice(&v4);
            }
        }
        addr
    }

    /// The VIP, 198.51.100.1 or 2001:db8:6364::c633:6401.
    pub fn vip(self) -> [u8; 16] {
        self.addr(0x6364, [198, 51, 100, 1])
    }

    /// A real server 10.0.0.<n>:80 (or 2001:db8:a::a00:<n>) with this id and weight.
    pub fn dest(self, id: u32, weight: u32) -> Dest {
        Dest {
            addr: self.addr(0x000a, [10, 0, 0, u8::try_from(id % 250).unwrap() + 1]),
            port: 80,
            family: self.code(),
            weight,
            id,
            ..Dest::default()
        }
    }

    /// A TCP flow from `src`:port (or 2001:db8:c000::`src`) to the VIP.
    pub fn flow(self, src: u32, port: u16) -> Flow {
        Flow {
            src_addr: self.addr(0xc000, src.to_be_bytes()),
            dst_addr: self.vip(),
            src_port: port,
            dst_port: 80,
            family: self.code(),
            protocol: 6,
            reserved: [0; 2],
        }
    }

    /// A TCP service on the VIP, port 80, with these scheduler options.
    pub fn spec(self, options: &str) -> ServiceSpec {
        ServiceSpec {
            addr: self.vip(),
            port: 80,
            family: self.code(),
            protocol: 6,
            flags: 0,
            options: options.into(),
        }
    }

    /// An instance of the plugin `name` from `reg` on this family's service, with these
    /// destinations added in order.
    pub fn instance(
        self,
        reg: &mut Registry,
        name: &str,
        options: &str,
        dests: &[Dest],
    ) -> Instance {
        let plugin = reg.get(name).unwrap_or_else(|e| panic!("{e}"));
        let mut inst = Instance::new(plugin, self.spec(options)).unwrap_or_else(|e| panic!("{e}"));
        for d in dests {
            inst.add_dest(*d).expect("add_dest");
        }
        inst
    }

    /// `n` picks for flows from distinct sources, as destination ids.
    pub fn picks(self, inst: &mut Instance, n: u32) -> Vec<Option<u32>> {
        (0..n)
            .map(|i| {
                inst.schedule(&self.flow(0xC000_0200 + i, 40000))
                    .map(|k| inst.dests()[k].id)
            })
            .collect()
    }
}

/// An IPv4 destination 10.0.0.<n>:80 with this id and weight.
pub fn dest(id: u32, weight: u32) -> Dest {
    Family::V4.dest(id, weight)
}

/// A TCP flow from 192.0.2.x:port to the VIP.
pub fn flow(src: u32, port: u16) -> Flow {
    Family::V4.flow(src, port)
}

/// A TCP service on port 80 with these scheduler options.
pub fn spec(options: &str) -> ServiceSpec {
    Family::V4.spec(options)
}

/// An IPv4 instance of the plugin `name` from `reg`, with these destinations added in order.
pub fn instance(reg: &mut Registry, name: &str, options: &str, dests: &[Dest]) -> Instance {
    Family::V4.instance(reg, name, options, dests)
}

/// `n` picks for IPv4 flows from distinct sources, as destination ids.
pub fn picks(inst: &mut Instance, n: u32) -> Vec<Option<u32>> {
    Family::V4.picks(inst, n)
}
