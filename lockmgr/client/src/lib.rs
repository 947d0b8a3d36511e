//! `lvs-lockclient`: how a program talks to its local `lvs-lockmgr`.
//!
//! - [`protocol`]: the messages on `<rundir>/lockmgr.sock` (framed by `lvs-proto`).
//! - [`client`]: the blocking Rust client, [`LockClient`].
//!
//! This crate is what `lvs-lockctl`, the C API (`liblvslock.so`), webmon and the lock bench
//! link; the daemon uses its protocol too. It carries no Raft and no protobuf: those are the
//! daemon's business (`lvs-lockmgr`), never a client's. The lock semantics (modes, flags,
//! value blocks, denials) are `lvs-lockcore`'s.
//!
//! # Fencing tokens
//! Every grant carries a token larger than any token granted before, on any resource, across
//! restarts. An application passes it with each write to the shared storage, which refuses a
//! write whose token is smaller than the largest it has seen for that object. From the shell,
//! `lvs-lockctl lock NAME -- cmd` puts it in `$LVS_LOCK_TOKEN`:
//!
//! ```text
//! lvs-lockctl lock orders -- sh -c 'curl -H "Fencing-Token: $LVS_LOCK_TOKEN" -T data https://store/orders'
//! ```

pub mod client;
pub mod protocol;

pub use client::{Granted, Listing, LockClient, LockError, LockHandle};
pub use lvs_lockcore::{LVB_LEN, LockFlags, LockInfo, LockMode, MAX_NAME_LEN, ValueBlock};
pub use protocol::{LockEvent, StatusInfo};
