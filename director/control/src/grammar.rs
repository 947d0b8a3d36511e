//! The ipvsadm command grammar, in one place.
//!
//! One command line (argv without the program name) becomes one typed [`Command`]. `lvsadm`
//! parses its own arguments with it, `lvsadm -R` and the director's rules file parse each
//! line with it (see [`crate::rules`]). Options, defaults, the table of which options go with
//! which command, and the error messages are ipvsadm's (popt flavour: short options may be
//! bundled as in `-Ln`, `-p` takes an optional timeout, long options accept `--opt=value`).

use std::net::IpAddr;

use lvs_proto::director::{ContentEdit, SyncDaemon, SyncDaemonState};
use lvs_proto::{
    DestConf, FwdMethod, Persistence, Protocol, Request, ServiceConf, ServiceKey, Timeouts,
};

use crate::address::{parse_addr_port, parse_netmask};
use crate::content::grammar as content;
use crate::state::{MAX_TIMEOUT, MAX_WEIGHT};

/// ipvsadm's default scheduler.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm's default persistence timeout, in seconds.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 300;

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService(ServiceConf),
    /// `-E`.
    EditService(ServiceConf),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-a`.
    AddDest {
        /// `-t`/`-u`.
        service: ServiceKey,
        /// `-r` and its options.
        dest: DestConf,
    },
    /// `-e`.
    EditDest {
        /// `-t`/`-u`.
        service: ServiceKey,
        /// `-r` and its options.
        dest: DestConf,
    },
    /// `-d`.
    DelDest {
        /// `-t`/`-u`.
        service: ServiceKey,
        /// `-r` address.
        addr: IpAddr,
        /// `-r` port (the service's if not given).
        port: u16,
    },
    /// `-L` / `-l`.
    List(ListOptions),
    /// `-Z [-t|-u service]`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`.
    SetTimeouts(Timeouts),
    /// `-S [-n]`.
    Save {
        /// `-n`: addresses and ports as numbers (else names, as in listings).
        numeric: bool,
    },
    /// `-R`.
    Restore,
    /// `-h`.
    Help,
    /// `-v`.
    Version,
    /// `--add-pool`, `--del-pool`, `--add-pool-server`, `--del-pool-server`, `--add-rule`,
    /// `--del-rule`: lvsadm's own layer-7 commands ([`crate::content::grammar`]).
    EditContent(ContentEdit),
    /// `--list-rules [-t service]`.
    ListRules(Option<ServiceKey>),
    /// `--start-daemon master|backup [--mcast-interface ...]`: answered by the director's
    /// sync (not a rule: a rules file or `-R` does not start daemons).
    StartDaemon(SyncDaemon),
    /// `--stop-daemon master|backup`.
    StopDaemon(SyncDaemonState),
}

/// What `-L` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListWhat {
    /// Services and real servers: all, or one (`-L -t vip:port`).
    Services(Option<ServiceKey>),
    /// `-c`: the connection table.
    Connections,
    /// `--timeout`.
    Timeouts,
    /// `--daemon`: the connection-sync status.
    Daemon,
}

/// The columns of a service listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// Forward, Weight, ActiveConn, InActConn.
    Plain,
    /// `--stats`: Conns, InPkts, OutPkts, InBytes, OutBytes.
    Stats,
    /// `--rate`: CPS, InPPS, OutPPS, InBPS, OutBPS.
    Rate,
    /// `--thresholds`: Uthreshold, Lthreshold, ActiveConn, InActConn.
    Thresholds,
    /// `--persistent-conn`: Weight, PersistConn, ActiveConn, InActConn (with `-c`: the
    /// connection table with ipvsadm's persistence-engine columns).
    PersistentConn,
    /// `--tun-info`: Forward, TunnelInfo, Weight, ActiveConn, InActConn.
    TunInfo,
}

/// Options of `-L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// What to list.
    pub what: ListWhat,
    /// Columns (when several are asked for, ipvsadm's precedence: stats, rate, thresholds,
    /// persistent-conn, tun-info).
    pub format: ListFormat,
    /// `-n`: addresses and ports as numbers; without it, names from `/etc/hosts` and
    /// `/etc/services` where they have one ([`crate::names`]).
    pub numeric: bool,
    /// `--exact`: no K/M/G scaling.
    pub exact: bool,
    /// Sorted by protocol, address, port (the default); `--nosort` keeps configuration order.
    pub sort: bool,
}

impl Command {
    /// The request that carries out a command that changes the director's configuration;
    /// `None` for listing, save, restore, help and version.
    pub fn to_request(&self) -> Option<Request> {
        Some(match self.clone() {
            Command::AddService(c) => Request::AddService(c),
            Command::EditService(c) => Request::EditService(c),
            Command::DelService(k) => Request::DelService(k),
            Command::Clear => Request::Clear,
            Command::AddDest { service, dest } => Request::AddDest { service, dest },
            Command::EditDest { service, dest } => Request::EditDest { service, dest },
            Command::DelDest {
                service,
                addr,
                port,
            } => Request::DelDest {
                service,
                addr,
                port,
            },
            Command::Zero(key) => Request::Zero { key },
            Command::SetTimeouts(t) => Request::SetTimeouts(t),
            Command::EditContent(e) => Request::EditContent(Box::new(e)),
            Command::List(_)
            | Command::ListRules(_)
            | Command::StartDaemon(_)
            | Command::StopDaemon(_)
            | Command::Save { .. }
            | Command::Restore
            | Command::Help
            | Command::Version => return None,
        })
    }
}

/// Why a command line is refused. Messages are ipvsadm's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An option ipvsadm does not have (popt's message, with the word as written).
    #[error("{0}: unknown option")]
    UnknownOption(String),
    /// A command option after the command (ipvsadm's "invalid option").
    #[error("invalid option `{0}'")]
    InvalidOption(String),
    /// An option that needs a value got none.
    #[error("{0}: missing argument")]
    MissingArgument(String),
    /// A value given to an option that takes none (`--clear=x`).
    #[error("{0}: option does not take an argument")]
    NoArgumentAllowed(String),
    /// The first option is not a command (ipvsadm then prints only its "Try `ipvsadm -h'"
    /// line).
    #[error(
        "no command given: the first option must be one of -A -E -D -C -a -e -d -L -Z -S -R --set -h -v"
    )]
    NoCommand,
    /// Two commands (lvsadm's content-switching commands; ipvsadm's own say
    /// [`ParseError::InvalidOption`]).
    #[error("multiple commands specified")]
    MultipleCommands,
    /// The same option twice.
    #[error("multiple '{0}' options specified")]
    MultipleOption(&'static str),
    /// A mandatory option is missing.
    #[error("You need to supply the '{option}' option for the '{command}' command")]
    NeedOption {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// An option that does not go with the command.
    #[error("Illegal '{option}' option with the '{command}' command")]
    IllegalOption {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// Two options of which only one may be given.
    #[error("The option '{option}' conflicts with the '{other}' option in the '{command}' command")]
    Conflict {
        /// The second one.
        option: &'static str,
        /// The first one.
        other: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// `-c`/`--timeout` with a column option.
    #[error("options conflicts in the list command")]
    ListConflict,
    /// Bad `-t`/`-u` value.
    #[error("illegal virtual server address[:port] specified")]
    BadServiceAddress,
    /// Bad `-f` value: not a number from 1 to 4294967295.
    #[error("invalid fwmark value `{0}' specified")]
    BadFwmark(String),
    /// `-6` without a `-f` before it (a `-t`/`-u` service's family is its address's).
    #[error("-6 used before -f")]
    SixBeforeF,
    /// Bad `-r` value.
    #[error("illegal real server address[:port] specified")]
    BadRealServer,
    /// Bad `-M` for IPv4.
    #[error("illegal virtual server persistent mask specified")]
    BadNetmask,
    /// Bad `-M` for IPv6.
    #[error("illegal ipv6 netmask specified")]
    BadV6Netmask,
    /// Bad `-p` or `--set` value.
    #[error("invalid timeout value `{0}' specified")]
    BadTimeout(String),
    /// Bad `-w`.
    #[error("illegal weight specified")]
    BadWeight,
    /// Bad `-x`.
    #[error("illegal u_threshold specified")]
    BadUpperThreshold,
    /// Bad `-y`.
    #[error("illegal l_threshold specified")]
    BadLowerThreshold,
    /// Bad `-b` entry: ipvsadm's "invalid" or "incompatible scheduler flag".
    #[error(transparent)]
    SchedFlag(#[from] crate::sched_flags::SchedFlagError),
    /// Bad `--tun-type`.
    #[error("illegal tunnel type specified")]
    BadTunnelType,
    /// Bad `--tun-port`.
    #[error("illegal tunnel port specified")]
    BadTunnelPort,
    /// A tunnel option with `-g` or `-m`.
    #[error("Tunnel options conflict with forward method")]
    TunnelConflict,
    /// A tunnel option the tunnel type needs is missing.
    #[error("You need to supply the '{option}' option for the '{tunnel}' tunnel type")]
    TunnelNeedOption {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// The tunnel type.
        tunnel: &'static str,
    },
    /// A tunnel option the tunnel type does not have.
    #[error("Illegal '{option}' option with the '{tunnel}' tunnel type")]
    TunnelIllegalOption {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// The tunnel type.
        tunnel: &'static str,
    },
    /// Two checksum options.
    #[error(
        "The option '{option}' conflicts with the '{other}' option in the '{tunnel}' tunnel type"
    )]
    TunnelOptionConflict {
        /// The second one.
        option: &'static str,
        /// The first one.
        other: &'static str,
        /// The tunnel type.
        tunnel: &'static str,
    },
    /// Port 0 needs `-p`.
    #[error("Zero port specified for non-persistent service")]
    ZeroPort,
    /// `--set` needs three values.
    #[error("--set option requires 3 timeout values")]
    SetNeedsThree,
    /// A word that is not an option or an option's value.
    #[error("unexpected argument {0}")]
    UnexpectedArgument(String),
    /// A real server of another address family, not tunnelled.
    #[error("Different address family is allowed only for tunneling servers")]
    AddressFamily,
    /// `--start-daemon` other than `master` or `backup`.
    #[error("illegal start-daemon parameter specified")]
    BadStartDaemon,
    /// `--stop-daemon` other than `master` or `backup` (ipvsadm's words).
    #[error("illegal start_daemon specified")]
    BadStopDaemon,
    /// Bad `--syncid`.
    #[error("illegal syncid specified")]
    BadSyncId,
    /// Bad `--mcast-group`.
    #[error("invalid {family} mcast-group `{text}'")]
    BadMcastGroup {
        /// `IPv4` or `IPv6` (by whether the text has a colon).
        family: &'static str,
        /// As given.
        text: String,
    },
    /// Bad `--mcast-port`.
    #[error("illegal mcast-port specified")]
    BadMcastPort,
    /// Bad `--mcast-ttl`.
    #[error("illegal mcast-ttl specified")]
    BadMcastTtl,
    /// Bad `--sync-maxlen`.
    #[error("illegal sync-maxlen specified")]
    BadSyncMaxlen,
    /// An ipvsadm feature lvs-rs does not have (yet); the message says which.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A bad value in one of lvsadm's own (content-switching) commands; the message says
    /// which and why.
    #[error("{0}")]
    Invalid(String),
}

impl ParseError {
    /// popt's errors and a missing command, after which ipvsadm exits with 255 rather than
    /// 2. Only [`ParseError::NoCommand`] is shown as the "Try `ipvsadm -h'" line alone;
    /// the others print their message without it, as ipvsadm does.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ParseError::UnknownOption(_)
                | ParseError::MissingArgument(_)
                | ParseError::NoArgumentAllowed(_)
                | ParseError::NoCommand
        )
    }
}

