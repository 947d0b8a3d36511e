//! `lvs-l7`: layer-7 content switching for lvs-director.
//!
//! A *content service* terminates client TCP on VIP:port with the kernel's TCP stack (one
//! `SO_REUSEPORT` listener per worker thread, each worker a `mio` event loop) and routes
//! every HTTP/1.1 request on its own, by Host, path, method and headers, to a named *pool* of
//! real servers; or, in `tls-sni` mode, routes a TLS connection by the server name of its
//! ClientHello without decrypting it. Each pool schedules with a scheduler plugin loaded
//! through the same ABI as IP load balancing (`lvs-sched-host`).
//!
//! - [`config`]: the TOML model (`[[content_service]]`, `[[pool]]`) and its checks.
//! - [`route`]: a compiled routing table; replaced whole at run time ([`Engine::apply`]).
//!   Rules see the normalised path (`path`: dot segments removed, unreserved escapes
//!   decoded); `forward` decides which request fields reach the server.
//! - [`pool`]: a pool's members, scheduler, health and counters.
//! - [`Engine`]: the worker threads, listeners, and the run-time API.
//!
//! Bodies are streamed through bounded buffers in both directions, so memory per connection
//! is bounded whatever the body size; a buffer holds memory only while data is in it, so an
//! idle connection holds none. Framing is read strictly and what is forwarded is re-encoded
//! (one canonical `Content-Length`, chunked bodies in chunks of our own): see `framing` and
//! `chunked`.

mod buf;
mod chunked;
pub mod config;
#[cfg(test)]
mod differential;
mod engine;
mod error;
mod forward;
mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod listener;
mod path;
pub mod pool;
mod proxyproto;
pub mod route;
mod servers;
mod session;
mod sni;
mod worker;

pub use config::{ClientAddress, ContentServiceConfig, ForwardedFor, Mode, PoolConfig, RuleConfig};
pub use engine::{Engine, PluginSource, PoolView, RuleView, ServiceView};
pub use error::L7Error;
