//! The director's control vocabulary: virtual services, real servers, counters, connections.
//!
//! These are the payloads of the director requests and responses in [`crate::message`]
//! (`Request::AddService` ... `Response::Services`). They mirror IPVS's own structures, so that
//! `lvsadm` can print exactly what `ipvsadm` prints. The same compatibility rules apply as in
//! [`crate::message`]: fields and variants are appended, never reordered or removed, without a
//! protocol version bump.
//!
//! Derives only: all encoding goes through [`crate::codec`].

use std::fmt;
use std::net::IpAddr;

use bincode::{Decode, Encode};

/// The IPVS version the director reports (and `lvsadm -L` prints in its header).
pub const IPVS_VERSION: &str = "1.2.1";

/// The transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum Protocol {
    /// `-t`, `TCP` in listings.
    Tcp,
    /// `-u`, `UDP` in listings.
    Udp,
    /// `-f MARK`, `FWM` in listings: a firewall-mark service, which takes TCP and UDP to
    /// whatever addresses and ports the director's `[[fwmark]]` rules give this mark. Its
    /// key's address is the unspecified address of its family (0.0.0.0, or :: with `-6`) and
    /// its port 0, as in IPVS.
    Fwmark(u32),
}

impl Protocol {
    /// `TCP` or `UDP`, as listings show it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Fwmark(_) => "FWM",
        }
    }

    /// `-t`, `-u` or `-f`, as `ipvsadm-save` writes it.
    pub fn switch(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Fwmark(_) => "-f",
        }
    }
}

/// What identifies a virtual service: protocol, virtual address and port.
///
/// Port 0 means "every port" and is only valid for persistent services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct ServiceKey {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The virtual IP address.
    pub addr: IpAddr,
    /// The virtual port (0: all ports).
    pub port: u16,
}

impl ServiceKey {
    /// The firewall-mark service `mark` (`-f mark`, with `-6` when `ipv6`).
    pub fn fwmark(mark: u32, ipv6: bool) -> ServiceKey {
        let addr = if ipv6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        };
        ServiceKey {
            protocol: Protocol::Fwmark(mark),
            addr,
            port: 0,
        }
    }

    /// The mark of a firewall-mark service.
    pub fn mark(&self) -> Option<u32> {
        match self.protocol {
            Protocol::Fwmark(m) => Some(m),
            Protocol::Tcp | Protocol::Udp => None,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// `TCP 192.0.2.1:80`, `UDP [2001:db8::1]:53`, `FWM 1`, `FWM 1 IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Protocol::Fwmark(mark) = self.protocol {
            let v6 = if self.addr.is_ipv6() { " IPv6" } else { "" };
            return write!(f, "FWM {mark}{v6}");
        }
        write!(
            f,
            "{} {}",
            self.protocol.name(),
            AddrPort(self.addr, self.port)
        )
    }
}

/// An address and port printed the way ipvsadm does: `a.b.c.d:port` or `[v6]:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrPort(pub IpAddr, pub u16);

impl fmt::Display for AddrPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// How packets reach a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum FwdMethod {
    /// VS/NAT (`-m`, `Masq` in listings): addresses and ports rewritten both ways.
    Masq,
    /// VS/DR (`-g`, `Route`): only the destination MAC changes. ipvsadm's default.
    Route,
    /// VS/TUN (`-i`, `Tunnel`): IP-in-IP encapsulation.
    Tunnel,
}

impl FwdMethod {
    /// `Masq`, `Route` or `Tunnel`, as listings show it.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Route => "Route",
            FwdMethod::Tunnel => "Tunnel",
        }
    }

    /// `-m`, `-g` or `-i`, as `ipvsadm-save` writes it.
    pub fn switch(self) -> &'static str {
        match self {
            FwdMethod::Masq => "-m",
            FwdMethod::Route => "-g",
            FwdMethod::Tunnel => "-i",
        }
    }
}

/// Client affinity (`-p [timeout] [-M netmask]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct Persistence {
    /// How long a client sticks to its server after its last connection, in seconds.
    pub timeout_secs: u32,
    /// Granularity as a prefix length: clients in the same /`netmask` share a server.
    /// 32 (IPv4) or 128 (IPv6) means per client address; `-M 255.255.255.0` is 24.
    pub netmask: u8,
}

