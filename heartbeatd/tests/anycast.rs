//! Active-active directors behind an ECMP router, announced by real BGP daemons, in network
//! namespaces: a router running FRR (zebra, bgpd with `maximum-paths`, bfdd: BFD 100 ms x 3)
//! between a client and one segment; on that segment three directors, each running the real
//! `lvs-director` (`[cluster] mode = "active-active"`, syncing with the others), BIRD 2 and
//! `lvs-heartbeatd` in `mode = "anycast"`, two real servers (VS/DR) and a probe host. Needs
//! root: SKIPPED otherwise; needs `lvs-director`, `lvsadm` and the mh plugin built beside
//! `lvs-heartbeatd`, and `bird` (bird2) and FRR (frr) installed (scripts/test.sh installs
//! them).
//!
//! What is checked is what the router and a client see: the router's route to the VIP and its
//! nexthops, and whether connections work.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{BIN, add_addr, bridge_port, new_bridge, new_netns, sh, sh_out, wait_until};
use lvs_testsupport::lines::{self, Round};
use lvs_testsupport::root_or_skip;

const VIP: &str = "10.77.9.100";
const ROUTER: &str = "10.77.1.1";
const VIP6: &str = "2001:db8:77:9::100";
const ROUTER6: &str = "2001:db8:77:1::1";
const FRR_DAEMONS: [&str; 3] = ["zebra", "bfdd", "bgpd"];
const FRR_DIR: &str = "/usr/lib/frr";

/// Director `i` (0..3) on the segment.
fn director_addr(i: usize) -> String {
    format!("10.77.1.1{}", i + 1)
}

/// Director `i` (0..3) on the segment, IPv6.
fn director_addr6(i: usize) -> String {
    format!("2001:db8:77:1::1{}", i + 1)
}

/// Real server `i` (0..2) on the segment, IPv6.
fn rs_addr6(i: usize) -> String {
    format!("2001:db8:77:1::2{}", i + 1)
}

/// Real server `i` (0..2) on the segment.
fn rs_addr(i: usize) -> String {
    format!("10.77.1.2{}", i + 1)
}

fn pid(c: &Child) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(i32::try_from(c.id()).expect("a pid fits an i32"))
}

/// What the real servers run.
#[derive(Clone, Copy, PartialEq)]
enum Servers {
    /// HTTP on port 80, IPv4 and IPv6 (`curl` from the client).
    Http,
    /// [`lines::SERVER`]: each line answered with the server's name (`rs0`, `rs1`), for
    /// [`lines::CLIENT`] holding many connections.
    Lines,
}

/// One bed at a time: each runs seven FRR, BIRD and lvs-rs daemons and times withdrawals to
/// within a second, which two beds side by side on a small machine would blur.
static ONE_BED: Mutex<()> = Mutex::new(());

struct Bed {
    _one: MutexGuard<'static, ()>,
    p: String,
    dir: PathBuf,
    director_bin: PathBuf,
    lvsadm_bin: PathBuf,
    /// Per director: lvs-director, bird, lvs-heartbeatd.
    daemons: [[Option<Child>; 3]; 3],
    frr: Vec<Child>,
    helpers: Vec<Child>,
    /// [`lines::CLIENT`] in the client's namespace, once started.
    client: Option<lines::Client>,
}

const NODES: [&str; 9] = ["sw", "r", "c", "p", "d0", "d1", "d2", "rs0", "rs1"];
const DIRECTOR: usize = 0;
const BIRD: usize = 1;
const HEARTBEATD: usize = 2;

impl Bed {
    fn start(test: &str, servers: Servers) -> Option<Bed> {
        if !root_or_skip(test) {
            return None;
        }
        for prog in ["bird", "/usr/lib/frr/bgpd"] {
            if sh_out(&["sh", "-c", &format!("command -v {prog}")])
                .stdout
                .is_empty()
            {
                lvs_testsupport::skip(test, &format!("needs {prog} (bird2, frr)"));
                return None;
            }
        }
        let director_bin = lvs_testsupport::sibling_bin(BIN, "lvs-director");
        let lvsadm_bin = lvs_testsupport::sibling_bin(BIN, "lvsadm");
        lvs_testsupport::sibling_bin(BIN, "liblvs_sched_mh.so");
        let one = ONE_BED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Tests of this file run one after the other in one process: the test's own initial
        // tells their namespaces apart from a failed one's left behind.
        let p = format!("ac{}{}", std::process::id() % 100_000, &test[..1]);
        let dir = std::env::temp_dir().join(format!("{p}-anycast"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut b = Bed {
            _one: one,
            p,
            dir,
            director_bin,
            lvsadm_bin,
            daemons: Default::default(),
            frr: Vec::new(),
            helpers: Vec::new(),
            client: None,
        };
        b.build_network();
        match servers {
            Servers::Http => b.start_http(),
            Servers::Lines => b.start_line_servers(),
        }
        b.start_router();
        for i in 0..3 {
            b.start_director(i);
            b.start_bird(i);
            b.start_heartbeatd(i);
        }
        Some(b)
    }

    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.p)
    }

