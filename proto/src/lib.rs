//! The local protocol every lvs-rs daemon speaks over Unix stream sockets.
//!
//! - [`rundir`]: where sockets and pidfiles live, with safe permissions.
//! - [`frame`]: 4-byte big-endian length + body, checked against a [`FrameLimit`] before any
//!   allocation.
//! - [`codec`]: the bincode 2 body encoding (the only module that uses bincode).
//! - [`message`]: Hello, requests, responses and events.
//! - [`director`]: the director's control vocabulary (services, real servers, counters).
//! - [`peer`]: `SO_PEERCRED` checks.
//! - [`frame_server`]: a daemon's socket: accept, peer credentials, frames in and out;
//!   [`server`]: the request/response daemon side on it; [`client`]: the blocking CLI side.
//!
//! A conversation: the client sends [`ClientFrame::Hello`]; the daemon answers
//! [`ServerFrame::HelloOk`] or an [`ServerFrame::Error`] and hangs up. Then requests carry an
//! id echoed in their response, and subscribed clients also receive [`ServerFrame::Event`]s.

pub mod client;
pub mod codec;
pub mod director;
pub mod error;
pub mod frame;
pub mod frame_server;
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
pub use message::{
    ClientFrame, ErrorCode, Event, HaRole, Hello, HelloOk, MonitoredServer, PROTOCOL_VERSION,
    Request, Response, Role, ServerFrame, Topic,
};
pub use peer::{AccessPolicy, Credentials, PeerInfo};
pub use server::{Handler, PingHandler, Server, ServerConfig, ServerThread};
