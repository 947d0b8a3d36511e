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
/// The timers of every node's configuration.
const KEEPALIVE: Duration = Duration::from_millis(200);
const DEADTIME: Duration = Duration::from_millis(1000);

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
                 [timers]\nkeepalive_ms = {keepalive}\ndeadtime_ms = {deadtime}\n\
                 [udp]\nbind = \"{ip}:{PORT}\"\npeers = [\"{pip}:{PORT}\"]\n{serial}\
                 [garp]\ncount = 3\ninterval_ms = 100\n\
                 [[vip]]\naddr = \"{VIP}/24\"\ninterface = \"hb0\"\n",
                id = i + 1,
                keepalive = KEEPALIVE.as_millis(),
                deadtime = DEADTIME.as_millis(),
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

    /// A takeover `t` after the peer fell silent (`since`) came no sooner than a dead peer
    /// allows: deadtime after the last heartbeat heard, which left at most one keepalive
    /// before the silence began (one more keepalive of slack).
    fn assert_not_before_deadtime(&self, t: Duration, since: &str) {
        assert!(
            t >= DEADTIME - 2 * KEEPALIVE,
            "took over {t:?} after {since}: before the deadtime ({DEADTIME:?})\n{}",
            self.logs()
        );
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
    let killed = Instant::now();
    bed.kill(0);
    // The killed master's VIP died with it (its TUN device is gone): it cannot go on
    // answering ARP for it.
    let gone = wait_until(Duration::from_secs(2), || !bed.has_vip(0));
    assert!(gone.is_some(), "the killed master still has the VIP");
    let t = wait_until(Duration::from_secs(3), || bed.has_vip(1));
    assert!(t.is_some(), "the backup never took the VIP\n{}", bed.logs());
    let t = killed.elapsed();
    println!("takeover time (SIGKILL of the master -> VIP on the backup): {t:?}");
    bed.assert_not_before_deadtime(t, "the kill");
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
    let t = t.unwrap();
    println!("takeover after both media cut: {t:?}");
    bed.assert_not_before_deadtime(t, "both media were cut");
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

/// The role director `i` was told, over its control socket.
fn director_role(bed: &Bed, i: usize) -> Option<lvs_proto::HaRole> {
    let sock = bed.dir.join(format!("run{i}")).join("director.sock");
    let mut c = lvs_proto::Client::connect(&sock, lvs_proto::Role::Other).ok()?;
    match c.request(lvs_proto::Request::GetRole).ok()? {
        lvs_proto::Response::Role(r) => Some(r),
        _ => None,
    }
}

/// Starts lvs-director in node `i`'s namespace with its own run directory; returns once its
/// socket is there.
fn start_director(bed: &Bed, i: usize, director: &std::path::Path) -> Child {
    let rundir = bed.dir.join(format!("run{i}"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(bed.dir.join(format!("director{i}.log")))
        .unwrap();
    let sock = rundir.join("director.sock");
    let _ = std::fs::remove_file(&sock);
    let child = Command::new("ip")
        .args(["netns", "exec", &bed.nodes[i].ns])
        .arg(director)
        .args(["-f", "--no-syslog", "--rundir"])
        .arg(&rundir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lvs-director");
    let up = wait_until(Duration::from_secs(10), || sock.exists());
    assert!(
        up.is_some(),
        "director {i} did not start: {}",
        std::fs::read_to_string(bed.dir.join(format!("director{i}.log"))).unwrap_or_default()
    );
    child
}

#[test]
fn directors_follow_master_and_backup() {
    if !root_or_skip("directors_follow_master_and_backup") {
        return;
    }
    let director = lvs_testsupport::sibling_bin(BIN, "lvs-director");
    let mut bed = Bed::new(
        "d",
        &Opts {
            director: true,
            ..Opts::PLAIN
        },
    );
    for i in 0..2 {
        let child = start_director(&bed, i, &director);
        bed.directors.push(child);
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
    // The backup's director restarts (and starts active, as a director without heartbeatd
    // does): its heartbeatd reconnects and tells it standby again.
    let mut old = bed.directors.remove(1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(old.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    old.wait().unwrap();
    let child = start_director(&bed, 1, &director);
    bed.directors.push(child);
    let told = wait_until(Duration::from_secs(3), || {
        director_role(&bed, 1) == Some(lvs_proto::HaRole::Standby)
            && bed
                .log(1)
                .matches("event=director_role role=standby result=ok")
                .count()
                >= 2
    });
    assert!(
        told.is_some(),
        "the restarted director was not told standby: {:?}\n{}",
        director_role(&bed, 1),
        bed.logs()
    );
    let log = bed.log(1);
    for event in ["event=director_lost", "event=director_connected"] {
        assert!(log.contains(event), "{event} missing\n{log}");
    }

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

/// Records the UDP payloads `src` sends to port `port`, as seen on `hb0` (AF_PACKET, so the
/// bytes are exactly what went on the wire), each as a 2-byte length and the payload.
const CAPTURE: &str = r#"
import socket, struct, sys
out, src, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("hb0", 0))
with open(out, "wb") as f:
    while True:
        ip = s.recv(65535)[14:]
        if len(ip) < 28 or ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != src:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        if struct.unpack("!H", udp[2:4])[0] != port:
            continue
        payload = udp[8:]
        f.write(struct.pack("!H", len(payload)) + payload)
        f.flush()
"#;

/// Sends every recorded payload of `file` to `dst:port`, `gap` seconds apart, `rounds` times
/// over (0: until killed).
const REPLAY: &str = r#"
import socket, struct, sys, time, itertools
data, dst, port = open(sys.argv[1], "rb").read(), sys.argv[2], int(sys.argv[3])
rounds, gap = int(sys.argv[4]), float(sys.argv[5])
msgs, i = [], 0
while i + 2 <= len(data):
    n = struct.unpack("!H", data[i:i + 2])[0]
    msgs.append(data[i + 2:i + 2 + n])
    i += 2 + n
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for r in (itertools.count() if rounds == 0 else range(rounds)):
    for m in msgs:
        s.sendto(m, (dst, port))
        time.sleep(gap)
"#;

/// Messages in a capture file.
fn captured(file: &std::path::Path) -> usize {
    let data = std::fs::read(file).unwrap_or_default();
    let (mut i, mut n) = (0, 0);
    while i + 2 <= data.len() {
        i += 2 + usize::from(u16::from_be_bytes([data[i], data[i + 1]]));
        n += 1;
    }
    n
}

fn python_in(ns: &str, script: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3")
}

fn stop_child(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// Records node 0's heartbeats to `file`, as node 1 receives them (see [`CAPTURE`]).
fn capture_node0(bed: &Bed, file: &std::path::Path) -> Child {
    let (ip0, port) = (bed.nodes[0].ip.clone(), PORT.to_string());
    python_in(
        &bed.nodes[1].ns,
        CAPTURE,
        &[file.to_str().unwrap(), &ip0, &port],
    )
}

/// Heartbeats rejected on node `i`'s UDP medium for `reason`.
fn udp_rejected(bed: &Bed, i: usize, reason: &str) -> u64 {
    bed.status(i)
        .and_then(|s| s.media.into_iter().find(|m| m.name == "udp"))
        .and_then(|m| m.rejected.into_iter().find(|(n, _)| n == reason))
        .map_or(0, |(_, c)| c)
}

/// Node 1 hears node 0 (alive, heard on UDP within `within_ms`) in state `state`.
fn hears_peer(bed: &Bed, state: &str, within_ms: u64) -> bool {
    bed.status(1).is_some_and(|s| {
        let udp_recent = s
            .media
            .iter()
            .any(|m| m.name == "udp" && m.last_heard_ms.is_some_and(|t| t < within_ms));
        s.peer.is_some_and(|p| p.alive && p.state == state) && udp_recent
    })
}

/// Heartbeats of node 0 recorded on the LAN during its first run, replayed after it (and
/// node 1) restarted, are refused by node 1 and counted (`stale_generation`); node 1 goes on
/// hearing the live node 0 and leaves it the VIP; and when node 0 dies while its old
/// heartbeats are still being replayed, node 1 takes over all the same.
#[test]
fn replayed_heartbeats_of_an_earlier_run_are_refused() {
    let test = "replayed_heartbeats_of_an_earlier_run_are_refused";
    if !root_or_skip(test) {
        return;
    }
    let mut bed = Bed::new("y", &Opts::PLAIN);
    let cap = bed.dir.join("run1.cap");
    let (ip1, port) = (bed.nodes[1].ip.clone(), PORT.to_string());
    let capture = capture_node0(&bed, &cap);
    start_pair(&mut bed);
    // A few seconds of node 0's first run as master (5 heartbeats a second).
    let got = wait_until(Duration::from_secs(5), || captured(&cap) >= 15);
    stop_child(capture);
    assert!(
        got.is_some(),
        "nothing captured from node 0\n{}",
        bed.logs()
    );
    let n = captured(&cap) as u64;

    // Node 0 restarts (node 1 takes over), then node 1 restarts (node 0 takes over again):
    // both run a second time, node 0 master.
    kill_primary_and_restart_it(&mut bed);
    bed.kill(1);
    let t = wait_until(Duration::from_secs(3), || bed.has_vip(0));
    assert!(
        t.is_some(),
        "node 0 never took the VIP back\n{}",
        bed.logs()
    );
    bed.start(1);
    let t = wait_until(Duration::from_secs(6), || hears_peer(&bed, "master", 500));
    assert!(t.is_some(), "node 1 does not hear node 0\n{}", bed.logs());

    // The first run's heartbeats, replayed once from node 0's address.
    let before = udp_rejected(&bed, 1, "stale_generation");
    let mut once = python_in(
        &bed.nodes[0].ns,
        REPLAY,
        &[cap.to_str().unwrap(), &ip1, &port, "1", "0.01"],
    );
    let _ = once.wait();
    let t = wait_until(Duration::from_secs(3), || {
        udp_rejected(&bed, 1, "stale_generation") >= before + n
    });
    assert!(
        t.is_some(),
        "{n} replayed heartbeats not counted as stale_generation: {:?}\n{}",
        bed.status(1),
        bed.logs()
    );
    // Node 0 is still heard, well past the deadtime, and keeps the VIP.
    let end = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < end {
        assert!(
            hears_peer(&bed, "master", 600),
            "node 1 stopped hearing the live node 0: {:?}\n{}",
            bed.status(1),
            bed.logs()
        );
        assert!(bed.has_vip(0) && !bed.has_vip(1), "{}", bed.logs());
        std::thread::sleep(Duration::from_millis(100));
    }

    // The master dies while its old heartbeats are replayed without end: node 1 takes over.
    let replay = python_in(
        &bed.nodes[0].ns,
        REPLAY,
        &[cap.to_str().unwrap(), &ip1, &port, "0", "0.02"],
    );
    bed.kill(0);
    let t = wait_until(Duration::from_secs(4), || bed.has_vip(1));
    let still = udp_rejected(&bed, 1, "stale_generation");
    stop_child(replay);
    assert!(
        t.is_some(),
        "node 1 never took over while node 0's old heartbeats were replayed\n{}",
        bed.logs()
    );
    assert!(still > before + n, "the replay did not reach node 1");
    println!(
        "takeover under replay of {n} old heartbeats: {:?}",
        t.unwrap_or_default()
    );
}

/// The master dies and the backup restarts; the dead master's heartbeats of its current
/// run, recorded on the LAN, are then replayed to the backup in order. The backup remembers
/// that generation, but heard none of its heartbeats since its restart: without an echo of
/// its own new generation (which only the live master could send) they are refused
/// (`unconfirmed`), and it takes over after initdead as with a silent peer. Before the echo,
/// the first replayed heartbeat opened the sequence window and the replay kept the dead
/// master alive as long as it lasted.
#[test]
fn a_restarted_backup_is_not_kept_back_by_the_dead_masters_replayed_heartbeats() {
    let test = "a_restarted_backup_is_not_kept_back_by_the_dead_masters_replayed_heartbeats";
    let Some(mut bed) = pair(test, "e", &Opts::PLAIN) else {
        return;
    };
    let cap = bed.dir.join("run0.cap");
    let (ip1, port) = (bed.nodes[1].ip.clone(), PORT.to_string());
    let capture = capture_node0(&bed, &cap);
    // Five seconds of node 0's heartbeats as master, up to its death.
    let got = wait_until(Duration::from_secs(8), || captured(&cap) >= 25);
    bed.kill(0);
    bed.kill(1);
    stop_child(capture);
    assert!(
        got.is_some(),
        "nothing captured from node 0\n{}",
        bed.logs()
    );
    let n = captured(&cap);

    // Replayed at the keepalive rate, from node 0's address, while node 1 starts again.
    let mut replay = python_in(
        &bed.nodes[0].ns,
        REPLAY,
        &[cap.to_str().unwrap(), &ip1, &port, "1", "0.2"],
    );
    let started = Instant::now();
    bed.start(1);
    let t = wait_until(Duration::from_secs(8), || bed.has_vip(1));
    let replay_running = replay.try_wait().ok().flatten().is_none();
    let unconfirmed = udp_rejected(&bed, 1, "unconfirmed");
    let status = bed.status(1);
    stop_child(replay);
    assert!(
        t.is_some(),
        "node 1 never took over while node 0's heartbeats were replayed\n{}",
        bed.logs()
    );
    let took = started.elapsed();
    println!("takeover after the restart, under replay of {n} heartbeats: {took:?}");
    // initdead (2 s) after the start, as when nothing is heard; not after the replay.
    assert!(
        replay_running && took < Duration::from_millis(4000),
        "node 1 took over only after {took:?} (replay still running: {replay_running}): \
         the replayed heartbeats kept the dead master alive\n{}",
        bed.logs()
    );
    assert!(
        unconfirmed > 0,
        "no replayed heartbeat counted as unconfirmed: {status:?}\n{}",
        bed.logs()
    );
}

/// Sends forged heartbeats (the right magic and length, a wrong MAC: each costs the
/// receiver an HMAC) to `dst:port` as fast as it can for `secs` seconds; prints the count.
const FLOOD: &str = r#"
import socket, sys, time
dst, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
msg = b"LVHB\x02" + bytes(83)
end, n = time.time() + secs, 0
while time.time() < end:
    for _ in range(500):
        try:
            s.sendto(msg, (dst, port))
            n += 1
        except OSError:
            pass
print(n, flush=True)
"#;

/// A flood of forged datagrams at node 1 does not keep it from its own heartbeats: node 0
/// hears it at the keepalive pace throughout. (Whether node 1 still hears node 0 is not
/// asserted: a flood that fills node 1's socket buffer makes the kernel drop genuine
/// heartbeats too, before any code of ours runs; the serial line is the answer to that.)
#[test]
fn a_flood_does_not_delay_heartbeats() {
    let Some(bed) = pair("a_flood_does_not_delay_heartbeats", "w", &Opts::PLAIN) else {
        return;
    };
    let before = udp_rejected(&bed, 1, "bad_mac");
    let flood = Command::new("ip")
        .args(["netns", "exec", &bed.nodes[0].ns, "python3", "-c", FLOOD])
        .args([bed.nodes[1].ip.as_str(), &PORT.to_string(), "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    // Node 0's view of node 1: how long since it was last heard, polled through the flood.
    let mut worst = 0u64;
    let end = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < end {
        let heard = bed
            .status(0)
            .and_then(|s| s.media.into_iter().find(|m| m.name == "udp"))
            .and_then(|m| m.last_heard_ms);
        worst = worst.max(heard.unwrap_or(u64::MAX));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = flood.wait_with_output().expect("flood");
    let sent = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let rejected = udp_rejected(&bed, 1, "bad_mac") - before;
    println!(
        "flood: {sent} datagrams sent, {rejected} rejected by node 1, longest silence of node 1 seen by node 0: {worst} ms"
    );
    assert!(
        rejected > 10_000,
        "the flood did not reach node 1: {rejected}"
    );
    // Keepalive 200 ms: a heartbeat late by more than one more keepalive is a delay.
    assert!(
        worst < 450,
        "node 1's heartbeats were delayed by the flood: {worst} ms of silence\n{}",
        bed.logs()
    );
}
