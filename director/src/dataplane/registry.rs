//! The ids and scheduler instances the data plane gives the control state's services and real
//! servers. The control state says what exists; this registry remembers only what must outlive
//! an edit: a weight change keeps the scheduler's state (rr's position, mh's table), and a real
//! server keeps its id, which its live connections refer to, until it is deleted.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lvs_control::{ControlState, Service};
use lvs_proto::{AddrPort, DestConf, Protocol, ServiceConf, ServiceKey};
use lvs_sched_host::{Dest, Instance, Registry as Plugins, ServiceSpec};
use slab::Slab;

use super::DataplaneError;
use super::snapshot::Affinity;
use super::stats::{MAX_DESTS, MAX_SERVICES};

/// One virtual service's place in the data plane.
#[derive(Debug)]
pub struct Slot {
    /// The id used for counters and connection entries.
    pub id: u32,
    /// The scheduler and `-b` flags the instance was made with: an edit to either makes a new
    /// instance, any other edit keeps it.
    made_with: (String, String),
    pub sched: Arc<Mutex<Instance>>,
    pub affinity: Arc<Mutex<Affinity>>,
    /// Real-server ids by address and (configured) port.
    dests: HashMap<(IpAddr, u16), u32>,
}

impl Slot {
    /// The id of the real server at `addr`:`port`.
    pub fn dest(&self, addr: IpAddr, port: u16) -> Option<u32> {
        self.dests.get(&(addr, port)).copied()
    }

    /// Every real server's id.
    pub fn dest_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.dests.values().copied()
    }

    fn sched(&self) -> MutexGuard<'_, Instance> {
        self.sched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Servers that left `svc`: out of the scheduler and the affinity map, their ids back.
    fn retire_gone(&mut self, svc: &Service, ids: &mut Slab<()>, out: &mut Synced) {
        let now: HashSet<(IpAddr, u16)> = svc.dests.iter().map(|d| (d.addr, d.port)).collect();
        let mut gone: Vec<((IpAddr, u16), u32)> = self
            .dests
            .iter()
            .filter(|(k, _)| !now.contains(k))
            .map(|(k, id)| (*k, *id))
            .collect();
        gone.sort_unstable_by_key(|(_, id)| *id);
        for (k, id) in gone {
            self.dests.remove(&k);
            let _ = self.sched().del_dest(id);
            self.affinity
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .forget_dest(id);
            ids.try_remove(id as usize);
            out.gone_dests.push(id);
        }
    }

    /// A new scheduler (or new `-b` flags) for `svc`: a new instance, told of the servers the
    /// old one had, as they are now. True when it was made.
    fn renew_scheduler(
        &mut self,
        plugins: &mut Plugins,
        state: &ControlState,
        svc: &Service,
        out: &mut Synced,
    ) -> bool {
        let wanted = (svc.conf.scheduler.clone(), svc.conf.sched_flags.clone());
        if self.made_with == wanted {
            return false;
        }
        // Recorded even when refused, as the edit was: the old instance keeps scheduling and
        // the refusal is reported once.
        self.made_with = wanted;
        let key = svc.conf.key;
        match instance(plugins, &svc.conf) {
            Ok(mut inst) => {
                for d in &svc.dests {
                    if let Some(id) = self.dest(d.addr, d.port)
                        && let Ok(sd) = sched_dest(id, &state.effective(&key, *d))
                    {
                        let _ = inst.add_dest(sd);
                    }
                }
                self.sched = Arc::new(Mutex::new(inst));
                true
            }
            Err(e) => {
                out.failed.push((format!("service {key}"), e));
                false
            }
        }
    }
}

/// What one [`ServiceRegistry::sync`] did.
#[derive(Debug, Default)]
pub struct Synced {
    /// Ids freed, in the order to retire them: the workers must expire a real server's
    /// connections before its id comes back.
    pub gone_services: Vec<u32>,
    pub gone_dests: Vec<u32>,
    /// Ids given out.
    pub new_services: Vec<u32>,
    pub new_dests: Vec<u32>,
    /// What could not be placed or told to its scheduler: (what, why). Each refusal is
    /// reported once; the refused service or server stays out until it is deleted.
    pub failed: Vec<(String, DataplaneError)>,
}