    fn exec(&self, node: &str, args: &[&str]) -> String {
        let ns = self.ns(node);
        let mut all = vec!["ip", "netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        sh(&all)
    }

    fn build_network(&mut self) {
        for n in NODES {
            let ns = self.ns(n);
            new_netns(&ns);
            // Static addresses on segments of our own: no duplicate-address detection, so
            // the IPv6 addresses (and the link-local ones BGP and BFD start from) are usable
            // at once. Set before eth0 arrives, which inherits it.
            for k in ["all", "default"] {
                let key = format!("net.ipv6.conf.{k}.accept_dad=0");
                sh(&["ip", "netns", "exec", &ns, "sysctl", "-qw", &key]);
            }
        }
        let sw = self.ns("sw");
        new_bridge(&sw);
        for n in ["r", "p", "d0", "d1", "d2", "rs0", "rs1"] {
            let ns = self.ns(n);
            bridge_port(&sw, &format!("{n}l"), &ns);
            for (space, dev) in [(&sw, format!("{n}l")), (&ns, "eth0".to_owned())] {
                let _ = sh_out(&[
                    "ip", "netns", "exec", space, "ethtool", "-K", &dev, "tso", "off", "gso",
                    "off", "gro", "off",
                ]);
            }
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        }
        let r = self.ns("r");
        add_addr(&r, "10.77.1.1/24", &[]);
        add_addr(&r, &format!("{ROUTER6}/64"), &[]);
        add_addr(&self.ns("p"), "10.77.1.5/24", &[]);
        let default_routes = |ns: &str, v4: &str, v6: &str| {
            sh(&["ip", "-n", ns, "route", "add", "default", "via", v4]);
            sh(&["ip", "-n", ns, "-6", "route", "add", "default", "via", v6]);
        };
        for i in 0..3 {
            let ns = self.ns(&format!("d{i}"));
            add_addr(&ns, &format!("{}/24", director_addr(i)), &[]);
            add_addr(&ns, &format!("{}/64", director_addr6(i)), &[]);
            default_routes(&ns, ROUTER, ROUTER6);
        }
        // The client behind the router, on a link of its own.
        let c = self.ns("c");
        sh(&[
            "ip", "-n", &r, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns",
            &c,
        ]);
        for a in ["10.77.0.1/24", "2001:db8:77::1/64"] {
            sh(&["ip", "-n", &r, "addr", "add", a, "dev", "eth1"]);
        }
        sh(&["ip", "-n", &r, "link", "set", "eth1", "up"]);
        sh(&["ip", "-n", &c, "link", "set", "eth0", "up"]);
        add_addr(&c, "10.77.0.2/24", &[]);
        add_addr(&c, "2001:db8:77::2/64", &[]);
        default_routes(&c, "10.77.0.1", "2001:db8:77::1");
        for k in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ] {
            self.exec("r", &["sysctl", "-qw", k]);
        }
        // VS/DR real servers: the VIPs on lo, never answered for by ARP (nor by neighbour
        // discovery: Linux answers a solicitation only for an address of the interface it
        // came in on); replies through the router.
        for i in 0..2 {
            let node = format!("rs{i}");
            let ns = self.ns(&node);
            add_addr(&ns, &format!("{}/24", rs_addr(i)), &[]);
            add_addr(&ns, &format!("{}/64", rs_addr6(i)), &[]);
            for vip in [format!("{VIP}/32"), format!("{VIP6}/128")] {
                sh(&["ip", "-n", &ns, "addr", "add", &vip, "dev", "lo"]);
            }
            default_routes(&ns, ROUTER, ROUTER6);
            for k in [
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.eth0.arp_ignore=1",
                "net.ipv4.conf.eth0.arp_announce=2",
            ] {
                self.exec(&node, &["sysctl", "-qw", k]);
            }
        }
    }

