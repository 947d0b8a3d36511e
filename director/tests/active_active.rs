//! Active-active directors behind ECMP (issue 18), with real traffic: a router namespace
//! with a Linux multipath route to the VIP over three director namespaces (L4 hashing,
//! `fib_multipath_hash_policy=1`, the kernel's default hash-threshold selection), VS/DR (or
//! VS/TUN) real servers that answer every line with their name, and a client holding 240
//! established connections from as many source ports.
//!
//! Every connection answers again after each step, from the real server it began on: a
//! director SIGKILLed and taken out of the route (its flows re-hashed over the survivors,
//! and some of the survivors' flows re-hashed too), the same director restarted and put back,
//! a real server added while flows move (none goes to it: sync, not the hash, keeps each
//! flow's server), a real server removed while flows move (only its own connections end).
//! A further test shows sloppy TCP alone: two directors that do not sync, the route switched
//! from one to the other, and every connection continues on the same server from its first
//! mid-flow segment on the second director. No BGP here: the route is changed by hand, as a
//! BGP daemon would change it.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};

use lvs_testsupport::lines;

use common::{
    SOON, lvsadm_at, must, parse_conns, root_or_skip, sh, spawn_director, text, wait_director,
    wait_for,
};

const VIP: &str = "203.0.113.100";
const ROUTER_LAN: &str = "10.7.0.254";
const DIRECTORS: [&str; 3] = ["10.7.0.1", "10.7.0.2", "10.7.0.3"];
/// The fourth joins the service during the test.
const SERVERS: [&str; 4] = ["10.7.0.11", "10.7.0.12", "10.7.0.13", "10.7.0.14"];
const NAMES: [&str; 4] = ["r1", "r2", "r3", "r4"];
/// The same over IPv6 (documentation prefix, RFC 3849).
const VIP6: &str = "2001:db8:100::100";
const ROUTER_LAN6: &str = "2001:db8:7::fe";
const DIRECTORS6: [&str; 3] = ["2001:db8:7::1", "2001:db8:7::2", "2001:db8:7::3"];
const SERVERS6: [&str; 4] = [
    "2001:db8:7::11",
    "2001:db8:7::12",
    "2001:db8:7::13",
    "2001:db8:7::14",
];
const KEY: &str = "a test key for active-active sync\n";
const CONNECTIONS: usize = 240;

/// The tunnel endpoint of a VS/TUN real server on a kernel without the `ipip` driver: reads
/// every IP-in-IP packet to `argv[1]` from a raw socket (protocol 4; holding one also keeps
/// the kernel from answering "protocol unreachable") and writes the inner packet to the tun
/// device `lvsdecap`, where the kernel receives it as the ipip driver would hand it on.
const DECAP: &str = r#"
import fcntl, os, socket, struct, sys
me = socket.inet_aton(sys.argv[1])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
tun = os.open("/dev/net/tun", os.O_RDWR)
# TUNSETIFF: a layer-3 tun device without the packet-information prefix.
fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", b"lvsdecap", 0x0001 | 0x1000))
print("ready", flush=True)
while True:
    p = raw.recv(65535)
    ihl = (p[0] & 15) * 4
    if p[16:20] == me and len(p) >= ihl + 20:
        os.write(tun, p[ihl:])
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `ip -n NS WORDS...`, which must succeed.
fn ipn(ns: &str, words: &str) {
    let mut v = vec!["ip", "-n", ns];
    v.extend(words.split_whitespace());
    must(&v);
}

