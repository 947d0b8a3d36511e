//! Why a control request is refused.
//!
//! The messages are the ones `ipvsadm` prints for the same mistake (libipvs's
//! `ipvs_strerror` table and the kernel's checks), so that a sysadmin who knows ipvsadm reads
//! nothing new; where ipvsadm's text says too little, a reason follows in parentheses.

use lvs_proto::{AddrPort, ErrorCode, Response, ServiceKey};

/// A request the configuration model refuses. The state is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// `-A` of a service that exists.
    #[error("Service already exists")]
    ServiceExists(ServiceKey),

    /// `-E`, `-D`, `-Z` or `-L` of a service that does not exist.
    #[error("No such service")]
    NoSuchService(ServiceKey),

    /// `-a`, `-e` or `-d` on a service that does not exist.
    #[error("Service not defined")]
    ServiceNotDefined(ServiceKey),

    /// `-a` of a real server the service already has.
    #[error("Destination already exists")]
    DestExists(AddrPort),

    /// `-e` or `-d` of a real server the service does not have.
    #[error("No such destination")]
    NoSuchDest(AddrPort),

    /// The scheduler hook refused the name or flags; its message names what was searched.
    #[error("{0}")]
    Scheduler(String),

    /// A service on port 0 ("all ports") must be persistent.
    #[error("Zero port specified for non-persistent service")]
    ZeroPortNotPersistent,

    /// A NAT real server needs a port when its service has one.
    #[error(
        "Zero port specified for a masquerading real server (give the server's port, or use port 0 for the service too)"
    )]
    ZeroPortMasq,

    /// The persistence timeout is out of range.
    #[error("invalid timeout value `{0}' specified")]
    BadPersistentTimeout(u32),

    /// The persistence netmask does not fit the address family.
    #[error("illegal virtual server persistent mask specified")]
    BadNetmask,

    /// Weight above ipvsadm's limit of 65535.
    #[error("illegal weight specified")]
    BadWeight,

    /// The kernel's ERANGE for a lower threshold above the upper one, as ipvsadm shows it.
    #[error("Numerical result out of range")]
    Thresholds {
        /// `-y`.
        lower: u32,
        /// `-x`.
        upper: u32,
    },

    /// The kernel's EINVAL for a real server that is not a unicast address (`0.0.0.0`,
    /// broadcast, multicast; in IPv6 `::`, multicast, link-local), as ipvsadm shows it.
    #[error("Invalid operation.  Possibly wrong module version, address not unicast, ...")]
    NotUnicast(std::net::IpAddr),

    /// Only VS/TUN may cross address families.
    #[error("Different address family is allowed only for tunneling servers")]
    AddressFamily,

    /// A VS/TUN real server of the other family than its virtual service. IPVS allows it
    /// (IPv4 in IPv6 and the reverse); the director tunnels IPv4 in IPv4 and IPv6 in IPv6 only,
    /// so it is refused here rather than accepted and never forwarded to.
    #[error(
        "Different address family tunneling is not supported by lvs-director: a tunnel real server must be of the virtual service's family"
    )]
    TunnelAddressFamily,

    /// A `-b` item ipvsadm would refuse.
    #[error(transparent)]
    SchedFlag(#[from] crate::sched_flags::SchedFlagError),

    /// A `--set` value above 31 days.
    #[error("invalid timeout value `{0}' specified")]
    BadTimeout(u32),
}

impl ControlError {
    /// The error as a protocol response.
    pub fn to_response(&self) -> Response {
        Response::Error {
            code: ErrorCode::InvalidRequest,
            message: self.to_string(),
        }
    }
}
