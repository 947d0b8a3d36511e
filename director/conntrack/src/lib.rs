//! The director's connection table: IPVS's connection tracking in user space.
//!
//! Each worker thread owns one [`Table`]; a flow hash steers every packet of a
//! connection (both directions) to one worker, so the table takes no lock and
//! uses no atomics. After [`Table::new`] nothing on the packet path allocates:
//! the slab, index, timer wheel and lists are sized for the configured maximum.
//! Time is the caller's monotonic clock in milliseconds, passed in, so tests run
//! on a simulated clock.
//!
//! # Per packet
//!
//! ```
//! use lvs_conntrack::*;
//!
//! let mut t = Table::new(Config::with_capacity(1024), 0).unwrap();
//! let client = Endpoint::v4([192, 0, 2, 7], 40_000);
//! let vip = Endpoint::v4([198, 51, 100, 1], 80);
//! let rs = Endpoint::v4([10, 0, 0, 2], 8080);
//! let now = 1_000;
//!
//! // A SYN arrives from the client.
//! let key = FlowKey::new(Proto::Tcp, client, vip);
//! let id = match t.lookup_in(&key) {
//!     Some(id) => id,
//!     None => {
//!         // Persistent service: ask the template first, schedule only on a miss.
//!         let tk = TemplateKey::new(Proto::Tcp, client.addr, &Addr::prefix_mask(true, 24), vip);
//!         let (dest, dest_id, tpl) = match t.lookup_template(&tk) {
//!             Some(hit) => (hit.dest, hit.dest_id, hit.id),
//!             None => {
//!                 let (dest, dest_id) = (rs, 0); // the scheduler's choice
//!                 let tpl = t.insert_template(&NewTemplate {
//!                     key: tk, dest, forward: Forward::Nat, service: 1, dest_id,
//!                     timeout_secs: 300,
//!                 }, now).unwrap();
//!                 (dest, dest_id, tpl)
//!             }
//!         };
//!         let conn = NewConn {
//!             proto: Proto::Tcp, client, virt: vip, dest,
//!             forward: Forward::Nat, service: 1, dest_id,
//!         };
//!         t.insert(&conn, Some(tpl), now).unwrap() // Err(TableFull): drop, count
//!     }
//! };
//! assert_eq!(t.on_packet(id, Dir::In, TcpFlags::SYN, now), Ok(State::SynRecv));
//!
//! // The real server's SYN-ACK comes back (VS/NAT): found by its reply key.
//! let reply = FlowKey::new(Proto::Tcp, rs, client);
//! assert_eq!(t.lookup_out(&reply), Some(id));
//! t.on_packet(id, Dir::Out, TcpFlags::SYN_ACK, now + 1).unwrap();
//! t.on_packet(id, Dir::In, TcpFlags::ACK, now + 2).unwrap();
//! assert_eq!(t.dest_counts(0).active, 1);
//!
//! // Every few milliseconds, from the event loop:
//! let run = t.expire(now + 3, |gone| { let _ = gone.conn; });
//! assert_eq!(run.removed, 0);
//! ```
//!
//! The control path uses [`Table::expire_dest`] (server deleted),
//! [`Table::set_timeouts`] (`ipvsadm --set`), [`Table::dest_counts`],
//! [`Table::stats`], [`Table::iter`] (`ipvsadm -L -c`) and
//! [`Table::reserve_dests`].

mod addr;
mod config;
mod dest;
mod entry;
mod error;
mod expire;
mod index;
mod inspect;
mod key;
mod limits;
mod linked_lists;
mod persist;
mod stats;
mod sync;
mod table;
mod tcp_state;
mod timeouts;
mod wheel;

pub use addr::{Addr, Endpoint, Proto};
pub use config::{Config, MAX_CAPACITY};
pub use dest::DestCounts;
pub use entry::{Conn, Forward};
pub use error::{ConfigError, Error};
pub use expire::{ExpireReason, ExpireRun, Expired};
pub use inspect::{ConnInfo, Footprint};
pub use key::{DEFAULT_SEED, FlowKey, TemplateKey};
pub use persist::{NewTemplate, TemplateHit, TemplateId};
pub use stats::Stats;
pub use sync::SyncEntry;
pub use table::{ConnId, NewConn, Table};
pub use tcp_state::{Dir, State, StateTable, TcpFlags, next_state};
pub use timeouts::Timeouts;
