use std::net::SocketAddr;

/// Why content switching could not be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum L7Error {
    #[error("pool {pool}: scheduler: {reason}")]
    Scheduler { pool: String, reason: String },
    #[error("content service {vip}: cannot listen: {source}")]
    Listen {
        vip: SocketAddr,
        source: std::io::Error,
    },
    #[error("content switching: cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    #[error("content switching: {0}")]
    Config(String),
}
