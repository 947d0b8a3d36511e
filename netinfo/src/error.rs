//! One error type for everything this crate does, with messages a sysadmin can act on.

use std::io;

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, NetinfoError>;

/// What went wrong while talking to the kernel's networking tables.
#[derive(Debug, thiserror::Error)]
pub enum NetinfoError {
    /// The netlink socket itself could not be created, bound or configured.
    #[error("cannot open a netlink (NETLINK_ROUTE) socket to the kernel: {0}")]
    Socket(#[source] io::Error),

    /// Sending to or receiving from the netlink socket failed.
    #[error("netlink I/O failed while trying to {op}: {source}")]
    Io {
        /// What we were doing.
        op: String,
        /// The system error.
        #[source]
        source: io::Error,
    },

    /// The kernel answered a request with an error code.
    #[error("the kernel refused to {op}: {source}{detail}")]
    Kernel {
        /// What we asked for, in words (e.g. "add 10.0.0.1/24 to interface 3").
        op: String,
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
        /// The kernel's extended-ack explanation, already formatted as " (reason)", or empty.
        detail: String,
    },

    /// A reply could not be understood (truncated or malformed netlink data).
    #[error("malformed netlink reply while trying to {op}: {detail}")]
    Decode {
        /// What we were doing.
        op: String,
        /// What was wrong with the data.
        detail: String,
    },

    /// A dump kept being interrupted by concurrent changes.
    #[error(
        "the kernel's {0} table kept changing while it was being read; gave up after several tries"
    )]
    DumpInterrupted(&'static str),

    /// No interface has that name.
    #[error("no network interface named {0:?} (see `ip link`)")]
    NoSuchInterface(String),

    /// No interface has that index.
    #[error("no network interface with index {0} (see `ip link`)")]
    NoSuchIfindex(u32),

    /// An interface name that the kernel cannot accept.
    #[error("{0:?} is not a valid interface name (1 to 15 bytes, no '/', no NUL)")]
    BadInterfaceName(String),

    /// A prefix length outside 0..=32.
    #[error("prefix length /{0} is invalid for an IPv4 address (must be 0 to 32)")]
    BadPrefixLength(u8),

    /// A prefix length outside 0..=128.
    #[error("prefix length /{0} is invalid for an IPv6 address (must be 0 to 128)")]
    BadIpv6PrefixLength(u8),

    /// An ethtool ioctl failed.
    #[error("cannot {op} on interface {ifname} (ethtool ioctl): {source}")]
    Ethtool {
        /// Interface name.
        ifname: String,
        /// What we tried ("read GRO setting", "turn GRO off" ...).
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },

    /// Sending a raw frame (gratuitous ARP) or the resolution datagram failed.
    #[error("cannot {op} on interface index {ifindex}: {source}")]
    Send {
        /// Interface index.
        ifindex: u32,
        /// What we tried.
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

impl NetinfoError {
    /// The errno behind this error, if there is one (`libc::EEXIST`, `libc::ENODEV` ...).
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Socket(e)
            | Self::Io { source: e, .. }
            | Self::Kernel { source: e, .. }
            | Self::Ethtool { source: e, .. }
            | Self::Send { source: e, .. } => e.raw_os_error(),
            _ => None,
        }
    }
}
