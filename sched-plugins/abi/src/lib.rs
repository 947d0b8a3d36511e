//! The scheduler plugin ABI of lvs-rs, version 1.0.
//!
//! A scheduler is a shared object exporting one function, `lvs_sched_entry`, that returns a
//! [`Ops`] table: a magic number, the ABI version, the table's own size, the scheduler's name
//! and `extern "C"` callbacks in the spirit of IPVS's `struct ip_vs_scheduler`. The same ABI is
//! described for C in `include/lvs_sched.h`; a test compiles a C plugin against that header and
//! checks that both agree, field by field.
//!
//! No Rust type crosses the boundary: only `#[repr(C)]` structs, integers and raw pointers. A
//! Rust plugin implements [`Scheduler`] and calls [`export_scheduler!`]; the generic thunks here
//! turn Rust panics into [`status::EPANIC`], because unwinding across `extern "C"` would abort
//! the whole director.

use std::ffi::{CStr, c_char, c_void};

mod options;
mod thunks;

pub use options::{OptionError, Options};

/// `"LVSS"` read as a little-endian `u32`.
pub const MAGIC: u32 = 0x5353_564C;
/// Plugins of another major version are refused.
pub const ABI_MAJOR: u16 = 1;
/// A newer minor only appends fields to [`Ops`], taken from its reserved room.
pub const ABI_MINOR: u16 = 0;
/// The name of the one exported function.
pub const ENTRY_SYMBOL: &str = "lvs_sched_entry";
/// The longest scheduler name, in bytes, without the NUL.
pub const NAME_MAX: usize = 15;

/// The type of `lvs_sched_entry`.
pub type EntryFn = unsafe extern "C" fn() -> *const Ops;

/// Return codes of the callbacks.
pub mod status {
    /// Done; for `schedule`, `*chosen` is set.
    pub const OK: i32 = 0;
    /// `schedule` only: no destination is usable.
    pub const NONE: i32 = 1;
    /// Bad argument or option.
    pub const EINVAL: i32 = -1;
    /// Out of memory.
    pub const ENOMEM: i32 = -2;
    /// The plugin failed internally (a panic was caught).
    pub const EPANIC: i32 = -3;
    /// Any other internal failure.
    pub const EINTERNAL: i32 = -4;
}

/// Linux address family numbers.
pub const AF_INET: u8 = 2;
/// Linux address family numbers.
pub const AF_INET6: u8 = 10;

/// [`Dest::flags`]: weight set to 0 by the sysadmin or the monitor.
pub const DEST_F_QUIESCED: u32 = 0x1;
/// [`Dest::flags`]: above its upper connection threshold.
pub const DEST_F_OVERLOADED: u32 = 0x2;

/// [`Service::flags`]: persistent service (`-p`).
pub const SVC_F_PERSISTENT: u32 = 0x1;
/// [`Service::flags`]: one-packet scheduling (`-o`).
pub const SVC_F_ONEPACKET: u32 = 0x2;

/// The flow of a new connection (`struct lvs_sched_flow`). Ports in host order.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub family: u8,
    pub protocol: u8,
    pub reserved: [u8; 2],
}

/// One destination (`struct lvs_sched_dest`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dest {
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    pub reserved0: u8,
    pub flags: u32,
    pub weight: u32,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub id: u32,
    pub reserved: [u32; 3],
}

/// The virtual service a state object schedules for (`struct lvs_sched_service`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    pub protocol: u8,
    pub flags: u32,
    /// `"key=value,flag"`, never null, NUL-terminated.
    pub options: *const c_char,
    pub reserved: [u32; 4],
}

/// `create`: make a state object for one service.
pub type CreateFn =
    unsafe extern "C" fn(*const Service, *mut *mut c_void, *mut c_char, usize) -> i32;
/// `destroy`: free a state object.
pub type DestroyFn = unsafe extern "C" fn(*mut c_void);
/// `add_dest`, `del_dest`, `upd_dest`: `(state, dests, n, index)`.
pub type DestFn = unsafe extern "C" fn(*mut c_void, *const Dest, usize, usize) -> i32;
/// `schedule`: `(state, flow, dests, n, chosen)`.
pub type ScheduleFn =
    unsafe extern "C" fn(*mut c_void, *const Flow, *const Dest, usize, *mut usize) -> i32;

/// The function table (`struct lvs_sched_ops`). See the C header for the contract of each
/// callback.
#[repr(C)]
#[derive(Debug)]
pub struct Ops {
    pub magic: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub size: u32,
    pub flags: u32,
    pub name: *const c_char,
    pub description: *const c_char,
    pub create: Option<CreateFn>,
    pub destroy: Option<DestroyFn>,
    pub add_dest: Option<DestFn>,
    pub del_dest: Option<DestFn>,
    pub upd_dest: Option<DestFn>,
    pub schedule: Option<ScheduleFn>,
    pub reserved: [*const c_void; 8],
}

