//! The whole failover in network namespaces: a client, two directors (each running the real
//! `lvs-director` and `lvs-heartbeatd`) and three real HTTP servers, all on one bridge. The
//! client's subnet (10.88.0.0/24, VIP .100) and the real servers' (10.88.1.0/24, their NAT
//! gateway .254, also moved by lvs-heartbeatd) share the segment; the serial line between the
//! directors is a pty pair relayed by the test. Needs root: SKIPPED otherwise; needs
//! `lvs-director` and `lvsadm` built beside `lvs-heartbeatd` (`cargo build --workspace`).
//!
//! What is checked is what a client sees: who answers ARP for the VIP (the client's neighbour
//! entry), and whether new connections work.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    BIN, SerialLine, add_addr, bridge_port, new_bridge, new_netns, sh, sh_out, wait_until,
};
use lvs_testsupport::root_or_skip;

const VIP: &str = "10.88.0.100";
const GATEWAY: &str = "10.88.1.254";
const CLIENT: &str = "10.88.0.2";
const RS: [&str; 3] = ["10.88.1.21", "10.88.1.22", "10.88.1.23"];
const HB_PORT: u16 = 6941;

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

/// The namespaces, processes and files of one cluster; everything undone on drop.
struct Cluster {
    p: String,
    dir: PathBuf,
    director_bin: PathBuf,
    lvsadm_bin: PathBuf,
    /// Per director: [lvs-director, lvs-heartbeatd].
    daemons: [[Option<Child>; 2]; 2],
    helpers: Vec<Child>,
    _serial: SerialLine,
}

const NODES: [&str; 7] = ["sw", "c", "d0", "d1", "r1", "r2", "r3"];

