//! The local protocol every lvs-rs daemon speaks over Unix stream sockets.
//!
//! - [`rundir`]: where sockets and pidfiles live, with safe permissions.
//! - [`frame`]: 4-byte big-endian length + body, checked against a [`FrameLimit`] before any
//!   allocation.
//! - [`codec`]: the bincode 2 body encoding (the only module that uses bincode).
//! - [`message`]: Hello, requests, responses and events.
//! - [`director`]: the director's control vocabulary (services, real servers, counters).
//! - [`peer`]: `SO_PEERCRED` checks.
//! - [`event`](mod@event): the one `event=<name> key=value` log line format (and its
//!   [`event!`] macro), which `lvs_common` re-exports for the daemons.
//! - [`frame_server`]: a daemon's socket: accept, peer credentials, frames in and out;
//!   [`server`]: the request/response daemon side on it; [`client`]: the blocking CLI side;
//!   [`link`]: the reconnecting client of the director's socket that the daemons hold.
//!
//! A conversation: the client sends [`ClientFrame::Hello`]; the daemon answers
//! [`ServerFrame::HelloOk`] or an [`ServerFrame::Error`] and hangs up. Then requests carry an
//! id echoed in their response, and subscribed clients also receive [`ServerFrame::Event`]s.

pub mod client;
pub mod codec;
pub mod director;
pub mod error;
pub mod event;
pub mod frame;
pub mod frame_server;
pub mod handover;
pub mod link;
pub mod message;
pub mod peer;
pub mod rundir;
pub mod server;

pub use client::{Client, ClientOptions};
pub use director::{
    AddrPort, ConnEntry, DestConf, DestHealth, DestStatus, DirectorInfo, FwdMethod, Persistence,
    Protocol, Rates, ServiceConf, ServiceKey, ServiceStatus, Stats, Timeouts,
};
pub use error::{ProtoError, Result};
pub use frame::{FrameDecoder, FrameLimit};
pub use frame_server::{FrameServer, FrameServerConfig, Input};
pub use link::{
    Connect, DirectorLink, LinkError, LinkOptions, LinkReport, ignore_link_report,
    log_director_link,
};
pub use message::{
    AnycastRoute, AnycastStatus, BgpSession, ClientFrame, ErrorCode, Event, HaRole, Hello, HelloOk,
    MonitoredServer, PROTOCOL_VERSION, Request, Response, Role, ServerFrame, Topic,
};
pub use peer::{AccessPolicy, Credentials, PeerInfo};
pub use server::{Handler, PingHandler, Server, ServerConfig, ServerThread};

/// The `log` crate, for the [`event!`] macro's expansion.
#[doc(hidden)]
pub use log as __log;
