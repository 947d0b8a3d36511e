//! The messages of the local protocol.
//!
//! Compatibility rules, for everyone who extends these enums in later issues:
//!
//! - New variants are appended **at the end** of an enum, never inserted or reordered: bincode
//!   encodes a variant by its index.
//! - Changing or removing a field or variant is incompatible and bumps [`PROTOCOL_VERSION`].
//! - [`ClientFrame::Hello`] stays variant 0 with `version` as its first field, and
//!   [`ServerFrame::HelloOk`] / [`ServerFrame::Error`] stay variants 0 / 1, forever: they are how
//!   two different versions find out that they disagree and say so clearly.
//!
//! Derives only: all encoding goes through [`crate::codec`].

use bincode::{Decode, Encode};

use crate::director::{
    ConnEntry, DestConf, DirectorInfo, ServiceConf, ServiceKey, ServiceStatus, Timeouts,
};

/// The protocol version this build speaks. Bump it on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// What kind of program is on the other end. Only informative (logs, handlers): permission is
/// decided by `SO_PEERCRED`, never by what a peer says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Role {
    /// `lvsadm` or another command-line tool.
    Lvsadm,
    /// `lvs-director`.
    Director,
    /// `lvs-monitord`.
    Monitord,
    /// `lvs-heartbeatd`.
    Heartbeatd,
    /// `lvs-webmon`.
    Webmon,
    /// `lvs-lockmgr`.
    Lockmgr,
    /// `lvs-lockctl`.
    Lockctl,
    /// Anything else (tests, scripts).
    Other,
}

/// First frame from the client.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    /// Must stay the first field (see the module docs).
    pub version: u32,
    /// Who is calling.
    pub role: Role,
}

/// The server's answer to an acceptable [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HelloOk {
    /// The server's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The daemon's name, e.g. `lvs-director`.
    pub daemon: String,
}

/// Why a request failed or a connection was closed. Appended to like the other enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum ErrorCode {
    /// The Hello named a protocol version this daemon does not speak.
    VersionMismatch,
    /// `SO_PEERCRED` says the peer may not use this socket.
    PermissionDenied,
    /// A frame could not be decoded.
    BadFrame,
    /// A frame header announced more than the maximum frame size.
    FrameTooLarge,
    /// A request arrived before the Hello.
    HelloRequired,
    /// A well-formed frame that is not allowed here (e.g. a second Hello).
    UnexpectedFrame,
    /// This daemon does not handle that request.
    Unsupported,
    /// The request was understood but its arguments are wrong.
    InvalidRequest,
    /// The peer did not read its responses and events.
    SlowConsumer,
    /// Something went wrong inside the daemon.
    Internal,
}

/// Classes of events a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Topic {
    /// [`Event::ServerUp`] and [`Event::ServerDown`].
    Servers,
    /// [`Event::RoleChanged`].
    Role,
    /// [`Event::ConfigChanged`].
    Config,
}

impl Topic {
    /// Every topic, for "subscribe to everything".
    pub const ALL: [Topic; 3] = [Topic::Servers, Topic::Role, Topic::Config];
}

