//! `/etc/lvs/lockmgr.toml`: the lock manager's configuration (see `etc/lvs-lockmgr.toml`).

use std::path::{Path, PathBuf};

use lvs_common::config::{ConfigError, Source};
use lvs_lockcore::MAX_NAME_LEN;
use serde::Deserialize;
use toml::Spanned;

/// The file as written: every key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct File {
    node_id: Spanned<u64>,
    state_dir: PathBuf,
    fsync: bool,
    lease_ms: Spanned<u64>,
    tick_ms: Spanned<u64>,
    snapshot_every: Spanned<u64>,
    lockspaces: Vec<Spanned<String>>,
    client_group: Option<Spanned<String>>,
    peers: Spanned<Vec<PeerFile>>,
    key_file: Option<Spanned<PathBuf>>,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
}

/// One `[[peers]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    id: u64,
    address: String,
}

impl Default for File {
    fn default() -> File {
        let d = Config::default();
        File {
            node_id: Spanned::new(0..0, d.node_id),
            state_dir: d.state_dir,
            fsync: d.fsync,
            lease_ms: Spanned::new(0..0, d.lease_ms),
            tick_ms: Spanned::new(0..0, d.tick_ms),
            snapshot_every: Spanned::new(0..0, d.snapshot_every),
            lockspaces: d
                .lockspaces
                .into_iter()
                .map(|l| Spanned::new(0..0, l))
                .collect(),
            client_group: None,
            peers: Spanned::new(0..0, Vec::new()),
            key_file: None,
            user: None,
            group: None,
        }
    }
}

/// A member of the Raft cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub id: u64,
    /// Where it listens for peer traffic (TCP).
    pub address: std::net::SocketAddr,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's id (1 and up); session ids and the status carry it.
    pub node_id: u64,
    /// Where the write-ahead log and the snapshot live.
    pub state_dir: PathBuf,
    /// Sync the log to disk before any grant is seen. Off only for tests and benchmarks.
    pub fsync: bool,
    /// A session's lease: how long a node may be silent before its clients' locks go.
    pub lease_ms: u64,
    /// The clock tick: the resolution of request timeouts and leases.
    pub tick_ms: u64,
    /// Write a snapshot and empty the log after this many log entries.
    pub snapshot_every: u64,
    /// Lockspaces created at start (others are created by the first lock in them).
    pub lockspaces: Vec<String>,
    /// A group (besides root) allowed to connect to the socket, i.e. to take locks.
    pub client_group: Option<String>,
    /// Every member of the Raft cluster, this node included; empty: single-node mode.
    pub peers: Vec<Peer>,
    /// The shared key of the peers (Raft mode).
    pub key_file: Option<PathBuf>,
    /// Who the daemon becomes once its socket, peer port and state are open (`user`, and
    /// `group` or the user's own); `None`: it stays root.
    pub run_as: Option<lvs_common::privdrop::RunAs>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            node_id: 1,
            state_dir: PathBuf::from("/var/lib/lvs/lockmgr"),
            fsync: true,
            lease_ms: 5000,
            tick_ms: 100,
            snapshot_every: 100_000,
            lockspaces: vec!["default".to_owned()],
            client_group: None,
            peers: Vec::new(),
            key_file: None,
            run_as: None,
        }
    }
}

/// The loader for [`lvs_common::run()`]: the file when given (checked), the defaults otherwise.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => Ok(Config::default()),
        Some(path) => parse(&Source::read(path)?),
    }
}

