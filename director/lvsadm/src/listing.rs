//! `-L` output, column for column as ipvsadm prints it (trailing blanks included: ipvsadm
//! pads its last column too, and scripts that compare output byte for byte exist).
//!
//! With `-n` addresses and ports are numbers; without it, names where `/etc/hosts` and
//! `/etc/services` have one (`names` is `None` for `-n`), cut to ipvsadm's column widths
//! for IPv4 as ipvsadm cuts them.

use std::fmt::Write as _;

use lvs_control::names::{addr_port, service_label};
use lvs_control::order::sort_services;
use lvs_control::{ListFormat, ListOptions, Names};
use lvs_proto::{ConnEntry, DirectorInfo, FwdMethod, ServiceStatus, Timeouts};

/// ipvsadm's `svc_name[33]` and `dname[28]`: an IPv4 service (with its protocol) and
/// server are cut to these widths in listings; IPv6 ones are not.
const SERVICE_WIDTH: usize = 33;
const SERVER_WIDTH: usize = 28;

/// The first line of a full listing.
pub fn header(info: &DirectorInfo) -> String {
    format!(
        "IP Virtual Server version {} (size={})\n",
        info.version, info.conn_table_size
    )
}

/// The two title lines for `format`.
pub fn title(format: ListFormat) -> String {
    let local = "Prot LocalAddress:Port";
    let remote = "  -> RemoteAddress:Port";
    match format {
        ListFormat::Stats => format!(
            "{local:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{remote}\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        ListFormat::Rate => format!(
            "{local:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{remote}\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        ListFormat::Thresholds => format!(
            "{local:<33} {:<10} {:<10} {:<10} {:<10}\n{remote}\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        ListFormat::PersistentConn => format!(
            "{local:<33} {:<9} {:<11} {:<10} {:<10}\n{remote}\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        ListFormat::Plain => format!(
            "{local} Scheduler Flags\n{remote}           Forward Weight ActiveConn InActConn\n"
        ),
        ListFormat::TunInfo => format!(
            "{local} Scheduler Flags\n\
             {remote}           Forward TunnelInfo    Weight ActiveConn InActConn\n"
        ),
    }
}

fn cut(mut text: String, v4: bool, width: usize) -> String {
    if v4 && text.len() > width {
        let mut at = width;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}

/// ipvsadm's `print_largenum`: nine columns, scaled to K/M/G/T unless `exact`.
pub fn largenum(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    match n {
        0..100_000_000 => format!("{n:>9}"),
        100_000_000..1_000_000_000 => format!("{:>8}K", n / 1_000),
        1_000_000_000..100_000_000_000 => format!("{:>8}M", n / 1_000_000),
        100_000_000_000..100_000_000_000_000 => format!("{:>8}G", n / 1_000_000_000),
        _ => format!("{:>8}T", n / 1_000_000_000_000),
    }
}

/// The title and every service with its real servers (sorted unless `--nosort`).
pub fn services(list: &[ServiceStatus], opts: &ListOptions, names: Option<&Names>) -> String {
    let mut list = list.to_vec();
    if opts.sort {
        sort_services(&mut list);
    }
    let mut out = title(opts.format);
    for s in &list {
        service(&mut out, s, opts, names);
    }
    out
}

fn service(out: &mut String, s: &ServiceStatus, opts: &ListOptions, names: Option<&Names>) {
    let key = s.conf.key;
    let exact = opts.exact;
    let v4 = key.addr.is_ipv4();
    // ipvsadm cuts an IPv4 address service's name, never a firewall-mark one.
    let name = cut(
        service_label(names, &key),
        v4 && key.mark().is_none(),
        SERVICE_WIDTH,
    );
    match opts.format {
        ListFormat::Stats => {
            let st = &s.stats;
            let _ = write!(out, "{name:<33}");
            for n in [st.conns, st.in_pkts, st.out_pkts, st.in_bytes, st.out_bytes] {
                out.push_str(&largenum(n, exact));
            }
        }
        ListFormat::Rate => {
            let r = &s.rates;
            let _ = write!(out, "{name:<33}");
            for n in [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps] {
                out.push_str(&largenum(n, exact));
            }
        }
        // Thresholds and persistent-conn share the plain service line, as in ipvsadm.
        ListFormat::Plain
        | ListFormat::Thresholds
        | ListFormat::PersistentConn
        | ListFormat::TunInfo => {
            let _ = write!(out, "{name} {}", s.conf.scheduler);
            if !s.conf.sched_flags.is_empty() {
                let _ = write!(out, " ({})", s.conf.sched_flags);
            }
            if let Some(p) = s.conf.persistence {
                let _ = write!(out, " persistent {}", p.timeout_secs);
                if p.netmask != lvs_control::state::full_prefix(&key.addr) {
                    let mask = lvs_control::address::format_netmask(p.netmask, key.addr.is_ipv6());
                    let _ = write!(out, " mask {mask}");
                }
            }
        }
    }
    out.push('\n');
    for d in &s.dests {
        let c = &d.conf;
        let dname = cut(
            addr_port(names, key.protocol, c.addr, c.port),
            v4,
            SERVER_WIDTH,
        );
        let _ = match opts.format {
            ListFormat::Stats => {
                let st = &d.stats;
                let mut line = format!("  -> {dname:<28}");
                for n in [st.conns, st.in_pkts, st.out_pkts, st.in_bytes, st.out_bytes] {
                    line.push_str(&largenum(n, exact));
                }
                writeln!(out, "{line}")
            }
            ListFormat::Rate => {
                let r = &d.rates;
                writeln!(
                    out,
                    "  -> {dname:<28} {:>8} {:>8} {:>8}{}{}",
                    r.cps,
                    r.in_pps,
                    r.out_pps,
                    largenum(r.in_bps, exact),
                    largenum(r.out_bps, exact)
                )
            }
            ListFormat::Thresholds => writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                c.upper_threshold, c.lower_threshold, d.active_conns, d.inactive_conns
            ),
            ListFormat::PersistentConn => writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                c.weight, d.persist_conns, d.active_conns, d.inactive_conns
            ),
            // IP-in-IP is the only tunnel type; other methods have no tunnel ("n/a").
            ListFormat::TunInfo => writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                c.fwd.name(),
                if c.fwd == FwdMethod::Tunnel {
                    "ipip"
                } else {
                    "n/a"
                },
                c.weight,
                d.active_conns,
                d.inactive_conns
            ),
            ListFormat::Plain => writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                c.fwd.name(),
                c.weight,
                d.active_conns,
                d.inactive_conns
            ),
        };
    }
}

