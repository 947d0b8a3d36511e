//! `[sync]`: connection-state sync between directors.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use serde::Deserialize;

/// `[sync]` in the director's TOML file. Present: sync runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Local address and port to receive on (and send from).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Unicast peers: the other directors' `listen` addresses.
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// A multicast group to send to and receive on, e.g. `224.0.0.81:8848`.
    #[serde(default)]
    pub multicast: Option<SocketAddrV4>,
    /// The interface for multicast (ipvsadm's `--mcast-interface`).
    #[serde(default)]
    pub interface: Option<String>,
    /// The shared HMAC-SHA256 key; group and others must have no access to it.
    pub key_file: PathBuf,
    /// ipvsadm's `--syncid`: datagrams of another id are ignored.
    #[serde(default)]
    pub sync_id: u8,
    /// A connection with traffic is sent again at least this often (seconds), so the
    /// standby's timers follow the active's.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u32,
    /// Changes are batched and sent at least this often (milliseconds).
    #[serde(default = "default_flush")]
    pub flush_ms: u32,
    /// Entries each worker can queue for the sync thread before dropping (counted).
    #[serde(default = "default_ring")]
    pub ring_size: usize,
    /// Where sync keeps `sync.generation` (this director's id and boot generation) and
    /// `sync.peers` (the highest generation accepted from each peer); must exist.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8848))
}
fn default_refresh() -> u32 {
    30
}
fn default_flush() -> u32 {
    5
}
fn default_ring() -> usize {
    16384
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lvs")
}

impl SyncConfig {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.peers.is_empty() && self.multicast.is_none() {
            return Err("sync: give peers or a multicast group".into());
        }
        if let Some(m) = self.multicast
            && !m.ip().is_multicast()
        {
            return Err(format!("sync.multicast = {m} is not a multicast address"));
        }
        if self.refresh_secs == 0 {
            return Err("sync.refresh_secs must be at least 1".into());
        }
        if !(1..=1000).contains(&self.flush_ms) {
            return Err("sync.flush_ms must be 1 to 1000".into());
        }
        if !(64..=1 << 22).contains(&self.ring_size) {
            return Err("sync.ring_size must be 64 to 4194304".into());
        }
        Ok(())
    }

    /// This director's id and boot generation.
    pub fn generation_file(&self) -> PathBuf {
        self.state_dir.join("sync.generation")
    }

    /// The highest generation accepted from each peer.
    pub fn peers_file(&self) -> PathBuf {
        self.state_dir.join("sync.peers")
    }

    /// Where updates go: the peers and the group.
    pub fn destinations(&self) -> Vec<SocketAddr> {
        let mut v = self.peers.clone();
        if let Some(m) = self.multicast {
            v.push(SocketAddr::V4(m));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let p = std::path::Path::new("d.toml");
        let c: SyncConfig = lvs_common::parse_toml(
            "key_file = \"/etc/lvs/sync.key\"\npeers = [\"192.0.2.2:8848\"]\nsync_id = 3\n",
            p,
        )
        .unwrap();
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.refresh_secs, 30);
        assert_eq!(
            c.generation_file(),
            PathBuf::from("/var/lib/lvs/sync.generation")
        );
        assert!(c.validate().is_ok());
        let none = SyncConfig {
            peers: vec![],
            ..c.clone()
        };
        assert!(none.validate().unwrap_err().contains("peers"));
        let bad: Result<SyncConfig, _> = lvs_common::parse_toml("key_file = \"k\"\npeer = []\n", p);
        assert!(bad.is_err());
    }
}