/// A service (`None`) or one of its real servers that the data plane refused.
type Refused = (ServiceKey, Option<(IpAddr, u16)>);

/// Ids and scheduler instances by the control state's keys.
#[derive(Debug, Default)]
pub struct ServiceRegistry {
    services: HashMap<ServiceKey, Slot>,
    service_ids: Slab<()>,
    dest_ids: Slab<()>,
    refused: HashSet<Refused>,
}

impl ServiceRegistry {
    /// A service's place, if the data plane took it.
    pub fn service(&self, key: &ServiceKey) -> Option<&Slot> {
        self.services.get(key)
    }

    /// Every service's place.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.services.values()
    }

    /// Bring the ids and instances in line with `state`: services and real servers that are
    /// gone give their ids back, new ones get ids, a new scheduler (or new `-b` flags) gets a
    /// new instance, and a real server whose scheduling changed (weight, health) is told to its
    /// scheduler. `edited` names the servers an `-e` touched: IPVS tells the scheduler of every
    /// edit, even one that leaves what the scheduler sees as it was.
    pub fn sync(
        &mut self,
        plugins: &mut Plugins,
        state: &ControlState,
        edited: &HashSet<(ServiceKey, IpAddr, u16)>,
    ) -> Synced {
        let mut out = Synced::default();
        self.refused.retain(|(key, dest)| {
            state
                .service(key)
                .is_some_and(|s| dest.is_none_or(|(addr, port)| s.find_dest(addr, port).is_some()))
        });
        let now: HashSet<ServiceKey> = state.services().iter().map(|s| s.conf.key).collect();
        let mut gone: Vec<(u32, ServiceKey)> = self
            .services
            .iter()
            .filter(|(k, _)| !now.contains(k))
            .map(|(k, slot)| (slot.id, *k))
            .collect();
        gone.sort_unstable_by_key(|(id, _)| *id);
        for (_, key) in gone {
            if let Some(slot) = self.services.remove(&key) {
                let mut ids: Vec<u32> = slot.dest_ids().collect();
                ids.sort_unstable();
                for id in ids {
                    self.dest_ids.try_remove(id as usize);
                    out.gone_dests.push(id);
                }
                self.service_ids.try_remove(slot.id as usize);
                out.gone_services.push(slot.id);
            }
        }
        for svc in state.services() {
            self.sync_service(plugins, state, svc, edited, &mut out);
        }
        out
    }

    fn sync_service(
        &mut self,
        plugins: &mut Plugins,
        state: &ControlState,
        svc: &Service,
        edited: &HashSet<(ServiceKey, IpAddr, u16)>,
        out: &mut Synced,
    ) {
        let key = svc.conf.key;
        if !self.services.contains_key(&key) {
            if self.refused.contains(&(key, None)) {
                return;
            }
            match self.place_service(plugins, &svc.conf) {
                Ok(id) => out.new_services.push(id),
                Err(e) => {
                    self.refused.insert((key, None));
                    out.failed.push((format!("service {key}"), e));
                    return;
                }
            }
        }
        let Some(slot) = self.services.get_mut(&key) else {
            return;
        };
        slot.retire_gone(svc, &mut self.dest_ids, out);
        let fresh = slot.renew_scheduler(plugins, state, svc, out);
        // What each server's scheduler was last told: the workers set the overload flag
        // themselves (thresholds), the rest is the control state's.
        let told: HashMap<u32, (u32, u32)> = slot
            .sched()
            .dests()
            .iter()
            .map(|t| {
                (
                    t.id,
                    (t.weight, t.flags & !lvs_sched_abi::DEST_F_OVERLOADED),
                )
            })
            .collect();
        for d in &svc.dests {
            let conf = state.effective(&key, *d);
            let what = || format!("real server {} of {key}", AddrPort(d.addr, d.port));
            let result = match slot.dest(d.addr, d.port) {
                Some(_) if fresh => Ok(()),
                Some(id) => match sched_dest(id, &conf) {
                    Ok(sd)
                        if told.get(&id) != Some(&(sd.weight, sd.flags))
                            || edited.contains(&(key, d.addr, d.port)) =>
                    {
                        slot.sched()
                            .update_dest(sd)
                            .map_err(|e| DataplaneError::Sched(e.to_string()))
                    }
                    _ => Ok(()),
                },
                None => {
                    let refused = (key, Some((d.addr, d.port)));
                    if self.refused.contains(&refused) {
                        continue;
                    }
                    match place_dest(&mut self.dest_ids, &key, &conf) {
                        Ok((id, sd)) => {
                            slot.dests.insert((d.addr, d.port), id);
                            out.new_dests.push(id);
                            // A scheduler that refuses the server leaves it placed: its
                            // connections are still forwarded, and the refusal is reported.
                            slot.sched()
                                .add_dest(sd)
                                .map(drop)
                                .map_err(|e| DataplaneError::Sched(e.to_string()))
                        }
                        Err(e) => {
                            self.refused.insert(refused);
                            Err(e)
                        }
                    }
                }
            };
            if let Err(e) = result {
                out.failed.push((what(), e));
            }
        }
    }

    fn place_service(
        &mut self,
        plugins: &mut Plugins,
        conf: &ServiceConf,
    ) -> Result<u32, DataplaneError> {
        if self.service_ids.len() >= MAX_SERVICES {
            return Err(DataplaneError::Full {
                what: "virtual services",
                max: MAX_SERVICES,
            });
        }
        let inst = instance(plugins, conf)?;
        let id = u32::try_from(self.service_ids.insert(())).unwrap_or(u32::MAX);
        self.services.insert(
            conf.key,
            Slot {
                id,
                made_with: (conf.scheduler.clone(), conf.sched_flags.clone()),
                sched: Arc::new(Mutex::new(inst)),
                affinity: Arc::default(),
                dests: HashMap::new(),
            },
        );
        Ok(id)
    }
}