/// A virtual service's configuration (`-A` / `-E`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub struct ServiceConf {
    /// Which service.
    pub key: ServiceKey,
    /// The scheduler plugin's name (`-s`), e.g. `rr`, `wlc`.
    pub scheduler: String,
    /// Scheduler flags (`-b`), comma-separated, e.g. `sh-port,sh-fallback`; empty for none.
    pub sched_flags: String,
    /// Client affinity, if the service is persistent.
    pub persistence: Option<Persistence>,
}

/// A real server's configuration within one service (`-a` / `-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct DestConf {
    /// The real server's address.
    pub addr: IpAddr,
    /// The real server's port (always the service's port for DR and TUN).
    pub port: u16,
    /// How packets reach it.
    pub fwd: FwdMethod,
    /// Relative capacity; 0 = quiescent (no new connections).
    pub weight: u32,
    /// Upper connection threshold (`-x`); 0 = none.
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`): an overloaded server is used again below it.
    pub lower_threshold: u32,
}

/// Cumulative counters (`--stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, Decode)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets from clients.
    pub in_pkts: u64,
    /// Packets to clients.
    pub out_pkts: u64,
    /// Bytes from clients.
    pub in_bytes: u64,
    /// Bytes to clients.
    pub out_bytes: u64,
}

/// Current rates, per second (`--rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, Decode)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second from clients.
    pub in_pps: u64,
    /// Packets per second to clients.
    pub out_pps: u64,
    /// Bytes per second from clients.
    pub in_bps: u64,
    /// Bytes per second to clients.
    pub out_bps: u64,
}

/// A real server as listed: its configuration and what it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DestStatus {
    /// Its configuration.
    pub conf: DestConf,
    /// Established connections.
    pub active_conns: u32,
    /// Other connections (half-open, closing, UDP).
    pub inactive_conns: u32,
    /// Persistence templates pointing at it.
    pub persist_conns: u32,
    /// Cumulative counters.
    pub stats: Stats,
    /// Current rates.
    pub rates: Rates,
}

/// A virtual service as listed, with its real servers in configuration order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ServiceStatus {
    /// Its configuration.
    pub conf: ServiceConf,
    /// Cumulative counters.
    pub stats: Stats,
    /// Current rates.
    pub rates: Rates,
    /// Its real servers.
    pub dests: Vec<DestStatus>,
}

/// Connection timeouts in seconds (`--set tcp tcpfin udp`). In a request, 0 leaves a value
/// unchanged, as with IPVS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct Timeouts {
    /// Established TCP connections.
    pub tcp: u32,
    /// TCP connections after a FIN.
    pub tcp_fin: u32,
    /// UDP "connections".
    pub udp: u32,
}

impl Default for Timeouts {
    /// IPVS's defaults: 900 s, 120 s, 300 s.
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// One entry of the connection table (`-L -c`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ConnEntry {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Seconds until the entry expires.
    pub expire_secs: u32,
    /// IPVS state name, e.g. `ESTABLISHED`, `SYN_RECV`, `UDP`, `NONE` (templates).
    pub state: String,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub virtual_addr: (IpAddr, u16),
    /// Real server address and port.
    pub dest: (IpAddr, u16),
    /// A persistence template rather than a connection.
    pub template: bool,
}

/// Entries in one [`crate::Request::ListConnsPage`] answer at most: the largest entries
/// (IPv6, a long state name) encode in under 90 bytes, so a page stays well inside one
/// frame of [`crate::FrameLimit::DEFAULT`].
pub const CONNS_PAGE_MAX: u32 = 8192;

/// Where an entry stands in the paged listing of the connection table: its addresses, then
/// protocol and kind. Entries added or removed between two pages shift nothing: the next page
/// starts after the last entry seen, whatever happened before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub struct ConnCursor {
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub virtual_addr: (IpAddr, u16),
    /// Real server address and port.
    pub dest: (IpAddr, u16),
    /// TCP or UDP.
    pub protocol: Protocol,
    /// A persistence template.
    pub template: bool,
}

impl ConnEntry {
    /// This entry's place in the paged listing.
    pub fn cursor(&self) -> ConnCursor {
        ConnCursor {
            client: self.client,
            virtual_addr: self.virtual_addr,
            dest: self.dest,
            protocol: self.protocol,
            template: self.template,
        }
    }
}

