//! AF_PACKET packet I/O for the director: TPACKET_V2 and TPACKET_V3 receive rings, batched `sendmmsg`
//! transmit, `PACKET_FANOUT` steering that keeps both directions of a VS/NAT connection on
//! one worker, and a socket filter ([`RxFilter`]) that keeps out of the rings the frames the
//! data plane would not act on.
//!
//! Everything above this crate talks to the backend-agnostic [`RxQueue`]/[`TxQueue`] traits
//! (receive a batch, send a batch), so an AF_XDP backend can be added beside this one.
//!
//! A worker, per interface it serves, owns one [`RxRing`] (its member of that interface's
//! fanout group, from [`open_fanout`]) and one [`TxSocket`] for all interfaces:
//!
//! ```no_run
//! # use lvs_afpacket::*;
//! # fn rewrite(_: &mut [u8]) -> Option<u32> { None }
//! # fn worker(rx: &mut RxRing, tx: &mut TxSocket) -> Result<()> {
//! rx.wait(Some(std::time::Duration::from_millis(100)))?; // or mio with rx.as_raw_fd()
//! while let Some(mut block) = rx.next_block() {
//!     let mut out = tx.batch();
//!     for frame in block.frames() {
//!         if frame.meta.truncated() { continue; }
//!         let data = frame.into_data();            // &mut [u8] into the ring
//!         if let Some(ifindex) = rewrite(data) {   // rewrite in place
//!             out.push(ifindex, data)?;            // zero copy
//!         }
//!     }
//!     out.flush()?;                                // before the block can go back
//! }                                                // block dropped: back to the kernel
//! # Ok(()) }
//! ```
//!
//! Unsafe code is confined to `sys`: the system calls, the receive ring's memory
//! (`sys::ring`) and the transmit message arrays (`sys::mmsg`), each behind a safe
//! interface; each block says why it is sound.

mod error;
mod fanout;
mod filter;
mod frame;
mod iface;
mod queue;
mod rx;
mod sys;
mod tx;

pub use error::{Error, Result};
pub use fanout::{
    EXT_HEADERS, FanoutConfig, FanoutControl, FanoutProgram, client_hash, fanout_hash,
    fanout_hash_l3, fold, mix, open_fanout,
};
pub use filter::RxFilter;
pub use frame::{Frame, FrameMeta, Status, Vlan};
pub use iface::Interface;
pub use libc::sock_filter;
pub use queue::{Flushed, RxBatch, RxQueue, TxBatch, TxQueue};
pub use rx::{Block, Frames, RingVersion, RxConfig, RxRing, RxStats};
pub use tx::{TxBatchRef, TxConfig, TxSocket, TxStats};
