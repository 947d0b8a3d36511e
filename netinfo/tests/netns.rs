//! Real tests in network namespaces: two namespaces joined by a veth pair, the crate's code
//! running inside one of them on a thread that entered it with setns(2) (and is then thrown
//! away). Namespaces are removed by a Drop guard, also when a test fails. Needs root.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lvs_netinfo::{
    AddressChange, GarpKind, Link, MacAddr, NetChange, Netlink, NetlinkMonitor, NextHopLookup,
    NudState, PendingNeighbour, ResolveTrigger, Resolved, disable_receive_offloads, gro_enabled,
    lro_enabled, resolve_by_datagram, send_gratuitous_arp, set_gro,
};

const MAC_A: &str = "02:4c:56:00:00:0a";
const MAC_B: &str = "02:4c:56:00:00:0b";
const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- test harness

use lvs_testsupport::root_or_skip as is_root;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "`{cmd} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
struct Ns {
    name: String,
}

impl Ns {
    fn new() -> Ns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("lvsnl-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args...`
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip netns exec <ns> cmd...` (the program first, as every test helper takes it)
    fn exec(&self, cmd: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(cmd);
        run("ip", &all)
    }

    /// Run `f` on a fresh thread that entered this namespace; the thread ends with `f`.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let handle = s.spawn(move || {
                enter_netns(&path);
                f()
            });
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn enter_netns(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: `file` is an open namespace file; setns(2) only changes this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
}

/// Two namespaces A and B joined by veth `va` (in A, 10.77.0.1/24) -- `vb` (in B, 10.77.0.2/24).
struct Pair {
    a: Ns,
    b: Ns,
}

fn pair() -> Pair {
    let a = Ns::new();
    let b = Ns::new();
    run(
        "ip",
        &[
            "link", "add", "name", "va", "netns", &a.name, "type", "veth", "peer", "name", "vb",
            "netns", &b.name,
        ],
    );
    a.ip(&["link", "set", "va", "address", MAC_A, "mtu", "1400", "up"]);
    b.ip(&["link", "set", "vb", "address", MAC_B, "up"]);
    a.ip(&["addr", "add", "10.77.0.1/24", "dev", "va"]);
    b.ip(&["addr", "add", "10.77.0.2/24", "dev", "vb"]);
    Pair { a, b }
}

/// Call `f` until it returns `Some`, or panic with `what` after [`DEADLINE`].
fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    lvs_testsupport::wait_for(what, DEADLINE, f)
}

/// Wait until `fd` is readable or `timeout` passes; true when readable.
fn readable(fd: &impl AsFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
    rc > 0
}

fn link<'a>(links: &'a [Link], name: &str) -> &'a Link {
    links
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no link {name} in {links:?}"))
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- links and addresses

#[test]
fn links_are_listed_with_mac_and_mtu() {
    if !is_root("links_are_listed_with_mac_and_mtu") {
        return;
    }
    let p = pair();
    let links = p.a.run(|| Netlink::open().unwrap().links().unwrap());
    assert_eq!(links.len(), 2, "{links:?}");
    let lo = link(&links, "lo");
    assert!(lo.loopback && lo.up && !lo.is_forwarding_candidate());
    let va = link(&links, "va");
    assert_eq!(va.mac, Some(mac(MAC_A)));
    assert_eq!(va.mtu, 1400);
    assert!(va.up && !va.loopback && va.is_forwarding_candidate());
    // Same index as `ip` reports.
    let shown = p.a.ip(&["-o", "link", "show", "va"]);
    assert!(
        shown.starts_with(&format!("{}: va@", va.ifindex)),
        "{shown}"
    );

    p.a.ip(&["link", "set", "va", "down"]);
    let va =
        p.a.run(|| Netlink::open().unwrap().link_by_name("va").unwrap());
    assert!(!va.up && !va.running);
    let err = p.a.run(|| {
        Netlink::open()
            .unwrap()
            .link_by_name("nonesuch")
            .unwrap_err()
    });
    assert_eq!(
        err.to_string(),
        "no network interface named \"nonesuch\" (see `ip link`)"
    );
}

#[test]
fn address_add_and_delete_are_idempotent() {
    if !is_root("address_add_and_delete_are_idempotent") {
        return;
    }
    let p = pair();
    let vip = Ipv4Addr::new(10, 77, 0, 100);
    let ifindex =
        p.a.run(|| Netlink::open().unwrap().link_by_name("va").unwrap().ifindex);
    let shows_vip = || {
        p.a.ip(&["-4", "-o", "addr", "show", "dev", "va"])
            .contains("10.77.0.100/32")
    };

    let (first, second, listed) = p.a.run(|| {
        let mut nl = Netlink::open().unwrap();
        let first = nl.add_ipv4_address(ifindex, vip, 32).unwrap();
        let second = nl.add_ipv4_address(ifindex, vip, 32).unwrap();
        (first, second, nl.ipv4_addresses().unwrap())
    });
    assert_eq!(
        (first, second),
        (AddressChange::Added, AddressChange::AlreadyPresent)
    );
    assert!(shows_vip());
    let ours: Vec<_> = listed.iter().filter(|a| a.ifindex == ifindex).collect();
    assert!(
        ours.iter()
            .any(|a| a.addr == ADDR_A && a.prefix_len == 24 && !a.secondary)
    );
    assert!(ours.iter().any(|a| a.addr == vip && a.prefix_len == 32));
    assert!(
        listed
            .iter()
            .any(|a| a.addr == Ipv4Addr::LOCALHOST && a.prefix_len == 8)
    );

    let (first, second) = p.a.run(|| {
        let mut nl = Netlink::open().unwrap();
        (
            nl.del_ipv4_address(ifindex, vip, 32).unwrap(),
            nl.del_ipv4_address(ifindex, vip, 32).unwrap(),
        )
    });
    assert_eq!(
        (first, second),
        (AddressChange::Removed, AddressChange::AlreadyAbsent)
    );
    assert!(!shows_vip());

    // Clear errors otherwise.
    let (no_dev, bad_prefix) = p.a.run(|| {
        let mut nl = Netlink::open().unwrap();
        (
            nl.add_ipv4_address(9999, vip, 32).unwrap_err(),
            nl.add_ipv4_address(ifindex, vip, 40).unwrap_err(),
        )
    });
    assert_eq!(no_dev.errno(), Some(libc::ENODEV));
    let text = no_dev.to_string();
    assert!(
        text.starts_with("the kernel refused to add address 10.77.0.100/32 to interface index 9999: No such device"),
        "{text}"
    );
    assert!(bad_prefix.to_string().contains("/40"));
}

// ---------------------------------------------------------------- routes

/// `ip route get` parsed: (dev name, gateway).
fn ip_route_get(ns: &Ns, addr: IpAddr) -> (String, Option<IpAddr>) {
    let family = if addr.is_ipv4() { "-4" } else { "-6" };
    let out = ns.ip(&[family, "route", "get", &addr.to_string()]);
    let words: Vec<&str> = out.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .map(|i| words[i + 1].to_owned())
    };
    (
        after("dev").expect("a dev in `ip route get`"),
        after("via").map(|g| g.parse().unwrap()),
    )
}

/// Our FIB snapshot of `ns`, after checking that its lookup of every probe agrees with the
/// kernel's RTM_GETROUTE answer and with `ip route get`; the links with it.
fn fib_agrees_with_the_kernel(ns: &Ns, probes: &[IpAddr]) -> (Vec<Link>, lvs_netinfo::Fib) {
    let (links, fib, kernel) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let fib = nl.fib().unwrap();
        let kernel: Vec<_> = probes.iter().map(|&a| nl.route_get(a).unwrap()).collect();
        (nl.links().unwrap(), fib, kernel)
    });
    for (addr, kernel_hop) in probes.iter().zip(&kernel) {
        let ours = fib
            .lookup(*addr)
            .unwrap_or_else(|| panic!("no route for {addr}"));
        assert_eq!(ours, *kernel_hop, "RTM_GETROUTE disagrees for {addr}");
        let (dev, via) = ip_route_get(ns, *addr);
        assert_eq!(link(&links, &dev).ifindex, ours.ifindex, "dev for {addr}");
        assert_eq!(via, ours.gateway, "gateway for {addr}");
    }
    (links, fib)
}

#[test]
fn fib_lookup_agrees_with_ip_route_get() {
    if !is_root("fib_lookup_agrees_with_ip_route_get") {
        return;
    }
    let p = pair();
    // A second link in A, and routes of every kind.
    p.a.ip(&["link", "add", "vc", "type", "veth", "peer", "name", "vd"]);
    p.a.ip(&["link", "set", "vc", "up"]);
    p.a.ip(&["link", "set", "vd", "up"]);
    p.a.ip(&["addr", "add", "10.88.0.1/24", "dev", "vc"]);
    p.a.ip(&["route", "add", "default", "via", "10.77.0.254"]);
    p.a.ip(&["route", "add", "10.200.0.0/16", "via", "10.77.0.2"]);
    p.a.ip(&["route", "add", "10.200.7.0/24", "via", "10.88.0.9"]);
    p.a.ip(&[
        "route",
        "add",
        "10.201.0.0/16",
        "via",
        "10.77.0.3",
        "metric",
        "50",
    ]);
    p.a.ip(&[
        "route",
        "add",
        "10.201.0.0/16",
        "via",
        "10.77.0.4",
        "metric",
        "10",
    ]);
    p.a.ip(&["route", "add", "10.202.3.4/32", "dev", "vc"]);
    p.a.ip(&["route", "add", "blackhole", "10.203.0.0/16"]);

    let probes: Vec<IpAddr> = [
        "10.77.0.9",    // connected on va
        "10.88.0.200",  // connected on vc
        "10.200.1.1",   // via 10.77.0.2
        "10.200.7.1",   // more specific, via 10.88.0.9
        "10.201.9.9",   // lowest metric wins: via 10.77.0.4
        "10.202.3.4",   // host route on vc
        "10.202.3.5",   // default
        "192.0.2.1",    // default
        "198.51.100.7", // default
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();

    let (links, fib) = fib_agrees_with_the_kernel(&p.a, &probes);
    // Blackhole and local routes are not in the snapshot.
    assert!(
        fib.routes()
            .iter()
            .all(|r| r.dst != Ipv4Addr::new(10, 203, 0, 0))
    );
    let va = link(&links, "va").ifindex;
    assert_eq!(
        fib.lookup(Ipv4Addr::new(10, 201, 9, 9)).unwrap().gateway,
        Some(Ipv4Addr::new(10, 77, 0, 4).into())
    );
    assert_eq!(fib.lookup(Ipv4Addr::new(10, 77, 0, 9)).unwrap().ifindex, va);
}

/// IPv6 on the pair: 2001:db8:77::1/64 on va, 2001:db8:77::2/64 on vb, and fixed link-local
/// addresses fe80::a (va) and fe80::b (vb); all without duplicate address detection, so that
/// they are usable at once (the kernel's own EUI-64 link-local addresses may still be
/// tentative).
const ADDR6_A: &str = "2001:db8:77::1";
const ADDR6_B: &str = "2001:db8:77::2";
const LL_B: &str = "fe80::b";

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn add_ipv6(p: &Pair) {
    p.a.ip(&["addr", "add", "2001:db8:77::1/64", "dev", "va", "nodad"]);
    p.a.ip(&["addr", "add", "fe80::a/64", "dev", "va", "nodad"]);
    p.b.ip(&["addr", "add", "2001:db8:77::2/64", "dev", "vb", "nodad"]);
    p.b.ip(&["addr", "add", "fe80::b/64", "dev", "vb", "nodad"]);
}

#[test]
fn ipv6_fib_lookup_agrees_with_ip_route_get() {
    if !is_root("ipv6_fib_lookup_agrees_with_ip_route_get") {
        return;
    }
    let p = pair();
    add_ipv6(&p);
    p.a.ip(&["link", "add", "vc", "type", "veth", "peer", "name", "vd"]);
    p.a.ip(&["link", "set", "vc", "up"]);
    p.a.ip(&["link", "set", "vd", "up"]);
    p.a.ip(&["addr", "add", "2001:db8:88::1/64", "dev", "vc", "nodad"]);
    // The usual IPv6 default route: via a link-local router.
    p.a.ip(&["-6", "route", "add", "default", "via", LL_B, "dev", "va"]);
    p.a.ip(&["-6", "route", "add", "2001:db8:200::/48", "via", ADDR6_B]);
    p.a.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:200:7::/64",
        "via",
        "2001:db8:88::9",
    ]);
    for (gw, metric) in [("2001:db8:77::3", "50"), ("2001:db8:77::4", "10")] {
        p.a.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:201::/48",
            "via",
            gw,
            "metric",
            metric,
        ]);
    }
    p.a.ip(&["-6", "route", "add", "2001:db8:202::4/128", "dev", "vc"]);
    p.a.ip(&["-6", "route", "add", "blackhole", "2001:db8:203::/48"]);
    // An IPv4 route beside them: each family keeps to its own routes.
    p.a.ip(&["route", "add", "default", "via", "10.77.0.254"]);

    let probes: Vec<IpAddr> = [
        "2001:db8:77::9",    // connected on va
        "2001:db8:88::200",  // connected on vc
        "2001:db8:200:1::1", // via 2001:db8:77::2
        "2001:db8:200:7::1", // more specific, via 2001:db8:88::9
        "2001:db8:201::9",   // lowest metric wins: via ::4
        "2001:db8:202::4",   // host route on vc
        "2001:db8:202::5",   // default, via fe80::b
        "2606:4700::1",      // default
    ]
    .iter()
    .map(|s| v6(s))
    .collect();

    let (links, fib) = fib_agrees_with_the_kernel(&p.a, &probes);
    assert!(fib.routes().iter().all(|r| r.dst != v6("2001:db8:203::")));
    let va = link(&links, "va").ifindex;
    assert_eq!(
        fib.lookup(v6("2606:4700::1")),
        Some(lvs_netinfo::NextHop {
            ifindex: va,
            gateway: Some(v6(LL_B))
        })
    );
    assert_eq!(
        fib.lookup(v6("2001:db8:201::9")).unwrap().gateway,
        Some(v6("2001:db8:77::4"))
    );
    assert_eq!(
        fib.lookup(Ipv4Addr::new(192, 0, 2, 1)).unwrap().gateway,
        Some(Ipv4Addr::new(10, 77, 0, 254).into())
    );
}

// ---------------------------------------------------------------- neighbours

#[test]
fn resolve_fills_the_neighbour_table_and_next_hop_table() {
    if !is_root("resolve_fills_the_neighbour_table_and_next_hop_table") {
        return;
    }
    let p = pair();
    let third = Ipv4Addr::new(10, 77, 0, 3);
    p.b.ip(&["addr", "add", "10.77.0.3/24", "dev", "vb"]);
    p.a.ip(&["route", "add", "10.99.0.0/16", "via", "10.77.0.2"]);
    let behind_b = Ipv4Addr::new(10, 99, 1, 1);

    p.a.run(|| {
        let mut nl = Netlink::open().unwrap();
        let va = nl.link_by_name("va").unwrap().ifindex;
        assert!(
            nl.neighbours().unwrap().get(va, ADDR_B).is_none(),
            "entry exists already"
        );

        // Before: both the peer and the route behind it need resolution.
        let table = nl.next_hop_table().unwrap();
        let pending = PendingNeighbour {
            ifindex: va,
            addr: ADDR_B.into(),
        };
        assert_eq!(
            table.lookup(ADDR_B),
            NextHopLookup::Unresolved {
                ifindex: va,
                neighbour: ADDR_B.into()
            }
        );
        assert_eq!(
            table.lookup(behind_b),
            NextHopLookup::Unresolved {
                ifindex: va,
                neighbour: ADDR_B.into()
            }
        );
        assert_eq!(table.missing([ADDR_B, behind_b]), vec![pending]);

        // NTF_USE on an address with no entry at all.
        assert_eq!(nl.resolve(va, ADDR_B).unwrap(), ResolveTrigger::Netlink);
        let entry = wait_for("the kernel to resolve 10.77.0.2", || {
            nl.neighbours()
                .unwrap()
                .get(va, ADDR_B)
                .copied()
                .filter(|n| n.state.is_usable())
        });
        assert_eq!(entry.mac, Some(mac(MAC_B)));
        assert_eq!(entry.state, NudState::Reachable);

        let table = nl.next_hop_table().unwrap();
        let ready = NextHopLookup::Ready(Resolved {
            ifindex: va,
            src_mac: mac(MAC_A),
            dst_mac: mac(MAC_B),
        });
        assert_eq!(table.lookup(ADDR_B), ready);
        assert_eq!(table.lookup(behind_b), ready);
        assert!(table.missing([ADDR_B, behind_b]).is_empty());

        // The fallback: one datagram to the discard port.
        resolve_by_datagram(va, third).unwrap();
        let entry = wait_for("the kernel to resolve 10.77.0.3", || {
            nl.neighbours()
                .unwrap()
                .get(va, third)
                .copied()
                .filter(|n| n.state.is_usable())
        });
        assert_eq!(entry.mac, Some(mac(MAC_B)));
    });
    assert!(
        p.a.ip(&["neigh", "show", "dev", "va"])
            .contains(&format!("10.77.0.2 lladdr {MAC_B}"))
    );
}

#[test]
fn ndp_resolution_fills_the_neighbour_table_and_next_hop_table() {
    if !is_root("ndp_resolution_fills_the_neighbour_table_and_next_hop_table") {
        return;
    }
    let p = pair();
    add_ipv6(&p);
    p.b.ip(&["addr", "add", "2001:db8:77::3/64", "dev", "vb", "nodad"]);
    p.a.ip(&["-6", "route", "add", "default", "via", LL_B, "dev", "va"]);
    let (peer, router, third) = (v6(ADDR6_B), v6(LL_B), v6("2001:db8:77::3"));
    let far = v6("2606:4700::1");

    p.a.run(|| {
        let mut nl = Netlink::open().unwrap();
        let va = nl.link_by_name("va").unwrap().ifindex;
        let usable = |nl: &mut Netlink, what: &str, addr: IpAddr| {
            wait_for(what, || {
                nl.neighbours()
                    .unwrap()
                    .get(va, addr)
                    .copied()
                    .filter(|n| n.state.is_usable())
            })
        };
        let table = nl.next_hop_table().unwrap();
        assert_eq!(
            table.lookup(peer),
            NextHopLookup::Unresolved {
                ifindex: va,
                neighbour: peer
            }
        );
        // Beyond the default route: the link-local router is the neighbour to resolve.
        assert_eq!(
            table.lookup(far),
            NextHopLookup::Unresolved {
                ifindex: va,
                neighbour: router
            }
        );
        assert_eq!(
            table.missing([peer, far]),
            vec![
                PendingNeighbour {
                    ifindex: va,
                    addr: peer
                },
                PendingNeighbour {
                    ifindex: va,
                    addr: router
                },
            ]
        );

        // NTF_USE makes the kernel send a neighbour solicitation.
        for hop in table.missing([peer, far]) {
            assert_eq!(
                nl.resolve(hop.ifindex, hop.addr).unwrap(),
                ResolveTrigger::Netlink
            );
        }
        for addr in [peer, router] {
            let entry = usable(&mut nl, &format!("NDP to resolve {addr}"), addr);
            assert_eq!(entry.mac, Some(mac(MAC_B)));
        }
        let table = nl.next_hop_table().unwrap();
        let ready = NextHopLookup::Ready(Resolved {
            ifindex: va,
            src_mac: mac(MAC_A),
            dst_mac: mac(MAC_B),
        });
        assert_eq!(table.lookup(peer), ready);
        assert_eq!(table.lookup(far), ready);
        assert!(table.missing([peer, far]).is_empty());
        // The IPv4 side knows nothing of it.
        assert!(matches!(
            table.lookup(ADDR_B),
            NextHopLookup::Unresolved { .. }
        ));

        // The fallback: one datagram to the discard port, global and link-local.
        resolve_by_datagram(va, third).unwrap();
        let entry = usable(&mut nl, "the datagram to resolve 2001:db8:77::3", third);
        assert_eq!(entry.mac, Some(mac(MAC_B)));
    });
    let shown = p.a.ip(&["-6", "neigh", "show", "dev", "va"]);
    assert!(
        shown.contains(&format!("{ADDR6_B} lladdr {MAC_B}")),
        "{shown}"
    );
    assert!(shown.contains(&format!("{LL_B} lladdr {MAC_B}")), "{shown}");
}

#[test]
fn resolve_by_datagram_reaches_a_link_local_neighbour() {
    if !is_root("resolve_by_datagram_reaches_a_link_local_neighbour") {
        return;
    }
    let p = pair();
    add_ipv6(&p);
    p.a.run(|| {
        let mut nl = Netlink::open().unwrap();
        let va = nl.link_by_name("va").unwrap().ifindex;
        // fe80::b is on every link as far as routing knows: the scope picks va.
        resolve_by_datagram(va, v6(LL_B)).unwrap();
        let entry = wait_for("the datagram to resolve fe80::b", || {
            nl.neighbours()
                .unwrap()
                .get(va, v6(LL_B))
                .copied()
                .filter(|n| n.state.is_usable())
        });
        assert_eq!(entry.mac, Some(mac(MAC_B)));
    });
}

// ---------------------------------------------------------------- notifications

#[test]
fn monitor_reports_address_route_link_and_neighbour_changes() {
    if !is_root("monitor_reports_address_route_link_and_neighbour_changes") {
        return;
    }
    let p = pair();
    p.a.run(|| {
        let mut mon = NetlinkMonitor::open().unwrap();
        assert!(mon.drain().unwrap().is_empty(), "nothing happened yet");
        let va = Netlink::open().unwrap().link_by_name("va").unwrap().ifindex;

        // Collect changes until `done` says the wanted event arrived.
        let mut until = |what: &str, done: &dyn Fn(&lvs_netinfo::Changes) -> bool| {
            let end = Instant::now() + DEADLINE;
            let mut all = lvs_netinfo::Changes::default();
            while !done(&all) {
                let left = end.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "timed out waiting for {what}; got {all:?}");
                if readable(&mon, left) {
                    let c = mon.drain().unwrap();
                    all.links |= c.links;
                    all.addresses |= c.addresses;
                    all.routes |= c.routes;
                    all.neighbours |= c.neighbours;
                    all.overrun |= c.overrun;
                    all.events.extend(c.events);
                }
            }
            all
        };

        p.a.ip(&["addr", "add", "10.77.9.9/32", "dev", "va"]);
        let c = until("the new address", &|c| {
            c.events.contains(&NetChange::Address {
                ifindex: va,
                addr: Ipv4Addr::new(10, 77, 9, 9).into(),
                prefix_len: 32,
                removed: false,
            })
        });
        assert!(c.addresses && !c.overrun);

        p.a.ip(&["route", "add", "10.123.0.0/16", "via", "10.77.0.2"]);
        until("the new route", &|c| {
            c.routes
                && c.events.contains(&NetChange::Route {
                    dst: Ipv4Addr::new(10, 123, 0, 0).into(),
                    prefix_len: 16,
                    removed: false,
                })
        });

        p.a.ip(&["link", "set", "va", "mtu", "1300"]);
        until("the link change", &|c| {
            c.links
                && c.events
                    .iter()
                    .any(|e| matches!(e, NetChange::Link { ifindex, removed: false, .. } if *ifindex == va))
        });

        Netlink::open().unwrap().resolve(va, ADDR_B).unwrap();
        until("the neighbour to become reachable", &|c| {
            c.neighbours
                && c.events.iter().any(|e| {
                    matches!(e, NetChange::Neighbour { addr, state: NudState::Reachable, .. } if *addr == ADDR_B)
                })
        });

        p.a.ip(&["addr", "del", "10.77.9.9/32", "dev", "va"]);
        until("the removed address", &|c| {
            c.events.iter().any(|e| {
                matches!(e, NetChange::Address { addr, removed: true, .. } if *addr == Ipv4Addr::new(10, 77, 9, 9))
            })
        });

        // IPv6: an address, a route via a link-local router, and an NDP entry.
        add_ipv6(&p);
        until("the new IPv6 address", &|c| {
            c.events.contains(&NetChange::Address {
                ifindex: va,
                addr: v6(ADDR6_A),
                prefix_len: 64,
                removed: false,
            })
        });
        p.a.ip(&["-6", "route", "add", "2001:db8:123::/48", "via", LL_B, "dev", "va"]);
        let c = until("the new IPv6 route", &|c| {
            c.events.contains(&NetChange::Route {
                dst: v6("2001:db8:123::"),
                prefix_len: 48,
                removed: false,
            })
        });
        assert!(c.next_hops_changed());
        Netlink::open().unwrap().resolve(va, v6(LL_B)).unwrap();
        until("the IPv6 neighbour to become reachable", &|c| {
            c.neighbours
                && c.events.iter().any(|e| {
                    matches!(e, NetChange::Neighbour { addr, state: NudState::Reachable, .. } if *addr == v6(LL_B))
                })
        });
        p.a.ip(&["-6", "route", "del", "2001:db8:123::/48"]);
        until("the removed IPv6 route", &|c| {
            c.events.contains(&NetChange::Route {
                dst: v6("2001:db8:123::"),
                prefix_len: 48,
                removed: true,
            })
        });
    });
}

// ---------------------------------------------------------------- offloads

fn ethtool_gro(ns: &Ns, ifname: &str) -> String {
    let out = ns.exec(&["ethtool", "-k", ifname]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("generic-receive-offload: "))
        .expect("a GRO line in `ethtool -k`")
        .to_owned()
}

#[test]
fn gro_off_and_restore_is_visible_in_ethtool() {
    if !is_root("gro_off_and_restore_is_visible_in_ethtool") {
        return;
    }
    let p = pair();
    p.a.exec(&["ethtool", "-K", "va", "gro", "on"]);
    assert_eq!(ethtool_gro(&p.a, "va"), "on");

    let change = p.a.run(|| {
        assert!(gro_enabled("va").unwrap());
        let change = disable_receive_offloads("va").unwrap();
        assert!(!gro_enabled("va").unwrap());
        assert!(!lro_enabled("va").unwrap());
        // Doing it again changes nothing and says so.
        assert!(disable_receive_offloads("va").unwrap().is_empty());
        change
    });
    assert!(change.gro_turned_off);
    assert!(!change.lro_turned_off, "veth has no LRO");
    assert_eq!(ethtool_gro(&p.a, "va"), "off");

    p.a.run(|| change.restore().unwrap());
    assert_eq!(ethtool_gro(&p.a, "va"), "on");

    p.a.run(|| set_gro("va", false).unwrap());
    assert_eq!(ethtool_gro(&p.a, "va"), "off");

    let err =
        p.a.run(|| disable_receive_offloads("nonesuch").unwrap_err());
    assert_eq!(
        err.to_string(),
        "no network interface named \"nonesuch\" (see `ip link`)"
    );
}

// ---------------------------------------------------------------- gratuitous ARP

/// An AF_PACKET socket receiving ARP frames on one interface (test only).
fn arp_capture(ifname: &str) -> OwnedFd {
    let proto = libc::c_int::from(0x0806u16.to_be());
    // SAFETY: plain socket(2) call, no pointers.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let ifindex = Netlink::open()
        .unwrap()
        .link_by_name(ifname)
        .unwrap()
        .ifindex;
    let sll = libc::sockaddr_ll {
        sll_family: u16::try_from(libc::AF_PACKET).unwrap(),
        sll_protocol: 0x0806u16.to_be(),
        sll_ifindex: i32::try_from(ifindex).unwrap(),
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap();
    // SAFETY: `sll` is a valid sockaddr_ll of `len` bytes for the duration of the call.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), len) };
    assert_eq!(rc, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
    fd
}

#[test]
fn gratuitous_arp_reaches_the_peer_and_updates_its_cache() {
    if !is_root("gratuitous_arp_reaches_the_peer_and_updates_its_cache") {
        return;
    }
    let p = pair();
    let vip = Ipv4Addr::new(10, 77, 0, 100);
    // B believes the VIP lives elsewhere (as after a failover).
    p.b.ip(&[
        "neigh",
        "add",
        "10.77.0.100",
        "lladdr",
        "02:de:ad:00:00:01",
        "dev",
        "vb",
        "nud",
        "stale",
    ]);

    let (ready_tx, ready_rx) = mpsc::channel();
    let seen = std::thread::scope(|s| {
        let capture = s.spawn(|| {
            p.b.run(|| {
                let fd = arp_capture("vb");
                ready_tx.send(()).unwrap();
                let mut seen = Vec::new();
                let end = Instant::now() + DEADLINE;
                while seen.len() < 2 {
                    let left = end.saturating_duration_since(Instant::now());
                    assert!(!left.is_zero(), "no gratuitous ARP seen; got {seen:?}");
                    if !readable(&fd, left) {
                        continue;
                    }
                    let mut buf = [0u8; 1600];
                    // SAFETY: `buf` is writable for its full length during the call.
                    let n = unsafe {
                        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    let n = usize::try_from(n).expect("recv failed");
                    let f = &buf[..n];
                    // Our announcement: sender MAC = A's, sender IP = target IP = VIP.
                    if n >= 42
                        && f[22..28] == mac(MAC_A).0
                        && f[28..32] == vip.octets()
                        && f[38..42] == vip.octets()
                    {
                        seen.push((
                            u16::from_be_bytes([f[20], f[21]]),
                            f[0..6].to_vec(),
                            f[32..38].to_vec(),
                        ));
                    }
                }
                seen
            })
        });
        ready_rx.recv().unwrap();
        p.a.run(|| {
            let va = Netlink::open().unwrap().link_by_name("va").unwrap();
            send_gratuitous_arp(
                va.ifindex,
                va.mac.unwrap(),
                vip,
                &[GarpKind::Request, GarpKind::Reply],
            )
            .unwrap();
        });
        capture.join().unwrap()
    });
    assert_eq!(seen[0], (1, vec![0xff; 6], vec![0xff; 6]), "request form");
    assert_eq!(
        seen[1],
        (2, vec![0xff; 6], mac(MAC_A).0.to_vec()),
        "reply form"
    );

    // B's kernel took the new MAC for the VIP.
    p.b.run(|| {
        let mut nl = Netlink::open().unwrap();
        let vb = nl.link_by_name("vb").unwrap().ifindex;
        wait_for("the peer's ARP cache to change", || {
            nl.neighbours()
                .unwrap()
                .get(vb, vip)
                .filter(|n| n.mac == Some(mac(MAC_A)))
                .copied()
        });
    });
}