/// What the director says about itself (`-L` header).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DirectorInfo {
    /// The IPVS version it is compatible with, e.g. [`IPVS_VERSION`].
    pub version: String,
    /// The connection table's size, shown as `(size=...)`.
    pub conn_table_size: u64,
    /// Entries in the connection table now.
    pub conn_count: u64,
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::codec::{decode_body, to_frame};
    use crate::frame::{FrameLimit, HEADER_LEN};
    use crate::message::{Request, Response, ServerFrame};

    fn key() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        }
    }

    fn daemon() -> SyncDaemon {
        SyncDaemon {
            state: SyncDaemonState::Master,
            mcast_ifn: "eth1".into(),
            syncid: 7,
            maxlen: 1472,
            group: Some(IpAddr::V6("ff02::51".parse().unwrap())),
            port: 8848,
            ttl: 1,
        }
    }

    fn round_trip<T>(msg: &T) -> T
    where
        T: Encode + Decode<()>,
    {
        let frame = to_frame(msg, FrameLimit::DEFAULT).unwrap();
        decode_body(&frame[HEADER_LEN..], FrameLimit::DEFAULT).unwrap()
    }

    #[test]
    fn director_requests_and_responses_round_trip() {
        let dest = DestConf {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 8080,
            fwd: FwdMethod::Tunnel,
            weight: 65535,
            upper_threshold: 10,
            lower_threshold: 5,
        };
        let conf = ServiceConf {
            key: key(),
            scheduler: "wrr".into(),
            sched_flags: "flag-1".into(),
            persistence: Some(Persistence {
                timeout_secs: 300,
                netmask: 24,
            }),
        };
        let requests = vec![
            Request::AddService(conf.clone()),
            Request::EditService(conf.clone()),
            Request::DelService(key()),
            Request::Clear,
            Request::AddDest {
                service: key(),
                dest,
            },
            Request::EditDest {
                service: key(),
                dest,
            },
            Request::DelDest {
                service: key(),
                addr: dest.addr,
                port: 8080,
            },
            Request::ListServices { key: Some(key()) },
            Request::ListConns,
            Request::Zero { key: None },
            Request::GetTimeouts,
            Request::SetTimeouts(Timeouts::default()),
            Request::GetInfo,
            Request::StartSyncDaemon(daemon()),
            Request::StopSyncDaemon(SyncDaemonState::Backup),
            Request::ListSyncDaemons,
            Request::ListConnsPage {
                after: Some(
                    ConnEntry {
                        protocol: Protocol::Tcp,
                        expire_secs: 0,
                        state: String::new(),
                        client: (IpAddr::V6(Ipv6Addr::LOCALHOST), 1),
                        virtual_addr: (key().addr, 80),
                        dest: (IpAddr::V6(Ipv6Addr::LOCALHOST), 8080),
                        template: true,
                    }
                    .cursor(),
                ),
                max: CONNS_PAGE_MAX,
            },
            Request::ListConnsPage {
                after: None,
                max: 1,
            },
        ];
        for r in requests {
            assert_eq!(round_trip(&r), r);
        }
        let responses = vec![
            Response::Services(vec![ServiceStatus {
                conf,
                stats: Stats {
                    conns: u64::MAX,
                    ..Stats::default()
                },
                rates: Rates::default(),
                dests: vec![DestStatus {
                    conf: dest,
                    active_conns: 1,
                    inactive_conns: 2,
                    persist_conns: 3,
                    stats: Stats::default(),
                    rates: Rates {
                        cps: 7,
                        ..Rates::default()
                    },
                }],
            }]),
            Response::Conns(vec![ConnEntry {
                protocol: Protocol::Udp,
                expire_secs: 299,
                state: "UDP".into(),
                client: (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40000),
                virtual_addr: (key().addr, 53),
                dest: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 53),
                template: false,
            }]),
            Response::Timeouts(Timeouts::default()),
            Response::Info(DirectorInfo {
                version: IPVS_VERSION.into(),
                conn_table_size: 4096,
                conn_count: 0,
            }),
            Response::SyncDaemons(vec![daemon()]),
            Response::ConnsPage {
                conns: Vec::new(),
                more: true,
            },
        ];
        for r in responses {
            let frame = ServerFrame::Response { id: 9, response: r };
            assert_eq!(round_trip(&frame), frame);
        }
    }

    /// A whole page of the largest entries (IPv6 everywhere, the longest state name, the
    /// largest numbers) fits one default frame, with room to spare.
    #[test]
    fn a_page_of_the_largest_entries_fits_one_frame() {
        let v6 = IpAddr::V6(Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        ));
        let big = ConnEntry {
            protocol: Protocol::Udp,
            expire_secs: u32::MAX,
            state: "ESTABLISHED_LONGEST".into(),
            client: (v6, u16::MAX),
            virtual_addr: (v6, u16::MAX),
            dest: (v6, u16::MAX),
            template: true,
        };
        let frame = ServerFrame::Response {
            id: u64::MAX,
            response: Response::ConnsPage {
                conns: vec![big; CONNS_PAGE_MAX as usize],
                more: true,
            },
        };
        let bytes = to_frame(&frame, FrameLimit::DEFAULT).expect("a page fits one frame");
        assert!(
            bytes.len() < FrameLimit::DEFAULT.bytes() * 9 / 10,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn a_sync_daemon_reads_as_ipvsadm_lists_it() {
        let mut d = daemon();
        assert_eq!(
            d.to_string(),
            "master sync daemon (mcast=eth1, syncid=7, maxlen=1472, group=ff02::51, port=8848, ttl=1)"
        );
        d.state = SyncDaemonState::Backup;
        d.maxlen = 0;
        d.group = None;
        d.port = 0;
        d.ttl = 0;
        assert_eq!(d.to_string(), "backup sync daemon (mcast=eth1, syncid=7)");
    }

    #[test]
    fn display_matches_ipvsadm() {
        assert_eq!(key().to_string(), "TCP 192.0.2.1:80");
        assert_eq!(
            AddrPort(IpAddr::V6(Ipv6Addr::LOCALHOST), 53).to_string(),
            "[::1]:53"
        );
        assert_eq!(FwdMethod::Masq.name(), "Masq");
        assert_eq!(FwdMethod::Route.switch(), "-g");
        assert_eq!(Protocol::Udp.switch(), "-u");
        assert_eq!(ServiceKey::fwmark(1, false).to_string(), "FWM 1");
        assert_eq!(ServiceKey::fwmark(7, true).to_string(), "FWM 7 IPv6");
        assert_eq!(ServiceKey::fwmark(7, true).mark(), Some(7));
        assert_eq!(key().mark(), None);
    }

    /// A firewall-mark key crosses the socket whole (the variant is appended, so TCP and UDP
    /// keys encode as before).
    #[test]
    fn a_fwmark_key_round_trips() {
        let r = Request::DelService(ServiceKey::fwmark(u32::MAX, true));
        assert_eq!(round_trip(&r), r);
    }
}