impl Cluster {
    /// Builds the cluster; `None` (after printing SKIPPED) when not root. Without the
    /// director's binaries and the rr plugin it fails, saying how to build them.
    fn start(test: &str, tag: &str, mode: Mode, sync: bool, failback: bool) -> Option<Cluster> {
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
            daemons: Default::default(),
            helpers: Vec::new(),
            _serial: SerialLine::new(),
        };
        c.build_network(mode);
        c.start_http();
        common::write_key(&c.dir);
        for i in 0..2 {
            c.write_configs(i, mode, sync, failback);
            c.start_director(i, mode);
        }
        c.start_heartbeatd(0);
        c.start_heartbeatd(1);
        let up = wait_until(Duration::from_secs(10), || {
            c.has_addr(0, VIP) && (mode == Mode::Dr || c.has_addr(0, GATEWAY))
        });
        assert!(up.is_some(), "d0 never took the VIP\n{}", c.logs());
        let backup = wait_until(Duration::from_secs(10), || {
            c.log(1, "heartbeatd").contains("event=backup")
        });
        assert!(backup.is_some(), "d1 is not backup\n{}", c.logs());
        Some(c)
    }

    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.p)
    }

    fn build_network(&mut self, mode: Mode) {
        for n in NODES {
            new_netns(&self.ns(n));
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
        let addr = |node: &str, a: &str| add_addr(&self.ns(node), a, &[]);
        addr("c", &format!("{CLIENT}/24"));
        addr("d0", "10.88.0.11/24");
        addr("d0", "10.88.1.11/24");
        addr("d1", "10.88.0.12/24");
        addr("d1", "10.88.1.12/24");
        for (i, rs) in RS.iter().enumerate() {
            let node = format!("r{}", i + 1);
            addr(&node, &format!("{rs}/24"));
            let ns = self.ns(&node);
            match mode {
                Mode::Nat => {
                    sh(&["ip", "-n", &ns, "route", "add", "default", "via", GATEWAY]);
                }
                Mode::Dr => {
                    // The real server holds the VIP on lo, never answers ARP for it, and
                    // answers the client directly.
                    addr(&node, &format!("10.88.0.2{}/24", i + 1));
                    sh(&[
                        "ip",
                        "-n",
                        &ns,
                        "addr",
                        "add",
                        &format!("{VIP}/32"),
                        "dev",
                        "lo",
                    ]);
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

    /// Starts an HTTP server in `node`'s namespace answering `name` on `addr:port` (stopped on
    /// drop).
    fn spawn_http(&mut self, node: &str, name: &str, port: u16, addr: &str) {
        let child = lvs_testsupport::spawn_http_server(&self.ns(node), name, port, addr);
        self.helpers.push(child);
    }

    fn start_http(&mut self) {
        for i in 0..3 {
            let node = format!("r{}", i + 1);
            self.spawn_http(&node, &node, 80, "0.0.0.0");
        }
        for i in 0..3 {
            let node = format!("r{}", i + 1);
            let ok = wait_until(Duration::from_secs(10), || {
                sh_out(&[
                    "ip",
                    "netns",
                    "exec",
                    &self.ns(&node),
                    "python3",
                    "-c",
                    "import socket; socket.create_connection(('127.0.0.1', 80), 1)",
                ])
                .status
                .success()
            });
            assert!(ok.is_some(), "HTTP server on {node} did not start");
        }
    }

    fn rundir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("run{i}"))
    }

    fn write_configs(&self, i: usize, mode: Mode, sync: bool, failback: bool) {
        let me = format!("10.88.0.1{}", i + 1);
        let peer = format!("10.88.0.1{}", 2 - i);
        let key = self.dir.join("key");
        let sync_section = if sync {
            let state = self.dir.join(format!("sync{i}"));
            std::fs::create_dir_all(&state).unwrap();
            format!(
                "[sync]\nlisten = \"{me}:8848\"\npeers = [\"{peer}:8848\"]\nkey_file = \"{}\"\nstate_dir = \"{}\"\n",
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
        let gateway = if mode == Mode::Nat {
            format!("[[vip]]\naddr = \"{GATEWAY}/24\"\ninterface = \"eth0\"\n")
        } else {
            String::new()
        };
        let conf = format!(
            "node_id = {id}\npriority = {prio}\npeers = [{peer_id}]\n\
             auth_key_file = \"{key}\"\nepoch_file = \"{epoch}\"\n\
             auto_failback = {failback}\nhold_down_ms = 2000\n\
             [timers]\nkeepalive_ms = 200\ndeadtime_ms = 1000\n\
             [udp]\nbind = \"{me}:{HB_PORT}\"\npeers = [\"{peer}:{HB_PORT}\"]\n\
             [serial]\ndevice = \"{serial}\"\nbaud = 115200\n\
             [garp]\ncount = 3\ninterval_ms = 100\n\
             [[vip]]\naddr = \"{VIP}/24\"\ninterface = \"eth0\"\n{gateway}\
             [alert]\n[alert.notify]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$*\\\" >> {notify}\", \"notify\"]\n",
            id = i + 1,
            prio = if i == 0 { 200 } else { 100 },
            peer_id = 2 - i,
            key = key.display(),
            epoch = self.dir.join(format!("epoch{i}")).display(),
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

    /// Entries for the VIP's port 80 in director `i`'s connection table (`lvsadm -L -c -n`).
    fn vip_conns(&self, i: usize) -> usize {
        let out = Command::new(&self.lvsadm_bin)
            .arg("--rundir")
            .arg(self.rundir(i))
            .args(["-L", "-c", "-n"])
            .output()
            .expect("lvsadm");
        let vip = format!(" {VIP}:80 ");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| format!("{l} ").contains(&vip))
            .count()
    }

    fn start_director(&mut self, i: usize, mode: Mode) {
        // A killed director left its socket behind: wait for the new one.
        let _ = std::fs::remove_file(self.rundir(i).join("director.sock"));
        let child = self.spawn_daemon(i, &self.director_bin.clone(), "director");
        self.daemons[i][0] = Some(child);
        let sock = self.rundir(i).join("director.sock");
        let up = wait_until(Duration::from_secs(15), || sock.exists());
        assert!(up.is_some(), "director {i} did not start\n{}", self.logs());
        self.lvsadm(i, &format!("-A -t {VIP}:80 -s rr"));
        let flag = if mode == Mode::Nat { "-m" } else { "-g" };
        for rs in RS {
            self.lvsadm(i, &format!("-a -t {VIP}:80 -r {rs}:80 {flag}"));
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

    fn has_addr(&self, i: usize, addr: &str) -> bool {
        sh(&["ip", "-n", &self.ns(&format!("d{i}")), "-4", "addr", "show"])
            .contains(&format!("inet {addr}/"))
    }

    fn mac(&self, node: &str) -> String {
        common::mac(&self.ns(node))
    }

    /// The client's neighbour entry for the VIP: its MAC, if it has one.
    fn client_neigh(&self) -> Option<String> {
        common::neighbour(&self.ns("c"), VIP).map(|(mac, _)| mac)
    }

    /// One new HTTP connection from the client to `addr:port`: the body, if it worked.
    fn get(&self, addr: &str, port: u16) -> Option<String> {
        let out = sh_out(&[
            "ip",
            "netns",
            "exec",
            &self.ns("c"),
            "curl",
            "-s",
            "--max-time",
            "2",
            &format!("http://{addr}:{port}/"),
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

    /// The backup (d1) has taken over: it holds the addresses, d0 holds none, new
    /// connections work, and the client's neighbour entry for the VIP holds d1's MAC, also
    /// after the client resolves the VIP afresh, and keeps holding it.
    fn assert_backup_serves(&self, mode: Mode) {
        let t = wait_until(Duration::from_secs(5), || self.has_addr(1, VIP));
        assert!(t.is_some(), "d1 never took the VIP\n{}", self.logs());
        println!("VIP on the backup after {:?}", t.unwrap());
        if mode == Mode::Nat {
            assert!(self.has_addr(1, GATEWAY), "{}", self.logs());
        }
        assert!(!self.has_addr(0, VIP), "d0 still holds the VIP");
        let served = wait_until(Duration::from_secs(10), || {
            self.get(VIP, 80).is_some_and(|b| b.starts_with('r'))
        });
        assert!(
            served.is_some(),
            "no new connection through d1\n{}",
            self.logs()
        );
        let mac1 = self.mac("d1");
        let mac0 = self.mac("d0");
        assert_ne!(mac0, mac1);
        let garp = wait_until(Duration::from_secs(5), || {
            self.client_neigh().as_deref() == Some(mac1.as_str())
        });
        assert!(
            garp.is_some(),
            "client's entry for the VIP: {:?}, d1 is {mac1}, d0 is {mac0}",
            self.client_neigh()
        );
        // Resolved afresh, only d1 may answer; and the entry must keep d1's MAC.
        let _ = sh_out(&[
            "ip",
            "-n",
            &self.ns("c"),
            "neigh",
            "del",
            VIP,
            "dev",
            "eth0",
        ]);
        let end = Instant::now() + Duration::from_secs(3);
        let mut round = 0;
        while Instant::now() < end {
            if round % 10 == 0 {
                assert!(
                    self.get(VIP, 80).is_some(),
                    "connection failed\n{}",
                    self.logs()
                );
            }
            round += 1;
            if let Some(mac) = self.client_neigh() {
                assert_eq!(
                    mac, mac1,
                    "the client's VIP entry moved away from the backup"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(self.client_neigh().as_deref(), Some(mac1.as_str()));
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
/// through d0.
fn serving_through_d0(test: &str, tag: &str, mode: Mode) -> Option<Cluster> {
    let c = Cluster::start(test, tag, mode, false, false)?;
    let ok = wait_until(Duration::from_secs(10), || c.get(VIP, 80).is_some());
    assert!(ok.is_some(), "no connection through d0\n{}", c.logs());
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
    assert_eq!(c.client_neigh(), Some(c.mac("d0")));
    c.kill_all(0);
    // The addresses died with the process: d0's kernel no longer answers for them.
    let gone = wait_until(Duration::from_secs(2), || {
        !c.has_addr(0, VIP) && !c.has_addr(0, GATEWAY)
    });
    assert!(gone.is_some(), "d0 kept its addresses");
    c.assert_backup_serves(Mode::Nat);
    // A local listener bound to the VIP on the new master answers too.
    c.spawn_http("d1", "local", 8080, VIP);
    let local = wait_until(Duration::from_secs(10), || {
        c.get(VIP, 8080).as_deref() == Some("local")
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
    c.assert_backup_serves(Mode::Nat);
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
    assert!(c.has_addr(1, VIP) && !c.has_addr(0, VIP));
    assert!(c.get(VIP, 80).is_some(), "{}", c.logs());
}

#[test]
fn primary_killed_backup_serves_dr() {
    let Some(mut c) = serving_through_d0("primary_killed_backup_serves_dr", "d", Mode::Dr) else {
        return;
    };
    c.kill_all(0);
    c.assert_backup_serves(Mode::Dr);
}

/// The keep-alive client of [`MANY_CONNS`]: one more round on every connection.
struct ManyConns {
    child: Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl ManyConns {
    fn open(c: &Cluster, n: usize) -> (ManyConns, String) {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &c.ns("c"),
                "python3",
                "-c",
                MANY_CONNS,
                VIP,
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

/// Kills the primary (d0) with 100 keep-alive connections established through it; true
/// when they all still answer through d1.
fn fail_over_with_connections(c: &mut Cluster, conns: &mut ManyConns) {
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
    let have = wait_until(Duration::from_secs(10), || c.vip_conns(1) >= 100);
    assert!(
        have.is_some(),
        "backup holds {} of 100 connections\n{}",
        c.vip_conns(1),
        c.logs()
    );
    c.kill_all(0);
    let t = wait_until(Duration::from_secs(5), || c.has_addr(1, VIP));
    assert!(t.is_some(), "{}", c.logs());
    assert_eq!(conns.round(), "ok 100", "after the failover\n{}", c.logs());
}

/// 100 keep-alive connections opened through the primary keep answering through the backup
/// after the primary's daemons are killed, and new connections work.
fn connections_survive_the_failover(test: &str, tag: &str, mode: Mode) {
    let Some(mut c) = Cluster::start(test, tag, mode, true, false) else {
        return;
    };
    let (mut conns, first) = ManyConns::open(&c, 100);
    assert_eq!(first, "ok 100", "before the failover\n{}", c.logs());
    fail_over_with_connections(&mut c, &mut conns);
    assert!(c.get(VIP, 80).is_some(), "{}", c.logs());
}

#[test]
fn established_connections_survive_the_failover() {
    connections_survive_the_failover(
        "established_connections_survive_the_failover",
        "s",
        Mode::Nat,
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
    );
}

#[test]
fn auto_failback_after_resync_loses_no_connection() {
    let Some(mut c) = Cluster::start(
        "auto_failback_after_resync_loses_no_connection",
        "f",
        Mode::Nat,
        true,
        true,
    ) else {
        return;
    };
    let (mut conns, first) = ManyConns::open(&c, 100);
    assert_eq!(first, "ok 100", "{}", c.logs());
    fail_over_with_connections(&mut c, &mut conns);
    // The preferred director returns: backup first, its table resynchronised, then (after
    // the hold-down) it takes the VIP back, and every connection goes on.
    c.start_director(0, Mode::Nat);
    c.start_heartbeatd(0);
    // The addresses move a few ms before takeover_done is logged (the gratuitous ARP step
    // comes in between), so wait for the log line as well.
    let back = wait_until(Duration::from_secs(30), || {
        let log0 = c.log(0, "heartbeatd");
        let done = log0
            .rfind("event=heartbeat_start")
            .is_some_and(|r| log0[r..].contains("event=takeover_done"));
        done && c.has_addr(0, VIP) && !c.has_addr(1, VIP)
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
    assert_eq!(conns.round(), "ok 100", "after the failback\n{}", c.logs());
    assert!(c.get(VIP, 80).is_some(), "{}", c.logs());
}