/// The one command option of an ipvsadm command line (`-A`, `-E`, `-a`, `-L` ...: ipvsadm's
/// `CMD_*`); what it asks for becomes a [`Command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommandOption {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Set,
    Restore,
    Save,
    Zero,
    Help,
    Version,
    /// `--start-daemon master|backup`.
    StartDaemon(SyncDaemonState),
    /// `--stop-daemon master|backup`.
    StopDaemon(SyncDaemonState),
}

impl CommandOption {
    /// ipvsadm's `cmdnames`.
    fn name(self) -> &'static str {
        match self {
            CommandOption::Add => "add-service",
            CommandOption::Edit => "edit-service",
            CommandOption::Del => "delete-service",
            CommandOption::Flush => "flush",
            CommandOption::List => "list",
            CommandOption::AddDest => "add-server",
            CommandOption::DelDest => "delete-server",
            CommandOption::EditDest => "edit-server",
            CommandOption::Set => "set",
            CommandOption::Restore => "restore",
            CommandOption::Save => "save",
            CommandOption::Zero => "zero",
            CommandOption::Help => "help",
            CommandOption::Version => "version",
            CommandOption::StartDaemon(_) => "start-daemon",
            CommandOption::StopDaemon(_) => "stop-daemon",
        }
    }

    /// Row of ipvsadm's `commands_v_options` for the options of [`OPT_NAMES`]:
    /// `+` compulsory, `x` illegal, `1` at most one of the `1`s, blank optional.
    fn table(self) -> &'static [u8; N_OPTS] {
        match self {
            CommandOption::Add | CommandOption::Edit => b"xx+   xxxxxxxxxxxxxxx xxxxxxxxxx",
            CommandOption::Del => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            CommandOption::List => b" 11xxxxxxxxx11       xxxxx xxxxx",
            CommandOption::AddDest | CommandOption::EditDest => b"xx+xxx+    xxxxxxxxxxxxxxxx     ",
            CommandOption::DelDest => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxx",
            CommandOption::Save => b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            CommandOption::Zero => b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            CommandOption::StartDaemon(_) => b"xxxxxxxxxxx xxxxxxx xx    xxxxxx",
            CommandOption::StopDaemon(_) => b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxx",
            CommandOption::Flush
            | CommandOption::Set
            | CommandOption::Restore
            | CommandOption::Help
            | CommandOption::Version => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        }
    }
}

const N_OPTS: usize = 32;

