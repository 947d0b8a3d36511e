//! The lvs-director process: the control thread's event loop around the dataplane.
//!
//! Start: interfaces (GRO/LRO off), next hops, scheduler plugins, workers, the rules file,
//! the kernel guard, the control socket. Then it serves `lvsadm`, follows the kernel's routing
//! and neighbour changes, resolves missing next hops, samples rates, and on SIGHUP reloads the
//! file and applies only the differences. SIGTERM undoes everything it changed in the system.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use log::Level;
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use lvs_control::{ConfigChange, ControlHandler, SchedulerCheck, StatsSource};
use lvs_netinfo::{Netlink, NetlinkMonitor, NextHopTable, OffloadChange};
use lvs_proto::server::{Server, ServerConfig};
use lvs_proto::{AccessPolicy, ConnEntry, DestConf, Rates, ServiceKey, Stats};
use lvs_sched_host::{Instance, Registry, SearchPath};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::config::Config;
use crate::dataplane::{Dataplane, IfAddrs, Setup};
use crate::nftables::NftTable;

const SIGNALS: Token = Token(0);
const NETLINK: Token = Token(1);
const UPGRADE: Token = Token(2);
const SERVER_BASE: usize = 1024;

/// Scheduler names are checked against the plugins, with the options tried for real, so
/// `lvsadm -A ... -s mh -b table_size=10` is refused at once with the plugin's reason. An
/// unknown name gets ipvsadm's words; what was searched goes to the log.
struct PluginCheck(Rc<RefCell<Registry>>);