/// A real server's health as the monitor last reported it (`Request::SetHealth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct DestHealth {
    /// The service.
    pub service: ServiceKey,
    /// The real server's address.
    pub addr: IpAddr,
    /// The real server's port.
    pub port: u16,
    /// Whether it passes its checks.
    pub healthy: bool,
}

/// The director's connection sync ([`crate::Response::Sync`]), as `lvsadm -L --daemon` shows
/// it and lvs-heartbeatd reads it before failing back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct SyncStatus {
    /// Whether a `[sync]` section is configured (everything else is empty when not).
    pub enabled: bool,
    /// Sending (the active director) rather than receiving.
    pub active: bool,
    /// The sync id (`--syncid`).
    pub sync_id: u8,
    /// The local address it listens on, `addr:port`.
    pub listen: String,
    /// Unicast peers and the multicast group, `addr:port`.
    pub peers: Vec<String>,
    /// Standby: the bulk resync finished and an active director was heard within the last
    /// few seconds. Active: always true (its table is the reference).
    pub synced: bool,
    /// Standby: the last bulk resync completed.
    pub bulk_complete: bool,
    /// Milliseconds since the last authentic datagram from an active director (`None`: never).
    pub last_heard_ms: Option<u64>,
    /// Datagrams sent.
    pub sent: u64,
    /// Entries sent.
    pub entries_sent: u64,
    /// Authentic datagrams received.
    pub received: u64,
    /// Entries received and put into the table.
    pub entries_applied: u64,
    /// Datagrams rejected: wrong key or forged.
    pub rejected_mac: u64,
    /// Datagrams rejected: replayed (within the sender's run, of an earlier run of it, or
    /// unconfirmed: of its known run, first heard since this director's restart, without the
    /// echo of this director's new generation).
    pub rejected_replay: u64,
    /// Datagrams rejected: truncated.
    pub rejected_truncated: u64,
    /// Datagrams rejected for another reason (not a sync datagram, malformed).
    pub rejected_other: u64,
    /// Entries dropped: a ring between a worker and the sync thread was full, or a
    /// received entry names a service or real server this director does not have.
    pub dropped: u64,
    /// Bulk resyncs completed (standby) or served (active).
    pub bulk_resyncs: u64,
    /// The director is one of several active at once (`[cluster] mode = "active-active"`):
    /// it sends to and takes from every peer.
    pub active_active: bool,
    /// Active-active: connections created from a mid-flow TCP segment (no SYN) that found no
    /// entry, because the router moved the flow here before sync told this director of it.
    pub midflow_created: u64,
}