/// ipvsadm's `optnames`, in the column order of [`CommandOption::table`].
const OPT_NAMES: [&str; N_OPTS] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// Indexes into [`OPT_NAMES`].
mod o {
    pub const NUMERIC: usize = 0;
    pub const CONNECTION: usize = 1;
    pub const SERVICE: usize = 2;
    pub const SCHEDULER: usize = 3;
    pub const PERSISTENT: usize = 4;
    pub const NETMASK: usize = 5;
    pub const SERVER: usize = 6;
    pub const FORWARD: usize = 7;
    pub const WEIGHT: usize = 8;
    pub const UTHRESHOLD: usize = 9;
    pub const LTHRESHOLD: usize = 10;
    pub const MCAST: usize = 11;
    pub const TIMEOUT: usize = 12;
    pub const DAEMON: usize = 13;
    pub const STATS: usize = 14;
    pub const RATE: usize = 15;
    pub const THRESHOLDS: usize = 16;
    pub const PERSISTENTCONN: usize = 17;
    pub const NOSORT: usize = 18;
    pub const SYNCID: usize = 19;
    pub const EXACT: usize = 20;
    pub const SCHED_FLAGS: usize = 21;
    pub const MCAST_GROUP: usize = 22;
    pub const MCAST_PORT: usize = 23;
    pub const MCAST_TTL: usize = 24;
    pub const SYNC_MAXLEN: usize = 25;
    pub const TUN_INFO: usize = 26;
    pub const TUN_TYPE: usize = 27;
    pub const TUN_PORT: usize = 28;
    pub const TUN_NOCSUM: usize = 29;
    pub const TUN_CSUM: usize = 30;
    pub const TUN_REMCSUM: usize = 31;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Command(CommandOption),
    Tcp,
    Udp,
    Fwmark,
    /// `-6`: the firewall-mark service given before it is an IPv6 one.
    Ipv6,
    /// An option of the table that takes no value, by its column.
    Flag(usize),
    /// An option of the table that takes a value, by its column.
    Value(usize),
    /// `-g`, `-i`, `-m`.
    Fwd(FwdMethod),
    /// `--sort`: the default, accepted for compatibility.
    Sort,
    /// ipvsadm options lvs-rs does not have; the message says why.
    Unsupported(&'static str),
}

struct Spec {
    short: Option<char>,
    long: &'static str,
    arg: Arg,
    opt: Opt,
}

const fn spec(short: Option<char>, long: &'static str, arg: Arg, opt: Opt) -> Spec {
    Spec {
        short,
        long,
        arg,
        opt,
    }
}

const SPECS: &[Spec] = &[
    spec(
        Some('A'),
        "add-service",
        Arg::None,
        Opt::Command(CommandOption::Add),
    ),
    spec(
        Some('E'),
        "edit-service",
        Arg::None,
        Opt::Command(CommandOption::Edit),
    ),
    spec(
        Some('D'),
        "delete-service",
        Arg::None,
        Opt::Command(CommandOption::Del),
    ),
    spec(
        Some('C'),
        "clear",
        Arg::None,
        Opt::Command(CommandOption::Flush),
    ),
    spec(
        Some('L'),
        "list",
        Arg::None,
        Opt::Command(CommandOption::List),
    ),
    spec(
        Some('l'),
        "list",
        Arg::None,
        Opt::Command(CommandOption::List),
    ),
    spec(
        Some('Z'),
        "zero",
        Arg::None,
        Opt::Command(CommandOption::Zero),
    ),
    spec(
        Some('a'),
        "add-server",
        Arg::None,
        Opt::Command(CommandOption::AddDest),
    ),
    spec(
        Some('e'),
        "edit-server",
        Arg::None,
        Opt::Command(CommandOption::EditDest),
    ),
    spec(
        Some('d'),
        "delete-server",
        Arg::None,
        Opt::Command(CommandOption::DelDest),
    ),
    spec(None, "set", Arg::None, Opt::Command(CommandOption::Set)),
    spec(
        Some('h'),
        "help",
        Arg::None,
        Opt::Command(CommandOption::Help),
    ),
    spec(
        Some('v'),
        "version",
        Arg::None,
        Opt::Command(CommandOption::Version),
    ),
    spec(
        Some('R'),
        "restore",
        Arg::None,
        Opt::Command(CommandOption::Restore),
    ),
    spec(
        Some('S'),
        "save",
        Arg::None,
        Opt::Command(CommandOption::Save),
    ),
    spec(Some('t'), "tcp-service", Arg::Required, Opt::Tcp),
    spec(Some('u'), "udp-service", Arg::Required, Opt::Udp),
    spec(Some('f'), "fwmark-service", Arg::Required, Opt::Fwmark),
    spec(
        Some('s'),
        "scheduler",
        Arg::Required,
        Opt::Value(o::SCHEDULER),
    ),
    spec(
        Some('p'),
        "persistent",
        Arg::Optional,
        Opt::Value(o::PERSISTENT),
    ),
    spec(Some('M'), "netmask", Arg::Required, Opt::Value(o::NETMASK)),
    spec(
        Some('r'),
        "real-server",
        Arg::Required,
        Opt::Value(o::SERVER),
    ),
    spec(
        Some('m'),
        "masquerading",
        Arg::None,
        Opt::Fwd(FwdMethod::Masq),
    ),
    spec(Some('i'), "ipip", Arg::None, Opt::Fwd(FwdMethod::Tunnel)),
    spec(
        Some('g'),
        "gatewaying",
        Arg::None,
        Opt::Fwd(FwdMethod::Route),
    ),
    spec(Some('w'), "weight", Arg::Required, Opt::Value(o::WEIGHT)),
    spec(
        Some('x'),
        "u-threshold",
        Arg::Required,
        Opt::Value(o::UTHRESHOLD),
    ),
    spec(
        Some('y'),
        "l-threshold",
        Arg::Required,
        Opt::Value(o::LTHRESHOLD),
    ),
    spec(Some('n'), "numeric", Arg::None, Opt::Flag(o::NUMERIC)),
    spec(Some('c'), "connection", Arg::None, Opt::Flag(o::CONNECTION)),
    spec(None, "timeout", Arg::None, Opt::Flag(o::TIMEOUT)),
    spec(None, "daemon", Arg::None, Opt::Flag(o::DAEMON)),
    spec(None, "stats", Arg::None, Opt::Flag(o::STATS)),
    spec(None, "rate", Arg::None, Opt::Flag(o::RATE)),
    spec(None, "thresholds", Arg::None, Opt::Flag(o::THRESHOLDS)),
    spec(
        None,
        "persistent-conn",
        Arg::None,
        Opt::Flag(o::PERSISTENTCONN),
    ),
    spec(None, "nosort", Arg::None, Opt::Flag(o::NOSORT)),
    spec(None, "sort", Arg::None, Opt::Sort),
    spec(Some('X'), "exact", Arg::None, Opt::Flag(o::EXACT)),
    spec(
        Some('b'),
        "sched-flags",
        Arg::Required,
        Opt::Value(o::SCHED_FLAGS),
    ),
    spec(None, "tun-info", Arg::None, Opt::Flag(o::TUN_INFO)),
    spec(None, "tun-type", Arg::Required, Opt::Value(o::TUN_TYPE)),
    spec(None, "tun-port", Arg::Required, Opt::Value(o::TUN_PORT)),
    spec(None, "tun-nocsum", Arg::None, Opt::Flag(o::TUN_NOCSUM)),
    spec(None, "tun-csum", Arg::None, Opt::Flag(o::TUN_CSUM)),
    spec(None, "tun-remcsum", Arg::None, Opt::Flag(o::TUN_REMCSUM)),
    spec(
        Some('o'),
        "ops",
        Arg::None,
        Opt::Unsupported("one-packet scheduling (--ops) is not supported by lvs-rs"),
    ),
    spec(
        None,
        "pe",
        Arg::Required,
        Opt::Unsupported("persistence engines (--pe) are not supported by lvs-rs"),
    ),
    spec(Some('6'), "ipv6", Arg::None, Opt::Ipv6),
    spec(
        None,
        "start-daemon",
        Arg::Required,
        Opt::Command(CommandOption::StartDaemon(SyncDaemonState::Master)),
    ),
    spec(
        None,
        "stop-daemon",
        Arg::Required,
        Opt::Command(CommandOption::StopDaemon(SyncDaemonState::Master)),
    ),
    spec(None, "mcast-interface", Arg::Required, Opt::Value(o::MCAST)),
    spec(None, "syncid", Arg::Required, Opt::Value(o::SYNCID)),
    spec(
        None,
        "mcast-group",
        Arg::Required,
        Opt::Value(o::MCAST_GROUP),
    ),
    spec(None, "mcast-port", Arg::Required, Opt::Value(o::MCAST_PORT)),
    spec(None, "mcast-ttl", Arg::Required, Opt::Value(o::MCAST_TTL)),
    spec(
        None,
        "sync-maxlen",
        Arg::Required,
        Opt::Value(o::SYNC_MAXLEN),
    ),
];

/// One option occurrence with its value.
struct Found {
    opt: Opt,
    value: Option<String>,
    /// The argument as written (`-Ln`, `--clear`), for popt's and ipvsadm's messages.
    word: String,
}

/// What [`scan`] read: the options up to the first error popt would report (the error is
/// reported after them, as popt reports it when ipvsadm's loop reaches it), and the
/// positional words.
struct Scanned {
    found: Vec<Found>,
    positional: Vec<String>,
    error: Option<ParseError>,
}

/// Splits argv into options (with values) and positional words, popt style.
fn scan(args: &[&str]) -> Scanned {
    let mut out = Scanned {
        found: Vec::new(),
        positional: Vec::new(),
        error: None,
    };
    let mut i = 0;
    let next_value = |i: &mut usize, optional: bool| -> Option<String> {
        let next = args.get(*i + 1)?;
        if optional && next.starts_with('-') {
            return None;
        }
        *i += 1;
        Some((*next).to_owned())
    };
    while i < args.len() {
        let arg = args[i];
        if arg == "--" {
            out.positional
                .extend(args[i + 1..].iter().map(|s| (*s).to_owned()));
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(spec) = SPECS.iter().find(|s| s.long == name) else {
                out.error = Some(ParseError::UnknownOption(arg.to_owned()));
                break;
            };
            let value = match (spec.arg, inline) {
                (Arg::None, Some(_)) => {
                    out.error = Some(ParseError::NoArgumentAllowed(arg.to_owned()));
                    break;
                }
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => match next_value(&mut i, false) {
                    Some(v) => Some(v),
                    None => {
                        out.error = Some(ParseError::MissingArgument(arg.to_owned()));
                        break;
                    }
                },
                (Arg::Optional, None) => next_value(&mut i, true),
            };
            out.found.push(Found {
                opt: spec.opt,
                value,
                word: arg.to_owned(),
            });
        } else if let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (at, c) in cluster.char_indices() {
                // popt names the whole word (`-Lq: unknown option`) when it is a cluster.
                let Some(spec) = SPECS.iter().find(|s| s.short == Some(c)) else {
                    out.error = Some(ParseError::UnknownOption(arg.to_owned()));
                    return out;
                };
                let rest = &cluster[at + c.len_utf8()..];
                let value = match spec.arg {
                    Arg::None => None,
                    _ if !rest.is_empty() => Some(rest.to_owned()),
                    Arg::Required => match next_value(&mut i, false) {
                        Some(v) => Some(v),
                        None => {
                            out.error = Some(ParseError::MissingArgument(arg.to_owned()));
                            return out;
                        }
                    },
                    Arg::Optional => next_value(&mut i, true),
                };
                let takes_rest = spec.arg != Arg::None && !rest.is_empty();
                out.found.push(Found {
                    opt: spec.opt,
                    value,
                    word: arg.to_owned(),
                });
                if takes_rest {
                    break;
                }
            }
        } else {
            out.positional.push(arg.to_owned());
        }
        i += 1;
    }
    out
}

/// Everything one command line said, before it is checked against its command.
#[derive(Default)]
struct Parts {
    given: [bool; N_OPTS],
    service: Option<(Protocol, String)>,
    /// `-6` after `-f`.
    ipv6: bool,
    values: [Option<String>; N_OPTS],
    fwd: Option<FwdMethod>,
}

/// Parses one lvsadm command line (without the program name): one of ipvsadm's commands, or
/// one of lvsadm's own content-switching commands ([`crate::content::grammar`]).
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, ParseError> {
    if content::is_content(args) {
        return content::parse(args);
    }
    parse_ipvsadm(args)
}

