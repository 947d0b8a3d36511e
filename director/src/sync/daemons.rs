//! Which sync daemon runs, and `lvsadm --start-daemon` / `--stop-daemon`.
//!
//! Two ways to run connection sync, one sync thread at a time:
//!
//! - `[sync]` of the configuration file (`autostart`, the default): started with the
//!   director, unicast peers and/or a group, active or standby as lvs-heartbeatd says.
//! - ipvsadm's daemons, started at run time with `lvsadm --start-daemon master|backup`: a
//!   multicast group on one interface (ipvsadm's and the kernel's defaults: `eth0`,
//!   224.0.0.81, port 8848, TTL 1), a fixed role (a master sends, a backup receives), like
//!   IPVS's. They are run-time state like services added with lvsadm: a reload leaves them
//!   alone, a restart forgets them.
//!
//! Datagrams are always sealed: a daemon needs the key of `[sync] key_file` (and its state
//! directory), so without a `[sync]` section `--start-daemon` is refused and says what to
//! add. Either kind of daemon can be stopped with `--stop-daemon` of its current role.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use lvs_proto::director::{SyncDaemon, SyncDaemonState, SyncStatus};

use super::engine::WorkerLink;
use super::wire::AuthKey;
use super::{SyncConfig, SyncEngine, SyncShared};

/// The kernel's sync group (`IP_VS_SYNC_GROUP`), ipvsadm's `--mcast-group` default.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The kernel's sync port (`IP_VS_SYNC_PORT`).
pub const DEFAULT_PORT: u16 = 8848;

/// Why `--start-daemon` or `--stop-daemon` is refused: libipvs's words where it has them.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The kernel's EEXIST.
    #[error("Daemon has already run{}", if *.from_file { " (the one of [sync] in lvs-director's configuration file)" } else { "" })]
    AlreadyRunning {
        /// It was started from the configuration file.
        from_file: bool,
    },
    /// A daemon of the other role runs: IPVS would run both, lvs-director runs one.
    #[error(
        "Daemon has already run (lvs-director runs one sync daemon at a time, and its {running} \
         sync daemon runs: stop it first with --stop-daemon {running})"
    )]
    OtherRunning {
        /// The role of the one that runs.
        running: &'static str,
    },
    /// The kernel's ESRCH.
    #[error("No daemon is running")]
    NotRunning,
    /// The kernel's ENODEV for an unknown `--mcast-interface`, as strerror says it.
    #[error("No such device")]
    NoDevice,
    /// Sync datagrams are always authenticated: no key, no daemon.
    #[error(
        "lvs-director has no sync key: its sync datagrams are always authenticated. Give \
         [sync] key_file (the key file shared with the other directors, mode 0600, see the \
         README) and state_dir in lvs-director's configuration file, with autostart = false \
         to leave starting daemons to lvsadm, and restart lvs-director"
    )]
    NoKey,
    /// Opening the socket or the state files failed.
    #[error("{0}")]
    Start(std::io::Error),
}

/// What started the running daemon.
#[derive(Debug, Clone)]
enum Origin {
    File,
    Lvsadm(SyncDaemon),
}

/// The one sync thread, or the workers' links while none runs.
#[derive(Debug)]
pub struct Daemons {
    /// `[sync]` of the configuration file.
    base: Option<SyncConfig>,
    key: Option<AuthKey>,
    shared: Arc<SyncShared>,
    idle: Option<Vec<WorkerLink>>,
    running: Option<(SyncEngine, Origin)>,
}

impl Daemons {
    /// No daemon yet; `links` are the workers' rings and channels.
    pub fn new(base: Option<SyncConfig>, links: Vec<WorkerLink>, shared: Arc<SyncShared>) -> Self {
        Daemons {
            base,
            key: None,
            shared,
            idle: Some(links),
            running: None,
        }
    }

    /// The counters the workers and the sync thread share.
    pub fn shared(&self) -> &Arc<SyncShared> {
        &self.shared
    }