impl SchedulerCheck for PluginCheck {
    fn check(&self, name: &str, options: &str) -> Result<(), String> {
        let mut reg = self.0.borrow_mut();
        let plugin = reg.get(name).map_err(|e| {
            event!(
                Level::Warn,
                "scheduler_not_found",
                name = name,
                reason = e.to_string()
            );
            lvs_control::SCHEDULER_NOT_FOUND.to_owned()
        })?;
        let spec = lvs_sched_host::ServiceSpec {
            options: options.to_owned(),
            ..Default::default()
        };
        Instance::new(plugin, spec)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The handler's view of the counters.
struct DpStats(Rc<RefCell<Dataplane>>);

impl StatsSource for DpStats {
    fn service(&self, key: &ServiceKey) -> (Stats, Rates) {
        self.0.borrow().service(key)
    }
    fn dest(&self, service: &ServiceKey, dest: &DestConf) -> lvs_control::DestCounters {
        self.0.borrow().dest(service, dest)
    }
    fn connections(&self) -> Vec<ConnEntry> {
        self.0.borrow().connections()
    }
    fn info(&self) -> lvs_proto::DirectorInfo {
        self.0.borrow().info()
    }
    fn sync_status(&self) -> Option<lvs_proto::director::SyncStatus> {
        self.0.borrow().sync_status()
    }
}

/// Next hops, interface MTUs and interface addresses, read from the kernel.
fn next_hops(nl: &mut Netlink) -> Result<(NextHopTable, HashMap<u32, u16>, IfAddrs), BoxError> {
    let table = nl.next_hop_table()?;
    let mtus = nl
        .links()?
        .iter()
        .map(|l| (l.ifindex, u16::try_from(l.mtu).unwrap_or(u16::MAX)))
        .collect();
    let mut addrs = IfAddrs::new();
    for a in nl.ipv4_addresses()? {
        addrs
            .entry(a.ifindex)
            .or_default()
            .push((a.addr.into(), a.prefix_len, a.secondary));
    }
    // An address still in duplicate-address detection is a second choice (the kernel does
    // not send from it yet, but it beats the VIP as a VS/TUN outer source); one that failed
    // detection is dead. A kernel without IPv6 refuses the dump: it has no IPv6 addresses.
    let v6 = nl.ipv6_addresses().unwrap_or_default();
    for a in v6.into_iter().filter(|a| !a.dad_failed) {
        addrs
            .entry(a.ifindex)
            .or_default()
            .push((a.addr.into(), a.prefix_len, a.tentative));
    }
    for v in addrs.values_mut() {
        // First choices first, as the kernel picks them for a source (a stable sort: the
        // kernel's order otherwise).
        v.sort_by_key(|&(_, _, second)| second);
    }
    Ok((table, mtus, addrs))
}

/// Ask the kernel to resolve the MACs of these next hops (never waits).
fn resolve(
    nl: &mut Netlink,
    table: &NextHopTable,
    addrs: impl IntoIterator<Item = std::net::IpAddr>,
) {
    for p in table.missing(addrs) {
        if let Err(e) = nl.resolve(p.ifindex, p.addr) {
            event!(
                Level::Warn,
                "neighbour_resolve_failed",
                addr = p.addr,
                reason = e
            );
        }
    }
}

pub fn run(config: Config, startup: Startup<Config>) -> Result<(), BoxError> {
    run_resumed(config, startup, None)
}

/// [`run`], taking over from a previous binary's `handover` (an upgrade) when there is one.
pub fn run_resumed(
    config: Config,
    startup: Startup<Config>,
    handover: Option<lvs_proto::handover::Handover>,
) -> Result<(), BoxError> {
    let cfg = config.file.clone();
    let upgrader = crate::handover::Upgrader::of_this_process();
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    // SIGUSR2: upgrade (see `handover`). Registered before anything is changed in the system.
    let mut upgrade_signal = signal_hook_mio::v1_0::Signals::new([signal_hook::consts::SIGUSR2])?;
    poll.registry()
        .register(&mut upgrade_signal, UPGRADE, Interest::READABLE)?;

    // Kernel tables first: the monitor opens before the snapshot so no change is missed.
    let mut monitor = NetlinkMonitor::open()?;
    let mut nl = Netlink::open()?;
    let links = nl.links()?;
    let chosen: Vec<_> = if cfg.interfaces.is_empty() {
        links
            .iter()
            .filter(|l| l.is_forwarding_candidate() && l.up)
            .collect()
    } else {
        let mut v = Vec::new();
        for name in &cfg.interfaces {
            match links.iter().find(|l| &l.name == name) {
                Some(l) => v.push(l),
                None => {
                    return Err(format!(
                        "interface {name} (from the configuration) does not exist"
                    )
                    .into());
                }
            }
        }
        v
    };
    if chosen.is_empty() {
        return Err("no interface to forward on (none is up, or none is configured)".into());
    }
    let mut offloads: Vec<OffloadChange> = Vec::new();
    for l in &chosen {
        match lvs_netinfo::disable_receive_offloads(&l.name) {
            Ok(change) => offloads.push(change),
            Err(e) => event!(
                Level::Warn,
                "offload_unchanged",
                interface = l.name,
                reason = e
            ),
        }
    }
    if let Some(h) = &handover {
        offloads = crate::handover::merge_offloads(offloads, &h.offloads);
    }
    let interfaces = chosen
        .iter()
        .map(|l| lvs_afpacket::Interface::by_index(l.ifindex))
        .collect::<Result<Vec<_>, _>>()?;
    let (table, mtus, if_addrs) = next_hops(&mut nl)?;
    let largest_mtu = chosen
        .iter()
        .filter_map(|l| mtus.get(&l.ifindex))
        .max()
        .copied()
        .unwrap_or(1500);

    let registry = Rc::new(RefCell::new(Registry::new(SearchPath::from_env())));
    let setup = Setup {
        interfaces,
        workers: cfg.worker_count(),
        conn_table_size: cfg.conn_table_size,
        rx: lvs_afpacket::RxConfig {
            version: cfg.ring.version(),
            block_size: cfg.ring.block_size,
            block_count: cfg.ring.block_count,
            retire_timeout_ms: cfg.ring.retire_ms,
            ..lvs_afpacket::RxConfig::default()
        }
        .fit_mtu(u32::from(largest_mtu)),
        timeouts: (cfg.timeouts.tcp, cfg.timeouts.tcp_fin, cfg.timeouts.udp),
        sync: cfg.sync.clone(),
        marks: crate::fwmark::MarkTable::new(&cfg.fwmark),
        sloppy_tcp: cfg.cluster.active_active(),
    };
    let dataplane = Rc::new(RefCell::new(Dataplane::start(
        &setup,
        Arc::new(table),
        mtus,
        if_addrs,
    )?));
    let mut guard = NftTable::new(cfg.nft.clone());

    // The rules file, checked against the real plugins now.
    let check = PluginCheck(Rc::clone(&registry));
    let rules = config.rules_state(&check)?.unwrap_or_default();
    // An upgrade rebuilds the previous binary's state (the rules file's and lvsadm's) below.
    let state = if handover.is_some() {
        lvs_control::ControlState::new()
    } else {
        rules
    };
    if let Some(reason) = content_conflict(&state, &cfg.content_service) {
        return Err(reason.into());
    }
    let dp = Rc::clone(&dataplane);
    let reg = Rc::clone(&registry);
    let guard_dirty = Rc::new(std::cell::Cell::new(true));
    let dirty = Rc::clone(&guard_dirty);
    let mut handler = ControlHandler::new(
        lvs_control::ControlState::new(),
        DpStats(Rc::clone(&dataplane)),
        check,
        move |state: &lvs_control::ControlState, changes: &[ConfigChange]| {
            dp.borrow_mut().apply(&mut reg.borrow_mut(), state, changes);
            dirty.set(true);
        },
    );
    // The handler hands the changes to the dataplane itself (its on_change).
    handler.replace(state);
    // Before the guard is applied: the old binary's table stays in place until then.
    let resumed = handover.map(|h| resume(h, &mut handler, &dataplane));
    // After the services: the entries of the bulk resync sync asks for at once name them, and
    // a worker takes its new snapshot before any entry the sync thread hands it.
    if let Some(key) = config.sync_key.clone() {
        dataplane.borrow_mut().start_sync(key)?;
    }
    guard.apply(&dataplane.borrow().nft_rules())?;
    guard_dirty.set(false);
    let table = dp_table(&mut nl)?;
    let addrs = dataplane.borrow().dest_addrs();
    resolve(&mut nl, &table, addrs);

    // Layer-7 content services: their listeners bind with IP_FREEBIND, so they start even
    // while heartbeatd has not yet put the VIP on this host.
    let mut content = crate::content::ContentSwitch::start(&cfg, &registry)?;

    // The control socket.
    let mut sc = ServerConfig::new("director", startup.rundir());
    sc.token_base = SERVER_BASE;
    if let Some(group) = &cfg.control_group {
        let g = nix::unistd::Group::from_name(group)?
            .ok_or_else(|| format!("control_group {group}: no such group"))?;
        sc.access = AccessPolicy::root_and_group(g.gid);
    }
    let mut server = Server::bind(sc)?;
    server.register(poll.registry())?;
    let nl_fd = monitor.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&nl_fd), NETLINK, Interest::READABLE)?;