// SAFETY: an `Ops` is an immutable table of function pointers and pointers to static,
// NUL-terminated strings; nothing behind it is ever written, so sharing it between threads is
// sound. It must be `Sync` to live in a `static`.
unsafe impl Sync for Ops {}

/// The size of a version 1.0 table: the least a plugin declaring 1.0 must provide.
pub const OPS_SIZE_V1_0: usize = std::mem::size_of::<Ops>();

impl Dest {
    /// May this destination take a new flow? Weight 0 (quiesced) and overloaded never do.
    #[inline]
    pub fn is_usable(&self) -> bool {
        self.weight > 0 && self.flags & (DEST_F_QUIESCED | DEST_F_OVERLOADED) == 0
    }

    /// IPVS's `ip_vs_dest_conn_overhead()`: active connections cost 256 times an inactive one.
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active_conns) << 8) + u64::from(self.inactive_conns)
    }
}

/// What a Rust scheduler implements. [`export_scheduler!`] turns it into a plugin.
///
/// The director never calls one state object from two threads at once, hence `&mut self`.
pub trait Scheduler: Send + Sized + 'static {
    /// Make the state for one virtual service. The error is shown to the sysadmin as is.
    fn create(service: &Service, options: &Options) -> Result<Self, String>;

    /// The list changed; `dests` is the whole list after the change. The default `add_dest`,
    /// `del_dest` and `upd_dest` all end up here.
    fn rebuild(&mut self, _dests: &[Dest]) {}

    /// `dests[index]` was added; `dests` is the list after the addition.
    fn add_dest(&mut self, dests: &[Dest], _index: usize) {
        self.rebuild(dests);
    }

    /// `dests[index]` is about to be removed; `dests` is the list before the removal.
    fn del_dest(&mut self, dests: &[Dest], index: usize) {
        let rest: Vec<Dest> = dests
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != index)
            .map(|(_, d)| *d)
            .collect();
        self.rebuild(&rest);
    }

    /// `dests[index]` changed (weight, flags); `dests` is the list after the change.
    fn upd_dest(&mut self, dests: &[Dest], _index: usize) {
        self.rebuild(dests);
    }

    /// Pick the index of a usable destination for a new flow, or `None`.
    fn schedule(&mut self, flow: &Flow, dests: &[Dest]) -> Option<usize>;
}

/// Build the table for `T`. Used by [`export_scheduler!`]; `const` so the table is a static.
pub const fn ops_for<T: Scheduler>(name: &'static CStr, description: &'static CStr) -> Ops {
    Ops {
        magic: MAGIC,
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        // The table is a few dozen bytes; the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        size: std::mem::size_of::<Ops>() as u32,
        flags: 0,
        name: name.as_ptr(),
        description: description.as_ptr(),
        create: Some(thunks::create::<T>),
        destroy: Some(thunks::destroy::<T>),
        add_dest: Some(thunks::add_dest::<T>),
        del_dest: Some(thunks::del_dest::<T>),
        upd_dest: Some(thunks::upd_dest::<T>),
        schedule: Some(thunks::schedule::<T>),
        reserved: [std::ptr::null(); 8],
    }
}

/// Turn a NUL-free string literal into a `&'static CStr` at compile time.
#[doc(hidden)]
pub const fn cstr_literal(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("scheduler name and description must not contain NUL"),
    }
}

/// Export a [`Scheduler`] as a plugin: the whole of a Rust plugin's boilerplate.
///
/// ```ignore
/// lvs_sched_abi::export_scheduler!(MyScheduler, name = "mine", description = "what it does");
/// ```
#[macro_export]
macro_rules! export_scheduler {
    ($ty:ty, name = $name:literal, description = $desc:literal $(,)?) => {
        const _: () = assert!(
            $name.len() >= 1 && $name.len() <= $crate::NAME_MAX,
            "scheduler names are 1 to 15 bytes"
        );

        static LVS_SCHED_OPS: $crate::Ops = $crate::ops_for::<$ty>(
            $crate::cstr_literal(concat!($name, "\0")),
            $crate::cstr_literal(concat!($desc, "\0")),
        );

        /// The plugin's entry point: the director looks this symbol up by name.
        #[unsafe(no_mangle)]
        pub extern "C" fn lvs_sched_entry() -> *const $crate::Ops {
            &LVS_SCHED_OPS
        }
    };
}
