//! The one error type of the crate.
//!
//! Messages are written for the sysadmin who reads them in syslog or on a terminal: they say
//! what happened, to which file or peer, and where possible what to do about it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::message::ErrorCode;

/// Everything that can go wrong while speaking the local protocol.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// A system call failed; `what` says which operation, on which path or peer.
    #[error("{what}: {source}")]
    Io {
        /// The operation that failed, e.g. "cannot bind /run/lvs/director.sock".
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A frame header announced more bytes than this side accepts.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The announced body length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },

    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({got} of {expected} bytes received)")]
    Truncated {
        /// Bytes of the frame (header included) that arrived.
        got: usize,
        /// Bytes the frame should have had (header included, 4 if the header itself was cut).
        expected: usize,
    },

    /// A message could not be encoded (or would not fit in one frame).
    #[error("cannot encode message: {0}")]
    Encode(String),

    /// A frame body is not a message this side understands.
    #[error("malformed or unknown message: {0}")]
    Decode(String),

    /// The peer speaks another protocol version.
    #[error("protocol version {theirs} not supported; this daemon speaks {ours}")]
    VersionMismatch {
        /// The version the peer announced.
        theirs: u32,
        /// [`crate::PROTOCOL_VERSION`].
        ours: u32,
    },

    /// The peer sent something else before its Hello.
    #[error("the first frame must be a Hello, got {got}")]
    HelloRequired {
        /// What arrived instead.
        got: String,
    },

    /// A frame that is valid but not allowed at this point of the conversation.
    #[error("unexpected frame: {0}")]
    UnexpectedFrame(String),

    /// The peer's `SO_PEERCRED` credentials are not allowed to use this socket.
    #[error("permission denied: uid {uid} is not root and {}", group_clause(.group))]
    PermissionDenied {
        /// The peer's user id.
        uid: u32,
        /// The allowed group's name (or number), if one is configured.
        group: Option<String>,
    },

    /// Someone is listening on the socket this daemon wanted to bind.
    #[error("another {daemon} is already running on {}", .path.display())]
    AlreadyRunning {
        /// The daemon's display name, e.g. `lvs-director`.
        daemon: String,
        /// The socket path.
        path: PathBuf,
    },

    /// A file that is not a socket sits where the socket should be.
    #[error("{} exists and is not a socket; refusing to remove it", .path.display())]
    NotASocket {
        /// The offending path.
        path: PathBuf,
    },

    /// The run directory is unsafe to use.
    #[error("run directory {}: {reason}", .path.display())]
    UnsafeRunDir {
        /// The directory.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },

    /// The daemon answered with an Error frame and closed the connection.
    #[error("the daemon refused: {message}")]
    Remote {
        /// The typed code from the Error frame.
        code: ErrorCode,
        /// The daemon's human-readable message.
        message: String,
    },

    /// No answer within the allotted time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// The timeout that expired.
        after: Duration,
    },

    /// The peer closed the connection cleanly (between frames).
    #[error("connection closed by the peer")]
    Closed,

    /// The server's buffer for this peer grew too large: it does not read what it is sent.
    #[error("peer is not reading: {pending} bytes waiting to be sent (limit {limit})")]
    SlowConsumer {
        /// Bytes queued.
        pending: usize,
        /// The per-connection limit.
        limit: usize,
    },
}

fn group_clause(group: &Option<String>) -> String {
    match group {
        Some(g) => format!("not in group {g}"),
        None => "no group is allowed on this socket".to_owned(),
    }
}

impl ProtoError {
    /// Wraps an I/O error with the operation that failed.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        ProtoError::Io {
            what: what.into(),
            source,
        }
    }

    /// The code sent in an Error frame when this error closes a connection.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtoError::Truncated { .. } | ProtoError::Decode(_) => ErrorCode::BadFrame,
            ProtoError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            ProtoError::HelloRequired { .. } => ErrorCode::HelloRequired,
            ProtoError::UnexpectedFrame(_) => ErrorCode::UnexpectedFrame,
            ProtoError::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            ProtoError::Remote { code, .. } => *code,
            ProtoError::SlowConsumer { .. } => ErrorCode::SlowConsumer,
            _ => ErrorCode::Internal,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = ProtoError> = std::result::Result<T, E>;