/// A request from client to daemon. New variants are appended at the end; incompatible changes
/// bump [`PROTOCOL_VERSION`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Liveness check; answered with [`Response::Pong`].
    Ping,
    /// Start receiving [`Event`]s of these topics. Answered with [`Response::Ok`].
    Subscribe {
        /// Topics to add.
        topics: Vec<Topic>,
    },
    /// Stop receiving events of these topics; an empty list stops all of them.
    Unsubscribe {
        /// Topics to drop.
        topics: Vec<Topic>,
    },
    /// Director: add a virtual service (`-A`). Answered with [`Response::Ok`].
    AddService(ServiceConf),
    /// Director: replace a virtual service's settings (`-E`).
    EditService(ServiceConf),
    /// Director: delete a virtual service and its real servers (`-D`).
    DelService(ServiceKey),
    /// Director: delete every virtual service (`-C`).
    Clear,
    /// Director: add a real server to a service (`-a`).
    AddDest {
        /// The service.
        service: ServiceKey,
        /// The real server.
        dest: DestConf,
    },
    /// Director: replace a real server's settings (`-e`).
    EditDest {
        /// The service.
        service: ServiceKey,
        /// The real server, found by address and port.
        dest: DestConf,
    },
    /// Director: remove a real server from a service (`-d`).
    DelDest {
        /// The service.
        service: ServiceKey,
        /// The real server's address.
        addr: std::net::IpAddr,
        /// The real server's port.
        port: u16,
    },
    /// Director: list one service or all (`-L`). Answered with [`Response::Services`].
    ListServices {
        /// One service, or `None` for all.
        key: Option<ServiceKey>,
    },
    /// Director: list the connection table (`-L -c`). Answered with [`Response::Conns`].
    ListConns,
    /// Director: zero the counters of one service or all (`-Z`).
    Zero {
        /// One service, or `None` for all.
        key: Option<ServiceKey>,
    },
    /// Director: the connection timeouts (`-L --timeout`). Answered with
    /// [`Response::Timeouts`].
    GetTimeouts,
    /// Director: change the connection timeouts (`--set`); a 0 leaves that value alone.
    SetTimeouts(Timeouts),
    /// Director: version and table size (`-L` header). Answered with [`Response::Info`].
    GetInfo,
    /// Director: the monitor's verdict on a real server. An unhealthy server is scheduled as
    /// if its weight were 0 (existing connections go on); its configured weight comes back
    /// when it is healthy again. Answered with [`Response::Ok`].
    SetHealth {
        /// The service.
        service: crate::director::ServiceKey,
        /// The real server's address.
        addr: std::net::IpAddr,
        /// The real server's port.
        port: u16,
        /// Whether it passes its checks.
        healthy: bool,
    },
    /// Director: every real server's health. Answered with [`Response::Health`].
    ListHealth,
    /// Director: become active (forward) or standby (forward nothing). Sent by the heartbeat
    /// daemon. Answered with [`Response::Ok`].
    SetRole {
        /// The new role.
        role: HaRole,
    },
    /// Director: the current role. Answered with [`Response::Role`].
    GetRole,
    /// Monitord: put a real server into maintenance (`on`: marked unhealthy at the director
    /// whatever its checks say) or take it out again (`on = false`: its checks decide again).
    /// Answered with [`Response::Ok`].
    Maintenance {
        /// The service.
        service: ServiceKey,
        /// The real server's address.
        addr: std::net::IpAddr,
        /// The real server's port.
        port: u16,
        /// Maintenance on or off.
        on: bool,
    },
    /// Monitord: every real server it checks. Answered with [`Response::Monitored`].
    ListMonitored,
    /// Heartbeatd: its state (role, epoch, virtual addresses, media). Answered with
    /// [`Response::HaStatus`].
    HaStatus,
    /// Director: connection-sync status (role, peers, whether the table is synced,
    /// counters). Answered with [`Response::Sync`].
    SyncStatus,
    /// Director: change the content switching's pools or rules at run time (`lvsadm
    /// --add-rule` ...). Applied whole or refused whole, open client connections stay.
    /// Answered with [`Response::Ok`].
    EditContent(Box<crate::director::ContentEdit>),
    /// Director: content services, rules and pools (`lvsadm --list-rules`). Answered with
    /// [`Response::Content`].
    ListContent,
    /// Director: start a connection-sync daemon as `ipvsadm --start-daemon` does (the
    /// datagrams are sealed with the key of the director's `[sync] key_file`). Answered with
    /// [`Response::Ok`], or ipvsadm's words (`Daemon has already run`, `No such device`).
    StartSyncDaemon(crate::director::SyncDaemon),
    /// Director: stop the master or backup sync daemon (`ipvsadm --stop-daemon`). Answered
    /// with [`Response::Ok`] or `No daemon is running`.
    StopSyncDaemon(crate::director::SyncDaemonState),
    /// Director: the sync daemons started with [`Request::StartSyncDaemon`], their defaults
    /// filled in (`lvsadm -L --daemon`). Answered with [`Response::SyncDaemons`].
    ListSyncDaemons,
    /// Heartbeatd in anycast mode: the routes it announces and the BGP sessions of its
    /// routing daemon. Answered with [`Response::Anycast`].
    AnycastStatus,
    /// Heartbeatd in anycast mode: drain this director (`on`: withdraw every route while the
    /// director keeps forwarding what still arrives) or end the drain. Answered with
    /// [`Response::Anycast`], the state after the change.
    Drain {
        /// Drain on or off.
        on: bool,
    },
    /// Director: one page of the connection table (`-L -c`), in the order of
    /// [`ConnEntry::cursor`]: at most `max` entries (the director caps it at
    /// [`crate::director::CONNS_PAGE_MAX`]) after `after`, or from the first. Answered with
    /// [`Response::ConnsPage`]. A table of any size is listed page by page, each in one
    /// frame; [`Request::ListConns`] answers in one frame and fails past ~30,000 entries.
    ListConnsPage {
        /// The cursor of the last entry of the previous page; `None` for the first page.
        after: Option<crate::director::ConnCursor>,
        /// Entries wanted.
        max: u32,
    },
}