/// A new id for a real server, and the server as its scheduler sees it.
fn place_dest(
    ids: &mut Slab<()>,
    key: &ServiceKey,
    conf: &DestConf,
) -> Result<(u32, Dest), DataplaneError> {
    if conf.addr.is_ipv4() != key.addr.is_ipv4() {
        return Err(DataplaneError::CrossFamily {
            dest: AddrPort(conf.addr, conf.port).to_string(),
            service: key.to_string(),
        });
    }
    if ids.len() >= MAX_DESTS {
        return Err(DataplaneError::Full {
            what: "real servers",
            max: MAX_DESTS,
        });
    }
    let entry = ids.vacant_entry();
    let id = u32::try_from(entry.key()).unwrap_or(u32::MAX);
    let sd = sched_dest(id, conf)?;
    entry.insert(());
    Ok((id, sd))
}

/// A scheduler instance for `conf` from the plugin registry.
fn instance(plugins: &mut Plugins, conf: &ServiceConf) -> Result<Instance, DataplaneError> {
    let plugin = plugins
        .get(&conf.scheduler)
        .map_err(|e| DataplaneError::Sched(e.to_string()))?;
    let (addr, family) = abi_addr(conf.key.addr);
    let spec = ServiceSpec {
        addr,
        port: conf.key.port,
        family,
        protocol: match conf.key.protocol {
            // IPVS gives a firewall-mark service TCP.
            Protocol::Tcp | Protocol::Fwmark(_) => 6,
            Protocol::Udp => 17,
        },
        flags: if conf.persistence.is_some() {
            lvs_sched_abi::SVC_F_PERSISTENT
        } else {
            0
        },
        options: lvs_control::sched_flags::plugin_options(&conf.scheduler, &conf.sched_flags),
    };
    Instance::new(plugin, spec).map_err(|e| DataplaneError::Sched(e.to_string()))
}

/// A real server as its scheduler sees it: weight 0 is quiesced.
fn sched_dest(id: u32, conf: &DestConf) -> Result<Dest, DataplaneError> {
    let (addr, family) = abi_addr(conf.addr);
    Ok(Dest {
        addr,
        port: conf.port,
        family,
        weight: conf.weight,
        flags: if conf.weight == 0 {
            lvs_sched_abi::DEST_F_QUIESCED
        } else {
            0
        },
        id,
        ..Dest::default()
    })
}

