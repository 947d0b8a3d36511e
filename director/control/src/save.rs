//! `ipvsadm-save` output: one `-A` line per service followed by one `-a` line per real
//! server, which `-R` (and the director's rules file) read back.
//!
//! Exactly ipvsadm 1.31's format (every tunnelled server ends with `--tun-type ipip`;
//! without `-n`, host and port names as in listings), with one addition: non-zero thresholds
//! are written as `-x`/`-y` at the end of the line, which ipvsadm's save forgets although its
//! restore accepts them; without them a save would lose configuration.

use std::fmt::Write as _;

use lvs_proto::{FwdMethod, ServiceStatus};

use crate::address::format_netmask;
use crate::hooks::ZeroStats;
use crate::names::{Names, addr_port, service_switch};
use crate::order::sort_services;
use crate::state::{ControlState, full_prefix};

/// The save text of `services` (numeric, as `-S -n`); sorted as ipvsadm sorts unless
/// `sort` is false.
pub fn save(services: &[ServiceStatus], sort: bool) -> String {
    save_named(services, sort, None)
}

/// The save text of `services` with host and port names from `names` (`-S` without `-n`),
/// numeric when `names` is `None`.
pub fn save_named(services: &[ServiceStatus], sort: bool, names: Option<&Names>) -> String {
    let mut services = services.to_vec();
    if sort {
        sort_services(&mut services);
    }
    let mut out = String::new();
    for s in &services {
        let key = s.conf.key;
        let svc = service_switch(names, &key);
        let _ = write!(out, "-A {svc} -s {}", s.conf.scheduler);
        if let Some(p) = s.conf.persistence {
            let _ = write!(out, " -p {}", p.timeout_secs);
            if p.netmask != full_prefix(&key.addr) {
                let _ = write!(out, " -M {}", format_netmask(p.netmask, key.addr.is_ipv6()));
            }
        }
        // ipvsadm writes -b last.
        if !s.conf.sched_flags.is_empty() {
            let _ = write!(out, " -b {}", s.conf.sched_flags);
        }
        out.push('\n');
        for d in &s.dests {
            let c = &d.conf;
            let _ = write!(
                out,
                "-a {svc} -r {} {} -w {}",
                addr_port(names, key.protocol, c.addr, c.port),
                c.fwd.switch(),
                c.weight
            );
            // ipvsadm 1.31 names the tunnel type of every tunnelled server; IP-in-IP is
            // the only one the data plane has.
            if c.fwd == FwdMethod::Tunnel {
                out.push_str(" --tun-type ipip");
            }
            if c.upper_threshold != 0 {
                let _ = write!(out, " -x {}", c.upper_threshold);
            }
            if c.lower_threshold != 0 {
                let _ = write!(out, " -y {}", c.lower_threshold);
            }
            out.push('\n');
        }
    }
    out
}

