//! `lvs-lockmgr`: the lock manager daemon, its client library and `lvs-lockctl`.
//!
//! - [`protocol`]: the messages on `<rundir>/lockmgr.sock` (framed by `lvs-proto`).
//! - [`client`]: the blocking Rust client, [`LockClient`].
//! - [`daemon`]: the daemon's event loop; [`config`]: its configuration.
//! - [`node`]: the replication seam: every state change is a [`node::Replication::propose`];
//!   [`node::SingleNode`] logs it and applies it at once.
//! - [`nowait`]: the bound on a no-wait lock request where the cluster cannot commit.
//! - [`storage`]: the write-ahead log and snapshot that make a single node durable.
//! - [`replica`]: Raft mode (`peers` in the configuration): the state machine replicated with
//!   the `raft` crate; [`raftlog`] its durable log, [`peer`] the authenticated peer network.
//!
//! The lock semantics (modes, queues, conversions, deadlocks, value blocks, fencing tokens)
//! are `lvs-lockcore`'s; see its documentation.
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
pub mod config;
pub mod daemon;
pub mod node;
pub mod nowait;
pub mod peer;
pub mod protocol;
pub mod raftlog;
pub mod replica;
pub mod storage;

pub use client::{Granted, Listing, LockClient, LockError, LockHandle};
pub use lvs_lockcore::{LVB_LEN, LockFlags, LockMode, ValueBlock};
pub use protocol::{LockEvent, StatusInfo};