/// A daemon's answer to one [`Request`]. New variants are appended at the end.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong,
    /// The request was done and there is nothing to report.
    Ok,
    /// The request failed; the connection stays open.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
    /// Director: answer to [`Request::ListServices`], services and servers in configuration
    /// order.
    Services(Vec<ServiceStatus>),
    /// Director: answer to [`Request::ListConns`].
    Conns(Vec<ConnEntry>),
    /// Director: answer to [`Request::GetTimeouts`].
    Timeouts(Timeouts),
    /// Director: answer to [`Request::GetInfo`].
    Info(DirectorInfo),
    /// The health of every real server, in configuration order.
    Health(Vec<crate::director::DestHealth>),
    /// The director's role.
    Role(HaRole),
    /// Monitord: answer to [`Request::ListMonitored`], services and servers in configuration
    /// order, then the servers found at the director only.
    Monitored(Vec<MonitoredServer>),
    /// Heartbeatd: answer to [`Request::HaStatus`].
    HaStatus(HaStatus),
    /// Director: answer to [`Request::SyncStatus`].
    Sync(crate::director::SyncStatus),
    /// Director: answer to [`Request::ListContent`].
    Content(crate::director::ContentStatus),
    /// Director: answer to [`Request::ListSyncDaemons`], master first.
    SyncDaemons(Vec<crate::director::SyncDaemon>),
    /// Heartbeatd: answer to [`Request::AnycastStatus`] and [`Request::Drain`].
    Anycast(AnycastStatus),
    /// Director: answer to [`Request::ListConnsPage`].
    ConnsPage {
        /// The entries, in cursor order.
        conns: Vec<ConnEntry>,
        /// More entries follow the last one.
        more: bool,
    },
}

/// The high-availability role of a director.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum HaRole {
    /// Owns the virtual addresses and forwards traffic.
    Active,
    /// Ready to take over.
    Standby,
}

/// Something that happened, pushed to subscribers. New variants are appended at the end.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    /// A real server passed its checks and is scheduled again.
    ServerUp {
        /// The virtual service, e.g. `tcp 10.0.0.1:80`.
        service: String,
        /// The real server, e.g. `192.168.1.10:80`.
        server: String,
    },
    /// A real server failed its checks and was taken out of scheduling.
    ServerDown {
        /// The virtual service.
        service: String,
        /// The real server.
        server: String,
        /// Why, e.g. `HTTP check: connection refused`.
        reason: String,
    },
    /// This director became active or standby.
    RoleChanged {
        /// The new role.
        role: HaRole,
    },
    /// The configuration was (re)loaded.
    ConfigChanged {
        /// The file that was read.
        path: String,
        /// Increases with every successful load.
        generation: u64,
    },
}

impl Event {
    /// The topic a client must subscribe to in order to receive this event.
    pub fn topic(&self) -> Topic {
        match self {
            Event::ServerUp { .. } | Event::ServerDown { .. } => Topic::Servers,
            Event::RoleChanged { .. } => Topic::Role,
            Event::ConfigChanged { .. } => Topic::Config,
        }
    }
}

/// Every frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ClientFrame {
    /// Must be the first frame; stays variant 0.
    Hello(Hello),
    /// A request; the response carries the same `id`.
    Request {
        /// Chosen by the client, echoed in the response.
        id: u64,
        /// The request.
        request: Request,
    },
}

/// Every frame a daemon sends.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ServerFrame {
    /// The Hello was accepted; stays variant 0.
    HelloOk(HelloOk),
    /// The connection is refused or broken; the daemon closes it after this frame. Stays
    /// variant 1.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
    },
    /// The answer to the request with the same `id`.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        response: Response,
    },
    /// An event for a subscribed topic.
    Event(Event),
}

impl ClientFrame {
    /// A short name for logs and error messages; never includes payload.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Hello(_) => "a Hello",
            ClientFrame::Request { .. } => "a request",
        }
    }
}

impl ServerFrame {
    /// A short name for logs and error messages; never includes payload.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::HelloOk(_) => "HelloOk",
            ServerFrame::Error { .. } => "an Error frame",
            ServerFrame::Response { .. } => "a response",
            ServerFrame::Event(_) => "an event",
        }
    }
}

