//! `lvs-lockmgr`: the lock manager daemon and `lvs-lockctl`.
//!
//! The protocol on `<rundir>/lockmgr.sock` and the blocking Rust client are `lvs-lockclient`'s
//! (re-exported here as [`protocol`] and [`client`]); programs that only take locks link that
//! crate, not this one with its Raft (the tests here use the re-exports).
//!
//! - [`daemon`]: the daemon's event loop; [`config`]: its configuration.
//! - [`node`]: the replication seam: every state change is a [`node::Replication::propose`];
//!   [`node::SingleNode`] logs it and applies it at once.
//! - [`history`]: the checker of the fault tests' histories (mutual exclusion, tokens,
//!   value blocks).
//! - [`leaderclock`]: the replicated clock (leases, timeouts) as the leader moves it.
//! - [`nowait`]: the bound on a no-wait lock request where the cluster cannot commit.
//! - [`storage`]: the write-ahead log and snapshot that make a single node durable.
//! - [`replica`]: Raft mode (`peers` in the configuration): the state machine replicated with
//!   the `raft` crate; [`raftlog`] its durable log, [`peer`] the authenticated peer network.
//! - [`persist`]: the log writer thread (write and fsync off the loop, group commit).
//!
//! The lock semantics (modes, queues, conversions, deadlocks, value blocks, fencing tokens)
//! are `lvs-lockcore`'s; see its documentation.
//! Fencing tokens: see `lvs-lockclient`.

pub mod config;
pub mod daemon;
pub mod history;
pub mod leaderclock;
pub mod node;
pub mod nowait;
pub mod peer;
pub mod persist;
pub mod raftlog;
pub mod replica;
pub mod storage;

pub use lvs_lockclient::{
    Granted, LVB_LEN, Listing, LockClient, LockError, LockEvent, LockFlags, LockHandle, LockMode,
    StatusInfo, ValueBlock, client, protocol,
};