    let ctx = startup.ready();
    if let Some(text) = resumed {
        crate::handover::report(ctx.rundir(), true, &text);
    }
    let mut events = Events::with_capacity(128);
    loop {
        signals::poll(&mut poll, &mut events, Some(Duration::from_millis(500)))?;
        let mut rebuild_hops = false;
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for s in signals.pending() {
                        match s {
                            Signal::Stop => {
                                content.stop();
                                return shutdown(&dataplane, &mut guard, &offloads);
                            }
                            Signal::Reload => {
                                registry.borrow_mut().rescan();
                                if let Some(new) = ctx.reload() {
                                    let applied = reload(
                                        &new,
                                        &cfg,
                                        &registry,
                                        &mut handler,
                                        &mut content,
                                        &guard_dirty,
                                    );
                                    // After the rules: the marks are checked against the
                                    // services the reload left. A refused file changes none.
                                    if applied {
                                        dataplane.borrow_mut().set_marks(
                                            crate::fwmark::MarkTable::new(&new.file.fwmark),
                                            handler.state(),
                                        );
                                        guard_dirty.set(true);
                                    }
                                }
                            }
                            Signal::Dump => {
                                let frames = dataplane.borrow_mut().ring_frames();
                                event!(Level::Info, "ring_frames", frames = frames);
                                for (name, n) in dataplane.borrow().drops() {
                                    if n > 0 {
                                        event!(
                                            Level::Info,
                                            "drop_counter",
                                            reason = name,
                                            packets = n
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
                UPGRADE => {
                    if upgrade_signal.pending().next().is_none() {
                        continue;
                    }
                    let e = match upgrader.check() {
                        Err(e) => e,
                        Ok(()) => {
                            content.stop();
                            let h = hand_over(&dataplane, &handler, &offloads);
                            event!(
                                Level::Info,
                                "upgrade_start",
                                binary = upgrader.exe().display(),
                                entries = h.conns.len(),
                                services = handler.state().services().len()
                            );
                            // Returns only if neither binary could be executed.
                            let e = upgrader.exec(&h);
                            event!(Level::Error, "upgrade_failed", reason = e);
                            crate::handover::report(ctx.rundir(), false, &e.to_string());
                            shutdown(&dataplane, &mut guard, &offloads)?;
                            return Err(e.into());
                        }
                    };
                    event!(Level::Error, "upgrade_failed", reason = e);
                    crate::handover::report(ctx.rundir(), false, &e.to_string());
                }
                NETLINK => match monitor.drain() {
                    Ok(changes) => rebuild_hops |= changes.next_hops_changed(),
                    Err(e) => event!(Level::Warn, "netlink_monitor_error", reason = e),
                },
                t if server.owns(t) => server.ready(
                    ev,
                    &mut crate::cluster::control::handler(
                        cfg.cluster.active_active(),
                        &mut crate::sync::control::handler(
                            &dataplane,
                            &mut content.handler(&mut handler),
                        ),
                    ),
                ),
                _ => {}
            }
        }
        // Next hops the workers missed: ask the kernel, then pick up the answer.
        let misses = dataplane.borrow().take_misses();
        if !misses.is_empty() {
            let table = dp_table(&mut nl)?;
            resolve(&mut nl, &table, misses);
            rebuild_hops = true;
        }
        if rebuild_hops {
            match next_hops(&mut nl) {
                Ok((table, mtus, if_addrs)) => {
                    let addrs = dataplane.borrow().dest_addrs();
                    resolve(&mut nl, &table, addrs);
                    dataplane
                        .borrow_mut()
                        .set_nexthops(Arc::new(table), mtus, if_addrs);
                }
                Err(e) => event!(Level::Warn, "nexthop_rebuild_failed", reason = e),
            }
        }
        if guard_dirty.get() {
            // The configuration changed: new real servers get their MACs resolved now, not
            // by dropping the first packet of their first connection.
            match dp_table(&mut nl) {
                Ok(table) => {
                    let addrs = dataplane.borrow().dest_addrs();
                    resolve(&mut nl, &table, addrs);
                }
                Err(e) => event!(Level::Warn, "nexthop_rebuild_failed", reason = e),
            }
            let rules = dataplane.borrow().nft_rules();
            match guard.apply(&rules) {
                Ok(()) => guard_dirty.set(false),
                Err(e) => event!(Level::Error, "guard_failed", reason = e.to_string()),
            }
        }
        dataplane.borrow_mut().tick();
    }
}

/// SIGHUP: apply the re-read configuration file. Its content services are applied; the
/// virtual services are replaced by the `rules_file`'s when one is configured, and left exactly
/// as they are (with the monitor's verdicts) when none is: they were made with `lvsadm`. A
/// file that cannot be applied whole (bad rules, a content service on the port of a virtual
/// service) is refused and the running configuration stays: then `false`.
fn reload<F: FnMut(&lvs_control::ControlState, &[ConfigChange])>(
    new: &Config,
    running: &crate::config::FileConfig,
    registry: &Rc<RefCell<Registry>>,
    handler: &mut ControlHandler<DpStats, PluginCheck, F>,
    content: &mut crate::content::ContentSwitch,
    guard_dirty: &std::cell::Cell<bool>,
) -> bool {
    if new.file.cluster != running.cluster {
        // The workers, sync and the control socket were set up for the running mode.
        event!(
            Level::Error,
            "config_rejected",
            reason = "[cluster] mode changes take effect only at a restart"
        );
        return false;
    }
    let check = PluginCheck(Rc::clone(registry));
    let rules = match new.rules_state(&check).and_then(|rules| {
        let lb = rules.as_ref().unwrap_or(handler.state());
        match content_conflict(lb, &new.file.content_service) {
            Some(reason) => Err(reason),
            None => Ok(rules),
        }
    }) {
        Ok(rules) => rules,
        Err(reason) => {
            event!(Level::Error, "config_rejected", reason = reason);
            return false;
        }
    };
    if new.file.sync != running.sync {
        event!(
            Level::Warn,
            "sync_config_unchanged",
            reason = "[sync] changes take effect at the next start"
        );
    }
    match content.apply(&new.file, registry) {
        Ok(n) => event!(Level::Info, "content_reloaded", services = n),
        Err(reason) => event!(Level::Error, "content_config_rejected", reason = reason),
    }
    let Some(state) = rules else {
        event!(
            Level::Info,
            "rules_kept",
            reason = "no rules_file: the virtual services made with lvsadm stay"
        );
        return true;
    };
    // The content services refused above are still the old ones: they must not clash either.
    if let Some(s) = state
        .services()
        .iter()
        .find(|s| content.serves(&s.conf.key))
    {
        event!(
            Level::Error,
            "config_rejected",
            reason = format!(
                "virtual service {} is on the port of a running content service",
                s.conf.key
            )
        );
        return false;
    }
    // Applied by the handler's on_change.
    let changes = handler.replace(state);
    guard_dirty.set(true);
    event!(Level::Info, "rules_reloaded", changes = changes.len());
    true
}

/// A virtual service (TCP, on the same address and port, or on every port) where a content
/// service listens: the dataplane would take the packets the content service waits for.
fn content_conflict(
    state: &lvs_control::ControlState,
    content: &[lvs_l7::ContentServiceConfig],
) -> Option<String> {
    state.services().iter().find_map(|s| {
        let k = s.conf.key;
        content
            .iter()
            .find(|c| {
                k.protocol == lvs_proto::Protocol::Tcp
                    && k.addr == c.address
                    && (k.port == c.port || k.port == 0)
            })
            .map(|c| {
                format!(
                    "virtual service {k} and the content service on {} cannot both be: \
                     one address and port is either load balanced or content switched",
                    std::net::SocketAddr::new(c.address, c.port)
                )
            })
    })
}

/// An upgrade, in the old binary: the workers stop and the state is collected.
fn hand_over<F: FnMut(&lvs_control::ControlState, &[ConfigChange])>(
    dataplane: &Rc<RefCell<Dataplane>>,
    handler: &ControlHandler<DpStats, PluginCheck, F>,
    offloads: &[OffloadChange],
) -> lvs_proto::handover::Handover {
    use crate::handover as h;
    let counters = h::counters(handler.state(), &*dataplane.borrow());
    let entries = dataplane.borrow_mut().hand_over();
    lvs_proto::handover::Handover {
        from_version: env!("CARGO_PKG_VERSION").to_owned(),
        requests: h::requests(handler.state()),
        counters,
        offloads: h::offloads(offloads),
        conns: entries.iter().map(h::handed).collect(),
    }
}

/// An upgrade, in the new binary: the previous control state, counters and connections.
/// Returns the report for `--upgrade`.
fn resume<F: FnMut(&lvs_control::ControlState, &[ConfigChange])>(
    h: lvs_proto::handover::Handover,
    handler: &mut ControlHandler<DpStats, PluginCheck, F>,
    dataplane: &Rc<RefCell<Dataplane>>,
) -> String {
    use lvs_proto::Handler;
    let me = lvs_proto::PeerInfo {
        credentials: lvs_proto::Credentials {
            pid: nix::unistd::getpid(),
            uid: nix::unistd::getuid(),
            gid: nix::unistd::getgid(),
        },
        role: lvs_proto::Role::Director,
    };
    for req in h.requests {
        let r = handler.handle(&me, req);
        if r != lvs_proto::Response::Ok {
            event!(
                Level::Error,
                "upgrade_state_refused",
                response = format!("{r:?}")
            );
        }
    }
    for c in &h.counters {
        dataplane.borrow_mut().carry(&c.service, c.dest, &c.stats);
    }
    let offered = h.conns.len();
    let entries: Vec<_> = h.conns.iter().filter_map(crate::handover::entry).collect();
    let restored = dataplane.borrow().import(entries);
    event!(
        Level::Info,
        "upgrade_resumed",
        from_version = h.from_version,
        version = env!("CARGO_PKG_VERSION"),
        services = handler.state().services().len(),
        entries = offered,
        restored = restored
    );
    format!(
        "upgraded from {} to {}: {} services, {restored} of {offered} table entries restored",
        h.from_version,
        env!("CARGO_PKG_VERSION"),
        handler.state().services().len()
    )
}

fn dp_table(nl: &mut Netlink) -> Result<NextHopTable, BoxError> {
    Ok(nl.next_hop_table()?)
}

/// Undo, in reverse: stop forwarding, give the kernel its packets back, restore offloads.
fn shutdown(
    dataplane: &Rc<RefCell<Dataplane>>,
    guard: &mut NftTable,
    offloads: &[OffloadChange],
) -> Result<(), BoxError> {
    dataplane.borrow_mut().stop();
    if let Err(e) = guard.remove() {
        event!(Level::Error, "guard_remove_failed", reason = e);
    }
    for o in offloads {
        if let Err(e) = o.restore() {
            event!(
                Level::Warn,
                "offload_restore_failed",
                interface = o.ifname,
                reason = e
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lvs_control::{AnyScheduler, load_rules};

    fn content(port: u16) -> Vec<lvs_l7::ContentServiceConfig> {
        toml_config(port).content_service
    }

    fn toml_config(port: u16) -> crate::config::FileConfig {
        let text = format!(
            "[[content_service]]\naddress = \"192.0.2.1\"\nport = {port}\ndefault_pool = \"p\"\n\n\
             [[pool]]\nname = \"p\"\nservers = [{{ address = \"10.0.0.1\", port = 80 }}]\n"
        );
        lvs_common::parse_toml(&text, std::path::Path::new("test.toml"))
            .expect("a valid configuration")
    }

    /// A reload (or a start) that would put a content service and a virtual service on one
    /// address and port is refused with a reason.
    #[test]
    fn a_content_service_on_a_virtual_services_port_is_a_conflict() {
        let rules = load_rules("-A -t 192.0.2.1:80 -s rr\n", &AnyScheduler).unwrap();
        let reason = super::content_conflict(&rules, &content(80)).expect("a conflict");
        assert!(reason.contains("192.0.2.1:80"), "{reason}");
        assert!(super::content_conflict(&rules, &content(443)).is_none());
        let all_ports = load_rules("-A -t 192.0.2.1:0 -s rr -p 60\n", &AnyScheduler).unwrap();
        assert!(super::content_conflict(&all_ports, &content(443)).is_some());
        let udp = load_rules("-A -u 192.0.2.1:80 -s rr\n", &AnyScheduler).unwrap();
        assert!(super::content_conflict(&udp, &content(80)).is_none());
    }
}