impl ControlState {
    /// This configuration in `ipvsadm-save` format (sorted).
    pub fn save(&self) -> String {
        let list = self.list(None, &ZeroStats).unwrap_or_default();
        save(&list, true)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use lvs_proto::{DestConf, FwdMethod, Persistence, Protocol, ServiceConf, ServiceKey};
    use proptest::prelude::*;

    use super::*;
    use crate::hooks::AnyScheduler;
    use crate::rules::load_rules;
    use crate::state::MAX_TIMEOUT;

    const GOLDEN: &str = "\
-A -t 192.0.2.1:80 -s rr
-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1
-a -t 192.0.2.1:80 -r 10.0.0.3:8080 -m -w 3 -x 100 -y 10
-A -t 192.0.2.1:443 -s wlc -p 300
-a -t 192.0.2.1:443 -r 10.0.0.2:443 -g -w 0
-A -t 192.0.2.2:0 -s sh -p 3600 -M 255.255.255.0 -b sh-port
-a -t 192.0.2.2:0 -r 10.0.0.4:0 -i -w 1 --tun-type ipip
-A -u 192.0.2.1:53 -s rr
-A -t [2001:db8::1]:80 -s rr -p 60 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -g -w 1
";

    /// Firewall-mark services as ipvsadm 1.31 saves them: after every address service, by
    /// mark, `-6` right after an IPv6 one's mark, real servers on port 0.
    #[test]
    fn fwmark_services_save_after_the_others_and_round_trip() {
        const FWM: &str = "\
-A -t 192.0.2.1:80 -s rr
-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1
-A -f 1 -s rr -p 300
-a -f 1 -r 10.0.0.2:0 -m -w 1
-a -f 1 -r 10.0.0.3:0 -g -w 2
-A -f 2 -6 -s sh -p 60 -M 64 -b sh-port
-a -f 2 -6 -r [2001:db8::10]:0 -i -w 1 --tun-type ipip
-A -f 7 -s wlc
";
        let lines: Vec<&str> = FWM.lines().collect();
        let shuffled: String = [7, 5, 6, 2, 3, 4, 0, 1]
            .iter()
            .map(|i| format!("{}\n", lines[*i]))
            .collect();
        let state = load_rules(&shuffled, &AnyScheduler).unwrap();
        assert_eq!(state.save(), FWM);
        // A mark without -p is a service of its own, not a port-0 one needing persistence.
        assert!(load_rules("-A -f 3 -s rr\n", &AnyScheduler).is_ok());
    }

    #[test]
    fn golden_save_is_ipvsadm_save_format_and_round_trips() {
        // Fed in another order: the save is sorted as ipvsadm sorts.
        let shuffled: String = {
            let lines: Vec<&str> = GOLDEN.lines().collect();
            let order = [7, 8, 9, 3, 4, 0, 2, 1, 5, 6];
            order.iter().map(|i| format!("{}\n", lines[*i])).collect()
        };
        let state = load_rules(&shuffled, &AnyScheduler).unwrap();
        assert_eq!(state.save(), GOLDEN);
        let again = load_rules(GOLDEN, &AnyScheduler).unwrap();
        assert_eq!(again.save(), GOLDEN);
        assert_eq!(save(&again.list(None, &ZeroStats).unwrap(), false), GOLDEN);
    }

    /// IPv6 as `ipvsadm -S -n` writes it: bracketed with the port, compressed lower-case
    /// addresses, `-M` as a prefix length, every IPv4 service (UDP too) before the IPv6
    /// ones; `-R` reads it back to the same text, and a bracket-less IPv6 real server (no
    /// port) takes the service's port.
    #[test]
    fn ipv6_save_is_ipvsadm_save_format_and_round_trips() {
        const V6: &str = "\
-A -t 192.0.2.1:80 -s rr
-a -t 192.0.2.1:80 -r 192.0.2.20:80 -i -w 1 --tun-type ipip
-A -u 192.0.2.1:53 -s rr
-A -t [2001:db8::1]:0 -s sh -p 3600 -M 48 -b sh-port
-a -t [2001:db8::1]:0 -r [2001:db8::10]:0 -g -w 1
-A -t [2001:db8::1]:443 -s wlc -p 300
-a -t [2001:db8::1]:443 -r [2001:db8::10]:8443 -m -w 2 -x 100 -y 10
-a -t [2001:db8::1]:443 -r [2001:db8:ffff:ffff:ffff:ffff:ffff:10]:443 -g -w 0
-A -u [2001:db8::53]:53 -s rr
-a -u [2001:db8::53]:53 -r [2001:db8::10]:53 -g -w 1
";
        let state = load_rules(V6, &AnyScheduler).unwrap();
        assert_eq!(state.save(), V6);
        let upper = V6
            .replace("[2001:db8::53]", "[2001:DB8:0:0::53]")
            .replace("-r [2001:db8::10]:53", "-r 2001:db8::10");
        assert_eq!(load_rules(&upper, &AnyScheduler).unwrap().save(), V6);
        // A full-length mask (128) is not written, as for IPv4's /32.
        let full = load_rules("-A -t [2001:db8::1]:80 -s rr -p 60 -M 128\n", &AnyScheduler)
            .unwrap()
            .save();
        assert_eq!(full, "-A -t [2001:db8::1]:80 -s rr -p 60\n");
    }

    /// An IPv6 service persistent per /64 with a tunnelled, a direct-routed and a masqueraded
    /// IPv6 real server: `-S` writes what ipvsadm 1.31 writes (`-M 64`), `-R` of it restores
    /// the same state, whose save is the same text again.
    #[test]
    fn ipv6_persistent_64_with_every_forwarding_method_round_trips() {
        const TEXT: &str = "\
-A -t [2001:db8::1]:443 -s wrr -p 600 -M 64
-a -t [2001:db8::1]:443 -r [2001:db8:1::10]:443 -i -w 3 --tun-type ipip
-a -t [2001:db8::1]:443 -r [2001:db8:1::11]:443 -g -w 2
-a -t [2001:db8::1]:443 -r [2001:db8:1::12]:8443 -m -w 1
";
        let state = load_rules(TEXT, &AnyScheduler).unwrap();
        let list = state.list(None, &ZeroStats).unwrap();
        assert_eq!(list.len(), 1);
        let p = list[0].conf.persistence.as_ref().unwrap();
        assert_eq!((p.timeout_secs, p.netmask), (600, 64));
        assert_eq!(save(&list, false), TEXT);
        let again = load_rules(&save(&list, false), &AnyScheduler).unwrap();
        assert_eq!(again.save(), TEXT);
        assert_eq!(again.list(None, &ZeroStats).unwrap(), list);
    }

    /// `-S` without `-n`: host and port names where `/etc/hosts` and `/etc/services` have
    /// them, numbers elsewhere (the real binary's round trip is in lvsadm's tests).
    #[test]
    fn named_save_names_hosts_and_ports() {
        let names = Names::from_text(
            "192.0.2.1 www\n10.0.0.2 web1\n".into(),
            "http 80/tcp\ndomain 53/udp\n".into(),
        );
        let state = load_rules(
            "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -i -w 1\n\
             -a -t 192.0.2.1:80 -r 10.0.0.3:80 -g -w 1\n-A -u 192.0.2.1:53 -s rr\n\
             -A -t 192.0.2.1:8080 -s rr\n",
            &AnyScheduler,
        )
        .unwrap();
        let list = state.list(None, &ZeroStats).unwrap();
        assert_eq!(
            save_named(&list, true, Some(&names)),
            "-A -t www:http -s rr\n\
             -a -t www:http -r web1:http -i -w 1 --tun-type ipip\n\
             -a -t www:http -r 10.0.0.3:http -g -w 1\n\
             -A -t www:8080 -s rr\n\
             -A -u www:domain -s rr\n"
        );
    }

    fn addr4() -> impl Strategy<Value = IpAddr> {
        (0u8..4).prop_map(|n| IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    fn addr6() -> impl Strategy<Value = IpAddr> {
        (0u16..4).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)))
    }