/// One director: its namespace, run directory, configuration and process.
struct Director {
    ns: String,
    addr: &'static str,
    rundir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Director {
    fn start(&mut self) {
        self.child = Some(spawn_director(
            &self.ns,
            &self.rundir,
            &self.config,
            &self.log,
        ));
        wait_director(&mut self.child, &self.rundir, &self.log, SOON);
    }

    /// SIGKILL: nothing of the director's own shutdown runs.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn adm(&self, args: &str) -> String {
        let v: Vec<&str> = args.split_whitespace().collect();
        let out = lvsadm_at(&self.rundir, &v);
        assert!(
            out.status.success(),
            "lvsadm {args} on {} failed: {}{}\n{}",
            self.ns,
            text(&out.stdout),
            text(&out.stderr),
            self.log_text()
        );
        text(&out.stdout)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (connections this director scheduled, packets it forwarded) for the VIP's service.
    fn carried(&self) -> (u64, u64) {
        lines::carried(&self.adm(&format!("-L -n --stats --exact -t {VIP}:80")))
    }

    /// The `lvsadm -L --daemon` line that starts with `label`.
    fn daemon_line(&self, label: &str) -> String {
        let out = self.adm("-L --daemon");
        out.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in\n{out}"))
            .to_owned()
    }

    fn midflow(&self) -> u64 {
        let l = self.daemon_line("mid-flow connections created:");
        l.rsplit(' ').next().unwrap().parse().expect("a count")
    }

    fn bulk_complete(&self) -> bool {
        self.daemon_line("synced:")
            .contains("bulk resync complete: yes")
    }

    /// Established entries, by real server address.
    fn established(&self) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::new();
        for c in parse_conns(&self.adm("-L -n -c")) {
            if c.state == "ESTABLISHED" {
                *by.entry(c.dest_addr().to_owned()).or_insert(0) += 1;
            }
        }
        by
    }
}

