//! The crate's error type: every message names the interface and the system call.

use std::io;

/// Errors from setting up or using AF_PACKET sockets.
///
/// Messages read like `cannot set up the receive ring on eth0: setsockopt(PACKET_RX_RING):
/// Cannot allocate memory`; the underlying `io::Error` is the `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No interface of that name or index exists in this network namespace.
    #[error("unknown interface {name}: {call}: {}", describe(.source))]
    UnknownInterface {
        /// The name (or `#index`) asked for.
        name: String,
        /// The lookup that failed.
        call: &'static str,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// A system call failed while setting up or using a socket.
    #[error("cannot {what} on {iface}: {call}: {}{}", describe(.source), hint(.call, .source))]
    Sys {
        /// What we were doing ("set up the receive ring").
        what: &'static str,
        /// The interface (or "the transmit socket").
        iface: String,
        /// The system call and option ("setsockopt(PACKET_RX_RING)").
        call: &'static str,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// A system call failed on the transmit socket (which serves every interface).
    #[error("cannot {what}: {call}: {}{}", describe(.source), hint(.call, .source))]
    Tx {
        /// What we were doing ("open the transmit socket").
        what: &'static str,
        /// The system call and option.
        call: &'static str,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// A configuration value the kernel would refuse, caught before asking it.
    #[error("bad {what} for {iface}: {reason}")]
    Config {
        /// The setting ("receive ring geometry").
        what: &'static str,
        /// The interface (or "the transmit socket").
        iface: String,
        /// Why it is refused.
        reason: String,
    },
}

impl Error {
    pub(crate) fn sys(
        what: &'static str,
        iface: &str,
        call: &'static str,
        source: io::Error,
    ) -> Self {
        Self::Sys {
            what,
            iface: iface.to_owned(),
            call,
            source,
        }
    }

    pub(crate) fn tx(what: &'static str, call: &'static str, source: io::Error) -> Self {
        Self::Tx { what, call, source }
    }

    pub(crate) fn config(what: &'static str, iface: &str, reason: impl Into<String>) -> Self {
        Self::Config {
            what,
            iface: iface.to_owned(),
            reason: reason.into(),
        }
    }

    /// The errno behind this error, if a system call failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::UnknownInterface { source, .. }
            | Self::Sys { source, .. }
            | Self::Tx { source, .. } => source.raw_os_error(),
            Self::Config { .. } => None,
        }
    }
}

/// The kernel's words for an errno, without std's " (os error N)" suffix.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// A hint for the errors people actually hit.
fn hint(call: &str, err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => " (CAP_NET_RAW is needed: run as root)",
        Some(libc::EINVAL) if call.starts_with("setsockopt(PACKET_FANOUT)") => {
            " (is the interface up, and do all members use the same settings?)"
        }
        Some(libc::ENOMEM) if call.starts_with("setsockopt(PACKET_RX_RING)") => {
            " (try fewer or smaller blocks)"
        }
        _ => "",
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