    fn service() -> impl Strategy<Value = ServiceConf> {
        (
            prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
            prop_oneof![3 => addr4(), 1 => addr6()],
            prop_oneof![Just(0u16), Just(80), Just(443), Just(65535)],
            prop::sample::select(vec!["rr", "wlc", "sh", "mh"]),
            prop::sample::select(vec!["", "flag-1", "flag-3,flag-2", "flag-1,seed=7"]),
            proptest::option::of((1..=MAX_TIMEOUT, 0u8..=128)),
        )
            .prop_map(|(protocol, addr, port, sched, flags, pers)| {
                let full = if addr.is_ipv4() { 32 } else { 128 };
                let pers = pers.or((port == 0).then_some((300, full)));
                ServiceConf {
                    key: ServiceKey {
                        protocol,
                        addr,
                        port,
                    },
                    scheduler: sched.into(),
                    sched_flags: crate::sched_flags::normalize(sched, flags)
                        .expect("flag-N and key=value go with any scheduler"),
                    persistence: pers.map(|(timeout_secs, m)| Persistence {
                        timeout_secs,
                        netmask: if addr.is_ipv4() { m % 33 } else { m.max(1) },
                    }),
                }
            })
    }

    fn dest() -> impl Strategy<Value = DestConf> {
        (
            prop_oneof![3 => addr4(), 1 => addr6()],
            1u16..,
            prop_oneof![
                Just(FwdMethod::Masq),
                Just(FwdMethod::Route),
                Just(FwdMethod::Tunnel)
            ],
            0..=65535u32,
            0..1000u32,
            0..1000u32,
        )
            .prop_map(|(addr, port, fwd, weight, a, b)| DestConf {
                addr,
                port,
                fwd,
                weight,
                upper_threshold: a.max(b),
                lower_threshold: a.min(b),
            })
    }

    fn state() -> impl Strategy<Value = ControlState> {
        prop::collection::vec((service(), prop::collection::vec(dest(), 0..5)), 0..6).prop_map(
            |services| {
                let mut state = ControlState::new();
                for (conf, dests) in services {
                    let key = conf.key;
                    if state.add_service(conf, &AnyScheduler).is_err() {
                        continue;
                    }
                    for mut d in dests {
                        if d.addr.is_ipv4() != key.addr.is_ipv4() {
                            d.fwd = FwdMethod::Tunnel;
                        }
                        // Refusals (duplicates) are fine: the state stays valid.
                        let _ = state.add_dest(&key, d);
                    }
                }
                state
            },
        )
    }

    proptest! {
        /// save -> restore -> save is the identity, and restore rebuilds the same
        /// configuration (in ipvsadm's order).
        #[test]
        fn save_restore_round_trip(state in state()) {
            let text = state.save();
            let restored = load_rules(&text, &AnyScheduler).unwrap();
            prop_assert_eq!(restored.save(), text.clone());
            let mut want = state.list(None, &ZeroStats).unwrap();
            crate::order::sort_services(&mut want);
            prop_assert_eq!(restored.list(None, &ZeroStats).unwrap(), want);
        }
    }
}
