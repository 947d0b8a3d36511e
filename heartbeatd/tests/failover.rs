//! End-to-end failover of two `lvs-heartbeatd` processes in two network namespaces joined by
//! a veth pair (UDP unicast heartbeats), optionally with a pty pair relayed as the serial
//! line. Needs root (network namespaces, netlink, AF_PACKET): SKIPPED otherwise.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{BIN, SerialLine, sh, wait_until};
use lvs_testsupport::root_or_skip;

const VIP: &str = "10.77.0.100";
const PORT: u16 = 6940;

struct Node {
    ns: String,
    ip: String,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Two namespaces, a veth pair (`hb0` in each), a key, two configurations; cleaned up on drop.
struct Bed {
    dir: PathBuf,
    nodes: [Node; 2],
    directors: Vec<Child>,
}

struct Opts {
    serial: Option<[PathBuf; 2]>,
    auto_failback: bool,
    /// Use the director at `<rundir>/director.sock` instead of none.
    director: bool,
}

impl Opts {
    /// UDP only, no auto-failback, no director.
    const PLAIN: Opts = Opts {
        serial: None,
        auto_failback: false,
        director: false,
    };
}

impl Bed {
    fn new(tag: &str, opts: &Opts) -> Bed {
        let p = format!("hb{}{tag}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{p}-dir"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mk = |i: usize| Node {
            ns: format!("{p}n{i}"),
            ip: format!("10.77.0.{}", i + 1),
            conf: dir.join(format!("n{i}.toml")),
            log: dir.join(format!("n{i}.log")),
            child: None,
        };
        let bed = Bed {
            dir: dir.clone(),
            nodes: [mk(0), mk(1)],
            directors: Vec::new(),
        };
        let (va, vb) = (format!("{p}a"), format!("{p}b"));
        for n in &bed.nodes {
            let _ = Command::new("ip").args(["netns", "del", &n.ns]).output();
            sh(&["ip", "netns", "add", &n.ns]);
            sh(&["ip", "-n", &n.ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ]);
        for (v, n) in [(&va, &bed.nodes[0]), (&vb, &bed.nodes[1])] {
            sh(&["ip", "link", "set", v, "netns", &n.ns]);
            sh(&["ip", "-n", &n.ns, "link", "set", v, "name", "hb0"]);
            sh(&[
                "ip",
                "-n",
                &n.ns,
                "addr",
                "add",
                &format!("{}/24", n.ip),
                "dev",
                "hb0",
            ]);
            sh(&["ip", "-n", &n.ns, "link", "set", "hb0", "up"]);
        }
        let key = common::write_key(&dir);
        for i in 0..2 {
            let me = &bed.nodes[i];
            let peer = &bed.nodes[1 - i];
            let serial = opts.serial.as_ref().map_or(String::new(), |s| {
                format!("[serial]\ndevice = \"{}\"\nbaud = 115200\n", s[i].display())
            });
            let conf = format!(
                "node_id = {id}\npriority = {prio}\npeers = [{peer_id}]\n\
                 auth_key_file = \"{key}\"\nepoch_file = \"{epoch}\"\n\
                 {director}\
                 auto_failback = {afb}\nhold_down_ms = 500\n\
                 [timers]\nkeepalive_ms = 200\ndeadtime_ms = 1000\n\
                 [udp]\nbind = \"{ip}:{PORT}\"\npeers = [\"{pip}:{PORT}\"]\n{serial}\
                 [garp]\ncount = 3\ninterval_ms = 100\n\
                 [[vip]]\naddr = \"{VIP}/24\"\ninterface = \"hb0\"\n",
                id = i + 1,
                prio = if i == 0 { 200 } else { 100 },
                peer_id = 2 - i,
                key = key.display(),
                epoch = dir.join(format!("n{i}.epoch")).display(),
                director = if opts.director {
                    String::new()
                } else {
                    format!(
                        "director_socket = \"{}/none/director.sock\"\n",
                        dir.display()
                    )
                },
                afb = opts.auto_failback,
                ip = me.ip,
                pip = peer.ip,
            );
            std::fs::write(&me.conf, conf).unwrap();
        }
        bed
    }

    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let rundir = self.dir.join(format!("run{i}"));
        let child = Command::new("ip")
            .args(["netns", "exec", &n.ns, BIN, "-f", "--no-syslog", "--rundir"])
            .arg(&rundir)
            .arg("-c")
            .arg(&n.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lvs-heartbeatd");
        n.child = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill(); // SIGKILL (ip netns exec execs the daemon: same pid)
            let _ = c.wait();
        }
    }

    /// The VIP is a local address of node `i` (on whatever device: lvs-heartbeatd puts it on
    /// its TUN device, so that it dies with the process).
    fn has_vip(&self, i: usize) -> bool {
        sh(&["ip", "-n", &self.nodes[i].ns, "-4", "addr", "show"]).contains(&format!("inet {VIP}/"))
    }

    fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.nodes[i].child {
            let pid = i32::try_from(c.id()).expect("pid");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    fn status(&self, i: usize) -> Option<lvs_proto::message::HaStatus> {
        common::ha_status(&self.dir.join(format!("run{i}")))
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!("--- n0:\n{}\n--- n1:\n{}", self.log(0), self.log(1))
    }

    /// Node `master` holds the VIP and the other does not, for a whole `hold`.
    fn assert_steady(&self, master: usize, hold: Duration) {
        let end = Instant::now() + hold;
        while Instant::now() < end {
            assert!(
                self.has_vip(master),
                "node {master} lost the VIP\n{}",
                self.logs()
            );
            assert!(
                !self.has_vip(1 - master),
                "node {} holds the VIP too\n{}",
                1 - master,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for i in 0..2 {
            self.kill(i);
        }
        for mut d in self.directors.drain(..) {
            if let Ok(pid) = i32::try_from(d.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = d.wait();
        }
        for n in &self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &n.ns]).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The bed of `opts` with both nodes started and node 0 master; `None` (after printing
/// SKIPPED) when not root.
fn pair(test: &str, tag: &str, opts: &Opts) -> Option<Bed> {
    if !root_or_skip(test) {
        return None;
    }
    let mut bed = Bed::new(tag, opts);
    start_pair(&mut bed);
    Some(bed)
}

/// Starts both nodes and waits until node 0 (priority 200) is master with the VIP.
fn start_pair(bed: &mut Bed) {
    bed.start(0);
    bed.start(1);
    let t = wait_until(Duration::from_secs(6), || bed.has_vip(0));
    assert!(t.is_some(), "node 0 never took the VIP\n{}", bed.logs());
    bed.assert_steady(0, Duration::from_millis(1500));
    assert!(
        bed.log(1).contains("event=backup"),
        "node 1 is not backup\n{}",
        bed.logs()
    );
}

/// SIGKILLs node 0 (the master), waits for node 1 to take the VIP, starts node 0 again and
/// waits until it comes back as the backup.
fn kill_primary_and_restart_it(bed: &mut Bed) {
    bed.kill(0);
    let t = wait_until(Duration::from_secs(3), || bed.has_vip(1));
    assert!(t.is_some(), "the backup never took the VIP\n{}", bed.logs());
    bed.start(0);
    let back = wait_until(Duration::from_secs(4), || {
        bed.log(0).contains("event=backup")
    });
    assert!(
        back.is_some(),
        "the primary did not come back as backup\n{}",
        bed.logs()
    );
}

#[test]
fn master_killed_backup_takes_vip() {
    let Some(mut bed) = pair("master_killed_backup_takes_vip", "k", &Opts::PLAIN) else {
        return;
    };
    bed.kill(0);
    // The killed master's VIP died with it (its TUN device is gone): it cannot go on
    // answering ARP for it.
    let gone = wait_until(Duration::from_secs(2), || !bed.has_vip(0));
    assert!(gone.is_some(), "the killed master still has the VIP");
    let t = wait_until(Duration::from_secs(3), || bed.has_vip(1));
    let t = t.unwrap_or_else(|| panic!("the backup never took the VIP\n{}", bed.logs()));
    println!("takeover time (SIGKILL of the master -> VIP on the backup): {t:?}");
    let done = wait_until(Duration::from_secs(2), || {
        bed.log(1).contains("event=takeover_done")
    });
    assert!(done.is_some(), "{}", bed.logs());
    let log = bed.log(1);
    assert!(log.contains("event=takeover step=vip"), "{log}");
    assert!(log.contains("event=takeover step=garp"), "{log}");
    assert!(log.contains("event=master"), "{log}");
}

#[test]
fn udp_cut_with_serial_alive_is_no_takeover() {
    let serial = SerialLine::new();
    let opts = Opts {
        serial: Some(serial.paths.clone()),
        ..Opts::PLAIN
    };
    let Some(bed) = pair("udp_cut_with_serial_alive_is_no_takeover", "s", &opts) else {
        return;
    };
    // Node 1 (backup) stops hearing UDP; the serial line still carries the heartbeats.
    let ns = bed.nodes[1].ns.clone();
    let nft = |args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", ns.as_str(), "nft"];
        v.extend_from_slice(args);
        sh(&v);
    };
    nft(&["add", "table", "inet", "hbtest"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "hbtest",
        "input",
        "{ type filter hook input priority 0; policy accept; }",
    ]);
    let port = PORT.to_string();
    nft(&[
        "add", "rule", "inet", "hbtest", "input", "udp", "dport", &port, "drop",
    ]);
    let alerted = wait_until(Duration::from_secs(4), || {
        bed.log(1).contains("event=network_fault")
    });
    assert!(alerted.is_some(), "no network-fault alert\n{}", bed.logs());
    bed.assert_steady(0, Duration::from_secs(2));
    assert!(!bed.log(1).contains("event=takeover"), "{}", bed.logs());

    // Both media silent: now it is a dead peer, and the backup takes over.
    serial.cut.store(true, Ordering::Relaxed);
    let t = wait_until(Duration::from_secs(3), || bed.has_vip(1));
    assert!(
        t.is_some(),
        "no takeover with both media cut\n{}",
        bed.logs()
    );
    println!("takeover after both media cut: {:?}", t.unwrap());
}

#[test]
fn returning_primary_stays_backup_without_auto_failback() {
    let Some(mut bed) = pair(
        "returning_primary_stays_backup_without_auto_failback",
        "r",
        &Opts::PLAIN,
    ) else {
        return;
    };
    kill_primary_and_restart_it(&mut bed);
    bed.assert_steady(1, Duration::from_secs(3));
}

/// The director built by the workspace (`cargo build` puts it beside our binary).
fn director_bin() -> Option<PathBuf> {
    let p = PathBuf::from(BIN).parent()?.join("lvs-director");
    p.exists().then_some(p)
}

fn director_role(bed: &Bed, i: usize) -> Option<lvs_proto::HaRole> {
    let sock = bed.dir.join(format!("run{i}")).join("director.sock");
    let mut c = lvs_proto::Client::connect(&sock, lvs_proto::Role::Other).ok()?;
    match c.request(lvs_proto::Request::GetRole).ok()? {
        lvs_proto::Response::Role(r) => Some(r),
        _ => None,
    }
}

#[test]
fn directors_follow_master_and_backup() {
    if !root_or_skip("directors_follow_master_and_backup") {
        return;
    }
    let Some(director) = director_bin() else {
        lvs_testsupport::skip(
            "directors_follow_master_and_backup",
            "needs target/*/lvs-director (cargo build)",
        );
        return;
    };
    let mut bed = Bed::new(
        "d",
        &Opts {
            director: true,
            ..Opts::PLAIN
        },
    );
    for i in 0..2 {
        let rundir = bed.dir.join(format!("run{i}"));
        let log = std::fs::File::create(bed.dir.join(format!("director{i}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &bed.nodes[i].ns])
            .arg(&director)
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&rundir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lvs-director");
        bed.directors.push(child);
        let sock = rundir.join("director.sock");
        let up = wait_until(Duration::from_secs(10), || sock.exists());
        assert!(
            up.is_some(),
            "director {i} did not start: {}",
            std::fs::read_to_string(bed.dir.join(format!("director{i}.log"))).unwrap_or_default()
        );
    }
    start_pair(&mut bed);
    let roles = wait_until(Duration::from_secs(3), || {
        director_role(&bed, 0) == Some(lvs_proto::HaRole::Active)
            && director_role(&bed, 1) == Some(lvs_proto::HaRole::Standby)
    });
    assert!(
        roles.is_some(),
        "roles {:?} / {:?}\n{}",
        director_role(&bed, 0),
        director_role(&bed, 1),
        bed.logs()
    );
    // The master dies: the backup's director becomes active.
    bed.kill(0);
    let t = wait_until(Duration::from_secs(3), || {
        director_role(&bed, 1) == Some(lvs_proto::HaRole::Active) && bed.has_vip(1)
    });
    assert!(t.is_some(), "backup's director not active\n{}", bed.logs());
    println!("takeover with directors: {:?}", t.unwrap());
}

#[test]
fn sigterm_sends_farewell_and_peer_takes_over_at_once() {
    let Some(mut bed) = pair(
        "sigterm_sends_farewell_and_peer_takes_over_at_once",
        "t",
        &Opts::PLAIN,
    ) else {
        return;
    };
    bed.signal(0, nix::sys::signal::Signal::SIGTERM);
    let t = wait_until(Duration::from_secs(3), || bed.has_vip(1) && !bed.has_vip(0));
    assert!(t.is_some(), "no takeover after SIGTERM\n{}", bed.logs());
    println!("takeover after SIGTERM of the master: {:?}", t.unwrap());
    if let Some(mut c) = bed.nodes[0].child.take() {
        let _ = c.wait();
    }
    assert!(bed.log(0).contains("event=farewell_sent"), "{}", bed.logs());
    // Taken over on the farewell (peer in fault), not after the deadtime (peer dead).
    let log1 = bed.log(1);
    let fault = log1.find("event=peer_fault");
    assert!(
        fault.is_some(),
        "no takeover on the farewell\n{}",
        bed.logs()
    );
    assert!(
        log1.find("event=peer_dead")
            .is_none_or(|d| d > fault.unwrap_or(0)),
        "{}",
        bed.logs()
    );
}

#[test]
fn control_socket_status_and_reload() {
    let Some(bed) = pair("control_socket_status_and_reload", "c", &Opts::PLAIN) else {
        return;
    };
    let st = wait_until(Duration::from_secs(3), || {
        bed.status(0)
            .is_some_and(|s| s.media.first().is_some_and(|m| m.accepted > 0))
    });
    assert!(st.is_some(), "no status\n{}", bed.logs());
    let st = bed.status(0).expect("status");
    assert_eq!(st.node_id, 1);
    assert_eq!(st.state, "master");
    assert!(st.holds_vips);
    assert_eq!(st.vips, vec![format!("{VIP}/24@hb0")]);
    assert!(st.epoch >= 1);
    assert_eq!(st.table_synced, None, "no director: unknown");
    let peer = st.peer.expect("peer");
    assert_eq!((peer.node_id, peer.state.as_str()), (2, "backup"));
    let udp = &st.media[0];
    assert_eq!(udp.name, "udp");
    assert!(udp.up && udp.last_heard_ms.is_some(), "{udp:?}");
    assert!(udp.rejected.iter().any(|(n, c)| n == "bad_mac" && *c == 0));

    // A broken file is refused and the daemon goes on as before.
    let conf = std::fs::read_to_string(&bed.nodes[0].conf).unwrap();
    std::fs::write(&bed.nodes[0].conf, "node_id = \"one\"\n").unwrap();
    bed.signal(0, nix::sys::signal::Signal::SIGHUP);
    let refused = wait_until(Duration::from_secs(3), || {
        bed.log(0).contains("event=config_rejected")
    });
    assert!(refused.is_some(), "{}", bed.logs());
    assert!(bed.status(0).is_some_and(|s| s.state == "master"));

    // A valid file with a second VIP and faster keepalive is applied.
    let extra = "10.77.0.101";
    let conf = conf.replace("keepalive_ms = 200", "keepalive_ms = 100")
        + &format!("[[vip]]\naddr = \"{extra}/24\"\ninterface = \"hb0\"\n");
    std::fs::write(&bed.nodes[0].conf, conf).unwrap();
    bed.signal(0, nix::sys::signal::Signal::SIGHUP);
    let applied = wait_until(Duration::from_secs(3), || {
        sh(&["ip", "-n", &bed.nodes[0].ns, "-4", "addr", "show"])
            .contains(&format!("inet {extra}/"))
    });
    assert!(applied.is_some(), "new VIP not added\n{}", bed.logs());
    let logged = wait_until(Duration::from_secs(3), || {
        bed.log(0).contains("event=config_applied")
    });
    assert!(logged.is_some(), "{}", bed.logs());
    assert_eq!(bed.status(0).expect("status").vips.len(), 2);
    bed.assert_steady(0, Duration::from_secs(1));
}

#[test]
fn auto_failback_waits_for_a_synced_table() {
    let opts = Opts {
        auto_failback: true,
        ..Opts::PLAIN
    };
    let Some(mut bed) = pair("auto_failback_waits_for_a_synced_table", "f", &opts) else {
        return;
    };
    // The preferred node returns, but without a director nobody can say its connection
    // table is synced: unknown is not synced, so the VIP stays where it is, hold-down or not.
    kill_primary_and_restart_it(&mut bed);
    bed.assert_steady(1, Duration::from_secs(3));
    let st = bed.status(0).expect("status of node 0");
    assert_eq!(st.table_synced, None);
    assert!(!bed.log(1).contains("event=failback"), "{}", bed.logs());
}
