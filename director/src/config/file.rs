//! The director's configuration file (TOML) as written, checked key by key. Everything is
//! optional: with no file at all the director forwards on every non-loopback interface with one
//! worker per CPU. [`super::Config`] is what the director runs from: this, with the files it
//! names read and checked.

use std::path::PathBuf;

use serde::Deserialize;

/// `/etc/lvs/director.toml`. Unknown keys are refused, so a typo is an error with its line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Interfaces to forward on. Empty: every non-loopback interface that is up.
    pub interfaces: Vec<String>,
    /// Worker threads. 0: one per CPU.
    pub workers: usize,
    /// Connection table size for the whole director, shared out between workers.
    pub conn_table_size: usize,
    /// Virtual services to load at start, in `ipvsadm-save` format (`lvsadm -S` output).
    pub rules_file: Option<PathBuf>,
    /// Group (besides root) allowed on the control socket.
    pub control_group: Option<String>,
    /// The `nft` binary used for the kernel guard.
    pub nft: String,
    pub timeouts: FileTimeouts,
    pub ring: FileRing,
    /// `[cluster]`: active/standby (the default) or active-active behind ECMP.
    pub cluster: crate::cluster::ClusterConfig,
    /// `[sync]`: connection-state sync with the other directors (absent: none).
    pub sync: Option<crate::sync::SyncConfig>,
    /// Layer-7 content services (`[[content_service]]`, see lvs-l7), terminated by the
    /// director's own TCP stack beside the IP-load-balanced services.
    pub content_service: Vec<lvs_l7::ContentServiceConfig>,
    /// Pools of real servers that content services route to (`[[pool]]`).
    pub pool: Vec<lvs_l7::PoolConfig>,
    /// The packets that get each firewall mark, for `-f MARK` services (`[[fwmark]]`).
    pub fwmark: Vec<crate::fwmark::FwmarkConfig>,
}

/// `[timeouts]`, in seconds: the same as `lvsadm --set tcp tcpfin udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileTimeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// `[ring]`: the kind and size of each AF_PACKET receive ring (one per interface per worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileRing {
    /// TPACKET version: 2 hands each frame over at once (lowest latency, the default), 3
    /// hands over whole blocks (fewer wake-ups, each frame waits up to `retire_ms`).
    pub tpacket_version: u8,
    /// Bytes per block; a power of two, a multiple of the page size.
    pub block_size: u32,
    pub block_count: u32,
    /// TPACKET_V3: how long the kernel fills a block before handing it over anyway, in
    /// milliseconds.
    pub retire_ms: u32,
}

impl FileRing {
    /// The ring version of `tpacket_version` (checked by [`FileConfig::validate`]).
    pub fn version(&self) -> lvs_afpacket::RingVersion {
        if self.tpacket_version == 3 {
            lvs_afpacket::RingVersion::V3
        } else {
            lvs_afpacket::RingVersion::V2
        }
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            workers: 0,
            conn_table_size: 1 << 20,
            rules_file: None,
            control_group: None,
            nft: "nft".into(),
            timeouts: FileTimeouts::default(),
            ring: FileRing::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            sync: None,
            content_service: Vec::new(),
            pool: Vec::new(),
            fwmark: Vec::new(),
        }
    }
}

impl Default for FileTimeouts {
    fn default() -> Self {
        Self {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

impl Default for FileRing {
    fn default() -> Self {
        Self {
            tpacket_version: 2,
            block_size: 1 << 18,
            block_count: 16,
            retire_ms: 1,
        }
    }
}

impl FileConfig {
    /// The number of workers to start.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }

    /// Checks serde cannot express. Returned as text; the caller adds the file name.
    pub fn validate(&self) -> Result<(), String> {
        if self.conn_table_size < 1024 {
            return Err(format!(
                "conn_table_size = {} is too small (at least 1024)",
                self.conn_table_size
            ));
        }
        if self.workers > 256 {
            return Err(format!("workers = {} is more than 256", self.workers));
        }
        let b = self.ring.block_size;
        if !b.is_power_of_two() || b < 4096 {
            return Err(format!(
                "ring.block_size = {b} must be a power of two of at least 4096"
            ));
        }
        if !matches!(self.ring.tpacket_version, 2 | 3) {
            return Err(format!(
                "ring.tpacket_version = {} must be 2 or 3",
                self.ring.tpacket_version
            ));
        }
        if self.ring.block_count == 0 {
            return Err("ring.block_count must be at least 1".into());
        }
        if self.timeouts.tcp == 0 || self.timeouts.tcp_fin == 0 || self.timeouts.udp == 0 {
            return Err("timeouts must be at least 1 second".into());
        }
        if let Some(s) = &self.sync {
            s.validate()?;
        }
        lvs_l7::config::validate(&self.content_service, &self.pool)?;
        crate::fwmark::validate(&self.fwmark, &self.content_service)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped sample, with every commented-out setting switched on, is valid and says
    /// exactly the defaults: the sample documents what the director really does.
    #[test]
    fn the_sample_config_states_the_defaults() {
        let sample = include_str!("../../../etc/lvs-director.toml");
        let uncommented: String = sample
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut parsed: FileConfig =
            lvs_common::parse_toml(&uncommented, std::path::Path::new("sample"))
                .expect("sample parses");
        assert_eq!(parsed.interfaces, vec!["eth0".to_string()]);
        parsed.interfaces.clear();
        parsed.rules_file = None;
        parsed.control_group = None;
        assert_eq!(parsed, FileConfig::default());
        assert!(parsed.validate().is_ok());
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let mut c = FileConfig {
            conn_table_size: 10,
            ..FileConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("conn_table_size"));
        c = FileConfig::default();
        c.ring.block_size = 5000;
        assert!(c.validate().unwrap_err().contains("ring.block_size"));
        c = FileConfig::default();
        c.ring.tpacket_version = 1;
        assert!(c.validate().unwrap_err().contains("ring.tpacket_version"));
        c.ring.tpacket_version = 3;
        assert!(c.validate().is_ok());
        assert_eq!(c.ring.version(), lvs_afpacket::RingVersion::V3);
        let err =
            lvs_common::parse_toml::<FileConfig>("worker = 2", std::path::Path::new("d.toml"))
                .unwrap_err();
        assert!(err.to_string().starts_with("d.toml:1:"), "{err}");
    }
}