/// The whole set-up; everything goes on drop, even when a test fails.
struct Cluster {
    prefix: String,
    dir: PathBuf,
    directors: Vec<Director>,
    helpers: Vec<Child>,
    client: Option<lines::Client>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.client = None;
        for d in &mut self.directors {
            d.kill();
        }
        for h in &mut self.helpers {
            let _ = h.kill();
            let _ = h.wait();
        }
        for node in ["c", "rt", "d1", "d2", "d3", "r1", "r2", "r3", "r4"] {
            let _ = sh(&["ip", "netns", "del", &self.ns(node)]);
        }
        if std::thread::panicking() {
            for d in &self.directors {
                eprintln!("--- {} log:\n{}", d.ns, d.log_text());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn inns(&self, node: &str, args: &[&str]) -> String {
        let ns = self.ns(node);
        let mut v = vec!["ip", "netns", "exec", &ns];
        v.extend_from_slice(args);
        must(&v)
    }

    /// Namespaces, links, addresses, the real servers; `sync_ids` gives each director's
    /// `[sync] sync_id` (directors of different ids ignore each other). Directors not
    /// started yet.
    fn build(test: &str, directors: usize, sync_ids: &[u8], fwd: &str) -> Option<Cluster> {
        if !root_or_skip(test) {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("aa{}{n}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("lvs-aa-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = Cluster {
            prefix,
            dir,
            directors: Vec::new(),
            helpers: Vec::new(),
            client: None,
        };
        for node in ["c", "rt", "d1", "d2", "d3", "r1", "r2", "r3", "r4"] {
            let ns = c.ns(node);
            let _ = sh(&["ip", "netns", "del", &ns]);
            must(&["ip", "netns", "add", &ns]);
            ipn(&ns, "link set lo up");
        }
        let rt = c.ns("rt");
        // The router: the client on one side, a bridge (the LAN) to the directors and real
        // servers on the other, and ECMP with the 5-tuple hash.
        for k in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            c.inns("rt", &["sysctl", "-qw", k]);
        }
        // A switch, not a firewall: where br_netfilter is loaded, frames crossing br0 would
        // run the router's netfilter hooks (the keys do not exist otherwise).
        for key in ["iptables", "ip6tables", "arptables"] {
            let k = format!("net.bridge.bridge-nf-call-{key}=0");
            let _ = sh(&["ip", "netns", "exec", &rt, "sysctl", "-qw", &k]);
        }
        ipn(&rt, "link add br0 type bridge");
        ipn(&rt, &format!("addr add {ROUTER_LAN}/24 dev br0"));
        ipn(&rt, &format!("addr add {ROUTER_LAN6}/64 dev br0 nodad"));
        ipn(&rt, "link set br0 up");
        let cns = c.ns("c");
        ipn(
            &rt,
            &format!("link add cl type veth peer name eth0 netns {cns}"),
        );
        ipn(&rt, "addr add 198.51.100.1/24 dev cl");
        ipn(&rt, "addr add 2001:db8:51::1/64 dev cl nodad");
        ipn(&rt, "link set cl up");
        // The client.
        ipn(&cns, "addr add 198.51.100.2/24 dev eth0");
        ipn(&cns, "link set eth0 up");
        ipn(&cns, "route add default via 198.51.100.1");
        ipn(&cns, "addr add 2001:db8:51::2/64 dev eth0 nodad");
        ipn(&cns, "-6 route add default via 2001:db8:51::1");
        let prefix = c.prefix.clone();
        let lan = |node: &str, addr: &str, addr6: &str| {
            let ns = format!("{prefix}-{node}");
            ipn(
                &rt,
                &format!("link add {node} type veth peer name eth0 netns {ns}"),
            );
            ipn(&rt, &format!("link set {node} master br0"));
            ipn(&rt, &format!("link set {node} up"));
            ipn(&ns, &format!("addr add {addr}/24 dev eth0"));
            ipn(&ns, "link set eth0 up");
            ipn(&ns, &format!("route add default via {ROUTER_LAN}"));
            ipn(&ns, &format!("addr add {addr6}/64 dev eth0 nodad"));
            ipn(&ns, &format!("-6 route add default via {ROUTER_LAN6}"));
        };
        for (i, addr) in DIRECTORS.iter().enumerate() {
            lan(&format!("d{}", i + 1), addr, DIRECTORS6[i]);
        }
        for (i, addr) in SERVERS.iter().enumerate() {
            let node = format!("r{}", i + 1);
            lan(&node, addr, SERVERS6[i]);
            // VS/DR and VS/TUN: the VIP on lo, never answered for by ARP.
            let ns = c.ns(&node);
            if fwd == "-i" {
                c.tunnel_endpoint(&node, addr);
            }
            ipn(&ns, &format!("addr add {VIP}/32 dev lo"));
            // Linux answers neighbour solicitations only for the addresses of the interface
            // they arrive on: the IPv6 VIP on lo is never claimed on the LAN.
            ipn(&ns, &format!("addr add {VIP6}/128 dev lo nodad"));
            for k in [
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.eth0.arp_ignore=1",
                "net.ipv4.conf.eth0.arp_announce=2",
            ] {
                c.inns(&node, &["sysctl", "-qw", k]);
            }
            c.helper(&node, &["python3", "-c", lines::SERVER, NAMES[i]]);
        }
        // The directors' configuration: active-active, sync with the others, one service on
        // the VIP with the default scheduler (mh in this mode) and the three DR servers.
        let key = c.dir.join("sync.key");
        std::fs::write(&key, KEY).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let rules = c.dir.join("rules");
        let mut r = format!("-A -t {VIP}:80\n-A -t [{VIP6}]:80\n");
        for s in &SERVERS[..3] {
            r.push_str(&format!("-a -t {VIP}:80 -r {s}:80 {fwd} -w 1\n"));
        }
        for s in &SERVERS6[..3] {
            r.push_str(&format!("-a -t [{VIP6}]:80 -r [{s}]:80 {fwd} -w 1\n"));
        }
        std::fs::write(&rules, r).unwrap();
        for i in 0..directors {
            let addr = DIRECTORS[i];
            let rundir = c.dir.join(format!("d{}", i + 1));
            let state = rundir.join("state");
            std::fs::create_dir_all(&state).unwrap();
            let peers: Vec<String> = DIRECTORS[..directors]
                .iter()
                .filter(|p| **p != addr)
                .map(|p| format!("\"{p}:8848\""))
                .collect();
            let config = rundir.join("director.toml");
            std::fs::write(
                &config,
                format!(
                    "interfaces = [\"eth0\"]\nworkers = 1\nconn_table_size = 16384\n\
                     rules_file = \"{}\"\n\n[ring]\nblock_count = 4\n\n\
                     [cluster]\nmode = \"active-active\"\n\n\
                     [sync]\nlisten = \"0.0.0.0:8848\"\npeers = [{}]\nkey_file = \"{}\"\n\
                     sync_id = {}\nstate_dir = \"{}\"\n",
                    rules.display(),
                    peers.join(", "),
                    key.display(),
                    sync_ids[i],
                    state.display()
                ),
            )
            .unwrap();
            c.directors.push(Director {
                ns: c.ns(&format!("d{}", i + 1)),
                addr,
                log: rundir.join("director.log"),
                rundir,
                config,
                child: None,
            });
        }
        Some(c)
    }

    /// Start `args` in `node`'s namespace, and wait for its `ready`.
    fn helper(&mut self, node: &str, args: &[&str]) {
        let child = lines::spawn_ready(&self.ns(node), args);
        self.helpers.push(child);
    }

    /// A VS/TUN real server's tunnel endpoint: the kernel's ipip device where the kernel has
    /// the driver, else [`DECAP`]. The inner packets come in on it while the route back to
    /// the client leaves by eth0: reverse-path filtering is off.
    fn tunnel_endpoint(&mut self, node: &str, addr: &str) {
        let ns = self.ns(node);
        let kernel = sh(&[
            "ip", "-n", &ns, "link", "add", "lvsipip", "type", "ipip", "local", addr,
        ])
        .status
        .success();
        let device = if kernel {
            "lvsipip"
        } else {
            self.helper(node, &["python3", "-c", DECAP, addr]);
            "lvsdecap"
        };
        ipn(&ns, &format!("link set {device} up"));
        for conf in ["all", "default", device] {
            let k = format!("net.ipv4.conf.{conf}.rp_filter=0");
            self.inns(node, &["sysctl", "-qw", &k]);
        }
    }

    /// The router's route to the VIP: one next hop per director in `via` (indices).
    fn route(&self, via: &[usize]) {
        self.route_to(VIP, via);
    }

    /// [`Cluster::route`] to `vip` (IPv4 or IPv6).
    fn route_to(&self, vip: &str, via: &[usize]) {
        let v6 = vip.contains(':');
        let hops: Vec<String> = via
            .iter()
            .map(|&i| {
                let gw = if v6 {
                    DIRECTORS6[i]
                } else {
                    self.directors[i].addr
                };
                format!("via {gw} dev br0")
            })
            .collect();
        let hops = match hops.as_slice() {
            [one] => one.clone(),
            many => format!("nexthop {}", many.join(" nexthop ")),
        };
        let (family, len) = if v6 { ("-6", 128) } else { ("-4", 32) };
        ipn(
            &self.ns("rt"),
            &format!("{family} route replace {vip}/{len} {hops}"),
        );
    }

    fn start_client(&mut self) {
        self.start_client_to(VIP);
    }

    fn start_client_to(&mut self, vip: &str) {
        self.client = Some(lines::Client::start(&self.ns("c"), vip));
    }

    fn client(&mut self, cmd: &str) -> lines::Round {
        self.client.as_mut().expect("the client runs").command(cmd)
    }

    /// Every director lists every connection, established, on the server it began on.
    fn wait_synced(&self, who: &[usize], want: &BTreeMap<String, usize>) {
        for &i in who {
            let d = &self.directors[i];
            wait_for(&format!("{} to know every connection", d.ns), SOON, || {
                let got = d.established();
                (got == *want).then_some(())
            });
        }
    }
}

/// The client's per-server counts as the directors list them (server address, count).
fn by_address(names: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    by_address_of(names, &SERVERS)
}

/// [`by_address`] with `servers`' addresses (IPv6 ones in brackets, as listings write them).
fn by_address_of(names: &BTreeMap<String, usize>, servers: &[&str]) -> BTreeMap<String, usize> {
    names
        .iter()
        .map(|(n, c)| {
            let i = NAMES.iter().position(|x| x == n).expect("a server name");
            let a = servers[i];
            let a = if a.contains(':') {
                format!("[{a}]")
            } else {
                a.to_owned()
            };
            (a, *c)
        })
        .collect()
}

#[test]
fn three_directors_behind_ecmp_lose_no_connection() {
    three_directors("three_directors_behind_ecmp_lose_no_connection", "-g");
}

/// The same with VS/TUN real servers (IP-in-IP from whichever director has the flow).
#[test]
fn three_tunnelling_directors_behind_ecmp_lose_no_connection() {
    three_directors(
        "three_tunnelling_directors_behind_ecmp_lose_no_connection",
        "-i",
    );
}

fn three_directors(test: &str, fwd: &str) {
    let Some(mut c) = Cluster::build(test, 3, &[7, 7, 7], fwd) else {
        return;
    };
    for d in &mut c.directors {
        d.start();
    }
    // Each asked the others for their table when it started; the later ones' answers
    // complete the earlier ones' requests.
    for d in &c.directors {
        wait_for(&format!("{}'s bulk resync", d.ns), SOON * 2, || {
            d.bulk_complete().then_some(())
        });
        let listing = d.adm(&format!("-L -n -t {VIP}:80"));
        let method = if fwd == "-i" { "Tunnel" } else { "Route" };
        assert!(
            listing.contains("mh (mh-port)") && listing.matches(method).count() == 3,
            "mh by default, three {method} servers:\n{listing}"
        );
        let refused = lvsadm_at(
            &d.rundir,
            &["-a", "-t", &format!("{VIP}:80"), "-r", "10.7.0.15:80", "-m"],
        );
        assert!(
            !refused.status.success()
                && text(&refused.stderr).contains("replies return through one director"),
            "VS/NAT refused: {}",
            text(&refused.stderr)
        );
    }
    c.route(&[0, 1, 2]);
    c.start_client();
    let opened = c.client(&format!("open {CONNECTIONS}"));
    assert_eq!(opened.opened, CONNECTIONS, "{opened:?}");
    opened.assert_all_kept(CONNECTIONS, "opening");
    // Every real server has its share, and every director carried some.
    for &n in &NAMES[..3] {
        assert!(
            opened.names.get(n).copied().unwrap_or(0) >= CONNECTIONS / 6,
            "{n}: {opened:?}"
        );
    }
    for d in &c.directors {
        let (conns, pkts) = d.carried();
        assert!(
            conns >= (CONNECTIONS / 6) as u64 && pkts > conns,
            "{} scheduled {conns} connections, {pkts} packets",
            d.ns
        );
    }
    let want = by_address(&opened.names);
    c.wait_synced(&[0, 1, 2], &want);

    // d2 dies; the router loses its next hop (as BGP would withdraw it): its flows and
    // some of the survivors' are re-hashed.
    let before = [c.directors[0].carried().1, c.directors[2].carried().1];
    c.directors[1].kill();
    c.route(&[0, 2]);
    let r = c.client("round");
    r.assert_all_kept(CONNECTIONS, "after d2 died");
    // Every connection's line went through d1 or d3, d2's included.
    let after = [c.directors[0].carried().1, c.directors[2].carried().1];
    assert!(
        after[0] - before[0] + after[1] - before[1] >= CONNECTIONS as u64,
        "{before:?} -> {after:?}"
    );
    let r = c.client("round");
    r.assert_all_kept(CONNECTIONS, "after d2 died, again");

    // d2 comes back: it learns the others' connections, then gets its next hop back.
    c.directors[1].start();
    let d2 = &c.directors[1];
    wait_for("d2's bulk resync after its restart", SOON * 2, || {
        d2.bulk_complete().then_some(())
    });
    c.wait_synced(&[1], &want);
    c.route(&[0, 1, 2]);
    let r = c.client("round");
    r.assert_all_kept(CONNECTIONS, "after d2 rejoined");
    let (_, pkts) = c.directors[1].carried();
    assert!(pkts > 0, "the restarted d2 carries flows again");
    // Every moved flow found the entry sync gave it: none needed sloppy TCP.
    for d in &c.directors {
        assert_eq!(d.midflow(), 0, "{}", d.ns);
    }

    // A real server joins while flows move (d1 leaves the route): Maglev gives it about a
    // quarter of the table, taken from the others, so without sync a quarter of the moved
    // flows would be scheduled to it; with sync, every flow stays where it is.
    for d in &c.directors {
        d.adm(&format!("-a -t {VIP}:80 -r {}:80 {fwd} -w 1", SERVERS[3]));
    }
    c.route(&[1, 2]);
    let r = c.client("round");
    r.assert_all_kept(CONNECTIONS, "after r4 joined");
    for d in &c.directors {
        assert_eq!(d.midflow(), 0, "{}", d.ns);
    }

    // A real server leaves while flows move (d1 comes back, d2 leaves): only its connections
    // end.
    let gone = *want.get(SERVERS[2]).expect("r3 had connections");
    for d in &c.directors {
        d.adm(&format!("-d -t {VIP}:80 -r {}:80", SERVERS[2]));
    }
    c.route(&[0, 2]);
    let r = c.client("round");
    r.assert_only_lost("r3", gone, CONNECTIONS, "after r3 left");
    let r = c.client("round");
    r.assert_all_kept(CONNECTIONS - gone, "after r3 left, again");
}

#[test]
fn a_mid_flow_segment_without_an_entry_continues_on_the_same_server() {
    // Different sync ids: the two directors ignore each other, so the second knows nothing
    // of the first one's connections.
    let Some(mut c) = Cluster::build(
        "a_mid_flow_segment_without_an_entry_continues_on_the_same_server",
        2,
        &[1, 2],
        "-g",
    ) else {
        return;
    };
    for d in &mut c.directors {
        d.start();
    }
    c.route(&[0]);
    c.start_client();
    let opened = c.client(&format!("open {CONNECTIONS}"));
    assert_eq!(opened.opened, CONNECTIONS, "{opened:?}");
    opened.assert_all_kept(CONNECTIONS, "opening");
    let want = by_address(&opened.names);
    c.wait_synced(&[0], &want);
    assert!(c.directors[1].established().is_empty(), "d2 knows nothing");
    assert_eq!(c.directors[1].midflow(), 0);

    c.route(&[1]);
    let r = c.client("round");
    r.assert_all_kept(CONNECTIONS, "after the move to d2");
    // Each flow's first segment on d2 opened its entry, established, to the same server.
    assert_eq!(c.directors[1].midflow(), CONNECTIONS as u64);
    assert_eq!(c.directors[1].established(), want);
    let (conns, _) = c.directors[1].carried();
    assert_eq!(conns, CONNECTIONS as u64);
}

/// IPv6 flows, synced over IPv4: a director dies and comes back while 120 connections to the
/// IPv6 VIP go on, each on its own real server.
#[test]
fn ipv6_flows_keep_their_server_when_a_director_dies_and_returns() {
    let Some(mut c) = Cluster::build(
        "ipv6_flows_keep_their_server_when_a_director_dies_and_returns",
        3,
        &[7, 7, 7],
        "-g",
    ) else {
        return;
    };
    for d in &mut c.directors {
        d.start();
    }
    c.route_to(VIP6, &[0, 1, 2]);
    c.start_client_to(VIP6);
    let n = CONNECTIONS / 2;
    let opened = c.client(&format!("open {n}"));
    assert_eq!(opened.opened, n, "{opened:?}");
    opened.assert_all_kept(n, "opening");
    for d in &c.directors {
        let listing = d.adm(&format!("-L -n --stats --exact -t [{VIP6}]:80"));
        let conns: u64 = listing
            .lines()
            .find(|l| l.starts_with("TCP"))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no service row in\n{listing}"));
        assert!(conns > 0, "{} carried no IPv6 connection", d.ns);
    }
    let want = by_address_of(&opened.names, &SERVERS6);
    c.wait_synced(&[0, 1, 2], &want);

    c.directors[1].kill();
    c.route_to(VIP6, &[0, 2]);
    let r = c.client("round");
    r.assert_all_kept(n, "after d2 died");

    c.directors[1].start();
    let d2 = &c.directors[1];
    wait_for("d2's bulk resync after its restart", SOON * 2, || {
        d2.bulk_complete().then_some(())
    });
    c.wait_synced(&[1], &want);
    c.route_to(VIP6, &[0, 1, 2]);
    let r = c.client("round");
    r.assert_all_kept(n, "after d2 rejoined");
}