/// Parses one of ipvsadm's command lines: what a rules file and `lvsadm -R` read.
///
/// In ipvsadm's order: the first option must be the command (else only the "Try" line);
/// `-h` and `-v` answer at once whatever follows; then each option in turn, its value
/// checked as it is read, up to popt's first error; then the table of which options go
/// with the command, then the checks between options.
pub(crate) fn parse_ipvsadm<S: AsRef<str>>(args: &[S]) -> Result<Command, ParseError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let Scanned {
        found,
        positional,
        error,
    } = scan(&args);
    let mut found = found.into_iter();
    let cmd = match found.next().map(|f| (f.opt, f.value)) {
        // ipvsadm reads the daemon's state with the command, before any other option.
        Some((Opt::Command(CommandOption::StartDaemon(_)), value)) => CommandOption::StartDaemon(
            daemon_state(value.as_deref()).ok_or(ParseError::BadStartDaemon)?,
        ),
        Some((Opt::Command(CommandOption::StopDaemon(_)), value)) => CommandOption::StopDaemon(
            daemon_state(value.as_deref()).ok_or(ParseError::BadStopDaemon)?,
        ),
        Some((Opt::Command(cmd), _)) => cmd,
        Some((Opt::Unsupported(why), _)) => return Err(ParseError::Unsupported(why)),
        _ => return Err(ParseError::NoCommand),
    };
    match cmd {
        CommandOption::Help => return Ok(Command::Help),
        CommandOption::Version => return Ok(Command::Version),
        _ => {}
    }
    let mut p = Parts::default();
    for f in found {
        match f.opt {
            Opt::Command(_) => return Err(ParseError::InvalidOption(f.word)),
            Opt::Tcp | Opt::Udp => {
                set(&mut p.given, o::SERVICE)?;
                let proto = if f.opt == Opt::Tcp {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                let text = f.value.unwrap_or_default();
                parse_service(proto, &text)?;
                p.service = Some((proto, text));
            }
            Opt::Fwmark => {
                set(&mut p.given, o::SERVICE)?;
                let text = f.value.unwrap_or_default();
                let mark = parse_fwmark(&text)?;
                p.service = Some((Protocol::Fwmark(mark), text));
            }
            // ipvsadm's order: -6 switches the -f service already read.
            Opt::Ipv6 => match p.service {
                Some((Protocol::Fwmark(_), _)) => p.ipv6 = true,
                _ => return Err(ParseError::SixBeforeF),
            },
            Opt::Flag(col) => set(&mut p.given, col)?,
            Opt::Value(col) => {
                set(&mut p.given, col)?;
                if let Some(text) = &f.value {
                    check_value(col, text, &p)?;
                }
                p.values[col] = f.value;
            }
            Opt::Fwd(method) => {
                set(&mut p.given, o::FORWARD)?;
                p.fwd = Some(method);
            }
            Opt::Sort => {}
            Opt::Unsupported(why) => return Err(ParseError::Unsupported(why)),
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let service = match &p.service {
        Some((Protocol::Fwmark(mark), _)) => Some(ServiceKey::fwmark(*mark, p.ipv6)),
        Some((proto, text)) => Some(parse_service(*proto, text)?),
        None => None,
    };
    let timeouts = if cmd == CommandOption::Set {
        match positional.as_slice() {
            [tcp, fin, udp, rest @ ..] => {
                if let Some(extra) = rest.first() {
                    return Err(ParseError::UnexpectedArgument(extra.clone()));
                }
                Some(Timeouts {
                    tcp: parse_timeout(tcp, 0)?,
                    tcp_fin: parse_timeout(fin, 0)?,
                    udp: parse_timeout(udp, 0)?,
                })
            }
            _ => return Err(ParseError::SetNeedsThree),
        }
    } else {
        if let Some(extra) = positional.first() {
            return Err(ParseError::UnexpectedArgument(extra.clone()));
        }
        None
    };
    check_table(cmd, &p.given)?;
    Ok(match cmd {
        CommandOption::Add | CommandOption::Edit => {
            let key = service.ok_or(ParseError::BadServiceAddress)?;
            let conf = service_conf(key, &p)?;
            if cmd == CommandOption::Add {
                Command::AddService(conf)
            } else {
                Command::EditService(conf)
            }
        }
        CommandOption::Del => Command::DelService(service.ok_or(ParseError::BadServiceAddress)?),
        CommandOption::Flush => Command::Clear,
        CommandOption::AddDest | CommandOption::EditDest | CommandOption::DelDest => {
            let key = service.ok_or(ParseError::BadServiceAddress)?;
            let text = p.values[o::SERVER].as_deref().unwrap_or("");
            let (addr, port) =
                parse_addr_port(text, key.protocol).ok_or(ParseError::BadRealServer)?;
            let port = port.unwrap_or(key.port);
            if cmd == CommandOption::DelDest {
                Command::DelDest {
                    service: key,
                    addr,
                    port,
                }
            } else {
                let dest = dest_conf(&key, addr, port, &p)?;
                if cmd == CommandOption::AddDest {
                    Command::AddDest { service: key, dest }
                } else {
                    Command::EditDest { service: key, dest }
                }
            }
        }
        CommandOption::List => list_options(service, &p.given)?,
        CommandOption::Zero => Command::Zero(service),
        CommandOption::Set => Command::SetTimeouts(timeouts.ok_or(ParseError::SetNeedsThree)?),
        CommandOption::Save => Command::Save {
            numeric: p.given[o::NUMERIC],
        },
        CommandOption::Restore => Command::Restore,
        CommandOption::StartDaemon(state) => Command::StartDaemon(sync_daemon(state, &p)?),
        CommandOption::StopDaemon(state) => Command::StopDaemon(state),
        CommandOption::Help | CommandOption::Version => unreachable!("answered above"),
    })
}

/// `master` or `backup`, exactly (ipvsadm compares with `strcmp`).
fn daemon_state(value: Option<&str>) -> Option<SyncDaemonState> {
    match value? {
        "master" => Some(SyncDaemonState::Master),
        "backup" => Some(SyncDaemonState::Backup),
        _ => None,
    }
}

/// ipvsadm's default `--mcast-interface`.
pub const DEFAULT_MCAST_INTERFACE: &str = "eth0";

/// The daemon `--start-daemon` asks for: what was given, 0 or `None` for the rest (the
/// director fills in the kernel's defaults, as IPVS does).
fn sync_daemon(state: SyncDaemonState, p: &Parts) -> Result<SyncDaemon, ParseError> {
    let number = |col: usize, min: u32, max: u32, err: ParseError| match &p.values[col] {
        Some(text) => parse_number(text, max).filter(|n| *n >= min).ok_or(err),
        None => Ok(0),
    };
    let mut mcast_ifn = p.values[o::MCAST]
        .clone()
        .unwrap_or_else(|| DEFAULT_MCAST_INTERFACE.to_owned());
    // ipvsadm copies at most IP_VS_IFNAME_MAXLEN - 1 bytes of the name.
    while mcast_ifn.len() > 15 {
        mcast_ifn.pop();
    }
    let syncid = number(o::SYNCID, 0, 255, ParseError::BadSyncId)?;
    let maxlen = number(
        o::SYNC_MAXLEN,
        1,
        MAX_SYNC_MAXLEN,
        ParseError::BadSyncMaxlen,
    )?;
    let port = number(o::MCAST_PORT, 1, 65535, ParseError::BadMcastPort)?;
    let ttl = number(o::MCAST_TTL, 1, 255, ParseError::BadMcastTtl)?;
    let group = match &p.values[o::MCAST_GROUP] {
        Some(text) => Some(parse_mcast_group(text)?),
        None => None,
    };
    Ok(SyncDaemon {
        state,
        mcast_ifn,
        syncid: u8::try_from(syncid).map_err(|_| ParseError::BadSyncId)?,
        maxlen: u16::try_from(maxlen).map_err(|_| ParseError::BadSyncMaxlen)?,
        group,
        port: u16::try_from(port).map_err(|_| ParseError::BadMcastPort)?,
        ttl: u8::try_from(ttl).map_err(|_| ParseError::BadMcastTtl)?,
    })
}

/// ipvsadm's largest `--sync-maxlen`: a UDP payload in one IPv4 datagram.
const MAX_SYNC_MAXLEN: u32 = 65535 - 20 - 8;

/// `--mcast-group`: IPv6 when the text has a colon, else IPv4; a multicast group either way.
fn parse_mcast_group(text: &str) -> Result<IpAddr, ParseError> {
    if text.contains(':') {
        match text.parse::<std::net::Ipv6Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(ParseError::BadMcastGroup {
                family: "IPv6",
                text: text.to_owned(),
            }),
        }
    } else {
        match text.parse::<std::net::Ipv4Addr>().ok() {
            Some(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(ParseError::BadMcastGroup {
                family: "IPv4",
                text: text.to_owned(),
            }),
        }
    }
}

/// The checks ipvsadm makes on an option's value as it reads it (so that a bad value is
/// reported before a later unknown option). `-b` is checked with the service, against
/// the scheduler of the whole line.
fn check_value(col: usize, text: &str, p: &Parts) -> Result<(), ParseError> {
    let protocol = p
        .service
        .as_ref()
        .map_or(Protocol::Tcp, |(proto, _)| *proto);
    match col {
        o::PERSISTENT => parse_timeout(text, 1).map(drop),
        // Before -t/-u the family is not known yet: checked with the service.
        o::NETMASK => match p
            .service
            .as_ref()
            .and_then(|(proto, t)| parse_addr_port(t, *proto))
        {
            Some((addr, _)) => match parse_netmask(text, addr.is_ipv6()) {
                Some(_) => Ok(()),
                None if addr.is_ipv6() => Err(ParseError::BadV6Netmask),
                None => Err(ParseError::BadNetmask),
            },
            None => Ok(()),
        },
        o::SERVER => parse_addr_port(text, protocol)
            .map(drop)
            .ok_or(ParseError::BadRealServer),
        o::WEIGHT => parse_number(text, MAX_WEIGHT)
            .map(drop)
            .ok_or(ParseError::BadWeight),
        o::UTHRESHOLD => parse_number(text, i32::MAX.unsigned_abs())
            .map(drop)
            .ok_or(ParseError::BadUpperThreshold),
        o::LTHRESHOLD => parse_number(text, i32::MAX.unsigned_abs())
            .map(drop)
            .ok_or(ParseError::BadLowerThreshold),
        o::TUN_TYPE => TunnelType::parse(text).map(drop),
        o::TUN_PORT => parse_number(text, u32::from(u16::MAX))
            .filter(|n| *n >= 1)
            .map(drop)
            .ok_or(ParseError::BadTunnelPort),
        o::SYNCID => parse_number(text, 255)
            .map(drop)
            .ok_or(ParseError::BadSyncId),
        o::MCAST_GROUP => parse_mcast_group(text).map(drop),
        o::MCAST_PORT => parse_number(text, 65535)
            .filter(|n| *n >= 1)
            .map(drop)
            .ok_or(ParseError::BadMcastPort),
        o::MCAST_TTL => parse_number(text, 255)
            .filter(|n| *n >= 1)
            .map(drop)
            .ok_or(ParseError::BadMcastTtl),
        o::SYNC_MAXLEN => parse_number(text, MAX_SYNC_MAXLEN)
            .filter(|n| *n >= 1)
            .map(drop)
            .ok_or(ParseError::BadSyncMaxlen),
        _ => Ok(()),
    }
}

/// ipvsadm's `--tun-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunnelType {
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    fn parse(text: &str) -> Result<Self, ParseError> {
        match text {
            "ipip" => Ok(TunnelType::Ipip),
            "gue" => Ok(TunnelType::Gue),
            "gre" => Ok(TunnelType::Gre),
            _ => Err(ParseError::BadTunnelType),
        }
    }

    fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }

    /// ipvsadm's `tunnel_types_v_options` row for tun-port, tun-nocsum, tun-csum,
    /// tun-remcsum (`+` compulsory, `x` illegal, `1` at most one of the `1`s).
    fn table(self) -> &'static [u8; 4] {
        match self {
            TunnelType::Ipip => b"xxxx",
            TunnelType::Gue => b"+111",
            TunnelType::Gre => b"x11x",
        }
    }
}