/// Which of ipvsadm's two sync daemons (`--start-daemon master|backup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum SyncDaemonState {
    /// Sends this director's connections.
    Master,
    /// Receives another director's connections.
    Backup,
}

impl SyncDaemonState {
    /// `master` or `backup`, as ipvsadm writes it.
    pub fn name(self) -> &'static str {
        match self {
            SyncDaemonState::Master => "master",
            SyncDaemonState::Backup => "backup",
        }
    }
}

/// A sync daemon as `ipvsadm --start-daemon` starts it and `-L --daemon` lists it. In a
/// request, 0 and `None` ask for the kernel's defaults; in a listing they are filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub struct SyncDaemon {
    /// Master or backup.
    pub state: SyncDaemonState,
    /// `--mcast-interface` (ipvsadm's default: `eth0`).
    pub mcast_ifn: String,
    /// `--syncid`.
    pub syncid: u8,
    /// `--sync-maxlen`: the largest datagram's payload (0: from the interface's MTU).
    pub maxlen: u16,
    /// `--mcast-group` (`None`: 224.0.0.81).
    pub group: Option<IpAddr>,
    /// `--mcast-port` (0: 8848).
    pub port: u16,
    /// `--mcast-ttl` (0: 1).
    pub ttl: u8,
}

impl fmt::Display for SyncDaemon {
    /// As ipvsadm 1.31's `-L --daemon` prints it: `master sync daemon (mcast=eth0,
    /// syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)`, maxlen, group, port and
    /// ttl only when set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sync daemon (mcast={}, syncid={}",
            self.state.name(),
            self.mcast_ifn,
            self.syncid
        )?;
        if self.maxlen != 0 {
            write!(f, ", maxlen={}", self.maxlen)?;
        }
        if let Some(g) = self.group {
            write!(f, ", group={g}")?;
        }
        if self.port != 0 {
            write!(f, ", port={}", self.port)?;
        }
        if self.ttl != 0 {
            write!(f, ", ttl={}", self.ttl)?;
        }
        f.write_str(")")
    }
}

/// A real server of a content-switching pool (`lvsadm --add-pool-server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct PoolServer {
    /// The real server's address.
    pub addr: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its weight within the pool.
    pub weight: u32,
}

/// A routing rule of a content service (`lvsadm --add-rule`): every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Encode, Decode)]
pub struct ContentRule {
    /// The rule's name (unique within its service).
    pub name: String,
    /// Host (or TLS server name): exact, or `*.example.com`.
    pub host: Option<String>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Regular expression searched in the path.
    pub path_regex: Option<String>,
    /// Request methods; empty for any.
    pub methods: Vec<String>,
    /// Headers that must be present, with this exact value when one is given.
    pub headers: Vec<(String, Option<String>)>,
    /// The pool matching requests go to.
    pub pool: String,
}

/// A run-time change to the content switching ([`crate::Request::EditContent`]). Pools are
/// director-wide (as `[[pool]]` in the configuration file); rules belong to one service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode)]
pub enum ContentEdit {
    /// A new pool with its first real servers.
    AddPool {
        /// Its name.
        name: String,
        /// Its scheduler plugin.
        scheduler: String,
        /// Scheduler options (`-b`).
        options: String,
        /// Its real servers (at least one).
        servers: Vec<PoolServer>,
    },
    /// Delete a pool no rule or default uses.
    DelPool {
        /// Its name.
        name: String,
    },
    /// Add a real server to a pool, or change its weight.
    AddPoolServer {
        /// The pool.
        pool: String,
        /// The server.
        server: PoolServer,
    },
    /// Remove a real server from a pool (not its last one).
    DelPoolServer {
        /// The pool.
        pool: String,
        /// The server's address.
        addr: IpAddr,
        /// The server's port.
        port: u16,
    },
    /// Add a rule to a content service: last, or just before the rule named `before`.
    AddRule {
        /// The content service.
        service: ServiceKey,
        /// The rule.
        rule: ContentRule,
        /// Insert before this rule (first match wins).
        before: Option<String>,
    },
    /// Delete a rule of a content service.
    DelRule {
        /// The content service.
        service: ServiceKey,
        /// The rule's name.
        name: String,
    },
}

