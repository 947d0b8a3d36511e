//! `[sync]`: connection-state sync between directors.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// `[sync]` in the director's TOML file. Present: sync runs from the start (unless
/// `autostart = false`), and `lvsadm --start-daemon` has the key it needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Local address and port to receive on (and send from): `0.0.0.0:8848` for IPv4,
    /// `[::]:8848` for IPv6. One socket speaks one family: the peers and the group are of it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Unicast peers: the other directors' `listen` addresses (`192.0.2.2:8848`,
    /// `[2001:db8::2]:8848`).
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// A multicast group to send to and receive on, e.g. `224.0.0.81:8848` or
    /// `[ff02::51]:8848` (ipvsadm's `--mcast-group`).
    #[serde(default)]
    pub multicast: Option<SocketAddr>,
    /// The interface for multicast (ipvsadm's `--mcast-interface`); needed for an IPv6 group
    /// of link or interface scope (`ff02::`, `ff01::`), which names no interface itself. An
    /// IPv6 group of wider scope (`ff05::`) is joined there, and its datagrams leave by the
    /// kernel's route to the group.
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
    /// Start syncing with the director (default). `false`: the section only gives the key,
    /// state directory and rings to the daemons `lvsadm --start-daemon` starts, as with
    /// ipvsadm; no peers or group needed then.
    #[serde(default = "default_autostart")]
    pub autostart: bool,
    /// Multicast TTL / hop limit (ipvsadm's `--mcast-ttl`): 1 keeps the datagrams on the
    /// directors' segment.
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    /// The largest datagram, UDP payload in bytes (ipvsadm's `--sync-maxlen`); 0: 1472 over
    /// IPv4, 1452 over IPv6 (a 1500-byte MTU). Datagrams never grow past those.
    #[serde(default)]
    pub maxlen: u16,
    /// Active-active (`[cluster] mode`, not a key of `[sync]`): every director sends its
    /// entries to every peer and applies every peer's, whatever its role.
    #[serde(skip)]
    pub many_to_many: bool,
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
fn default_autostart() -> bool {
    true
}
fn default_ttl() -> u8 {
    1
}

impl SyncConfig {
    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.autostart && self.peers.is_empty() && self.multicast.is_none() {
            return Err(
                "sync: give peers or a multicast group (or autostart = false, to start \
                 daemons only with lvsadm --start-daemon)"
                    .into(),
            );
        }
        if self.ttl == 0 {
            return Err("sync.ttl must be 1 to 255".into());
        }
        if let Some(m) = self.multicast {
            if !m.ip().is_multicast() {
                return Err(format!("sync.multicast = {m} is not a multicast address"));
            }
            if let IpAddr::V6(g) = m.ip()
                && needs_interface(g)
                && self.interface.is_none()
            {
                return Err(format!(
                    "sync.multicast = {m} is a link-local group: give sync.interface, the \
                     interface to join it on (ipvsadm's --mcast-interface)"
                ));
            }
        }
        let family = |a: &SocketAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
        let listen = family(&self.listen);
        for (what, a) in self
            .peers
            .iter()
            .map(|p| ("sync.peers", p))
            .chain(self.multicast.iter().map(|m| ("sync.multicast", m)))
        {
            if family(a) != listen {
                return Err(format!(
                    "{what}: {a} is {} but sync.listen = {} is {listen}; one sync socket \
                     speaks one family (listen = \"{}\" for {} peers)",
                    family(a),
                    self.listen,
                    if a.is_ipv4() {
                        "0.0.0.0:8848"
                    } else {
                        "[::]:8848"
                    },
                    family(a)
                ));
            }
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
        v.extend(self.multicast);
        v
    }
}

/// Whether an IPv6 group's scope (interface- or link-local) leaves the interface unnamed:
/// the kernel would pick one by its routes.
pub fn needs_interface(group: std::net::Ipv6Addr) -> bool {
    matches!(group.segments()[0] & 0x000f, 1 | 2)
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
        assert!(c.autostart && c.ttl == 1 && c.maxlen == 0);
        let none = SyncConfig {
            peers: vec![],
            ..c.clone()
        };
        assert!(none.validate().unwrap_err().contains("peers"));
        // Only the key and state for lvsadm's daemons.
        let later = SyncConfig {
            autostart: false,
            ..none
        };
        assert_eq!(later.validate(), Ok(()));
        let bad: Result<SyncConfig, _> = lvs_common::parse_toml("key_file = \"k\"\npeer = []\n", p);
        assert!(bad.is_err());
    }

    /// IPv6 peers and groups as ipvsadm 1.31 takes them (`--mcast-group ff02::...` with
    /// `--mcast-interface`), and the mistakes refused with what to write instead.
    #[test]
    fn ipv6_peers_and_groups() {
        let p = std::path::Path::new("d.toml");
        let parse = |extra: &str| -> SyncConfig {
            lvs_common::parse_toml(&format!("key_file = \"k\"\n{extra}"), p).unwrap()
        };
        let c = parse(
            "listen = \"[::]:8848\"\npeers = [\"[2001:db8::2]:8848\"]\n\
             multicast = \"[ff02::51]:8848\"\ninterface = \"eth1\"\n",
        );
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.destinations(),
            vec![
                "[2001:db8::2]:8848".parse::<SocketAddr>().unwrap(),
                "[ff02::51]:8848".parse().unwrap()
            ]
        );
        // A site-scoped group names its reach itself; an IPv4 group as before.
        let c = parse("listen = \"[::]:8848\"\nmulticast = \"[ff05::51]:8848\"\n");
        assert_eq!(c.validate(), Ok(()));
        let c = parse("multicast = \"224.0.0.81:8848\"\n");
        assert_eq!(c.validate(), Ok(()));

        let err = |extra: &str| parse(extra).validate().unwrap_err();
        let e = err("listen = \"[::]:8848\"\nmulticast = \"[ff02::51]:8848\"\n");
        assert!(e.contains("link-local group: give sync.interface"), "{e}");
        let e = err("listen = \"[::]:8848\"\nmulticast = \"[2001:db8::51]:8848\"\n");
        assert!(e.contains("is not a multicast address"), "{e}");
        let e = err("peers = [\"[2001:db8::2]:8848\"]\n");
        assert!(
            e.contains("[2001:db8::2]:8848 is IPv6 but sync.listen = 0.0.0.0:8848 is IPv4")
                && e.contains("listen = \"[::]:8848\""),
            "{e}"
        );
        let e = err("listen = \"[::]:8848\"\nmulticast = \"224.0.0.81:8848\"\n");
        assert!(e.contains("sync.multicast: 224.0.0.81:8848 is IPv4"), "{e}");
        // The bare IPv6 form is not an address and port.
        let bad: Result<SyncConfig, _> =
            lvs_common::parse_toml("key_file = \"k\"\npeers = [\"2001:db8::2:8848\"]\n", p);
        assert!(bad.is_err());
    }
}