/// ipvsadm's checks of the tunnel options of `-a`/`-e`, after the forwarding method is
/// known: tunnel options only with `-i`, then `tunnel_opt_check`. The data plane
/// encapsulates in IP-in-IP only, so GUE and GRE, once ipvsadm would take them, are refused
/// here (by lvsadm and by the director's rules file alike) rather than quietly sent as ipip.
fn check_tunnel(p: &Parts, fwd: FwdMethod) -> Result<(), ParseError> {
    const COLS: [usize; 4] = [o::TUN_PORT, o::TUN_NOCSUM, o::TUN_CSUM, o::TUN_REMCSUM];
    let any = [
        o::TUN_TYPE,
        o::TUN_PORT,
        o::TUN_NOCSUM,
        o::TUN_CSUM,
        o::TUN_REMCSUM,
    ]
    .iter()
    .any(|c| p.given[*c]);
    if any && fwd != FwdMethod::Tunnel {
        return Err(ParseError::TunnelConflict);
    }
    let tunnel = match &p.values[o::TUN_TYPE] {
        Some(text) => TunnelType::parse(text)?,
        None => TunnelType::Ipip,
    };
    let mut first: Option<usize> = None;
    for (col, rule) in COLS.iter().zip(tunnel.table()) {
        let option = OPT_NAMES[*col];
        match (p.given[*col], rule) {
            (false, b'+') => {
                return Err(ParseError::TunnelNeedOption {
                    option,
                    tunnel: tunnel.name(),
                });
            }
            (true, b'x') => {
                return Err(ParseError::TunnelIllegalOption {
                    option,
                    tunnel: tunnel.name(),
                });
            }
            (true, b'1') => match first {
                None => first = Some(*col),
                Some(other) => {
                    return Err(ParseError::TunnelOptionConflict {
                        option,
                        other: OPT_NAMES[other],
                        tunnel: tunnel.name(),
                    });
                }
            },
            _ => {}
        }
    }
    match tunnel {
        TunnelType::Ipip => Ok(()),
        TunnelType::Gue => Err(ParseError::Unsupported(
            "GUE encapsulation (--tun-type gue) is not supported by lvs-rs yet: its real servers are reached with IP-in-IP only (-i, --tun-type ipip)",
        )),
        TunnelType::Gre => Err(ParseError::Unsupported(
            "GRE encapsulation (--tun-type gre) is not supported by lvs-rs yet: its real servers are reached with IP-in-IP only (-i, --tun-type ipip)",
        )),
    }
}

fn set(given: &mut [bool; N_OPTS], col: usize) -> Result<(), ParseError> {
    if given[col] {
        return Err(ParseError::MultipleOption(OPT_NAMES[col]));
    }
    given[col] = true;
    Ok(())
}