/// One rule as listed, with its hits.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ContentRuleStatus {
    /// The rule.
    pub rule: ContentRule,
    /// Requests it routed.
    pub hits: u64,
}

/// A content service as `lvsadm --list-rules` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ContentServiceStatus {
    /// The service (always TCP).
    pub key: ServiceKey,
    /// `http` or `tls-sni`.
    pub mode: String,
    /// Where requests no rule matches go.
    pub default_pool: Option<String>,
    /// Requests sent to the default pool.
    pub default_hits: u64,
    /// Its rules, in match order.
    pub rules: Vec<ContentRuleStatus>,
}

/// A pool member as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct PoolServerStatus {
    /// Its configuration.
    pub server: PoolServer,
    /// What the monitor last said (true until told otherwise).
    pub healthy: bool,
    /// Requests sent to it.
    pub requests: u64,
}

/// A pool as listed.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PoolStatus {
    /// Its name.
    pub name: String,
    /// Its scheduler.
    pub scheduler: String,
    /// Its scheduler options.
    pub options: String,
    /// Its real servers.
    pub servers: Vec<PoolServerStatus>,
}

/// The content switching as a whole ([`crate::Response::Content`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct ContentStatus {
    /// Content services, in configuration order.
    pub services: Vec<ContentServiceStatus>,
    /// Every pool, used or not.
    pub pools: Vec<PoolStatus>,
}

#[cfg(test)]
mod content_tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::codec::{decode_body, to_frame};
    use crate::frame::{FrameLimit, HEADER_LEN};
    use crate::message::{ClientFrame, Request, Response, ServerFrame};

    #[test]
    fn content_requests_and_responses_round_trip() {
        let key = ServiceKey {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        };
        let server = PoolServer {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port: 8080,
            weight: 2,
        };
        let rule = ContentRule {
            name: "img".into(),
            host: Some("*.example".into()),
            path_prefix: Some("/img".into()),
            path_regex: None,
            methods: vec!["GET".into()],
            headers: vec![("X-A".into(), None)],
            pool: "images".into(),
        };
        for edit in [
            ContentEdit::AddPool {
                name: "images".into(),
                scheduler: "rr".into(),
                options: String::new(),
                servers: vec![server],
            },
            ContentEdit::AddRule {
                service: key,
                rule: rule.clone(),
                before: Some("api".into()),
            },
            ContentEdit::DelRule {
                service: key,
                name: "img".into(),
            },
        ] {
            let frame = ClientFrame::Request {
                id: 3,
                request: Request::EditContent(Box::new(edit)),
            };
            let bytes = to_frame(&frame, FrameLimit::DEFAULT).unwrap();
            let back: ClientFrame = decode_body(&bytes[HEADER_LEN..], FrameLimit::DEFAULT).unwrap();
            assert_eq!(back, frame);
        }
        let frame = ServerFrame::Response {
            id: 4,
            response: Response::Content(ContentStatus {
                services: vec![ContentServiceStatus {
                    key,
                    mode: "http".into(),
                    default_pool: None,
                    default_hits: 1,
                    rules: vec![ContentRuleStatus { rule, hits: 9 }],
                }],
                pools: vec![PoolStatus {
                    name: "images".into(),
                    scheduler: "rr".into(),
                    options: String::new(),
                    servers: vec![PoolServerStatus {
                        server,
                        healthy: false,
                        requests: 5,
                    }],
                }],
            }),
        };
        let bytes = to_frame(&frame, FrameLimit::DEFAULT).unwrap();
        let back: ServerFrame = decode_body(&bytes[HEADER_LEN..], FrameLimit::DEFAULT).unwrap();
        assert_eq!(back, frame);
    }
}