/// An address as the scheduler ABI carries it: IPv4 in the first 4 of 16 bytes, and its
/// family.
pub fn abi_addr(a: IpAddr) -> ([u8; 16], u8) {
    let mut addr = [0u8; 16];
    match a {
        IpAddr::V4(v) => {
            addr[..4].copy_from_slice(&v.octets());
            (addr, lvs_sched_abi::AF_INET)
        }
        IpAddr::V6(v) => (v.octets(), lvs_sched_abi::AF_INET6),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use lvs_control::{AnyScheduler, load_rules};
    use lvs_sched_host::SearchPath;

    use super::*;

    /// The scheduler plugins `cargo build --workspace` puts beside the test binary.
    fn plugins() -> Plugins {
        let dir = lvs_testsupport::built_dir("liblvs_sched_rr.so");
        Plugins::new(SearchPath::from_dirs([dir]))
    }

    fn key() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: 80,
        }
    }

    fn rs(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn state(rules: &str) -> ControlState {
        load_rules(rules, &AnyScheduler).expect("valid rules")
    }

    /// Apply one lvsadm command line to `s`, as the control socket would.
    fn change(s: &mut ControlState, line: &str) {
        let args: Vec<&str> = line.split_whitespace().collect();
        let req = lvs_control::parse_args(&args)
            .expect(line)
            .to_request()
            .expect("a change");
        s.change(req, &AnyScheduler).expect(line);
    }

    fn sync(reg: &mut ServiceRegistry, p: &mut Plugins, s: &ControlState) -> Synced {
        reg.sync(p, s, &HashSet::new())
    }

    const RULES: &str = "-A -t 192.0.2.1:80 -s rr\n\
                         -a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1\n\
                         -a -t 192.0.2.1:80 -r 10.0.0.3:80 -m -w 1\n";

    #[test]
    fn an_edit_keeps_ids_and_the_scheduler_instance() {
        let mut p = plugins();
        let mut reg = ServiceRegistry::default();
        let mut s = state(RULES);
        let first = sync(&mut reg, &mut p, &s);
        assert_eq!(first.new_services.len(), 1);
        assert_eq!(first.new_dests.len(), 2);
        assert!(first.failed.is_empty(), "{:?}", first.failed);
        let slot = reg.service(&key()).unwrap();
        let (svc, a, b) = (slot.id, slot.dest(rs(2), 80), slot.dest(rs(3), 80));
        let sched = Arc::clone(&slot.sched);

        // Weight, thresholds, health, persistence: same ids, same instance.
        change(&mut s, "-e -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 5 -x 10");
        change(&mut s, "-E -t 192.0.2.1:80 -s rr -p 60");
        s.set_health(&key(), rs(3), 80, false).unwrap();
        let edited = sync(&mut reg, &mut p, &s);
        assert!(
            edited.new_dests.is_empty() && edited.gone_dests.is_empty(),
            "{edited:?}"
        );
        let slot = reg.service(&key()).unwrap();
        assert_eq!(
            (slot.id, slot.dest(rs(2), 80), slot.dest(rs(3), 80)),
            (svc, a, b)
        );
        assert!(
            Arc::ptr_eq(&slot.sched, &sched),
            "the scheduler keeps its state"
        );
        let weights: Vec<(u32, u32)> = slot
            .sched()
            .dests()
            .iter()
            .map(|d| (d.id, d.weight))
            .collect();
        assert_eq!(weights, vec![(a.unwrap(), 5), (b.unwrap(), 0)]);

        // Another scheduler: a new instance, told of the same servers with the same ids.
        change(&mut s, "-E -t 192.0.2.1:80 -s wrr -p 60");
        let other = sync(&mut reg, &mut p, &s);
        assert!(other.failed.is_empty(), "{:?}", other.failed);
        let slot = reg.service(&key()).unwrap();
        assert!(!Arc::ptr_eq(&slot.sched, &sched));
        assert_eq!(slot.sched().plugin().name(), "wrr");
        let ids: Vec<u32> = slot.sched().dests().iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![a.unwrap(), b.unwrap()]);
    }

    #[test]
    fn a_deleted_server_gives_its_id_back_and_leaves_its_scheduler() {
        let mut p = plugins();
        let mut reg = ServiceRegistry::default();
        let mut s = state(RULES);
        sync(&mut reg, &mut p, &s);
        let a = reg.service(&key()).unwrap().dest(rs(2), 80).unwrap();
        let b = reg.service(&key()).unwrap().dest(rs(3), 80).unwrap();
        change(&mut s, "-d -t 192.0.2.1:80 -r 10.0.0.2:80");
        let gone = sync(&mut reg, &mut p, &s);
        assert_eq!(gone.gone_dests, vec![a]);
        let slot = reg.service(&key()).unwrap();
        assert_eq!(slot.dest(rs(2), 80), None);
        assert_eq!(
            slot.dest(rs(3), 80),
            Some(b),
            "the other server keeps its id"
        );
        let ids: Vec<u32> = slot.sched().dests().iter().map(|d| d.id).collect();
        assert_eq!(ids, vec![b]);
        // Nothing changed: nothing happens.
        let again = sync(&mut reg, &mut p, &s);
        assert!(again.gone_dests.is_empty() && again.new_dests.is_empty());
        // The whole service: every id back.
        change(&mut s, "-D -t 192.0.2.1:80");
        let svc = reg.service(&key()).unwrap().id;
        let gone = sync(&mut reg, &mut p, &s);
        assert_eq!((gone.gone_services, gone.gone_dests), (vec![svc], vec![b]));
        assert!(reg.service(&key()).is_none());
    }

    #[test]
    fn what_cannot_be_forwarded_is_reported_once() {
        let mut p = plugins();
        let mut reg = ServiceRegistry::default();
        let mut s = state(RULES);
        // The control state takes any scheduler name; the plugins here are rr and wrr only. An
        // IPv6 service beside it is forwarded.
        change(&mut s, "-A -t 192.0.2.7:80 -s nosuch");
        change(&mut s, "-A -t [2001:db8::1]:80 -s rr");
        change(&mut s, "-a -t [2001:db8::1]:80 -r [2001:db8::6]:80 -m -w 1");
        let first = sync(&mut reg, &mut p, &s);
        assert_eq!(first.failed.len(), 1, "{:?}", first.failed);
        let (what, e) = &first.failed[0];
        assert!(matches!(e, DataplaneError::Sched(_)), "{e}");
        assert_eq!(what, "service TCP 192.0.2.7:80");
        let v6_key = ServiceKey {
            addr: "2001:db8::1".parse().unwrap(),
            ..key()
        };
        let v6 = reg.service(&v6_key).expect("the IPv6 service placed");
        assert!(v6.dest("2001:db8::6".parse().unwrap(), 80).is_some());
        let sd = v6.sched().dests()[0];
        assert_eq!(
            (sd.family, sd.addr),
            (
                lvs_sched_abi::AF_INET6,
                "2001:db8::6"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
            )
        );
        change(&mut s, "-e -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 3");
        assert!(sync(&mut reg, &mut p, &s).failed.is_empty(), "once");
        // Deleted and added again: tried (and reported) again.
        change(&mut s, "-D -t 192.0.2.7:80");
        sync(&mut reg, &mut p, &s);
        change(&mut s, "-A -t 192.0.2.7:80 -s nosuch");
        assert_eq!(sync(&mut reg, &mut p, &s).failed.len(), 1);
    }

    #[test]
    fn an_edit_is_told_to_the_scheduler_even_when_it_sees_no_difference() {
        let mut p = plugins();
        let mut reg = ServiceRegistry::default();
        let s = state(RULES);
        sync(&mut reg, &mut p, &s);
        let a = reg.service(&key()).unwrap().dest(rs(2), 80).unwrap();
        // The workers flag an overloaded server themselves; an unrelated change keeps it...
        {
            let slot = reg.service(&key()).unwrap();
            let mut inst = slot.sched();
            let mut d = inst.dests()[0];
            d.flags |= lvs_sched_abi::DEST_F_OVERLOADED;
            inst.update_dest(d).unwrap();
        }
        let flags = |reg: &ServiceRegistry| {
            reg.service(&key()).unwrap().sched().dests()[0].flags & lvs_sched_abi::DEST_F_OVERLOADED
        };
        sync(&mut reg, &mut p, &s);
        assert_ne!(flags(&reg), 0, "an unrelated change leaves the flag alone");
        // ...and an edit of that server is passed on as IPVS does (which clears it).
        let edited = HashSet::from([(key(), rs(2), 80)]);
        reg.sync(&mut p, &s, &edited);
        assert_eq!(flags(&reg), 0);
        assert_eq!(reg.service(&key()).unwrap().dest(rs(2), 80), Some(a));
    }
}
