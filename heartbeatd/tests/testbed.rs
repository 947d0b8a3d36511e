//! The whole failover in network namespaces: a client, two directors (each running the real
//! `lvs-director` and `lvs-heartbeatd`) and three real HTTP servers, all on one bridge. The
//! segment is dual stack: the client's subnet (10.88.0.0/24 and 2001:db8:88::/64, VIP .100 and
//! ::100) and the real servers' (10.88.1.0/24 and 2001:db8:88:1::/64, their NAT gateway .254
//! and ::254, also moved by lvs-heartbeatd) share it, and each director serves the same real
//! servers behind the IPv4 and the IPv6 VIP. The serial line between the directors is a pty
//! pair relayed by the test. Needs root: SKIPPED otherwise; needs `lvs-director` and `lvsadm`
//! built beside `lvs-heartbeatd` (`cargo build --workspace`).
//!
//! What is checked is what a client sees: who answers ARP or neighbour discovery for the VIP
//! (the client's neighbour entry), and whether new and established connections work.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    BIN, SerialLine, add_addr, bridge_port, new_bridge, new_netns, sh, sh_out, wait_until,
};
use lvs_testsupport::root_or_skip;

const HB_PORT: u16 = 6941;

/// An address family of the dual-stack segment: which VIP a client uses, or what the
/// directors' heartbeats and connection sync travel over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    V4,
    V6,
}

use Family::{V4, V6};

/// Every cluster serves both.
const FAMILIES: [Family; 2] = [V4, V6];

impl Family {
    /// Host `host` of subnet `net`: 0 the client's (VIP, client, directors), 1 the real
    /// servers' (real servers, directors, NAT gateway).
    fn addr(self, net: u8, host: &str) -> String {
        match (self, net) {
            (V4, _) => format!("10.88.{net}.{host}"),
            (V6, 0) => format!("2001:db8:88::{host}"),
            (V6, _) => format!("2001:db8:88:{net}::{host}"),
        }
    }

    fn prefix(self) -> u8 {
        match self {
            V4 => 24,
            V6 => 64,
        }
    }

    /// `addr/prefix` on the segment.
    fn cidr(self, net: u8, host: &str) -> String {
        format!("{}/{}", self.addr(net, host), self.prefix())
    }

    /// `ip`'s family option.
    fn flag(self) -> &'static str {
        match self {
            V4 => "-4",
            V6 => "-6",
        }
    }

    fn vip(self) -> String {
        self.addr(0, "100")
    }

    fn gateway(self) -> String {
        self.addr(1, "254")
    }

    /// Real server `i` (0..3) on the servers' subnet.
    fn rs(self, i: usize) -> String {
        self.addr(1, &format!("2{}", i + 1))
    }

    /// Director `i` (0 or 1) on the client's subnet.
    fn director(self, i: usize) -> String {
        self.addr(0, &format!("1{}", i + 1))
    }
}

/// `addr:port` as lvsadm, curl and the daemons' configurations write it: IPv6 in brackets.
fn sockaddr(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// Opens N keep-alive connections to the VIP, one GET each; then, for every "get" line on
/// stdin, one more GET on every connection; prints "ok N" or "lost K" per round.
const MANY_CONNS: &str = r#"
import http.client, sys
n = int(sys.argv[2])
cs = [http.client.HTTPConnection(sys.argv[1], 80, timeout=5) for _ in range(n)]
def round_():
    lost = 0
    for c in cs:
        try:
            c.request("GET", "/")
            c.getresponse().read()
        except Exception:
            lost += 1
    print(("ok %d" % n) if lost == 0 else ("lost %d" % lost), flush=True)
round_()
for line in sys.stdin:
    if line.strip() != "get":
        break
    round_()
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nat,
    Dr,
}