/// ipvsadm's `generic_opt_check`.
fn check_table(cmd: CommandOption, given: &[bool; N_OPTS]) -> Result<(), ParseError> {
    let row = cmd.table();
    let mut exclusive: Option<usize> = None;
    for col in 0..N_OPTS {
        let (option, command) = (OPT_NAMES[col], cmd.name());
        match (given[col], row[col]) {
            (false, b'+') => return Err(ParseError::NeedOption { option, command }),
            (true, b'x') => return Err(ParseError::IllegalOption { option, command }),
            (true, b'1') => match exclusive {
                None => exclusive = Some(col),
                Some(first) => {
                    return Err(ParseError::Conflict {
                        option,
                        other: OPT_NAMES[first],
                        command,
                    });
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's `parse_fwmark`: a decimal mark from 1 to 2^32-1.
fn parse_fwmark(text: &str) -> Result<u32, ParseError> {
    text.parse::<u32>()
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| ParseError::BadFwmark(text.to_owned()))
}

/// A service without a port is port 0 ("all ports").
fn parse_service(protocol: Protocol, text: &str) -> Result<ServiceKey, ParseError> {
    let (addr, port) = parse_addr_port(text, protocol).ok_or(ParseError::BadServiceAddress)?;
    Ok(ServiceKey {
        protocol,
        addr,
        port: port.unwrap_or(0),
    })
}

fn parse_number(text: &str, max: u32) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| *n <= max)
}

fn parse_timeout(text: &str, min: u32) -> Result<u32, ParseError> {
    parse_number(text, MAX_TIMEOUT)
        .filter(|n| *n >= min)
        .ok_or_else(|| ParseError::BadTimeout(text.to_owned()))
}

fn service_conf(key: ServiceKey, p: &Parts) -> Result<ServiceConf, ParseError> {
    let v6 = key.addr.is_ipv6();
    let netmask = match &p.values[o::NETMASK] {
        Some(text) => Some(parse_netmask(text, v6).ok_or(if v6 {
            ParseError::BadV6Netmask
        } else {
            ParseError::BadNetmask
        })?),
        None => None,
    };
    let persistence = if p.given[o::PERSISTENT] {
        let timeout_secs = match &p.values[o::PERSISTENT] {
            Some(text) => parse_timeout(text, 1)?,
            None => DEFAULT_PERSISTENT_TIMEOUT,
        };
        Some(Persistence {
            timeout_secs,
            netmask: netmask.unwrap_or(if v6 { 128 } else { 32 }),
        })
    } else {
        // ipvsadm accepts -M without -p and ignores it.
        None
    };
    // ipvsadm checks -b while reading the options, before the zero port.
    let scheduler = p.values[o::SCHEDULER]
        .clone()
        .unwrap_or_else(|| DEFAULT_SCHEDULER.to_owned());
    let sched_flags = match &p.values[o::SCHED_FLAGS] {
        Some(text) => crate::sched_flags::normalize(&scheduler, text)?,
        None => String::new(),
    };
    if key.port == 0 && key.mark().is_none() && persistence.is_none() {
        return Err(ParseError::ZeroPort);
    }
    Ok(ServiceConf {
        key,
        scheduler,
        sched_flags,
        persistence,
    })
}

fn dest_conf(key: &ServiceKey, addr: IpAddr, port: u16, p: &Parts) -> Result<DestConf, ParseError> {
    let number = |col: usize, max: u32, err: ParseError| match &p.values[col] {
        Some(text) => parse_number(text, max).ok_or(err),
        None => Ok(0),
    };
    let weight = match &p.values[o::WEIGHT] {
        Some(text) => parse_number(text, MAX_WEIGHT).ok_or(ParseError::BadWeight)?,
        None => 1,
    };
    let upper = number(
        o::UTHRESHOLD,
        i32::MAX.unsigned_abs(),
        ParseError::BadUpperThreshold,
    )?;
    let lower = number(
        o::LTHRESHOLD,
        i32::MAX.unsigned_abs(),
        ParseError::BadLowerThreshold,
    )?;
    let fwd = p.fwd.unwrap_or(FwdMethod::Route);
    if addr.is_ipv4() != key.addr.is_ipv4() && fwd != FwdMethod::Tunnel {
        return Err(ParseError::AddressFamily);
    }
    check_tunnel(p, fwd)?;
    Ok(DestConf {
        addr,
        // DR and TUN cannot change the port.
        port: if fwd == FwdMethod::Masq {
            port
        } else {
            key.port
        },
        fwd,
        weight,
        upper_threshold: upper,
        lower_threshold: lower,
    })
}

fn list_options(key: Option<ServiceKey>, given: &[bool; N_OPTS]) -> Result<Command, ParseError> {
    // ipvsadm 1.31: `-c --persistent-conn` is the connection table with the persistence
    // engine's columns; the other column options go with services only.
    let columns = [o::STATS, o::RATE, o::THRESHOLDS];
    let special = given[o::CONNECTION] || given[o::TIMEOUT] || given[o::DAEMON];
    let not_conns = given[o::TIMEOUT] || given[o::DAEMON];
    if (special && columns.iter().any(|c| given[*c])) || (not_conns && given[o::PERSISTENTCONN]) {
        return Err(ParseError::ListConflict);
    }
    let format = if given[o::STATS] {
        ListFormat::Stats
    } else if given[o::RATE] {
        ListFormat::Rate
    } else if given[o::THRESHOLDS] {
        ListFormat::Thresholds
    } else if given[o::PERSISTENTCONN] {
        ListFormat::PersistentConn
    } else if given[o::TUN_INFO] {
        ListFormat::TunInfo
    } else {
        ListFormat::Plain
    };
    let what = if given[o::CONNECTION] {
        ListWhat::Connections
    } else if given[o::TIMEOUT] {
        ListWhat::Timeouts
    } else if given[o::DAEMON] {
        ListWhat::Daemon
    } else {
        ListWhat::Services(key)
    };
    Ok(Command::List(ListOptions {
        what,
        format,
        numeric: given[o::NUMERIC],
        exact: given[o::EXACT],
        sort: !given[o::NOSORT],
    }))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn parse(line: &str) -> Result<Command, ParseError> {
        parse_args(&line.split_whitespace().collect::<Vec<_>>())
    }

    fn err(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    fn vip() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        }
    }

    fn rip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn add_service_with_defaults_and_options() {
        assert_eq!(
            parse("-A -t 192.0.2.1:80").unwrap(),
            Command::AddService(ServiceConf {
                key: vip(),
                scheduler: "wlc".into(),
                sched_flags: String::new(),
                persistence: None,
            })
        );
        let want = Command::EditService(ServiceConf {
            key: ServiceKey {
                protocol: Protocol::Udp,
                port: 0,
                ..vip()
            },
            scheduler: "sh".into(),
            sched_flags: "sh-fallback,sh-port".into(),
            persistence: Some(Persistence {
                timeout_secs: 300,
                netmask: 24,
            }),
        });
        for line in [
            "-E -u 192.0.2.1 -s sh -b sh-port,sh-fallback -p -M 255.255.255.0",
            "--edit-service --udp-service=192.0.2.1 --scheduler sh --sched-flags sh-port,sh-fallback,sh-port --netmask 255.255.255.0 --persistent",
            "-Eu 192.0.2.1 -ssh -bsh-port,sh-fallback -M255.255.255.0 -p",
        ] {
            assert_eq!(parse(line).unwrap(), want, "{line}");
        }
        let Command::AddService(c) = parse("-A -t 192.0.2.1:80 -p 60 -s rr").unwrap() else {
            panic!()
        };
        assert_eq!(
            c.persistence,
            Some(Persistence {
                timeout_secs: 60,
                netmask: 32
            })
        );
        let Command::AddService(c) = parse("-A -t [2001:db8::1]:443 -p1800 -M 64").unwrap() else {
            panic!()
        };
        assert_eq!(
            parse("-A -M 64 -p1800 -t [2001:db8::1]:443").unwrap(),
            Command::AddService(c.clone()),
            "-M before the service"
        );
        assert_eq!(c.persistence.unwrap().netmask, 64);
        assert_eq!(c.persistence.unwrap().timeout_secs, 1800);
    }

    #[test]
    fn real_servers() {
        assert_eq!(
            parse("-a -t 192.0.2.1:80 -r 10.0.0.2:8080 -m -w 3 -x 100 -y 50").unwrap(),
            Command::AddDest {
                service: vip(),
                dest: DestConf {
                    addr: rip(2),
                    port: 8080,
                    fwd: FwdMethod::Masq,
                    weight: 3,
                    upper_threshold: 100,
                    lower_threshold: 50,
                },
            }
        );
        // Default: DR, weight 1, the service's port (even if another was given).
        let dr = DestConf {
            addr: rip(3),
            port: 80,
            fwd: FwdMethod::Route,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        for line in [
            "-a -t 192.0.2.1:80 -r 10.0.0.3",
            "-at 192.0.2.1:80 -r 10.0.0.3:81 -g",
        ] {
            assert_eq!(
                parse(line).unwrap(),
                Command::AddDest {
                    service: vip(),
                    dest: dr
                },
                "{line}"
            );
        }
        let Command::EditDest { dest, .. } =
            parse("-e -t 192.0.2.1:80 -r 10.0.0.3 -i -w 0").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (dest.fwd, dest.weight, dest.port),
            (FwdMethod::Tunnel, 0, 80)
        );
        assert_eq!(
            parse("-d -t 192.0.2.1:80 -r 10.0.0.3").unwrap(),
            Command::DelDest {
                service: vip(),
                addr: rip(3),
                port: 80
            }
        );
    }

    #[test]
    fn other_commands() {
        assert_eq!(parse("-C").unwrap(), Command::Clear);
        assert_eq!(parse("--clear").unwrap(), Command::Clear);
        assert_eq!(
            parse("-D -t 192.0.2.1:80").unwrap(),
            Command::DelService(vip())
        );
        assert_eq!(parse("-Z").unwrap(), Command::Zero(None));
        assert_eq!(
            parse("-Z -t 192.0.2.1:80").unwrap(),
            Command::Zero(Some(vip()))
        );
        assert_eq!(
            parse("--set 10 0 20").unwrap(),
            Command::SetTimeouts(Timeouts {
                tcp: 10,
                tcp_fin: 0,
                udp: 20
            })
        );
        assert_eq!(parse("-S -n").unwrap(), Command::Save { numeric: true });
        assert_eq!(parse("-R").unwrap(), Command::Restore);
        assert_eq!(parse("-h").unwrap(), Command::Help);
        assert_eq!(parse("--version").unwrap(), Command::Version);
        let list = |what, format, exact, sort| {
            Command::List(ListOptions {
                what,
                format,
                numeric: true,
                exact,
                sort,
            })
        };
        assert_eq!(
            parse("-Ln").unwrap(),
            list(ListWhat::Services(None), ListFormat::Plain, false, true)
        );
        assert_eq!(
            parse("-l -n --stats --rate --exact").unwrap(),
            list(ListWhat::Services(None), ListFormat::Stats, true, true)
        );
        assert_eq!(
            parse("-L -n --rate -t 192.0.2.1:80 --nosort").unwrap(),
            list(
                ListWhat::Services(Some(vip())),
                ListFormat::Rate,
                false,
                false
            )
        );
        assert_eq!(
            parse("-L -n --thresholds").unwrap(),
            list(
                ListWhat::Services(None),
                ListFormat::Thresholds,
                false,
                true
            )
        );
        assert_eq!(
            parse("-L -n --persistent-conn --sort").unwrap(),
            list(
                ListWhat::Services(None),
                ListFormat::PersistentConn,
                false,
                true
            )
        );
        assert_eq!(
            parse("-L -n -c").unwrap(),
            list(ListWhat::Connections, ListFormat::Plain, false, true)
        );
        assert_eq!(
            parse("-L -n --timeout").unwrap(),
            list(ListWhat::Timeouts, ListFormat::Plain, false, true)
        );
    }

    #[test]
    fn ipvsadm_error_messages() {
        let cases = [
            (
                "-A",
                "You need to supply the 'service-address' option for the 'add-service' command",
            ),
            (
                "-a -t 192.0.2.1:80",
                "You need to supply the 'real-server' option for the 'add-server' command",
            ),
            (
                "-A -t 192.0.2.1:80 -w 1",
                "Illegal 'weight' option with the 'add-service' command",
            ),
            (
                "-D -t 192.0.2.1:80 -s rr",
                "Illegal 'scheduler' option with the 'delete-service' command",
            ),
            ("-C -n", "Illegal 'numeric' option with the 'flush' command"),
            (
                "-L -c -t 192.0.2.1:80",
                "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
            ),
            ("-L -c --stats", "options conflicts in the list command"),
            // ipvsadm: a second command is an option its command does not have.
            ("-A -E -t 192.0.2.1:80", "invalid option `-E'"),
            ("-AE -t 192.0.2.1:80", "invalid option `-AE'"),
            (
                "-A --edit-service -t 192.0.2.1:80",
                "invalid option `--edit-service'",
            ),
            ("-C --clear", "invalid option `--clear'"),
            (
                "-A -t 192.0.2.1:80 -s rr -s wrr",
                "multiple 'scheduler' options specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -m -g",
                "multiple 'forwarding-method' options specified",
            ),
            (
                "-A -t 192.0.2.1:99999",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-A -t www.example.com:80",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-A -t 80",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r nowhere",
                "illegal real server address[:port] specified",
            ),
            (
                "-A -t 192.0.2.1:80 -p -M 255.0.255.0",
                "illegal virtual server persistent mask specified",
            ),
            (
                "-A -t [::1]:80 -p -M 255.255.255.0",
                "illegal ipv6 netmask specified",
            ),
            (
                "-A -t 192.0.2.1:80 -p 0",
                "invalid timeout value `0' specified",
            ),
            (
                "-A -t 192.0.2.1:80 -p 2678401",
                "invalid timeout value `2678401' specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -w 65536",
                "illegal weight specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -w -1",
                "illegal weight specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -x lots",
                "illegal u_threshold specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -y 2147483648",
                "illegal l_threshold specified",
            ),
            (
                "-A -t 192.0.2.1",
                "Zero port specified for non-persistent service",
            ),
            (
                "-A -t 192.0.2.1:80 -s sh -b port",
                "invalid scheduler flag `port'",
            ),
            (
                "-A -t 192.0.2.1:80 -s rr -b sh-port",
                "incompatible scheduler flag `sh-port'",
            ),
            // No -s: ipvsadm checks against its default, wlc.
            (
                "-A -t 192.0.2.1:80 -b mh-port",
                "incompatible scheduler flag `mh-port'",
            ),
            ("--set 1 2", "--set option requires 3 timeout values"),
            ("--set 1 2 x", "invalid timeout value `x' specified"),
            ("-C extra", "unexpected argument extra"),
            (
                "-a -t 192.0.2.1:80 -r [::1]:80 -m",
                "Different address family is allowed only for tunneling servers",
            ),
            ("-L -Q", "-Q: unknown option"),
            ("-L -nQ", "-nQ: unknown option"),
            ("-C --frobnicate", "--frobnicate: unknown option"),
            ("-A -t", "-t: missing argument"),
            // The value before the unknown option is read first, as popt reads them.
            (
                "-A -t bogus -Q",
                "illegal virtual server address[:port] specified",
            ),
            ("-A -Q -t bogus", "-Q: unknown option"),
            ("extra -C", "unexpected argument extra"),
            (
                "-L --timeout --persistent-conn",
                "options conflicts in the list command",
            ),
            (
                "-C --clear=now",
                "--clear=now: option does not take an argument",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(err(line), want, "{line}");
        }
        assert!(err("-A -u 192.0.2.1:53 -o").contains("not supported"));
        for (line, want) in [
            (
                "-A -t [2001:db8::1]:80 -p -M 129",
                "illegal ipv6 netmask specified",
            ),
            (
                "-A -t [2001:db8::1]:80 -p -M 0",
                "illegal ipv6 netmask specified",
            ),
            (
                "-A -t [2001:db8::1]:80 -p -M /64",
                "illegal ipv6 netmask specified",
            ),
            (
                "-A -t 192.0.2.1:80 -p -M 24",
                "illegal virtual server persistent mask specified",
            ),
        ] {
            assert_eq!(err(line), want, "{line}");
        }
        // Without a command first, ipvsadm prints only its "Try" line.
        for line in ["-n", "-Q", "--frobnicate", "-t 192.0.2.1:80 -A", "", "word"] {
            assert_eq!(parse(line), Err(ParseError::NoCommand), "{line}");
        }
        // -h and -v answer whatever follows.
        assert_eq!(parse("-h --frobnicate x"), Ok(Command::Help));
        assert_eq!(parse("-v -Q"), Ok(Command::Version));
        assert!(parse("-L -Q").unwrap_err().is_usage());
        assert!(!parse("-C x").unwrap_err().is_usage());
    }

    #[test]
    fn ipv6_services_and_servers() {
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        let Command::AddService(c) = parse("-A -t [2001:db8::1]:80 -s rr").unwrap() else {
            panic!("not AddService")
        };
        assert_eq!(c.key.addr, v6("2001:db8::1"));
        assert_eq!((c.key.protocol, c.key.port), (Protocol::Tcp, 80));
        let Command::AddDest { service, dest } =
            parse("-a -u [2001:db8::1]:53 -r [2001:db8::10]:5353 -m -w 2").unwrap()
        else {
            panic!("not AddDest")
        };
        assert_eq!((service.protocol, service.port), (Protocol::Udp, 53));
        assert_eq!(
            (dest.addr, dest.port, dest.weight),
            (v6("2001:db8::10"), 5353, 2)
        );
        // Without a port (unbracketed) the real server takes the service's, as for IPv4.
        let Command::EditDest { dest, .. } =
            parse("-e -t [2001:db8::1]:80 -r 2001:db8::11 -g").unwrap()
        else {
            panic!("not EditDest")
        };
        assert_eq!((dest.addr, dest.port), (v6("2001:db8::11"), 80));
        let Command::DelDest { addr, port, .. } =
            parse("-d -t [2001:db8::1]:80 -r [2001:db8::11]:80").unwrap()
        else {
            panic!("not DelDest")
        };
        assert_eq!((addr, port), (v6("2001:db8::11"), 80));
        assert_eq!(
            parse("-D -t [2001:db8::1]:80").unwrap(),
            parse("--delete-service --tcp-service=[2001:db8::1]:80").unwrap()
        );
        assert!(matches!(
            parse("-L -n -t [2001:db8::1]:80").unwrap(),
            Command::List(ListOptions {
                what: ListWhat::Services(Some(_)),
                ..
            })
        ));
    }

    #[test]
    fn bad_ipv6_input_is_refused_with_ipvsadm_messages() {
        let err = |line: &str| parse(line).unwrap_err().to_string();
        let vip = "illegal virtual server address[:port] specified";
        let rip = "illegal real server address[:port] specified";
        let family = "Different address family is allowed only for tunneling servers";
        let cases = [
            ("-A -t [::1:80", vip),
            // Brackets without a port: ipvsadm refuses them rather than meaning port 0.
            ("-A -t [::1]", vip),
            ("-a -t [2001:db8::1]:80 -r [2001:db8::10]", rip),
            ("-A -t [::1]: -s rr", vip),
            ("-A -u [fe80::1%eth0]:53", vip),
            ("-A -t fe80::1%eth0", vip),
            ("-a -t [2001:db8::1]:80 -r [2001:db8::10:80", rip),
            ("-a -t [2001:db8::1]:80 -r [fe80::10%lo]:80", rip),
            ("-a -t [2001:db8::1]:80 -r [2001:db8::10]:", rip),
            ("-a -t [2001:db8::1]:80 -r 10.0.0.2:80 -m", family),
            ("-a -t [2001:db8::1]:80 -r 10.0.0.2 -g", family),
            ("-e -u [2001:db8::1]:53 -r 10.0.0.2:53 -m", family),
            ("-a -t 192.0.2.1:80 -r [2001:db8::10]:80 -g", family),
        ];
        for (line, want) in cases {
            assert_eq!(err(line), want, "{line}");
        }
        // `-6` is ipvsadm's family switch for -f (fwmark) services only, and must follow -f.
        for line in ["-A -t [2001:db8::1]:80 -6", "-L -n -6", "-A -6 -f 1"] {
            assert_eq!(err(line), "-6 used before -f", "{line}");
        }
        // Before the command, it is no command at all (ipvsadm's tryhelp).
        assert_eq!(
            parse("-6 -A -t [2001:db8::1]:80").unwrap_err(),
            ParseError::NoCommand
        );
    }

    /// `-f MARK` for every service and server command, `-6` after it for IPv6, and ipvsadm's
    /// messages for a bad mark.
    #[test]
    fn firewall_mark_services() {
        let v4 = ServiceKey::fwmark(1, false);
        let v6 = ServiceKey::fwmark(2, true);
        match parse("-A -f 1 -s rr -p 300").unwrap() {
            Command::AddService(c) => {
                assert_eq!(c.key, v4);
                assert_eq!(
                    c.persistence.map(|p| (p.timeout_secs, p.netmask)),
                    Some((300, 32))
                );
            }
            other => panic!("{other:?}"),
        }
        // Not persistent: port 0 is no "every port" service here.
        assert!(matches!(parse("-A -f 1 -s rr").unwrap(), Command::AddService(c) if c.key == v4));
        match parse("-A -f 2 -6 -s wlc -p 60 -M 64").unwrap() {
            Command::AddService(c) => {
                assert_eq!(c.key, v6);
                assert_eq!(c.persistence.map(|p| p.netmask), Some(64));
            }
            other => panic!("{other:?}"),
        }
        match parse("-a -f 1 -r 10.0.0.2:0 -m").unwrap() {
            Command::AddDest { service, dest } => {
                assert_eq!(service, v4);
                assert_eq!((dest.addr, dest.port), ("10.0.0.2".parse().unwrap(), 0));
            }
            other => panic!("{other:?}"),
        }
        match parse("-a -f 2 -6 -r 2001:db8::10 -g -w 2").unwrap() {
            Command::AddDest { service, dest } => {
                assert_eq!(service, v6);
                assert_eq!(dest.port, 0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("-D -f 1").unwrap(), Command::DelService(v4));
        assert!(matches!(parse("-E -f 1 -s sh").unwrap(), Command::EditService(c) if c.key == v4));
        assert!(
            matches!(parse("-e -f 1 -r 10.0.0.2 -m -w 0").unwrap(), Command::EditDest { service, .. } if service == v4)
        );
        assert!(
            matches!(parse("-d -f 1 -r 10.0.0.2").unwrap(), Command::DelDest { service, port: 0, .. } if service == v4)
        );
        assert_eq!(parse("-Z -f 1").unwrap(), Command::Zero(Some(v4)));
        for bad in ["0", "-1", "x", "4294967296", "1x"] {
            assert_eq!(
                parse_args(&["-A", "-f", bad]).unwrap_err().to_string(),
                format!("invalid fwmark value `{bad}' specified"),
                "{bad}"
            );
        }
        assert_eq!(
            err("-A -f 1 -t 192.0.2.1:80"),
            "multiple 'service-address' options specified"
        );
    }

    #[test]
    fn tunnelled_servers_may_cross_families() {
        assert!(parse("-a -t 192.0.2.1:80 -r [2001:db8::2]:80 -i").is_ok());
    }

    /// ipvsadm 1.31's tunnel options: `--tun-type ipip` (what its `-S` writes for every
    /// tunnelled server) is the default; the checks and messages are ipvsadm's
    /// (`tunnel_opt_check`), and GUE/GRE, once ipvsadm would take them, are refused because
    /// the data plane has IP-in-IP only.
    #[test]
    fn tunnel_options() {
        let plain = parse("-a -t 192.0.2.1:80 -r 10.0.0.2 -i -w 1").unwrap();
        for line in [
            "-a -t 192.0.2.1:80 -r 10.0.0.2 -i -w 1 --tun-type ipip",
            "-a -t 192.0.2.1:80 -r 10.0.0.2 --tun-type=ipip -w 1 --ipip",
        ] {
            assert_eq!(parse(line).unwrap(), plain, "{line}");
        }
        assert!(parse("-e -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type ipip").is_ok());
        let cases = [
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -m --tun-type ipip",
                "Tunnel options conflict with forward method",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 --tun-type ipip",
                "Tunnel options conflict with forward method",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -g --tun-port 3",
                "Tunnel options conflict with forward method",
            ),
            (
                "-a -t [::1]:80 -r 10.0.0.2 -g --tun-type ipip",
                "Different address family is allowed only for tunneling servers",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type foo",
                "illegal tunnel type specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 0",
                "illegal tunnel port specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 65536",
                "illegal tunnel port specified",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gue",
                "You need to supply the 'tun-port' option for the 'gue' tunnel type",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gre --tun-port 5",
                "Illegal 'tun-port' option with the 'gre' tunnel type",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gre --tun-remcsum",
                "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-csum",
                "Illegal 'tun-csum' option with the 'ipip' tunnel type",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-port 5 --tun-type ipip",
                "Illegal 'tun-port' option with the 'ipip' tunnel type",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 5 --tun-csum --tun-remcsum",
                "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 5 --tun-nocsum --tun-csum",
                "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
            ),
            (
                "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type ipip --tun-type ipip",
                "multiple 'tun-type' options specified",
            ),
            (
                "-A -t 192.0.2.1:80 --tun-type ipip",
                "Illegal 'tun-type' option with the 'add-service' command",
            ),
            (
                "-d -t 192.0.2.1:80 -r 10.0.0.2 --tun-type ipip",
                "Illegal 'tun-type' option with the 'delete-server' command",
            ),
            (
                "-e -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-info",
                "Illegal 'tun-info' option with the 'edit-server' command",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(err(line), want, "{line}");
        }
        for line in [
            "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080",
            "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-remcsum",
            "-a -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gre --tun-csum",
            "-e -t 192.0.2.1:80 -r 10.0.0.2 -i --tun-type gre",
        ] {
            let e = parse(line).unwrap_err();
            assert!(
                matches!(e, ParseError::Unsupported(_)) && e.to_string().contains("IP-in-IP only"),
                "{line}: {e}"
            );
        }
        let list = |line| match parse(line).unwrap() {
            Command::List(o) => (o.what, o.format),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            list("-L --tun-info"),
            (ListWhat::Services(None), ListFormat::TunInfo)
        );
        assert_eq!(
            list("-L -c --persistent-conn"),
            (ListWhat::Connections, ListFormat::PersistentConn)
        );
        assert_eq!(
            list("-L --tun-info --stats").1,
            ListFormat::Stats,
            "ipvsadm's precedence"
        );
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "-A",
                "-E",
                "-D",
                "-C",
                "-a",
                "-e",
                "-d",
                "-L",
                "-l",
                "-Z",
                "-S",
                "-R",
                "--set",
                "-t",
                "-u",
                "-f",
                "-s",
                "-p",
                "-M",
                "-r",
                "-m",
                "-g",
                "-i",
                "-w",
                "-x",
                "-y",
                "-n",
                "-c",
                "--stats",
                "--rate",
                "--timeout",
                "--exact",
                "-b",
                "--nosort",
                "-Ln",
                "-At",
                "-p300",
                "--persistent=",
                "--",
                "192.0.2.1:80",
                "10.0.0.2",
                "[::1]:80",
                "255.255.255.0",
                "rr",
                "0",
                "65535",
                "x",
            ])
            .prop_map(str::to_owned),
            "[ -~]{0,12}",
        ]
    }

    proptest! {
        /// Any token soup is either a command or an error, never a panic. (That valid
        /// commands survive their canonical form is `save::tests::save_restore_round_trip`.)
        #[test]
        fn never_panics(tokens in prop::collection::vec(token(), 0..10)) {
            let _ = parse_args(&tokens);
        }
    }

    /// ipvsadm 1.31's sync daemon commands: defaults left to the director (0 / `None`),
    /// values checked as ipvsadm checks them, the table of options as ipvsadm's.
    #[test]
    fn sync_daemon_commands() {
        let master = |ifn: &str| SyncDaemon {
            state: SyncDaemonState::Master,
            mcast_ifn: ifn.into(),
            syncid: 0,
            maxlen: 0,
            group: None,
            port: 0,
            ttl: 0,
        };
        assert_eq!(
            parse("--start-daemon master").unwrap(),
            Command::StartDaemon(master("eth0"))
        );
        assert_eq!(
            parse(
                "--start-daemon=backup --mcast-interface eth1 --mcast-group ff02::51 --syncid 3 \
                 --mcast-port 8849 --mcast-ttl 2 --sync-maxlen 1400"
            )
            .unwrap(),
            Command::StartDaemon(SyncDaemon {
                state: SyncDaemonState::Backup,
                mcast_ifn: "eth1".into(),
                syncid: 3,
                maxlen: 1400,
                group: Some("ff02::51".parse().unwrap()),
                port: 8849,
                ttl: 2,
            })
        );
        assert_eq!(
            parse("--stop-daemon backup").unwrap(),
            Command::StopDaemon(SyncDaemonState::Backup)
        );
        assert_eq!(
            parse("--stop-daemon master --syncid 9").unwrap(),
            Command::StopDaemon(SyncDaemonState::Master)
        );
        assert!(
            parse("--start-daemon master")
                .unwrap()
                .to_request()
                .is_none()
        );
        for (line, want) in [
            (
                "--start-daemon primary",
                "illegal start-daemon parameter specified",
            ),
            ("--stop-daemon Master", "illegal start_daemon specified"),
            (
                "--start-daemon master --syncid 256",
                "illegal syncid specified",
            ),
            (
                "--start-daemon master --mcast-group 10.0.0.1",
                "invalid IPv4 mcast-group `10.0.0.1'",
            ),
            (
                "--start-daemon master --mcast-group 2001:db8::1",
                "invalid IPv6 mcast-group `2001:db8::1'",
            ),
            (
                "--start-daemon master --mcast-port 0",
                "illegal mcast-port specified",
            ),
            (
                "--start-daemon master --mcast-ttl 256",
                "illegal mcast-ttl specified",
            ),
            (
                "--start-daemon master --sync-maxlen 65508",
                "illegal sync-maxlen specified",
            ),
            (
                "--stop-daemon master --mcast-interface eth0",
                "Illegal 'mcast-interface' option with the 'stop-daemon' command",
            ),
            (
                "--start-daemon master -n",
                "Illegal 'numeric' option with the 'start-daemon' command",
            ),
            (
                "--start-daemon master --syncid 1 --syncid 2",
                "multiple 'syncid' options specified",
            ),
            (
                "-A -t 192.0.2.1:80 --syncid 1",
                "Illegal 'syncid' option with the 'add-service' command",
            ),
            (
                "-L --mcast-group 224.0.0.81",
                "Illegal 'mcast-group' option with the 'list' command",
            ),
            (
                "-A --start-daemon master",
                "invalid option `--start-daemon'",
            ),
        ] {
            assert_eq!(err(line), want, "{line}");
        }
        // popt's error on the command itself: ipvsadm prints only its "Try" line.
        assert_eq!(parse("--start-daemon"), Err(ParseError::NoCommand));
        // ipvsadm takes --syncid with -L (and ignores it).
        assert!(matches!(
            parse("-L --daemon --syncid 3").unwrap(),
            Command::List(ListOptions {
                what: ListWhat::Daemon,
                ..
            })
        ));
        // The name is cut as ipvsadm's strncpy cuts it.
        let Command::StartDaemon(d) =
            parse("--start-daemon master --mcast-interface abcdefghijklmnopq").unwrap()
        else {
            panic!()
        };
        assert_eq!(d.mcast_ifn, "abcdefghijklmno");
        // A rules file or -R does not start daemons.
        assert!(crate::rules::parse_rules("--start-daemon master\n").is_err());
    }
}
