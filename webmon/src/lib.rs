//! `lvs-webmon`: the browser console of the cluster, over HTTPS with authentication.
//!
//! - [`config`]: the configuration file; [`users`]: the Argon2id users file;
//! - [`tls`]: certificate and key (self-signed on first start), rustls on ring;
//! - [`http`]: requests within limits and responses with security headers;
//! - [`server`]: connections on one `mio` event loop, admin actions on a worker thread;
//!   [`app`]: what each URL does;
//! - [`auth`]: sessions, CSRF tokens, the login limiter;
//! - [`collector`]: the thread that reads the daemons' control sockets into a snapshot;
//! - [`actions`]: admin actions sent to the director and monitord;
//! - [`metrics`]: `/metrics` in the OpenMetrics text format;
//! - [`daemon`]: the daemon's body; [`adduser`]: `lvs-webmon --add-user`.
//!
//! The JSON API is documented in `webmon/README.md`.

pub mod actions;
pub mod adduser;
pub mod app;
pub mod auth;
pub mod collector;
pub mod config;
pub mod daemon;
pub mod http;
pub mod metrics;
pub mod server;
pub mod tls;
pub mod users;