/// Makes [`lvs_testsupport::HTTP_SERVER`], when put before it, an HTTP server for IPv6 only
/// (`IPV6_V6ONLY`: beside the IPv4 one on the same port).
const HTTP6_PRELUDE: &str = r#"
import http.server, socket
class V6(http.server.HTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()
http.server.HTTPServer = V6
"#;

/// The namespaces, processes and files of one cluster; everything undone on drop.
struct Cluster {
    p: String,
    dir: PathBuf,
    director_bin: PathBuf,
    lvsadm_bin: PathBuf,
    mode: Mode,
    /// Per director: [lvs-director, lvs-heartbeatd].
    daemons: [[Option<Child>; 2]; 2],
    helpers: Vec<Child>,
    _serial: SerialLine,
}

const NODES: [&str; 7] = ["sw", "c", "d0", "d1", "r1", "r2", "r3"];

impl Cluster {
    /// Builds the cluster; `None` (after printing SKIPPED) when not root. Without the
    /// director's binaries and the rr plugin it fails, saying how to build them. With
    /// `sync`, the directors sync connections over that family, and send their heartbeats
    /// over it too; without, heartbeats go over IPv4.
    fn start(
        test: &str,
        tag: &str,
        mode: Mode,
        sync: Option<Family>,
        failback: bool,
    ) -> Option<Cluster> {
        if !root_or_skip(test) {
            return None;
        }
        let director_bin = lvs_testsupport::sibling_bin(BIN, "lvs-director");
        let lvsadm_bin = lvs_testsupport::sibling_bin(BIN, "lvsadm");
        lvs_testsupport::sibling_bin(BIN, "liblvs_sched_rr.so");
        let p = format!("tb{}{tag}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{p}-dir"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = Cluster {
            p,
            dir,
            director_bin,
            lvsadm_bin,
            mode,
            daemons: Default::default(),
            helpers: Vec::new(),
            _serial: SerialLine::new(),
        };
        c.build_network();
        c.start_http();
        common::write_key(&c.dir);
        for i in 0..2 {
            c.write_configs(i, sync, failback);
            c.start_director(i);
        }
        c.start_heartbeatd(0);
        c.start_heartbeatd(1);
        let up = wait_until(Duration::from_secs(10), || c.holds_addresses(0));
        assert!(up.is_some(), "d0 never took the VIPs\n{}", c.logs());
        let backup = wait_until(Duration::from_secs(10), || {
            c.log(1, "heartbeatd").contains("event=backup")
        });
        assert!(backup.is_some(), "d1 is not backup\n{}", c.logs());
        Some(c)
    }

    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.p)
    }

    fn build_network(&mut self) {
        for n in NODES {
            let ns = self.ns(n);
            new_netns(&ns);
            // Static addresses on a segment of our own need no duplicate-address detection:
            // without it the IPv6 addresses (the link-local ones too, the sources of neighbour
            // discovery) are usable at once. Set before eth0 arrives, which inherits it.
            for k in ["all", "default"] {
                sh(&[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{k}.accept_dad=0"),
                ]);
            }
        }
        let sw = self.ns("sw");
        new_bridge(&sw);
        for n in &NODES[1..] {
            let ns = self.ns(n);
            let port = format!("{n}l");
            bridge_port(&sw, &port, &ns);
            // No segmentation offloads: a veth would hand the director 64 KiB packets.
            for (space, dev) in [(&sw, port.as_str()), (&ns, "eth0")] {
                let _ = sh_out(&[
                    "ip", "netns", "exec", space, "ethtool", "-K", dev, "tso", "off", "gso", "off",
                    "gro", "off",
                ]);
            }
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        }
        for fam in FAMILIES {
            self.add_family(fam);
        }
    }

    /// The addresses and routes of one family.
    fn add_family(&self, fam: Family) {
        let nodad: &[&str] = if fam == V6 { &["nodad"] } else { &[] };
        let addr = |node: &str, net: u8, host: &str| {
            add_addr(&self.ns(node), &fam.cidr(net, host), nodad);
        };
        addr("c", 0, "2");
        for i in 0..2 {
            let host = format!("1{}", i + 1);
            addr(&format!("d{i}"), 0, &host);
            addr(&format!("d{i}"), 1, &host);
        }
        for i in 0..3 {
            let node = format!("r{}", i + 1);
            let ns = self.ns(&node);
            addr(&node, 1, &format!("2{}", i + 1));
            match self.mode {
                Mode::Nat => {
                    let gw = fam.gateway();
                    sh(&[
                        "ip",
                        "-n",
                        &ns,
                        fam.flag(),
                        "route",
                        "add",
                        "default",
                        "via",
                        &gw,
                    ]);
                }
                Mode::Dr => {
                    // The real server holds the VIP on lo, never answers ARP or neighbour
                    // discovery for it (Linux answers a solicitation only for an address of
                    // the interface it came in on), and answers the client directly.
                    addr(&node, 0, &format!("2{}", i + 1));
                    let vip = format!("{}/{}", fam.vip(), if fam == V4 { 32 } else { 128 });
                    let mut args = vec!["ip", "-n", &ns, "addr", "add", &vip, "dev", "lo"];
                    args.extend_from_slice(nodad);
                    sh(&args);
                    if fam == V4 {
                        for k in [
                            "net.ipv4.conf.all.arp_ignore=1",
                            "net.ipv4.conf.all.arp_announce=2",
                            "net.ipv4.conf.eth0.arp_ignore=1",
                            "net.ipv4.conf.eth0.arp_announce=2",
                        ] {
                            sh(&["ip", "netns", "exec", &ns, "sysctl", "-qw", k]);
                        }
                    }
                }
            }
        }
    }

    /// Starts an HTTP server in `node`'s namespace answering `name` on `addr:port` (stopped on
    /// drop).
    fn spawn_http(&mut self, node: &str, name: &str, port: u16, addr: &str) {
        let child = lvs_testsupport::spawn_http_server(&self.ns(node), name, port, addr);
        self.helpers.push(child);
    }

    /// Each real server answers its name on port 80 of both families.
    fn start_http(&mut self) {
        let http6 = format!("{HTTP6_PRELUDE}{}", lvs_testsupport::HTTP_SERVER);
        for i in 0..3 {
            let node = format!("r{}", i + 1);
            self.spawn_http(&node, &node, 80, "0.0.0.0");
            let child = Command::new("ip")
                .args(["netns", "exec", &self.ns(&node), "python3", "-c", &http6])
                .args([node.as_str(), "80", "::"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start python3 (ip netns exec)");
            self.helpers.push(child);
        }
        for i in 0..3 {
            let node = format!("r{}", i + 1);
            for local in ["('127.0.0.1', 80)", "('::1', 80)"] {
                let ok = wait_until(Duration::from_secs(10), || {
                    sh_out(&[
                        "ip",
                        "netns",
                        "exec",
                        &self.ns(&node),
                        "python3",
                        "-c",
                        &format!("import socket; socket.create_connection({local}, 1)"),
                    ])
                    .status
                    .success()
                });
                assert!(ok.is_some(), "HTTP server on {node} {local} did not start");
            }
        }
    }

    fn rundir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("run{i}"))
    }

    fn write_configs(&self, i: usize, sync: Option<Family>, failback: bool) {
        let transport = sync.unwrap_or(V4);
        let me = transport.director(i);
        let peer = transport.director(1 - i);
        let key = self.dir.join("key");
        let sync_section = if sync.is_some() {
            let state = self.dir.join(format!("sync{i}"));
            std::fs::create_dir_all(&state).unwrap();
            format!(
                "[sync]\nlisten = \"{}\"\npeers = [\"{}\"]\nkey_file = \"{}\"\nstate_dir = \"{}\"\n",
                sockaddr(&me, 8848),
                sockaddr(&peer, 8848),
                key.display(),
                state.display()
            )
        } else {
            String::new()
        };
        std::fs::write(
            self.dir.join(format!("director{i}.toml")),
            format!("workers = 1\n{sync_section}"),
        )
        .unwrap();
        let notify = self.dir.join(format!("notify{i}"));
        let mut vips = String::new();
        for fam in FAMILIES {
            let mut addrs = vec![fam.cidr(0, "100")];
            if self.mode == Mode::Nat {
                addrs.push(fam.cidr(1, "254"));
            }
            for a in addrs {
                vips += &format!("[[vip]]\naddr = \"{a}\"\ninterface = \"eth0\"\n");
            }
        }
        let conf = format!(
            "node_id = {id}\npriority = {prio}\npeers = [{peer_id}]\n\
             auth_key_file = \"{key}\"\nepoch_file = \"{epoch}\"\n\
             auto_failback = {failback}\nhold_down_ms = 2000\n\
             [timers]\nkeepalive_ms = 200\ndeadtime_ms = 1000\n\
             [udp]\nbind = \"{bind}\"\npeers = [\"{to}\"]\n\
             [serial]\ndevice = \"{serial}\"\nbaud = 115200\n\
             [garp]\ncount = 3\ninterval_ms = 100\n\
             {vips}\
             [alert]\n[alert.notify]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$*\\\" >> {notify}\", \"notify\"]\n",
            id = i + 1,
            prio = if i == 0 { 200 } else { 100 },
            peer_id = 2 - i,
            key = key.display(),
            epoch = self.dir.join(format!("epoch{i}")).display(),
            bind = sockaddr(&me, HB_PORT),
            to = sockaddr(&peer, HB_PORT),
            serial = self._serial.paths[i].display(),
            notify = notify.display(),
        );
        std::fs::write(self.dir.join(format!("heartbeatd{i}.toml")), conf).unwrap();
    }

    fn spawn_daemon(&self, i: usize, bin: &std::path::Path, what: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{what}{i}.log")))
            .unwrap();
        Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("d{i}"))])
            .arg(bin)
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(self.rundir(i))
            .arg("-c")
            .arg(self.dir.join(format!("{what}{i}.toml")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"))
    }

    fn lvsadm(&self, i: usize, args: &str) {
        let out = Command::new(&self.lvsadm_bin)
            .arg("--rundir")
            .arg(self.rundir(i))
            .args(args.split_whitespace())
            .output()
            .expect("lvsadm");
        assert!(
            out.status.success(),
            "lvsadm {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Entries for `fam`'s VIP, port 80, in director `i`'s connection table
    /// (`lvsadm -L -c -n`).
    fn vip_conns(&self, i: usize, fam: Family) -> usize {
        let out = Command::new(&self.lvsadm_bin)
            .arg("--rundir")
            .arg(self.rundir(i))
            .args(["-L", "-c", "-n"])
            .output()
            .expect("lvsadm");
        let vip = format!(" {} ", sockaddr(&fam.vip(), 80));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| format!("{l} ").contains(&vip))
            .count()
    }

    /// Starts director `i` and gives it the service on each family's VIP, port 80, over
    /// that family's addresses of the three real servers.
    fn start_director(&mut self, i: usize) {
        // A killed director left its socket behind: wait for the new one.
        let _ = std::fs::remove_file(self.rundir(i).join("director.sock"));
        let child = self.spawn_daemon(i, &self.director_bin.clone(), "director");
        self.daemons[i][0] = Some(child);
        let sock = self.rundir(i).join("director.sock");
        let up = wait_until(Duration::from_secs(15), || sock.exists());
        assert!(up.is_some(), "director {i} did not start\n{}", self.logs());
        let flag = if self.mode == Mode::Nat { "-m" } else { "-g" };
        for fam in FAMILIES {
            let vs = sockaddr(&fam.vip(), 80);
            self.lvsadm(i, &format!("-A -t {vs} -s rr"));
            for r in 0..3 {
                let rs = sockaddr(&fam.rs(r), 80);
                self.lvsadm(i, &format!("-a -t {vs} -r {rs} {flag}"));
            }
        }
    }

    fn start_heartbeatd(&mut self, i: usize) {
        let child = self.spawn_daemon(i, std::path::Path::new(BIN), "heartbeatd");
        self.daemons[i][1] = Some(child);
    }

    /// SIGKILL both daemons of director `i`.
    fn kill_all(&mut self, i: usize) {
        for slot in &mut self.daemons[i] {
            if let Some(mut c) = slot.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Whether director `i` holds `addr` (either family) on an interface.
    fn has_addr(&self, i: usize, addr: &str) -> bool {
        let want = format!("{addr}/");
        sh(&["ip", "-n", &self.ns(&format!("d{i}")), "addr", "show"])
            .lines()
            .any(|l| {
                let mut w = l.split_whitespace();
                matches!(w.next(), Some("inet" | "inet6"))
                    && w.next().is_some_and(|a| a.starts_with(&want))
            })
    }

    /// The addresses the master holds: each family's VIP and, for VS/NAT, gateway.
    fn addresses(&self) -> Vec<String> {
        let mut v = Vec::new();
        for fam in FAMILIES {
            v.push(fam.vip());
            if self.mode == Mode::Nat {
                v.push(fam.gateway());
            }
        }
        v
    }

    /// Director `i` holds every address of [`Cluster::addresses`].
    fn holds_addresses(&self, i: usize) -> bool {
        self.addresses().iter().all(|a| self.has_addr(i, a))
    }

    /// Director `i` holds none of them.
    fn holds_no_address(&self, i: usize) -> bool {
        !self.addresses().iter().any(|a| self.has_addr(i, a))
    }

    fn mac(&self, node: &str) -> String {
        common::mac(&self.ns(node))
    }

    /// The client's neighbour entry for `fam`'s VIP: its MAC, if it has one.
    fn client_neigh(&self, fam: Family) -> Option<String> {
        common::neighbour(&self.ns("c"), &fam.vip()).map(|(mac, _)| mac)
    }

    /// Within 5 s the client's neighbour entry for `fam`'s VIP holds the MAC of director
    /// `node`: moved there by the director's announcement (or its answer).
    fn assert_client_moves_to(&self, fam: Family, node: &str) {
        let mac = self.mac(node);
        let moved = wait_until(Duration::from_secs(5), || {
            self.client_neigh(fam).as_deref() == Some(mac.as_str())
        });
        assert!(
            moved.is_some(),
            "the client's entry for {}: {:?}, {node} is {mac}\n{}",
            fam.vip(),
            self.client_neigh(fam),
            self.logs()
        );
    }

    /// How many neighbour solicitations the client has sent (`Icmp6OutNeighborSolicits`).
    fn client_solicitations(&self) -> u64 {
        let out = sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns("c"),
            "python3",
            "-c",
            "print(open('/proc/net/snmp6').read())",
        ]);
        out.lines()
            .find_map(|l| l.strip_prefix("Icmp6OutNeighborSolicits"))
            .and_then(|n| n.trim().parse().ok())
            .expect("Icmp6OutNeighborSolicits in /proc/net/snmp6")
    }

    /// One new HTTP connection from the client to `addr:port`: the body, if it worked.
    fn get(&self, addr: &str, port: u16) -> Option<String> {
        let url = format!("http://{}/", sockaddr(addr, port));
        let out = sh_out(&[
            "ip",
            "netns",
            "exec",
            &self.ns("c"),
            "curl",
            "-s",
            // -g: the brackets of an IPv6 literal are not a curl glob.
            "-g",
            "--max-time",
            "2",
            &url,
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn log(&self, i: usize, what: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{what}{i}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for i in 0..2 {
            for what in ["heartbeatd", "director"] {
                s += &format!("--- {what}{i}:\n{}\n", self.log(i, what));
            }
        }
        s
    }

    fn status(&self, i: usize) -> Option<lvs_proto::message::HaStatus> {
        common::ha_status(&self.rundir(i))
    }

    /// The backup (d1) has taken over: it holds the addresses of both families, d0 holds
    /// none, and for each family new connections work and the client's neighbour entry for
    /// the VIP holds d1's MAC, also after the client resolves the VIP afresh, and keeps
    /// holding it.
    fn assert_backup_serves(&self) {
        let t = wait_until(Duration::from_secs(5), || self.holds_addresses(1));
        assert!(t.is_some(), "d1 never took the VIPs\n{}", self.logs());
        println!("VIPs on the backup after {:?}", t.unwrap());
        assert!(self.holds_no_address(0), "d0 still holds an address");
        for fam in FAMILIES {
            self.assert_backup_serves_family(fam);
        }
    }

    fn assert_backup_serves_family(&self, fam: Family) {
        let vip = fam.vip();
        let served = wait_until(Duration::from_secs(10), || {
            self.get(&vip, 80).is_some_and(|b| b.starts_with('r'))
        });
        assert!(
            served.is_some(),
            "no new connection to {vip} through d1\n{}",
            self.logs()
        );
        let mac1 = self.mac("d1");
        let mac0 = self.mac("d0");
        assert_ne!(mac0, mac1);
        self.assert_client_moves_to(fam, "d1");
        // Resolved afresh, only d1 may answer; and the entry must keep d1's MAC.
        let _ = sh_out(&[
            "ip",
            "-n",
            &self.ns("c"),
            "neigh",
            "del",
            &vip,
            "dev",
            "eth0",
        ]);
        let end = Instant::now() + Duration::from_secs(3);
        let mut round = 0;
        while Instant::now() < end {
            if round % 10 == 0 {
                assert!(
                    self.get(&vip, 80).is_some(),
                    "connection to {vip} failed\n{}",
                    self.logs()
                );
            }
            round += 1;
            if let Some(mac) = self.client_neigh(fam) {
                assert_eq!(
                    mac, mac1,
                    "the client's entry for {vip} moved away from the backup"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(self.client_neigh(fam).as_deref(), Some(mac1.as_str()));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..2 {
            self.kill_all(i);
        }
        for mut h in self.helpers.drain(..) {
            let _ = h.kill();
            let _ = h.wait();
        }
        common::remove_bed(NODES.map(|n| self.ns(n)), &self.dir);
    }
}

/// [`Cluster::start`] without sync or auto-failback, once new connections from the client work
/// through d0 to both VIPs.
fn serving_through_d0(test: &str, tag: &str, mode: Mode) -> Option<Cluster> {
    let c = Cluster::start(test, tag, mode, None, false)?;
    for fam in FAMILIES {
        let ok = wait_until(Duration::from_secs(10), || c.get(&fam.vip(), 80).is_some());
        assert!(
            ok.is_some(),
            "no connection to {fam:?} through d0\n{}",
            c.logs()
        );
    }
    Some(c)
}

#[test]
fn primary_killed_backup_serves_nat_and_keeps_the_client() {
    // Through the primary first.
    let Some(mut c) = serving_through_d0(
        "primary_killed_backup_serves_nat_and_keeps_the_client",
        "k",
        Mode::Nat,
    ) else {
        return;
    };
    for fam in FAMILIES {
        assert_eq!(c.client_neigh(fam), Some(c.mac("d0")), "{fam:?}");
    }
    c.kill_all(0);
    // The addresses died with the process: d0's kernel no longer answers for them.
    let gone = wait_until(Duration::from_secs(2), || c.holds_no_address(0));
    assert!(gone.is_some(), "d0 kept its addresses");
    c.assert_backup_serves();
    // A local listener bound to the VIP on the new master answers too.
    let vip = V4.vip();
    c.spawn_http("d1", "local", 8080, &vip);
    let local = wait_until(Duration::from_secs(10), || {
        c.get(&vip, 8080).as_deref() == Some("local")
    });
    assert!(
        local.is_some(),
        "no answer from a listener bound to the VIP"
    );
    let st = c.status(1).expect("status of d1");
    assert_eq!(st.state, "master");
    assert!(st.holds_vips);
}

#[test]
fn primary_link_down_backup_serves() {
    let Some(c) = serving_through_d0("primary_link_down_backup_serves", "l", Mode::Nat) else {
        return;
    };
    // d0's cable is pulled at the switch: its eth0 loses carrier; the serial line still
    // hears it, so only its "fault" makes d1 take over.
    sh(&["ip", "-n", &c.ns("sw"), "link", "set", "d0l", "down"]);
    c.assert_backup_serves();
    assert!(
        c.log(1, "heartbeatd").contains("event=peer_fault"),
        "{}",
        c.logs()
    );
    let notified = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(c.dir.join("notify0")).is_ok_and(|s| s.contains("fault"))
    });
    assert!(notified.is_some(), "no fault notify on d0\n{}", c.logs());
    let st = c.status(0).expect("status of d0");
    assert_eq!(st.state, "fault", "{st:?}");
    // The cable is back: d0 returns as backup, d1 keeps serving.
    sh(&["ip", "-n", &c.ns("sw"), "link", "set", "d0l", "up"]);
    let back = wait_until(Duration::from_secs(10), || {
        c.status(0).is_some_and(|s| s.state == "backup")
    });
    assert!(back.is_some(), "d0 not backup again\n{}", c.logs());
    assert!(c.holds_addresses(1) && c.holds_no_address(0));
    for fam in FAMILIES {
        assert!(c.get(&fam.vip(), 80).is_some(), "{fam:?}\n{}", c.logs());
    }
}

#[test]
fn primary_killed_backup_serves_dr() {
    let Some(mut c) = serving_through_d0("primary_killed_backup_serves_dr", "d", Mode::Dr) else {
        return;
    };
    c.kill_all(0);
    c.assert_backup_serves();
}

/// The keep-alive client of [`MANY_CONNS`]: one more round on every connection.
struct ManyConns {
    child: Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl ManyConns {
    /// `n` connections to `fam`'s VIP; the first round's line.
    fn open(c: &Cluster, fam: Family, n: usize) -> (ManyConns, String) {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &c.ns("c"),
                "python3",
                "-c",
                MANY_CONNS,
                &fam.vip(),
            ])
            .arg(n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut m = ManyConns { child, out };
        let first = m.read();
        (m, first)
    }

    fn read(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = self.out.read_line(&mut line);
        line.trim().to_owned()
    }

    fn round(&mut self) -> String {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "get");
        }
        self.read()
    }
}

impl Drop for ManyConns {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the primary (d0) with 100 keep-alive connections to `fam`'s VIP established
/// through it; they must all still answer through d1. Before the next round the idle client's
/// neighbour entry for the VIP must hold d1's MAC: moved by d1's announcement alone (for
/// IPv6, the unsolicited neighbour advertisement: the client sent no solicitation).
fn fail_over_with_connections(c: &mut Cluster, conns: &mut ManyConns, fam: Family) {
    // The backup's director has the table (bulk resync done, updates flowing).
    let synced = wait_until(Duration::from_secs(10), || {
        c.status(1).is_some_and(|s| s.table_synced == Some(true))
    });
    assert!(
        synced.is_some(),
        "backup's table never synced\n{}",
        c.logs()
    );
    // The bulk resync may have run before the connections were opened: wait until the
    // updates about them (batched every few ms) are in the backup's table too.
    let have = wait_until(Duration::from_secs(10), || c.vip_conns(1, fam) >= 100);
    assert!(
        have.is_some(),
        "backup holds {} of 100 connections\n{}",
        c.vip_conns(1, fam),
        c.logs()
    );
    assert_eq!(c.client_neigh(fam), Some(c.mac("d0")));
    let solicited = c.client_solicitations();
    if fam == V6 {
        // The counter counts: the client solicited the VIP to reach d0.
        assert!(solicited > 0, "no solicitation counted");
    }
    c.kill_all(0);
    let t = wait_until(Duration::from_secs(5), || c.holds_addresses(1));
    assert!(t.is_some(), "{}", c.logs());
    c.assert_client_moves_to(fam, "d1");
    if fam == V6 {
        assert_eq!(
            c.client_solicitations(),
            solicited,
            "the client solicited: its entry did not move by the unsolicited advertisement alone"
        );
    }
    assert_eq!(conns.round(), "ok 100", "after the failover\n{}", c.logs());
}

/// 100 keep-alive connections to `fam`'s VIP opened through the primary keep answering
/// through the backup after the primary's daemons are killed, and new connections work.
/// The directors sync their connections (and send heartbeats) over `transport`.
fn connections_survive_the_failover(
    test: &str,
    tag: &str,
    mode: Mode,
    fam: Family,
    transport: Family,
) {
    let Some(mut c) = Cluster::start(test, tag, mode, Some(transport), false) else {
        return;
    };
    let (mut conns, first) = ManyConns::open(&c, fam, 100);
    assert_eq!(first, "ok 100", "before the failover\n{}", c.logs());
    fail_over_with_connections(&mut c, &mut conns, fam);
    assert!(c.get(&fam.vip(), 80).is_some(), "{}", c.logs());
}

#[test]
fn established_connections_survive_the_failover() {
    connections_survive_the_failover(
        "established_connections_survive_the_failover",
        "s",
        Mode::Nat,
        V4,
        V4,
    );
}

/// VS/DR: the real servers answer the client directly, so the backup must know each flow's
/// real server (from the synced table) to keep forwarding the client's side to it.
#[test]
fn established_dr_connections_survive_the_failover() {
    connections_survive_the_failover(
        "established_dr_connections_survive_the_failover",
        "e",
        Mode::Dr,
        V4,
        V4,
    );
}

/// IPv6 VS/NAT: the IPv6 entries are synced over IPv4, the client's neighbour entry moves
/// by the backup's unsolicited neighbour advertisement.
#[test]
fn established_ipv6_connections_survive_the_failover() {
    connections_survive_the_failover(
        "established_ipv6_connections_survive_the_failover",
        "6",
        Mode::Nat,
        V6,
        V4,
    );
}

/// The same with heartbeats and connection sync over IPv6: IPv6 from end to end.
#[test]
fn established_ipv6_connections_survive_the_failover_synced_over_ipv6() {
    connections_survive_the_failover(
        "established_ipv6_connections_survive_the_failover_synced_over_ipv6",
        "o",
        Mode::Nat,
        V6,
        V6,
    );
}

/// IPv6 VS/DR, entries synced over IPv4.
#[test]
fn established_ipv6_dr_connections_survive_the_failover() {
    connections_survive_the_failover(
        "established_ipv6_dr_connections_survive_the_failover",
        "r",
        Mode::Dr,
        V6,
        V4,
    );
}

/// 100 keep-alive connections to `fam`'s VIP survive the failover and then the failback to
/// the preferred director, which waits for its table to be resynchronised (over `transport`)
/// before taking the VIP back.
fn failback_loses_no_connection(test: &str, tag: &str, fam: Family, transport: Family) {
    let Some(mut c) = Cluster::start(test, tag, Mode::Nat, Some(transport), true) else {
        return;
    };
    let (mut conns, first) = ManyConns::open(&c, fam, 100);
    assert_eq!(first, "ok 100", "{}", c.logs());
    fail_over_with_connections(&mut c, &mut conns, fam);
    // The preferred director returns: backup first, its table resynchronised, then (after
    // the hold-down) it takes the VIP back, and every connection goes on.
    c.start_director(0);
    c.start_heartbeatd(0);
    // The addresses move a few ms before takeover_done is logged (the gratuitous ARP step
    // comes in between), so wait for the log line as well.
    let back = wait_until(Duration::from_secs(30), || {
        let log0 = c.log(0, "heartbeatd");
        let done = log0
            .rfind("event=heartbeat_start")
            .is_some_and(|r| log0[r..].contains("event=takeover_done"));
        done && c.holds_addresses(0) && c.holds_no_address(1)
    });
    assert!(back.is_some(), "no failback\n{}", c.logs());
    let log0 = c.log(0, "heartbeatd");
    let restarted = log0.rfind("event=heartbeat_start").expect("d0 restarted");
    let backup_at = log0[restarted..].find("event=release_done why=backup");
    let master_at = log0[restarted..].find("event=takeover_done");
    assert!(
        backup_at.is_some_and(|b| master_at.is_some_and(|m| b < m)),
        "d0 was not backup before master\n{}",
        c.logs()
    );
    assert!(
        c.log(1, "heartbeatd").contains("event=failback"),
        "{}",
        c.logs()
    );
    // The idle client was moved back by d0's announcement.
    c.assert_client_moves_to(fam, "d0");
    assert_eq!(conns.round(), "ok 100", "after the failback\n{}", c.logs());
    assert!(c.get(&fam.vip(), 80).is_some(), "{}", c.logs());
}

#[test]
fn auto_failback_after_resync_loses_no_connection() {
    failback_loses_no_connection(
        "auto_failback_after_resync_loses_no_connection",
        "f",
        V4,
        V4,
    );
}

/// The same for IPv6 connections, synced over IPv6: the failback's unsolicited neighbour
/// advertisements move the client back to d0.
#[test]
fn auto_failback_over_ipv6_loses_no_ipv6_connection() {
    failback_loses_no_connection(
        "auto_failback_over_ipv6_loses_no_ipv6_connection",
        "b",
        V6,
        V6,
    );
}