    fn start_http(&mut self) {
        for i in 0..2 {
            let node = format!("rs{i}");
            let child = lvs_testsupport::spawn_http_server(&self.ns(&node), &node, 80, "0.0.0.0");
            self.helpers.push(child);
            let child = Command::new("ip")
                .args(["netns", "exec", &self.ns(&node), "python3", "-c", &http6()])
                .args([node.as_str(), "80", "::"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start python3 (ip netns exec)");
            self.helpers.push(child);
            let up = wait_until(Duration::from_secs(10), || {
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
            assert!(up.is_some(), "HTTP server on {node} did not start");
        }
    }

    fn start_line_servers(&mut self) {
        for i in 0..2 {
            let child = lines::start_server(&self.ns(&format!("rs{i}")), &format!("rs{i}"));
            self.helpers.push(child);
        }
    }

    /// [`lines::CLIENT`] in the client's namespace, to the VIP.
    fn start_client(&mut self) {
        self.client = Some(lines::Client::start(&self.ns("c"), VIP));
    }

    /// `open N` or `round` to the client: its answer.
    fn client(&mut self, cmd: &str) -> Round {
        self.client.as_mut().expect("the client runs").command(cmd)
    }

    /// FRR in the router's namespace, as its `frr` user (it refuses root), each daemon with
    /// its own files in a directory of this test: zebra, then bfdd and bgpd.
    fn start_router(&mut self) {
        let frr = self.dir.join("frr");
        std::fs::create_dir_all(&frr).unwrap();
        std::fs::write(frr.join("zebra.conf"), "hostname router\n").unwrap();
        std::fs::write(
            frr.join("bfdd.conf"),
            include_str!("../../etc/frr/lvs-router-bfdd.conf"),
        )
        .unwrap();
        std::fs::write(
            frr.join("bgpd.conf"),
            include_str!("../../etc/frr/lvs-router-bgpd.conf")
                .replace("192.0.2.1", ROUTER)
                .replace("192.0.2.0/24", "10.77.1.0/24")
                .replace("2001:db8:1::/64", "2001:db8:77:1::/64"),
        )
        .unwrap();
        sh(&["chown", "-R", "frr:frr", frr.to_str().unwrap()]);
        let zserv = frr.join("zserv.api");
        for d in FRR_DAEMONS {
            let log = std::fs::File::create(self.dir.join(format!("{d}.out"))).unwrap();
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &self.ns("r")])
                .arg(Path::new(FRR_DIR).join(d))
                .args(["-u", "frr", "-g", "frr", "-P", "0", "-f"])
                .arg(frr.join(format!("{d}.conf")))
                .arg("-i")
                .arg(frr.join(format!("{d}.pid")))
                .arg("-z")
                .arg(&zserv)
                .arg("--vty_socket")
                .arg(&frr)
                .arg("--log")
                .arg(format!("file:{}", frr.join(format!("{d}.log")).display()));
            if d == "bgpd" {
                cmd.args(["-p", "179"]);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start {d}: {e}"));
            self.frr.push(child);
            if d == "zebra" {
                let up = wait_until(Duration::from_secs(10), || zserv.exists());
                assert!(up.is_some(), "zebra did not start\n{}", self.logs());
            }
        }
    }

    fn rundir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("run{i}"))
    }

    fn bird_socket(&self, i: usize) -> PathBuf {
        self.dir.join(format!("bird{i}.ctl"))
    }

    fn spawn_logged(&self, i: usize, what: &str, program: &Path, args: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{what}{i}.log")))
            .unwrap();
        Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("d{i}"))])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"))
    }

    fn spawn_daemon(&self, i: usize, bin: &Path, what: &str) -> Child {
        let conf = self.dir.join(format!("{what}{i}.toml"));
        let rundir = self.rundir(i);
        self.spawn_logged(
            i,
            what,
            bin,
            &[
                "-f",
                "--no-syslog",
                "--rundir",
                rundir.to_str().unwrap(),
                "-c",
                conf.to_str().unwrap(),
            ],
        )
    }

    fn lvsadm(&self, i: usize, args: &str) -> String {
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
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (connections director `i` scheduled, packets it forwarded) for the VIP's service.
    fn carried(&self, i: usize) -> (u64, u64) {
        lines::carried(&self.lvsadm(i, &format!("-L -n --stats --exact -t {VIP}:80")))
    }

    /// Director `i`'s established connections to the VIP, by real server name.
    fn established(&self, i: usize) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::new();
        for l in self.lvsadm(i, "-L -n -c").lines() {
            if !l.contains("ESTABLISHED") || !l.contains(&format!("{VIP}:80")) {
                continue;
            }
            if let Some(rs) = (0..2).find(|&r| l.contains(&format!("{}:80", rs_addr(r)))) {
                *by.entry(format!("rs{rs}")).or_insert(0) += 1;
            }
        }
        by
    }

    /// Director `i`'s `lvsadm -L --daemon` says its bulk resync is complete.
    fn synced(&self, i: usize) -> bool {
        let out = self.lvsadm(i, "-L --daemon");
        out.lines()
            .any(|l| l.starts_with("synced:") && l.contains("bulk resync complete: yes"))
    }

    /// Director `i`'s connections created from a mid-flow segment (sloppy TCP).
    fn midflow(&self, i: usize) -> u64 {
        let out = self.lvsadm(i, "-L --daemon");
        let l = out
            .lines()
            .find(|l| l.starts_with("mid-flow connections created:"))
            .unwrap_or_else(|| panic!("no mid-flow count in\n{out}"));
        l.rsplit(' ').next().unwrap().parse().expect("a count")
    }

    /// Director `i` with the VIPs' services on port 80 over both real servers (VS/DR), from
    /// its rules file: loaded before sync starts, so that the bulk resync of a restart finds
    /// them.
    fn start_director(&mut self, i: usize) {
        // Active-active: the default scheduler is mh, and connections sync with the other
        // two directors (lvs-heartbeatd announces once the bulk resync of the start is done).
        let key = common::write_key(&self.dir);
        let state = self.dir.join(format!("sync{i}"));
        std::fs::create_dir_all(&state).unwrap();
        let peers: Vec<String> = (0..3)
            .filter(|&p| p != i)
            .map(|p| format!("\"{}:8848\"", director_addr(p)))
            .collect();
        std::fs::write(
            self.dir.join(format!("director{i}.toml")),
            format!(
                "workers = 1\ninterfaces = [\"eth0\"]\nrules_file = \"{}\"\n\
                 [cluster]\nmode = \"active-active\"\n\
                 [sync]\nlisten = \"0.0.0.0:8848\"\npeers = [{}]\nkey_file = \"{}\"\n\
                 state_dir = \"{}\"\n",
                self.rules().display(),
                peers.join(", "),
                key.display(),
                state.display()
            ),
        )
        .unwrap();
        let _ = std::fs::remove_file(self.rundir(i).join("director.sock"));
        let child = self.spawn_daemon(i, &self.director_bin.clone(), "director");
        self.daemons[i][DIRECTOR] = Some(child);
        let sock = self.rundir(i).join("director.sock");
        let up = wait_until(Duration::from_secs(15), || sock.exists());
        assert!(up.is_some(), "director {i} did not start\n{}", self.logs());
    }

    /// The directors' rules file: active-active, so the default scheduler is mh.
    fn rules(&self) -> PathBuf {
        let path = self.dir.join("rules");
        let mut r = format!("-A -t {VIP}:80\n-A -t [{VIP6}]:80\n");
        for k in 0..2 {
            r.push_str(&format!("-a -t {VIP}:80 -r {}:80 -g\n", rs_addr(k)));
            r.push_str(&format!("-a -t [{VIP6}]:80 -r [{}]:80 -g\n", rs_addr6(k)));
        }
        std::fs::write(&path, r).unwrap();
        path
    }

    /// BIRD with the sample director configuration (the addresses made this bed's), its
    /// commented IPv6 parts in use.
    fn start_bird(&mut self, i: usize) {
        let conf = self.dir.join(format!("bird{i}.conf"));
        let sample = include_str!("../../etc/bird/lvs-anycast.conf");
        let mut text = sample.to_owned();
        for start in [
            "# protocol static vip_2001_db8__100 {",
            "# protocol bgp upstream6 {",
        ] {
            let block = &sample[sample.find(start).expect("the sample's IPv6 part")..];
            let end = block.find("\n# }\n").expect("its end") + "\n# }\n".len();
            for line in block[..end].lines() {
                text.push_str(
                    line.strip_prefix("# ")
                        .unwrap_or(line.trim_start_matches('#')),
                );
                text.push('\n');
            }
        }
        std::fs::write(
            &conf,
            text.replace("2001:db8:1::11", &director_addr6(i))
                .replace("neighbor 2001:db8:1::1 ", &format!("neighbor {ROUTER6} "))
                .replace("2001:db8::100", VIP6)
                .replace("vip_2001_db8__100", "vip_2001_db8_77_9__100")
                .replace("192.0.2.11", &director_addr(i))
                .replace("neighbor 192.0.2.1 ", &format!("neighbor {ROUTER} "))
                .replace("203.0.113.100", VIP)
                .replace("vip_203_0_113_100", "vip_10_77_9_100")
                .replace("log syslog all;", "log stderr all;"),
        )
        .unwrap();
        let sock = self.bird_socket(i);
        let _ = std::fs::remove_file(&sock);
        let bird = self.spawn_logged(
            i,
            "bird",
            Path::new("bird"),
            &[
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
                "-P",
                self.dir.join(format!("bird{i}.pid")).to_str().unwrap(),
            ],
        );
        self.daemons[i][BIRD] = Some(bird);
        let up = wait_until(Duration::from_secs(10), || sock.exists());
        assert!(up.is_some(), "bird {i} did not start\n{}", self.logs());
    }

    /// Director `i`'s lvs-heartbeatd configuration, announcing `vips`.
    fn write_heartbeatd_config(&self, i: usize, vips: &[&str]) {
        let mut text = format!(
            "mode = \"anycast\"\nnode_id = {}\ncheck_interval_ms = 100\n\
             [bgp]\ncontrol_socket = \"{}\"\nsessions = [\"upstream\", \"upstream6\"]\n",
            i + 1,
            self.bird_socket(i).display()
        );
        for v in vips {
            text.push_str(&format!("[[vip]]\naddr = \"{v}\"\n"));
        }
        std::fs::write(self.dir.join(format!("heartbeatd{i}.toml")), text).unwrap();
    }

    fn start_heartbeatd(&mut self, i: usize) {
        self.write_heartbeatd_config(i, &[VIP, VIP6]);
        let child = self.spawn_daemon(i, Path::new(BIN), "heartbeatd");
        self.daemons[i][HEARTBEATD] = Some(child);
    }

    fn kill(&mut self, i: usize, which: usize) {
        if let Some(mut c) = self.daemons[i][which].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, i: usize, which: usize, signal: nix::sys::signal::Signal) {
        let c = self.daemons[i][which].as_ref().expect("running");
        nix::sys::signal::kill(pid(c), signal).unwrap();
    }

    /// The nexthops of the router's route to the VIP.
    fn nexthops(&self) -> Vec<String> {
        let out = sh(&["ip", "-n", &self.ns("r"), "-4", "route", "show", VIP]);
        let w: Vec<&str> = out.split_whitespace().collect();
        w.windows(2)
            .filter(|p| p[0] == "via")
            .map(|p| p[1].to_owned())
            .collect()
    }

    /// How many nexthops the router's route to the IPv6 VIP has (link-local addresses: BGP
    /// over a shared link gives the directors' link-local addresses as nexthops).
    fn nexthops6(&self) -> usize {
        let out = sh(&["ip", "-n", &self.ns("r"), "-6", "route", "show", VIP6]);
        out.split_whitespace().filter(|w| *w == "via").count()
    }

    /// Within `limit` the router's route to the IPv6 VIP has `n` nexthops.
    fn wait_nexthops6(&self, n: usize, limit: Duration) {
        let t = wait_until(limit, || self.nexthops6() == n);
        assert!(
            t.is_some(),
            "the router's nexthops for {VIP6}: {}, wanted {n} within {limit:?}\n{}",
            self.nexthops6(),
            self.logs()
        );
    }

    /// Within `limit` the router's nexthops for the VIP are those of `directors`: the time it
    /// took.
    fn wait_nexthops(&self, directors: &[usize], limit: Duration) -> Duration {
        let mut want: Vec<String> = directors.iter().map(|&i| director_addr(i)).collect();
        want.sort();
        let t = wait_until(limit, || {
            let mut have = self.nexthops();
            have.sort();
            have == want
        });
        t.unwrap_or_else(|| {
            panic!(
                "the router's nexthops for {VIP}: {:?}, wanted {want:?} within {limit:?}\n{}",
                self.nexthops(),
                self.logs()
            )
        })
    }

    /// Director `i`'s BFD session to the router is up, with the 100 ms timers (`show bfd
    /// sessions` over BIRD's control socket: `IP Interface State Since Interval Timeout`).
    fn bfd_fast(&self, i: usize) -> bool {
        let mut bird = lvs_heartbeatd::anycast::bird::Bird::new(&self.bird_socket(i));
        bird.command("show bfd sessions").is_ok_and(|lines| {
            lines.iter().any(|l| {
                let w: Vec<&str> = l.text.split_whitespace().collect();
                w.first() == Some(&ROUTER)
                    && w.get(2) == Some(&"Up")
                    && w.iter().rev().nth(1) == Some(&"0.100")
            })
        })
    }

    /// One new HTTP connection to the VIP from `node`: the body, if it worked.
    fn get(&self, node: &str) -> Option<String> {
        self.get_url(node, &format!("http://{VIP}/"))
    }

    /// The same to the IPv6 VIP.
    fn get6(&self, node: &str) -> Option<String> {
        self.get_url(node, &format!("http://[{VIP6}]/"))
    }

    fn get_url(&self, node: &str, url: &str) -> Option<String> {
        let out = sh_out(&[
            "ip",
            "netns",
            "exec",
            &self.ns(node),
            "curl",
            "-s",
            // -g: the brackets of an IPv6 literal are not a curl glob.
            "-g",
            "--max-time",
            "2",
            url,
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `lvs-heartbeatd --drain` / `--undrain` for director `i`: its output.
    fn drain(&self, i: usize, on: bool) -> String {
        let out = Command::new(BIN)
            .arg("--rundir")
            .arg(self.rundir(i))
            .arg(if on { "--drain" } else { "--undrain" })
            .output()
            .expect("lvs-heartbeatd --drain");
        assert!(
            out.status.success(),
            "--drain: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self, i: usize) -> Option<lvs_proto::message::AnycastStatus> {
        let sock = self.rundir(i).join("heartbeatd.sock");
        let mut c = lvs_proto::Client::connect(&sock, lvs_proto::Role::Other).ok()?;
        match c.request(lvs_proto::Request::AnycastStatus).ok()? {
            lvs_proto::Response::Anycast(s) => Some(s),
            _ => None,
        }
    }

    fn log(&self, i: usize, what: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{what}{i}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for i in 0..3 {
            for what in ["heartbeatd", "bird", "director"] {
                s += &format!("--- {what}{i}:\n{}\n", self.log(i, what));
            }
        }
        for d in FRR_DAEMONS {
            let log = std::fs::read_to_string(self.dir.join("frr").join(format!("{d}.log")))
                .unwrap_or_default();
            s += &format!("--- {d}:\n{log}\n");
        }
        s
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.client = None;
        for i in 0..3 {
            for which in [HEARTBEATD, BIRD, DIRECTOR] {
                // A frozen BIRD must be woken to die.
                if let Some(c) = &self.daemons[i][which] {
                    let _ = nix::sys::signal::kill(pid(c), nix::sys::signal::Signal::SIGCONT);
                }
                self.kill(i, which);
            }
        }
        for mut c in self.frr.drain(..).chain(self.helpers.drain(..)) {
            let _ = c.kill();
            let _ = c.wait();
        }
        common::remove_bed(NODES.map(|n| self.ns(n)), &self.dir);
    }
}

/// The whole life of three anycast directors, seen from the router.
#[test]
fn three_directors_announce_withdraw_and_drain() {
    let Some(mut b) = Bed::start("three_directors_announce_withdraw_and_drain", Servers::Http)
    else {
        return;
    };
    use nix::sys::signal::Signal::{SIGCONT, SIGHUP, SIGSTOP, SIGTERM};

    // All three announce: one ECMP route, three nexthops; connections work.
    let t = b.wait_nexthops(&[0, 1, 2], Duration::from_secs(30));
    println!("ECMP route with 3 nexthops after {t:?}");
    b.wait_nexthops6(3, Duration::from_secs(30));
    let body = lvs_testsupport::wait_for(
        "a connection to the IPv6 VIP",
        Duration::from_secs(10),
        || b.get6("c"),
    );
    assert!(body.starts_with("rs"), "{body}");
    for _ in 0..6 {
        let body =
            lvs_testsupport::wait_for("a connection to the VIP", Duration::from_secs(10), || {
                b.get("c")
            });
        assert!(body.starts_with("rs"), "{body}");
    }
    for i in 0..3 {
        let log = b.log(i, "heartbeatd");
        assert!(
            log.contains("event=anycast_announce vip=10.77.9.100/32"),
            "{log}"
        );
        assert!(
            log.contains("event=bgp_session_up session=upstream"),
            "{log}"
        );
        let s = b.status(i).expect("anycast status");
        assert!(
            s.routes.iter().all(|r| r.announced) && s.sessions.iter().all(|s| s.up),
            "{s:?}"
        );
        assert_eq!((s.routes.len(), s.sessions.len()), (2, 2), "{s:?}");
        assert!(
            log.contains("event=anycast_announce vip=2001:db8:77:9::100/128"),
            "{log}"
        );
    }

    // Drain d0: its nexthop goes; it still forwards what reaches it (the probe routes the VIP
    // through d0 directly).
    let t0 = Instant::now();
    let out = b.drain(0, true);
    assert!(out.contains("10.77.9.100/32 withdrawn (drained)"), "{out}");
    b.wait_nexthops(&[1, 2], Duration::from_secs(5));
    println!("d0 drained: nexthop gone after {:?}", t0.elapsed());
    b.wait_nexthops6(2, Duration::from_secs(5));
    b.exec(
        "p",
        &[
            "ip",
            "route",
            "add",
            &format!("{VIP}/32"),
            "via",
            &director_addr(0),
        ],
    );
    let body = lvs_testsupport::wait_for(
        "a connection through the drained d0",
        Duration::from_secs(10),
        || b.get("p"),
    );
    assert!(body.starts_with("rs"), "{body}");
    assert!(b.log(0, "heartbeatd").contains("event=anycast_drain"));
    assert!(b.log(0, "heartbeatd").contains(
        "event=anycast_withdraw vip=10.77.9.100/32 protocol=vip_10_77_9_100 reason=drained"
    ));
    let out = b.drain(0, false);
    assert!(out.contains("10.77.9.100/32 announced"), "{out}");
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(5));
    b.wait_nexthops6(3, Duration::from_secs(5));

    // No healthy real server at d1 (weights 0): withdrawn; weights back: announced.
    b.lvsadm(1, &format!("-e -t {VIP}:80 -r {}:80 -g -w 0", rs_addr(0)));
    let t0 = Instant::now();
    b.lvsadm(1, &format!("-e -t {VIP}:80 -r {}:80 -g -w 0", rs_addr(1)));
    b.wait_nexthops(&[0, 2], Duration::from_secs(5));
    println!(
        "d1 without a healthy server: nexthop gone after {:?}",
        t0.elapsed()
    );
    assert!(
        b.log(1, "heartbeatd")
            .contains("reason=\"no healthy real server for TCP 10.77.9.100:80\"")
    );
    b.lvsadm(1, &format!("-e -t {VIP}:80 -r {}:80 -g -w 1", rs_addr(0)));
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(5));

    // SIGTERM of d2's heartbeatd: withdrawn (BIRD and its session stay up); restarted:
    // announced again.
    let t0 = Instant::now();
    b.signal(2, HEARTBEATD, SIGTERM);
    b.wait_nexthops(&[0, 1], Duration::from_secs(5));
    println!(
        "d2's heartbeatd stopped: nexthop gone after {:?}",
        t0.elapsed()
    );
    let mut hb = b.daemons[2][HEARTBEATD].take().unwrap();
    assert!(hb.wait().unwrap().success());
    assert!(b.log(2, "heartbeatd").contains("reason=stopping"));
    b.start_heartbeatd(2);
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(10));

    // SIGKILL of d2's heartbeatd alone: its VIP device dies with it, and BIRD withdraws the
    // route through it by itself.
    let t0 = Instant::now();
    b.kill(2, HEARTBEATD);
    b.wait_nexthops(&[0, 1], Duration::from_secs(5));
    println!(
        "d2's heartbeatd killed: nexthop gone after {:?}",
        t0.elapsed()
    );
    b.start_heartbeatd(2);
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(10));

    // SIGHUP with the IPv6 VIP gone from d2's file: only that route is withdrawn; back in the
    // file: announced again.
    b.write_heartbeatd_config(2, &[VIP]);
    b.signal(2, HEARTBEATD, SIGHUP);
    b.wait_nexthops6(2, Duration::from_secs(5));
    assert_eq!(b.nexthops().len(), 3);
    assert!(
        b.log(2, "heartbeatd")
            .contains("reason=\"removed from the configuration\"")
    );
    b.write_heartbeatd_config(2, &[VIP, VIP6]);
    b.signal(2, HEARTBEATD, SIGHUP);
    b.wait_nexthops6(3, Duration::from_secs(5));

    // SIGKILL of d0's heartbeatd and BIRD: its nexthop is gone within a second.
    let t0 = Instant::now();
    b.kill(0, HEARTBEATD);
    b.kill(0, BIRD);
    b.wait_nexthops(&[1, 2], Duration::from_secs(2));
    let gone = t0.elapsed();
    println!("d0 killed: nexthop gone after {gone:?}");
    assert!(gone <= Duration::from_secs(1), "{gone:?}");
    // Connections keep working through the others.
    assert!(b.get("c").is_some());

    // d1's BIRD frozen (its session stays open, only BFD notices): gone within a second.
    // BFD starts slow (1 s) and speeds up once up: wait until it runs at 100 ms.
    lvs_testsupport::wait_for(
        "d1's BFD session up at 100 ms",
        Duration::from_secs(10),
        || b.bfd_fast(1).then_some(()),
    );
    let t0 = Instant::now();
    b.signal(1, BIRD, SIGSTOP);
    b.wait_nexthops(&[2], Duration::from_secs(2));
    let gone = t0.elapsed();
    println!("d1's BIRD frozen: nexthop gone after {gone:?} (BFD)");
    assert!(gone <= Duration::from_secs(1), "{gone:?}");
    b.signal(1, BIRD, SIGCONT);
    b.kill(1, BIRD);
    b.start_bird(1);

    // d0 back: BIRD and heartbeatd restarted; both announce again.
    b.start_bird(0);
    b.start_heartbeatd(0);
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(30));
    assert!(b.get("c").is_some());
}