/// `-L -c`; with `--persistent-conn`, ipvsadm's title with the persistence engine's
/// columns, which stay empty (lvs-rs has no persistence engines, and ipvsadm prints them
/// only for entries that have one).
pub fn connections(conns: &[ConnEntry], format: ListFormat, names: Option<&Names>) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = if format == ListFormat::PersistentConn {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        )
    } else {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        )
    };
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expire_secs / 60, c.expire_secs % 60);
        let state = if c.template && c.state.is_empty() {
            "NONE"
        } else {
            &c.state
        };
        let _ = writeln!(
            out,
            "{:<3} {expire:<6} {state:<11} {:<18} {:<18} {}",
            c.protocol.name(),
            addr_port(names, c.protocol, c.client.0, c.client.1),
            addr_port(names, c.protocol, c.virtual_addr.0, c.virtual_addr.1),
            addr_port(names, c.protocol, c.dest.0, c.dest.1),
        );
    }
    out
}

/// `-L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `-L --daemon` of the daemons `lvsadm --start-daemon` started: exactly ipvsadm's lines,
/// one per daemon.
pub fn daemons(list: &[lvs_proto::director::SyncDaemon]) -> String {
    list.iter().map(|d| format!("{d}\n")).collect()
}

/// `-L --daemon` of the sync configured in `[sync]` of the director's file (unicast peers,
/// following the director's role, which no ipvsadm line can say): an ipvsadm-like first line
/// (`master sync daemon (...)`), then the sync counters. Nothing when no sync runs, as
/// ipvsadm prints nothing without a daemon. An active-active director (every director sends
/// and receives) says so on the first line, and adds its count of flows taken in mid-flow.
pub fn daemon(s: &lvs_proto::director::SyncStatus) -> String {
    if !s.enabled {
        return String::new();
    }
    let role = match (s.active_active, s.active) {
        (true, _) => "active-active",
        (false, true) => "master",
        (false, false) => "backup",
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    let heard = s
        .last_heard_ms
        .map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms ago"));
    let mut text = format!(
        "{} sync daemon (listen={}, peers={}, syncid={})\n\
         synced: {}  bulk resync complete: {}  active peer heard: {}\n\
         sent: {} datagrams, {} entries\n\
         received: {} datagrams, {} entries applied\n\
         rejected: bad_mac {}, replay {}, truncated {}, other {}\n\
         dropped: {}  bulk resyncs: {}\n",
        role,
        s.listen,
        s.peers.join(","),
        s.sync_id,
        yes(s.synced),
        yes(s.bulk_complete),
        heard,
        s.sent,
        s.entries_sent,
        s.received,
        s.entries_applied,
        s.rejected_mac,
        s.rejected_replay,
        s.rejected_truncated,
        s.rejected_other,
        s.dropped,
        s.bulk_resyncs,
    );
    if s.active_active {
        text.push_str(&format!(
            "mid-flow connections created: {}\n",
            s.midflow_created
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use lvs_control::ListWhat;
    use lvs_proto::{
        DestConf, DestStatus, FwdMethod, Persistence, Protocol, Rates, ServiceConf, ServiceKey,
        Stats,
    };

    use super::*;

    fn opts(format: ListFormat, exact: bool) -> ListOptions {
        ListOptions {
            what: ListWhat::Services(None),
            format,
            numeric: true,
            exact,
            sort: true,
        }
    }

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, d))
    }

    fn sample() -> Vec<ServiceStatus> {
        let dest = |d: u8, port, fwd, weight, n: u64| DestStatus {
            conf: DestConf {
                addr: v4(d),
                port,
                fwd,
                weight,
                upper_threshold: 100 * u32::from(d),
                lower_threshold: 10 * u32::from(d),
            },
            active_conns: u32::from(d),
            inactive_conns: 2 * u32::from(d),
            persist_conns: 3 * u32::from(d),
            stats: Stats {
                conns: n,
                in_pkts: n * 10,
                out_pkts: n * 9,
                in_bytes: n * 1000,
                out_bytes: n * 100_000,
            },
            rates: Rates {
                cps: n,
                in_pps: n * 10,
                out_pps: n * 9,
                in_bps: n * 1000,
                out_bps: n * 100_000,
            },
        };
        vec![
            ServiceStatus {
                conf: ServiceConf {
                    key: ServiceKey {
                        protocol: Protocol::Udp,
                        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                        port: 53,
                    },
                    scheduler: "rr".into(),
                    sched_flags: String::new(),
                    persistence: None,
                },
                stats: Stats::default(),
                rates: Rates::default(),
                dests: vec![],
            },
            ServiceStatus {
                conf: ServiceConf {
                    key: ServiceKey {
                        protocol: Protocol::Tcp,
                        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                        port: 80,
                    },
                    scheduler: "wlc".into(),
                    sched_flags: "flag-1".into(),
                    persistence: Some(Persistence {
                        timeout_secs: 300,
                        netmask: 24,
                    }),
                },
                stats: Stats {
                    conns: 123_456_789,
                    in_pkts: 99_999_999,
                    out_pkts: 1_234_567_890,
                    in_bytes: 123_456_789_012,
                    out_bytes: 123_456_789_012_345,
                },
                rates: Rates {
                    cps: 7,
                    in_pps: 70,
                    out_pps: 63,
                    in_bps: 7000,
                    out_bps: 700_000,
                },
                dests: vec![
                    dest(3, 8080, FwdMethod::Masq, 2, 5),
                    dest(2, 80, FwdMethod::Route, 1, 0),
                    dest(4, 80, FwdMethod::Tunnel, 0, 1000),
                ],
            },
        ]
    }

    #[test]
    fn plain_listing() {
        let want = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.1:80 wlc (flag-1) persistent 300 mask 255.255.255.0
  -> 10.0.0.2:80                  Route   1      2          4         
  -> 10.0.0.3:8080                Masq    2      3          6         
  -> 10.0.0.4:80                  Tunnel  0      4          8         
UDP  192.0.2.1:53 rr
";
        assert_eq!(
            services(&sample(), &opts(ListFormat::Plain, false), None),
            want
        );
    }

    /// ipvsadm 1.31's `FWM  1` and `FWM  2 IPv6` lines, never cut, with their servers on
    /// port 0.
    #[test]
    fn fwmark_services_are_listed_as_ipvsadm_lists_them() {
        let rules = "-A -f 1 -s rr -p 300\n-a -f 1 -r 10.0.0.2:0 -m -w 1\n\
                     -A -f 2 -6 -s wlc\n-a -f 2 -6 -r 2001:db8::10 -g -w 2\n";
        let state = lvs_control::load_rules(rules, &lvs_control::AnyScheduler).unwrap();
        let list = state.list(None, &lvs_control::ZeroStats).unwrap();
        let want = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  1 rr persistent 300
  -> 10.0.0.2:0                   Masq    1      0          0         
FWM  2 IPv6 wlc
  -> [2001:db8::10]:0             Route   2      0          0         
";
        assert_eq!(services(&list, &opts(ListFormat::Plain, false), None), want);
    }

    #[test]
    fn nosort_keeps_configuration_order() {
        let mut o = opts(ListFormat::Plain, false);
        o.sort = false;
        let out = services(&sample(), &o, None);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[2].starts_with("UDP  192.0.2.1:53"));
        assert!(lines[4].starts_with("  -> 10.0.0.3:8080"));
    }

    #[test]
    fn stats_listing_scales_unless_exact() {
        let want = "\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.1:80                  123456K 99999999    1234M     123G     123T
  -> 10.0.0.2:80                         0        0        0        0        0
  -> 10.0.0.3:8080                       5       50       45     5000   500000
  -> 10.0.0.4:80                      1000    10000     9000  1000000  100000K
UDP  192.0.2.1:53                        0        0        0        0        0
";
        assert_eq!(
            services(&sample(), &opts(ListFormat::Stats, false), None),
            want
        );
        let exact = services(&sample(), &opts(ListFormat::Stats, true), None);
        assert_eq!(
            exact.lines().nth(2).unwrap(),
            "TCP  192.0.2.1:80                 123456789 99999999 1234567890 123456789012 123456789012345"
        );
        assert_eq!(
            exact.lines().nth(5).unwrap(),
            "  -> 10.0.0.4:80                      1000    10000     9000  1000000 100000000"
        );
    }

    #[test]
    fn rate_listing() {
        let want = "\
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  192.0.2.1:80                        7       70       63     7000   700000
  -> 10.0.0.2:80                         0        0        0        0        0
  -> 10.0.0.3:8080                       5       50       45     5000   500000
  -> 10.0.0.4:80                      1000    10000     9000  1000000  100000K
UDP  192.0.2.1:53                        0        0        0        0        0
";
        assert_eq!(
            services(&sample(), &opts(ListFormat::Rate, false), None),
            want
        );
    }

    #[test]
    fn thresholds_and_persistent_conn_listings() {
        let want = "\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.0.2.1:80 wlc (flag-1) persistent 300 mask 255.255.255.0
  -> 10.0.0.2:80                  200        20         2          4         
  -> 10.0.0.3:8080                300        30         3          6         
  -> 10.0.0.4:80                  400        40         4          8         
UDP  192.0.2.1:53 rr
";
        assert_eq!(
            services(&sample(), &opts(ListFormat::Thresholds, false), None),
            want
        );
        let want = "\
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.0.2.1:80 wlc (flag-1) persistent 300 mask 255.255.255.0
  -> 10.0.0.2:80                  1         6           2          4         
  -> 10.0.0.3:8080                2         9           3          6         
  -> 10.0.0.4:80                  0         12          4          8         
UDP  192.0.2.1:53 rr
";
        assert_eq!(
            services(&sample(), &opts(ListFormat::PersistentConn, false), None),
            want
        );
    }

    #[test]
    fn header_timeouts_and_connections() {
        let info = DirectorInfo {
            version: "1.2.1".into(),
            conn_table_size: 4096,
            conn_count: 0,
        };
        assert_eq!(
            header(&info),
            "IP Virtual Server version 1.2.1 (size=4096)\n"
        );
        assert_eq!(
            timeouts(&Timeouts::default()),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
        let conns = [
            ConnEntry {
                protocol: Protocol::Tcp,
                expire_secs: 899,
                state: "ESTABLISHED".into(),
                client: (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40000),
                virtual_addr: (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80),
                dest: (v4(2), 80),
                template: false,
            },
            ConnEntry {
                protocol: Protocol::Tcp,
                expire_secs: 61,
                state: String::new(),
                client: (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 0),
                virtual_addr: (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80),
                dest: (v4(2), 80),
                template: true,
            },
        ];
        let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.51.100.7:40000 192.0.2.1:80       10.0.0.2:80
TCP 01:01  NONE        198.51.100.7:0     192.0.2.1:80       10.0.0.2:80
";
        assert_eq!(connections(&conns, ListFormat::Plain, None), want);
    }

    /// `-L --tun-info` as ipvsadm 1.31 prints it: IP-in-IP for tunnelled servers, "n/a"
    /// for the others.
    #[test]
    fn tun_info_listing() {
        let want = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.0.2.1:80 wlc (flag-1) persistent 300 mask 255.255.255.0
  -> 10.0.0.2:80                  Route   n/a           1      2          4         
  -> 10.0.0.3:8080                Masq    n/a           2      3          6         
  -> 10.0.0.4:80                  Tunnel  ipip          0      4          8         
UDP  192.0.2.1:53 rr
";
        assert_eq!(
            services(&sample(), &opts(ListFormat::TunInfo, false), None),
            want
        );
    }

    /// Without `-n`: names from the hosts and services files, numbers where they have none,
    /// an IPv4 service cut to 33 characters and a server to 28 as ipvsadm cuts them.
    #[test]
    fn names_without_numeric() {
        let names = Names::from_text(
            "192.0.2.1 vip.example.org\n\
             10.0.0.2 web-server-number-two.example.org\n\
             10.0.0.3 web3\n"
                .into(),
            "http 80/tcp www\ndomain 53/udp\nwebcache 8080/tcp\n".into(),
        );
        let want = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  vip.example.org:http wlc (flag-1) persistent 300 mask 255.255.255.0
  -> web-server-number-two.exampl Route   1      2          4         
  -> web3:webcache                Masq    2      3          6         
  -> 10.0.0.4:http                Tunnel  0      4          8         
UDP  vip.example.org:domain rr
";
        let o = opts(ListFormat::Plain, false);
        assert_eq!(services(&sample(), &o, Some(&names)), want);
        let long = Names::from_text(
            "192.0.2.1 a-very-long-virtual-service-name.example.org\n".into(),
            String::new(),
        );
        let out = services(&sample(), &o, Some(&long));
        assert_eq!(
            out.lines().nth(2).unwrap(),
            "TCP  a-very-long-virtual-service- wlc (flag-1) persistent 300 mask 255.255.255.0"
        );
        let conns = [ConnEntry {
            protocol: Protocol::Tcp,
            expire_secs: 5,
            state: "FIN_WAIT".into(),
            client: (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40000),
            virtual_addr: (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80),
            dest: (v4(3), 80),
            template: false,
        }];
        assert_eq!(
            connections(&conns, ListFormat::PersistentConn, Some(&names)),
            "\
IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
TCP 00:05  FIN_WAIT    198.51.100.7:40000 vip.example.org:http web3:http
"
        );
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    /// One IPv6 service, one IPv4 service and their real servers, IPv6 ones of both
    /// address lengths (one longer than ipvsadm's 28-column field).
    fn sample_v6() -> Vec<ServiceStatus> {
        let dest = |addr, port, fwd, n: u32| DestStatus {
            conf: DestConf {
                addr,
                port,
                fwd,
                weight: n,
                upper_threshold: 0,
                lower_threshold: 0,
            },
            active_conns: n,
            inactive_conns: 2 * n,
            persist_conns: 0,
            stats: Stats {
                conns: u64::from(n),
                ..Stats::default()
            },
            rates: Rates::default(),
        };
        let service = |protocol, addr, port, persistence, dests| ServiceStatus {
            conf: ServiceConf {
                key: ServiceKey {
                    protocol,
                    addr,
                    port,
                },
                scheduler: "rr".into(),
                sched_flags: String::new(),
                persistence,
            },
            stats: Stats::default(),
            rates: Rates::default(),
            dests,
        };
        vec![
            service(
                Protocol::Tcp,
                v6("2001:db8::1"),
                80,
                Some(Persistence {
                    timeout_secs: 300,
                    netmask: 64,
                }),
                vec![
                    dest(
                        v6("2001:db8:ffff:ffff:ffff:ffff:ffff:10"),
                        80,
                        FwdMethod::Route,
                        3,
                    ),
                    dest(v6("2001:db8::10"), 8080, FwdMethod::Masq, 1),
                ],
            ),
            service(
                Protocol::Udp,
                v6("2001:db8::53"),
                53,
                None,
                vec![dest(v6("2001:db8::10"), 53, FwdMethod::Tunnel, 0)],
            ),
            service(
                Protocol::Udp,
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                53,
                None,
                vec![dest(v6("2001:db8::20"), 53, FwdMethod::Tunnel, 2)],
            ),
        ]
    }

    /// ipvsadm 1.31 `-L -n`: `[addr]:port`, the same fixed widths as IPv4 (a longer address
    /// pushes the rest of its line right, never truncated), IPv4 services first.
    #[test]
    fn ipv6_listings() {
        let plain = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  192.0.2.1:53 rr
  -> [2001:db8::20]:53            Tunnel  2      2          4         
TCP  [2001:db8::1]:80 rr persistent 300 mask 64
  -> [2001:db8::10]:8080          Masq    1      1          2         
  -> [2001:db8:ffff:ffff:ffff:ffff:ffff:10]:80 Route   3      3          6         
UDP  [2001:db8::53]:53 rr
  -> [2001:db8::10]:53            Tunnel  0      0          0         
";
        let stats = "\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
UDP  192.0.2.1:53                        0        0        0        0        0
  -> [2001:db8::20]:53                   2        0        0        0        0
TCP  [2001:db8::1]:80                    0        0        0        0        0
  -> [2001:db8::10]:8080                 1        0        0        0        0
  -> [2001:db8:ffff:ffff:ffff:ffff:ffff:10]:80        3        0        0        0        0
UDP  [2001:db8::53]:53                   0        0        0        0        0
  -> [2001:db8::10]:53                   0        0        0        0        0
";
        for (format, want) in [(ListFormat::Plain, plain), (ListFormat::Stats, stats)] {
            assert_eq!(
                services(&sample_v6(), &opts(format, false), None),
                want,
                "{format:?}"
            );
        }
    }

    #[test]
    fn ipv6_connections() {
        // A connection and its persistence template (client port 0, no state).
        let conns = [
            ("SYN_RECV", "2001:db8:1::7", 40000),
            ("", "2001:db8:1::", 0),
        ]
        .map(|(state, client, port)| ConnEntry {
            protocol: Protocol::Tcp,
            expire_secs: 119,
            state: state.into(),
            client: (v6(client), port),
            virtual_addr: (v6("2001:db8::1"), 80),
            dest: (v6("2001:db8::10"), 8080),
            template: port == 0,
        });
        let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 01:59  SYN_RECV    [2001:db8:1::7]:40000 [2001:db8::1]:80   [2001:db8::10]:8080
TCP 01:59  NONE        [2001:db8:1::]:0   [2001:db8::1]:80   [2001:db8::10]:8080
";
        assert_eq!(connections(&conns, ListFormat::Plain, None), want);
    }

    #[test]
    fn largenum_matches_ipvsadm() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(999_999_999, false), "  999999K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(99_999_999_999, false), "   99999M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(u64::MAX, false), "18446744T");
        assert_eq!(largenum(12, true), "       12");
        assert_eq!(largenum(123_456_789, true), " 123456789");
    }

    #[test]
    fn started_daemons_read_exactly_as_ipvsadm_lists_them() {
        use lvs_proto::director::{SyncDaemon, SyncDaemonState};
        let master = SyncDaemon {
            state: SyncDaemonState::Master,
            mcast_ifn: "eth0".into(),
            syncid: 0,
            maxlen: 1472,
            group: Some(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81))),
            port: 8848,
            ttl: 1,
        };
        assert_eq!(daemons(&[]), "");
        assert_eq!(
            daemons(&[master]),
            "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        );
    }

    #[test]
    fn daemon_status_reads_like_ipvsadm_then_counters() {
        let off = lvs_proto::director::SyncStatus::default();
        assert_eq!(daemon(&off), "", "no sync: nothing, as ipvsadm");
        let s = lvs_proto::director::SyncStatus {
            enabled: true,
            sync_id: 3,
            listen: "0.0.0.0:8848".into(),
            peers: vec!["192.0.2.2:8848".into()],
            synced: true,
            bulk_complete: true,
            last_heard_ms: Some(120),
            rejected_replay: 2,
            ..Default::default()
        };
        let text = daemon(&s);
        assert!(text.starts_with(
            "backup sync daemon (listen=0.0.0.0:8848, peers=192.0.2.2:8848, syncid=3)\n"
        ));
        assert!(text.contains("synced: yes"));
        assert!(text.contains("replay 2"));
        assert!(!text.contains("mid-flow"));
        let aa = lvs_proto::director::SyncStatus {
            active_active: true,
            active: true,
            midflow_created: 7,
            ..s
        };
        let text = daemon(&aa);
        assert!(
            text.starts_with("active-active sync daemon (listen="),
            "{text}"
        );
        assert!(
            text.ends_with("mid-flow connections created: 7\n"),
            "{text}"
        );
    }
}