/// One real server as lvs-monitord sees it ([`Response::Monitored`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct MonitoredServer {
    /// The service.
    pub service: ServiceKey,
    /// The real server's address.
    pub addr: std::net::IpAddr,
    /// The real server's port.
    pub port: u16,
    /// The weight it has (or gets back) when healthy.
    pub weight: u32,
    /// Its health from the checks: `up`, `down` or `unknown`.
    pub state: String,
    /// In maintenance: unhealthy at the director whatever the checks say.
    pub maintenance: bool,
    /// Whether the director currently schedules it (as far as monitord knows).
    pub in_service: bool,
    /// Not in monitord's configuration: found at the director, checked with a TCP connect.
    pub discovered: bool,
    /// The last check result: `None` before the first one.
    pub last_ok: Option<bool>,
    /// What the last check said, e.g. `HTTP 200` or `connection refused`.
    pub last_detail: String,
    /// Milliseconds since the last check result.
    pub last_age_ms: Option<u64>,
}

/// lvs-heartbeatd's state ([`Response::HaStatus`]), for the console and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HaStatus {
    /// This node's name (`node-<id>`).
    pub node: String,
    /// This node's id.
    pub node_id: u32,
    /// `init`, `master`, `backup` or `fault`.
    pub state: String,
    /// Why the node is in fault (empty otherwise), e.g. `link eth0 down`.
    pub fault_reason: String,
    /// The mastership epoch this node knows.
    pub epoch: u64,
    /// The virtual addresses it takes over, `addr/prefix@interface`.
    pub vips: Vec<String>,
    /// Whether it holds them now.
    pub holds_vips: bool,
    /// Whether the local director reports its connection table synced (`None`: unknown).
    pub table_synced: Option<bool>,
    /// The peer, once heard.
    pub peer: Option<HaPeer>,
    /// Each configured heartbeat medium.
    pub media: Vec<HaMedium>,
    /// Each watched interface and whether it has carrier.
    pub links: Vec<(String, bool)>,
}

/// The peer as lvs-heartbeatd sees it ([`HaStatus::peer`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HaPeer {
    /// Its node id.
    pub node_id: u32,
    /// Its last state heard: `init`, `master`, `backup` or `fault`.
    pub state: String,
    /// Its last epoch heard.
    pub epoch: u64,
    /// Heard on some medium within the deadtime.
    pub alive: bool,
    /// Reported its connection table synced.
    pub synced: bool,
}

/// One heartbeat medium ([`HaStatus::media`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct HaMedium {
    /// `udp` or `serial`.
    pub name: String,
    /// The peer was heard here within the deadtime.
    pub up: bool,
    /// Milliseconds since the peer was last heard here (`None`: never).
    pub last_heard_ms: Option<u64>,
    /// Heartbeats accepted here.
    pub accepted: u64,
    /// Rejected messages by reason (`bad_length`, `bad_mac`, `replay` ...).
    pub rejected: Vec<(String, u64)>,
}

/// lvs-heartbeatd's anycast state ([`Response::Anycast`]): what this director announces to
/// the routers, and why not where it does not.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct AnycastStatus {
    /// Drained by the operator: every route withdrawn, the director still forwards.
    pub drained: bool,
    /// The routing daemon, e.g. `bird`.
    pub daemon: String,
    /// Its control socket answered the last check.
    pub daemon_up: bool,
    /// The director's control socket answered the last check, and it is active.
    pub director_up: bool,
    /// Each virtual address, in configuration order.
    pub routes: Vec<AnycastRoute>,
    /// Each BGP session of the routing daemon.
    pub sessions: Vec<BgpSession>,
}

/// One announced (or withdrawn) virtual address ([`AnycastStatus::routes`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AnycastRoute {
    /// `addr/32` or `addr/128`.
    pub prefix: String,
    /// The routing daemon's protocol that carries it (a BIRD `static` protocol).
    pub protocol: String,
    /// Announced now.
    pub announced: bool,
    /// Why it is withdrawn (empty while announced), e.g. `no healthy real server`.
    pub reason: String,
}

/// One BGP session of the routing daemon ([`AnycastStatus::sessions`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct BgpSession {
    /// The daemon's name for it (a BIRD protocol name).
    pub name: String,
    /// Established.
    pub up: bool,
    /// The daemon's words for its state, e.g. `up Established` or `start Active`.
    pub state: String,
}