    /// With the key of `[sync] key_file`: the configured daemon starts, unless `autostart =
    /// false` leaves it to `lvsadm --start-daemon`.
    pub fn start_configured(&mut self, key: AuthKey, active: bool) -> std::io::Result<()> {
        self.key = Some(key);
        let Some(cfg) = self.base.clone().filter(|c| c.autostart) else {
            return Ok(());
        };
        self.start(cfg, active, Origin::File).map_err(|e| match e {
            DaemonError::Start(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    }

    /// The director became active or standby: the configured daemon follows; ipvsadm's keep
    /// their role, as IPVS's do.
    pub fn set_role(&self, active: bool) {
        if let Some((engine, Origin::File)) = &self.running {
            engine.set_role(active);
        }
    }

    /// The running daemon's status (`None`: none runs).
    pub fn status(&self) -> Option<SyncStatus> {
        self.running.as_ref().map(|(e, _)| e.status())
    }

    /// The daemons `lvsadm --start-daemon` started, their defaults filled in.
    pub fn daemons(&self) -> Vec<SyncDaemon> {
        match &self.running {
            Some((_, Origin::Lvsadm(d))) => vec![filled(d, mtu(&d.mcast_ifn))],
            _ => Vec::new(),
        }
    }

    /// `--start-daemon`.
    pub fn start_daemon(&mut self, want: &SyncDaemon) -> Result<(), DaemonError> {
        // The kernel's order: the interface first, then whether one runs.
        let mtu = mtu(&want.mcast_ifn).ok_or(DaemonError::NoDevice)?;
        if let Some((engine, origin)) = &self.running {
            let running = role_of(engine, origin);
            return Err(if running == want.state {
                DaemonError::AlreadyRunning {
                    from_file: matches!(origin, Origin::File),
                }
            } else {
                DaemonError::OtherRunning {
                    running: running.name(),
                }
            });
        }
        let base = self.base.clone().ok_or(DaemonError::NoKey)?;
        let d = filled(want, Some(mtu));
        let cfg = daemon_config(&base, &d);
        self.start(cfg, d.state == SyncDaemonState::Master, Origin::Lvsadm(d))
    }

    /// `--stop-daemon`: the running daemon if it has that role.
    pub fn stop_daemon(&mut self, state: SyncDaemonState) -> Result<(), DaemonError> {
        match &self.running {
            Some((engine, origin)) if role_of(engine, origin) == state => {}
            _ => return Err(DaemonError::NotRunning),
        }
        self.stop();
        Ok(())
    }

    /// Stop whichever runs (the director is stopping).
    pub fn stop(&mut self) {
        if let Some((mut engine, _)) = self.running.take() {
            self.idle = engine.stop();
        }
    }

    fn start(&mut self, cfg: SyncConfig, active: bool, origin: Origin) -> Result<(), DaemonError> {
        let key = self.key.clone().ok_or(DaemonError::NoKey)?;
        let links = self.idle.take().ok_or_else(|| {
            DaemonError::Start(std::io::Error::other(
                "the workers' sync rings were lost with an earlier sync thread",
            ))
        })?;
        match SyncEngine::start_keeping(cfg, key, links, Arc::clone(&self.shared), active) {
            Ok(engine) => {
                self.running = Some((engine, origin));
                Ok(())
            }
            Err((e, links)) => {
                self.idle = Some(links);
                Err(DaemonError::Start(e))
            }
        }
    }
}

/// The role a running daemon has now.
fn role_of(engine: &SyncEngine, origin: &Origin) -> SyncDaemonState {
    match origin {
        Origin::Lvsadm(d) => d.state,
        Origin::File
            if engine
                .shared
                .active
                .load(std::sync::atomic::Ordering::Relaxed) =>
        {
            SyncDaemonState::Master
        }
        Origin::File => SyncDaemonState::Backup,
    }
}

/// An interface's MTU (`None`: no such interface).
fn mtu(ifname: &str) -> Option<u32> {
    if ifname.is_empty() || ifname.contains('/') || ifname == "." || ifname == ".." {
        return None;
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu")).ok()?;
    text.trim().parse().ok()
}

/// The kernel's defaults (`start_sync_thread`): group 224.0.0.81, port 8848, TTL 1, and the
/// largest payload of one datagram: a master's from a 1500-byte MTU, a backup's from its
/// interface's MTU (at least 1500); a given one clamped as the kernel clamps it.
fn filled(want: &SyncDaemon, mtu: Option<u32>) -> SyncDaemon {
    let group = want.group.unwrap_or(IpAddr::V4(DEFAULT_GROUP));
    let hlen: u32 = if group.is_ipv6() { 40 + 8 } else { 20 + 8 };
    let backup = want.state == SyncDaemonState::Backup;
    let mtu = if backup {
        mtu.unwrap_or(1500).clamp(1500, 65535)
    } else {
        1500
    };
    let maxlen = match u32::from(want.maxlen) {
        0 => mtu - hlen,
        n => n.clamp(if backup { 1024 } else { 1 }, 65535 - hlen),
    };
    SyncDaemon {
        group: Some(group),
        port: if want.port == 0 {
            DEFAULT_PORT
        } else {
            want.port
        },
        ttl: want.ttl.max(1),
        maxlen: u16::try_from(maxlen).unwrap_or(u16::MAX),
        ..want.clone()
    }
}

/// The sync configuration of an ipvsadm daemon: its group, port and interface, the key,
/// state directory and rings of `[sync]`.
fn daemon_config(base: &SyncConfig, d: &SyncDaemon) -> SyncConfig {
    let group = d.group.unwrap_or(IpAddr::V4(DEFAULT_GROUP));
    let any = match group {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SyncConfig {
        listen: SocketAddr::new(any, d.port),
        peers: Vec::new(),
        multicast: Some(SocketAddr::new(group, d.port)),
        interface: Some(d.mcast_ifn.clone()),
        sync_id: d.syncid,
        ttl: d.ttl,
        maxlen: d.maxlen,
        autostart: true,
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(state: SyncDaemonState) -> SyncDaemon {
        SyncDaemon {
            state,
            mcast_ifn: "eth0".into(),
            syncid: 0,
            maxlen: 0,
            group: None,
            port: 0,
            ttl: 0,
        }
    }

    /// ipvsadm's `-L --daemon` after a bare `--start-daemon master`: `maxlen=1472,
    /// group=224.0.0.81, port=8848, ttl=1`; a backup's maxlen follows a jumbo MTU; IPv6
    /// headers take 20 bytes more.
    #[test]
    fn the_kernels_defaults() {
        let m = filled(&want(SyncDaemonState::Master), Some(9000));
        assert_eq!(
            (m.maxlen, m.group, m.port, m.ttl),
            (1472, Some(IpAddr::V4(DEFAULT_GROUP)), 8848, 1)
        );
        let b = filled(&want(SyncDaemonState::Backup), Some(9000));
        assert_eq!(b.maxlen, 9000 - 28);
        let b = filled(&want(SyncDaemonState::Backup), Some(1280));
        assert_eq!(b.maxlen, 1472);
        let v6 = SyncDaemon {
            group: Some("ff02::51".parse().unwrap()),
            ..want(SyncDaemonState::Master)
        };
        assert_eq!(filled(&v6, Some(1500)).maxlen, 1452);
        let small = SyncDaemon {
            maxlen: 100,
            ..want(SyncDaemonState::Backup)
        };
        assert_eq!(filled(&small, Some(1500)).maxlen, 1024);
        let cfg = daemon_config(
            &lvs_common::parse_toml::<SyncConfig>(
                "key_file = \"k\"\nautostart = false\n",
                std::path::Path::new("d.toml"),
            )
            .unwrap(),
            &filled(&v6, Some(1500)),
        );
        assert_eq!(cfg.listen, "[::]:8848".parse().unwrap());
        assert_eq!(cfg.multicast, Some("[ff02::51]:8848".parse().unwrap()));
        assert_eq!(cfg.interface.as_deref(), Some("eth0"));
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(mtu("no-such-if0"), None);
        assert_eq!(mtu("../lo"), None);
    }

    /// Without `[sync]` there is no key: refused, saying what to configure; nothing sent.
    /// An unknown interface is the kernel's ENODEV; stopping what does not run, ESRCH.
    #[test]
    fn refusals() {
        let shared = Arc::new(SyncShared::default());
        let mut d = Daemons::new(None, Vec::new(), Arc::clone(&shared));
        let lo = SyncDaemon {
            mcast_ifn: "lo".into(),
            ..want(SyncDaemonState::Master)
        };
        let e = d.start_daemon(&lo).unwrap_err().to_string();
        assert!(
            e.contains("no sync key") && e.contains("[sync] key_file") && e.contains("autostart"),
            "{e}"
        );
        let nic = SyncDaemon {
            mcast_ifn: "no-such-if0".into(),
            ..lo.clone()
        };
        assert_eq!(
            d.start_daemon(&nic).unwrap_err().to_string(),
            "No such device"
        );
        assert_eq!(
            d.stop_daemon(SyncDaemonState::Backup)
                .unwrap_err()
                .to_string(),
            "No daemon is running"
        );
        assert!(d.daemons().is_empty() && d.status().is_none());
        assert!(!shared.running.load(std::sync::atomic::Ordering::Relaxed));
    }
}
