//! All of the director crate's unsafe code, each piece behind a safe interface (the packet
//! I/O's is in `lvs-afpacket`'s own `sys`):
//!
//! - [`spsc`]: the lock-free single-producer/single-consumer ring that carries sync records
//!   between each worker and the sync thread.
//! - [`signals`]: signal dispositions that survive an upgrade's `execve`.

pub mod signals;
pub mod spsc;