/// Connections the client holds through the three directors.
const CONNECTIONS: usize = 240;

/// The whole of issue 18 at once: real BGP daemons withdraw and announce the directors, and
/// the active-active data plane (Maglev, many-to-many sync, sloppy TCP) keeps every
/// established connection on its real server while the router's ECMP moves flows.
#[test]
fn connections_survive_a_director_killed_rejoining_drained_and_a_server_leaving() {
    let Some(mut b) = Bed::start(
        "connections_survive_a_director_killed_rejoining_drained_and_a_server_leaving",
        Servers::Lines,
    ) else {
        return;
    };
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(60));
    b.start_client();
    let opened = b.client(&format!("open {CONNECTIONS}"));
    assert_eq!(opened.opened, CONNECTIONS, "{opened:?}");
    opened.assert_all_kept(CONNECTIONS, "opening");
    // Every real server has its share, and every director carried some.
    for n in ["rs0", "rs1"] {
        let got = opened.names.get(n).copied().unwrap_or(0);
        assert!(got >= CONNECTIONS / 4, "{n}: {opened:?}");
    }
    for i in 0..3 {
        let (conns, pkts) = b.carried(i);
        println!("d{i} scheduled {conns} connections, forwarded {pkts} packets");
        assert!(
            conns >= (CONNECTIONS / 10) as u64 && pkts > conns,
            "d{i} scheduled {conns} connections, {pkts} packets"
        );
    }
    // Many-to-many sync: every director knows every connection and its server.
    let want = opened.names.clone();
    let wait_synced = |b: &Bed, i: usize| {
        lvs_testsupport::wait_for(
            &format!("d{i} to know every connection"),
            Duration::from_secs(20),
            || (b.established(i) == want).then_some(()),
        );
    };
    for i in 0..3 {
        wait_synced(&b, i);
    }

    // SIGKILL of all of d0's daemons: its route goes within a second (BGP session closed),
    // and its flows, re-hashed over the survivors with some of theirs, all continue.
    let before = b.carried(1).1 + b.carried(2).1;
    let t0 = Instant::now();
    for which in [DIRECTOR, BIRD, HEARTBEATD] {
        b.kill(0, which);
    }
    b.wait_nexthops(&[1, 2], Duration::from_secs(5));
    let gone = t0.elapsed();
    println!("d0 killed: nexthop gone after {gone:?}");
    assert!(gone <= Duration::from_secs(1), "{gone:?}");
    let r = b.client("round");
    r.assert_all_kept(CONNECTIONS, "after d0 was killed");
    let after = b.carried(1).1 + b.carried(2).1;
    assert!(
        after - before >= CONNECTIONS as u64,
        "every line went through d1 or d2: {before} -> {after}"
    );

    // d0 joins back: its daemons restarted, it announces only once its bulk resync is
    // complete, and the flows ECMP moves to it continue on their servers.
    b.start_director(0);
    b.start_bird(0);
    b.start_heartbeatd(0);
    lvs_testsupport::wait_for("d0 announced again", Duration::from_secs(60), || {
        let back = b.nexthops().contains(&director_addr(0));
        assert!(!back || b.synced(0), "d0 announced before it was synced");
        back.then_some(())
    });
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(5));
    wait_synced(&b, 0);
    let r = b.client("round");
    r.assert_all_kept(CONNECTIONS, "after d0 joined back");
    let (_, pkts) = b.carried(0);
    assert!(pkts > 0, "the restarted d0 carries flows again");
    // Every moved flow found the entry sync gave it: none needed sloppy TCP.
    for i in 0..3 {
        assert_eq!(b.midflow(i), 0, "d{i}");
    }

    // Drain of d1: its route goes, its flows move, none is lost; undrained: back.
    b.drain(1, true);
    b.wait_nexthops(&[0, 2], Duration::from_secs(5));
    let r = b.client("round");
    r.assert_all_kept(CONNECTIONS, "after d1 was drained");
    b.drain(1, false);
    b.wait_nexthops(&[0, 1, 2], Duration::from_secs(10));
    let r = b.client("round");
    r.assert_all_kept(CONNECTIONS, "after d1 was undrained");

    // rs1 leaves every director while flows move (d2 drained): only rs1's connections end.
    let rs1 = want["rs1"];
    for i in 0..3 {
        b.lvsadm(i, &format!("-d -t {VIP}:80 -r {}:80", rs_addr(1)));
    }
    b.drain(2, true);
    b.wait_nexthops(&[0, 1], Duration::from_secs(5));
    let r = b.client("round");
    r.assert_only_lost("rs1", rs1, CONNECTIONS, "after rs1 left");
    let r = b.client("round");
    r.assert_all_kept(CONNECTIONS - rs1, "after rs1 left, again");
}

/// [`lvs_testsupport::HTTP_SERVER`] for IPv6 only (`IPV6_V6ONLY`: beside the IPv4 one on the
/// same port).
fn http6() -> String {
    format!(
        "{}{}",
        r#"
import http.server, socket
class V6(http.server.HTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()
http.server.HTTPServer = V6
"#,
        lvs_testsupport::HTTP_SERVER
    )
}