/// Parses and checks a configuration text.
pub fn parse(src: &Source) -> Result<Config, ConfigError> {
    let f: File = src.parse()?;
    if *f.node_id.get_ref() == 0 || *f.node_id.get_ref() >= 1 << 23 {
        return Err(src.error_at(f.node_id.span(), "node_id must be between 1 and 8388607"));
    }
    if !(10..=1000).contains(f.tick_ms.get_ref()) {
        return Err(src.error_at(f.tick_ms.span(), "tick_ms must be between 10 and 1000"));
    }
    if *f.lease_ms.get_ref() < 3 * f.tick_ms.get_ref() || *f.lease_ms.get_ref() > 3_600_000 {
        return Err(src.error_at(
            f.lease_ms.span(),
            "lease_ms must be at least 3 ticks (tick_ms) and at most 3600000",
        ));
    }
    if *f.snapshot_every.get_ref() < 100 {
        return Err(src.error_at(
            f.snapshot_every.span(),
            "snapshot_every must be at least 100",
        ));
    }
    if f.state_dir.as_os_str().is_empty() || f.state_dir.is_relative() {
        return Err(src.error("state_dir must be an absolute path"));
    }
    for l in &f.lockspaces {
        if l.get_ref().is_empty() || l.get_ref().len() > MAX_NAME_LEN {
            return Err(src.error_at(
                l.span(),
                format!("lockspace names are 1 to {MAX_NAME_LEN} bytes"),
            ));
        }
    }
    if let Some(g) = &f.client_group
        && nix::unistd::Group::from_name(g.get_ref())
            .ok()
            .flatten()
            .is_none()
    {
        return Err(src.error_at(
            g.span(),
            format!("client_group {:?}: no such group", g.get_ref()),
        ));
    }
    let run_as = lvs_common::privdrop::from_config(src, f.user.as_ref(), f.group.as_ref())?;
    let mut peers = Vec::new();
    for p in f.peers.get_ref() {
        let address = p.address.parse().map_err(|_| {
            src.error_at(
                f.peers.span(),
                format!("peer {}: address {:?} is not IP:PORT", p.id, p.address),
            )
        })?;
        if p.id == 0 || p.id >= 1 << 23 {
            return Err(src.error_at(f.peers.span(), "peer ids are between 1 and 8388607"));
        }
        if peers.iter().any(|q: &Peer| q.id == p.id) {
            return Err(src.error_at(f.peers.span(), format!("peer {} is listed twice", p.id)));
        }
        peers.push(Peer { id: p.id, address });
    }
    if !peers.is_empty() {
        if !(3..=7).contains(&peers.len()) {
            return Err(src.error_at(
                f.peers.span(),
                "a cluster has 3 to 7 members (3 or 5 recommended); leave peers out for a single node",
            ));
        }
        if !peers.iter().any(|p| p.id == *f.node_id.get_ref()) {
            return Err(src.error_at(
                f.peers.span(),
                format!("node_id {} is not among the peers", f.node_id.get_ref()),
            ));
        }
        let Some(key) = &f.key_file else {
            return Err(src.error_at(f.peers.span(), "peers need key_file (the shared key)"));
        };
        if let Err(e) = crate::peer::load_key(key.get_ref()) {
            return Err(src.error_at(key.span(), e.to_string()));
        }
    }
    Ok(Config {
        node_id: f.node_id.into_inner(),
        state_dir: f.state_dir,
        fsync: f.fsync,
        lease_ms: f.lease_ms.into_inner(),
        tick_ms: f.tick_ms.into_inner(),
        snapshot_every: f.snapshot_every.into_inner(),
        lockspaces: f.lockspaces.into_iter().map(Spanned::into_inner).collect(),
        client_group: f.client_group.map(Spanned::into_inner),
        peers,
        key_file: f.key_file.map(Spanned::into_inner),
        run_as,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(&Source::new(Path::new("lockmgr.toml"), text))
    }

    #[test]
    fn defaults_and_errors_with_lines() {
        assert_eq!(p("").unwrap(), Config::default());
        let c = p("node_id = 3\nstate_dir = \"/tmp/x\"\nlease_ms = 2000\n").unwrap();
        assert_eq!((c.node_id, c.lease_ms), (3, 2000));
        let e = p("\nlease_ms = 10\n").unwrap_err().to_string();
        assert!(e.starts_with("lockmgr.toml:2:12: lease_ms must be"), "{e}");
        let e = p("tick = 5\n").unwrap_err().to_string();
        assert!(
            e.contains("lockmgr.toml:1:1") && e.contains("unknown field"),
            "{e}"
        );
        let e = p(&format!("lockspaces = [\"{}\"]", "x".repeat(65)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 to 64 bytes"), "{e}");
        let e = p("client_group = \"no-such-group-here\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such group"), "{e}");
        let e = p("state_dir = \"relative\"").unwrap_err().to_string();
        assert!(e.contains("absolute"), "{e}");
        let e = p("node_id = 4\npeers = [{ id = 1, address = \"127.0.0.1:1\" }, { id = 2, address = \"127.0.0.1:2\" }, { id = 3, address = \"127.0.0.1:3\" }]\nkey_file = \"/nonexistent\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lockmgr.toml:2:") && e.contains("not among the peers"),
            "{e}"
        );
        let e = p("peers = [{ id = 1, address = \"nowhere\" }]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not IP:PORT"), "{e}");
    }

    /// IPv6 peers are written bracketed, as every IP:PORT; a bare address is refused.
    #[test]
    fn ipv6_peer_addresses() {
        use std::os::unix::fs::PermissionsExt;
        let key = std::env::temp_dir().join(format!("lvs-lock-v6-key-{}", std::process::id()));
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = |a: &str| {
            format!(
                "node_id = 1\nkey_file = \"{}\"\npeers = [{{ id = 1, address = \"{a}\" }}, {{ id = 2, address = \"[fd00::2]:7000\" }}, {{ id = 3, address = \"127.0.0.3:7000\" }}]\n",
                key.display()
            )
        };
        let c = p(&cfg("[fd00::1]:7000"));
        let e = p(&cfg("fd00::1:7000"));
        std::fs::remove_file(&key).unwrap();
        let c = c.unwrap();
        assert_eq!(
            c.peers[0].address,
            "[fd00::1]:7000".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(c.peers[1].address.to_string(), "[fd00::2]:7000");
        let e = e.unwrap_err().to_string();
        assert!(e.contains("peer 1") && e.contains("not IP:PORT"), "{e}");
    }

    #[test]
    fn the_samples_are_valid() {
        use std::os::unix::fs::PermissionsExt;
        let single = include_str!("../../etc/lvs-lockmgr.toml");
        assert_eq!(p(single).unwrap().peers, Vec::new());
        let key = std::env::temp_dir().join(format!("lvs-lock-sample-key-{}", std::process::id()));
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cluster = include_str!("../../etc/lvs-lockmgr-cluster.toml")
            .replace("/etc/lvs/lockmgr.key", key.to_str().unwrap());
        let c = p(&cluster).unwrap();
        std::fs::remove_file(&key).unwrap();
        assert_eq!(c.peers.len(), 3);
        assert_eq!(c.node_id, 1);
    }
}
