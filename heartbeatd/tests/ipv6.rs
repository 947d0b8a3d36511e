//! lvs-heartbeatd over IPv6, in dual-stack network namespaces: two nodes and a client on one
//! bridge. Heartbeats over IPv6 unicast and over an IPv6 link-local multicast group; an IPv6
//! virtual address (beside an IPv4 one) that fails over on SIGKILL of the master; the
//! client's neighbour cache moved to the backup's MAC by the unsolicited neighbour
//! advertisement alone (captured: hop limit 255, Override set), without the client asking;
//! the address usable at once (not `tentative`: added with `nodad`); the address removed on
//! SIGTERM and on stepping down to backup, and solicitations for it then left to the new
//! master. Needs root: SKIPPED otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, add_addr, bridge_port, new_bridge, new_netns, sh, sh_out, wait_until};
use lvs_testsupport::root_or_skip;

const VIP6: &str = "fd00:79::100";
const VIP4: &str = "10.79.0.100";
const PORT: u16 = 6943;
const GROUP: &str = "ff02::694:7";

/// Sends one neighbour solicitation for argv[1] to its solicited-node group on eth0 with hop
/// limit argv[2] (the kernel adds the checksum on a raw ICMPv6 socket).
const SOLICIT: &str = r#"
import socket, sys
target = socket.inet_pton(socket.AF_INET6, sys.argv[1])
group = bytes.fromhex("ff0200000000000000000001ff") + target[13:]
mac = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, int(sys.argv[2]))
msg = bytes([135, 0, 0, 0, 0, 0, 0, 0]) + target + bytes([1, 1]) + mac
s.sendto(msg, (socket.inet_ntop(socket.AF_INET6, group), 0, 0, socket.if_nametoindex("eth0")))
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Heartbeats {
    Unicast,
    Multicast,
}

/// Namespaces `<p>sw` (the bridge), `<p>n0`, `<p>n1` (the nodes) and `<p>c` (the client),
/// each node and the client with `eth0` on the bridge; everything undone on drop.
struct Bed {
    p: String,
    dir: PathBuf,
    children: [Option<Child>; 2],
    capture: Option<Child>,
}

const NODES: [&str; 3] = ["n0", "n1", "c"];

impl Bed {
    fn new(tag: &str, hb: Heartbeats) -> Bed {
        let p = format!("h6{}{tag}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{p}-dir"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bed = Bed {
            p,
            dir,
            children: [None, None],
            capture: None,
        };
        let sw = bed.ns("sw");
        for n in ["sw"].iter().chain(NODES.iter()) {
            let ns = bed.ns(n);
            new_netns(&ns);
            // Static test addresses need no duplicate-address detection: without it the
            // link-local addresses are usable (as NDP sources) at once. The VIP itself is
            // added with nodad by lvs-heartbeatd, whatever these say.
            for k in ["all", "default"] {
                sysctl(&ns, &format!("net.ipv6.conf.{k}.accept_dad=0"));
            }
        }
        new_bridge(&sw);
        for (i, n) in NODES.iter().enumerate() {
            let ns = bed.ns(n);
            bridge_port(&sw, &format!("{n}l"), &ns);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            // The client probes a STALE entry it uses after 1 s instead of 5 (unicast
            // solicitations, which the VIP's holder must answer too).
            sysctl(&ns, "net.ipv6.neigh.eth0.delay_first_probe_time=1");
            let host = if *n == "c" { 9 } else { i + 1 };
            add_addr(&ns, &format!("10.79.0.{host}/24"), &[]);
            add_addr(&ns, &format!("fd00:79::{host}/64"), &["nodad"]);
        }
        let key = common::write_key(&bed.dir);
        for i in 0..2 {
            let udp = match hb {
                Heartbeats::Unicast => format!(
                    "bind = \"[fd00:79::{}]:{PORT}\"\npeers = [\"[fd00:79::{}]:{PORT}\"]\n",
                    i + 1,
                    2 - i
                ),
                Heartbeats::Multicast => {
                    format!("group = \"{GROUP}\"\nport = {PORT}\ninterface = \"eth0\"\n")
                }
            };
            let conf = format!(
                "node_id = {id}\npriority = {prio}\npeers = [{peer}]\n\
                 auth_key_file = \"{key}\"\nepoch_file = \"{epoch}\"\n\
                 director_socket = \"{dir}/none/director.sock\"\n\
                 hold_down_ms = 500\n\
                 [timers]\nkeepalive_ms = 200\ndeadtime_ms = 1000\n\
                 [udp]\n{udp}\
                 [garp]\ncount = 3\ninterval_ms = 100\nrefresh_ms = {refresh}\n\
                 [[vip]]\naddr = \"{VIP6}/64\"\ninterface = \"eth0\"\n\
                 [[vip]]\naddr = \"{VIP4}/24\"\ninterface = \"eth0\"\n",
                id = i + 1,
                prio = if i == 0 { 200 } else { 100 },
                peer = 2 - i,
                key = key.display(),
                epoch = bed.dir.join(format!("n{i}.epoch")).display(),
                dir = bed.dir.display(),
                // The multicast bed checks the refresh too; the unicast one counts the
                // takeover's burst exactly.
                refresh = if hb == Heartbeats::Multicast { 1000 } else { 0 },
            );
            std::fs::write(bed.dir.join(format!("n{i}.toml")), conf).unwrap();
        }
        bed
    }

    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.p)
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{i}.log")))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("n{i}")), BIN])
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(self.dir.join(format!("run{i}")))
            .arg("-c")
            .arg(self.dir.join(format!("n{i}.toml")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lvs-heartbeatd");
        self.children[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill(); // SIGKILL (ip netns exec execs the daemon: same pid)
            let _ = c.wait();
        }
    }

    /// SIGTERM to node `i`, and its exit awaited.
    fn terminate(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// SIGUSR1 to node `i`: its counters in the log (`event=state`).
    fn dump(&self, i: usize) {
        if let Some(c) = &self.children[i] {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1);
        }
    }

    /// Node `i`'s line of `ip -6 addr` for the VIP, if it has the address.
    fn vip6_line(&self, i: usize) -> Option<String> {
        let out = sh(&["ip", "-n", &self.ns(&format!("n{i}")), "-6", "addr", "show"]);
        for l in out.lines() {
            if l.trim_start().starts_with(&format!("inet6 {VIP6}/")) {
                // The flags sit on this line; `valid_lft` on the next.
                return Some(l.trim().to_owned());
            }
        }
        None
    }

    fn has_vip4(&self, i: usize) -> bool {
        sh(&["ip", "-n", &self.ns(&format!("n{i}")), "-4", "addr", "show"])
            .contains(&format!("inet {VIP4}/"))
    }

    fn mac(&self, node: &str) -> String {
        common::mac(&self.ns(node))
    }

    /// The client's neighbour entry for `addr`: (MAC, state), if it has one with a MAC.
    fn client_neigh(&self, addr: &str) -> Option<(String, String)> {
        common::neighbour(&self.ns("c"), addr)
    }

    /// One ping from the client to `addr`, answered.
    fn ping(&self, addr: &str) -> bool {
        sh_out(&[
            "ip",
            "netns",
            "exec",
            &self.ns("c"),
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            addr,
        ])
        .status
        .success()
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!("--- n0:\n{}\n--- n1:\n{}", self.log(0), self.log(1))
    }

    fn status(&self, i: usize) -> Option<lvs_proto::message::HaStatus> {
        common::ha_status(&self.dir.join(format!("run{i}")))
    }

    /// Starts both nodes; waits until node 0 holds both VIPs and node 1 is backup.
    fn start_pair(&mut self) {
        self.start(0);
        self.start(1);
        let up = wait_until(Duration::from_secs(10), || {
            self.vip6_line(0).is_some() && self.has_vip4(0)
        });
        assert!(up.is_some(), "node 0 never took the VIPs\n{}", self.logs());
        let backup = wait_until(Duration::from_secs(10), || {
            self.log(1).contains("event=backup")
        });
        assert!(backup.is_some(), "node 1 is not backup\n{}", self.logs());
        assert!(self.vip6_line(1).is_none(), "node 1 holds the VIP too");
    }

    /// Records NDP on the client's eth0 (pcap, written packet by packet) until
    /// [`Bed::stop_capture`].
    fn start_capture(&mut self) -> PathBuf {
        let file = self.dir.join("ndp.pcap");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("c")])
            .args([
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-U",
                "--immediate-mode",
                "-w",
            ])
            .arg(&file)
            .arg("icmp6 and (ip6[40] == 135 or ip6[40] == 136)")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump");
        self.capture = Some(child);
        // tcpdump writes the file header once it listens.
        let ready = wait_until(Duration::from_secs(10), || {
            std::fs::metadata(&file).is_ok_and(|m| m.len() >= 24)
        });
        assert!(ready.is_some(), "tcpdump did not start");
        file
    }

    fn stop_capture(&mut self) {
        if let Some(c) = self.capture.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let mut c = c;
            let _ = c.wait();
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.stop_capture();
        for i in 0..2 {
            self.kill(i);
        }
        common::remove_bed(
            ["sw"].iter().chain(NODES.iter()).map(|n| self.ns(n)),
            &self.dir,
        );
    }
}

/// The bed of a test (not started); `None` (after printing SKIPPED) when not root.
fn bed(test: &str, tag: &str, hb: Heartbeats) -> Option<Bed> {
    root_or_skip(test).then(|| Bed::new(tag, hb))
}

/// `sysctl -w key=value` in namespace `ns`.
fn sysctl(ns: &str, setting: &str) {
    sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", setting]);
}

/// The capture as tcpdump prints it verbosely, one packet per line.
fn decoded(file: &Path) -> Vec<String> {
    let out = sh(&[
        "tcpdump",
        "-r",
        file.to_str().unwrap(),
        "-n",
        "-e",
        "-v",
        "-tttt",
    ]);
    // -v puts the ICMPv6 details on continuation lines: join them to their packet.
    let mut packets: Vec<String> = Vec::new();
    for line in out.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = packets.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            packets.push(line.to_owned());
        }
    }
    packets
}

/// IPv6 unicast heartbeats, a dual-stack pair of VIPs: SIGKILL of the master, the backup
/// takes both; the IPv6 one is usable at once (not tentative), and the client's neighbour
/// entry for it moves to the backup's MAC by the unsolicited NA alone.
#[test]
fn ipv6_vip_fails_over_and_the_unsolicited_na_moves_the_clients_cache() {
    let Some(mut bed) = bed(
        "ipv6_vip_fails_over_and_the_unsolicited_na_moves_the_clients_cache",
        "u",
        Heartbeats::Unicast,
    ) else {
        return;
    };
    bed.start_pair();
    let (mac0, mac1) = (bed.mac("n0"), bed.mac("n1"));

    // The master's address: nodad, never tentative.
    let line = bed.vip6_line(0).unwrap();
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "{line}"
    );
    // Node 1 hears node 0 over IPv6.
    let heard = wait_until(Duration::from_secs(5), || {
        bed.status(1).is_some_and(|s| {
            s.peer.is_some_and(|p| p.alive)
                && s.media
                    .iter()
                    .any(|m| m.name == "udp" && m.up && m.accepted > 0)
        })
    });
    assert!(
        heard.is_some(),
        "node 1 does not hear node 0 over IPv6\n{}",
        bed.logs()
    );

    // The client resolves the VIP (node 0 answers its solicitation) and reaches it.
    let reached = wait_until(Duration::from_secs(10), || bed.ping(VIP6));
    assert!(
        reached.is_some(),
        "the client cannot reach {VIP6}\n{}",
        bed.logs()
    );
    let (mac, state) = bed
        .client_neigh(VIP6)
        .expect("no neighbour entry for the VIP");
    assert_eq!(mac, mac0, "the VIP resolved to another MAC than node 0's");
    assert!(
        ["REACHABLE", "STALE", "DELAY"].contains(&state.as_str()),
        "state {state}"
    );
    assert!(bed.ping(VIP4), "the client cannot reach {VIP4}");
    // A solicitation with hop limit 64 may come from off the link: dropped and counted
    // (RFC 4861 7.1.1); the client's own (hop limit 255) were answered.
    sh(&[
        "ip",
        "netns",
        "exec",
        &bed.ns("c"),
        "python3",
        "-c",
        SOLICIT,
        VIP6,
        "64",
    ]);
    // Each poll asks for a state line (SIGUSR1) and reads the lines written so far.
    let counted = lvs_testsupport::poll_for(Duration::from_secs(5), || {
        let seen = bed.log(0).lines().any(|l| {
            l.contains("event=state")
                && l.contains("ndp_malformed=1")
                && !l.contains("ndp_answered=0")
        });
        bed.dump(0);
        seen.then_some(())
    });
    assert!(counted.is_some(), "{}", bed.log(0));

    let capture = bed.start_capture();
    let killed = Instant::now();
    bed.kill(0);
    // The takeover: the address usable as soon as it is there.
    let mut first_seen = None;
    let t = wait_until(Duration::from_secs(5), || {
        first_seen = bed.vip6_line(1);
        first_seen.is_some()
    });
    assert!(t.is_some(), "the backup never took {VIP6}\n{}", bed.logs());
    let line = first_seen.unwrap();
    println!(
        "IPv6 VIP on the backup {:?} after the kill: {line}",
        killed.elapsed()
    );
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "the VIP is tentative right after the takeover: {line}"
    );
    assert!(
        bed.vip6_line(0).is_none(),
        "the killed node still has the VIP"
    );

    // The client's entry moves to node 1's MAC without the client sending anything.
    let moved = wait_until(Duration::from_secs(5), || {
        bed.client_neigh(VIP6).is_some_and(|(m, _)| m == mac1)
    });
    assert!(
        moved.is_some(),
        "the client's entry for {VIP6} still says {:?}\n{}",
        bed.client_neigh(VIP6),
        bed.logs()
    );
    let (_, state) = bed.client_neigh(VIP6).unwrap();
    assert_eq!(
        state, "STALE",
        "an unsolicited NA leaves the entry STALE (RFC 4861 7.2.5)"
    );
    // And the IPv4 VIP's entry by the gratuitous ARP.
    let moved4 = wait_until(Duration::from_secs(5), || {
        bed.client_neigh(VIP4).is_some_and(|(m, _)| m == mac1)
    });
    assert!(moved4.is_some(), "{:?}", bed.client_neigh(VIP4));
    let is_na =
        |p: &String| p.contains("neighbor advertisement") && p.contains(&format!("tgt is {VIP6}"));
    // The rest of the burst ([garp] count = 3, 100 ms apart).
    let burst = wait_until(Duration::from_secs(5), || {
        decoded(&capture).iter().filter(|p| is_na(p)).count() >= 3
    });
    assert!(burst.is_some(), "{}", decoded(&capture).join("\n"));
    bed.stop_capture();
    let packets = decoded(&capture);
    let nas: Vec<&String> = packets.iter().filter(|p| is_na(p)).collect();
    assert!(
        !nas.is_empty(),
        "no NA for the VIP captured:\n{}",
        packets.join("\n")
    );
    for na in &nas {
        assert!(
            na.contains(&format!("{mac1} > 33:33:00:00:00:01")),
            "not from node 1 to all nodes: {na}"
        );
        assert!(na.contains("hlim 255"), "hop limit is not 255: {na}");
        assert!(na.contains("Flags [override]"), "not Override only: {na}");
        assert!(
            na.contains(&format!("{VIP6} > ff02::1:")),
            "not from the VIP to ff02::1: {na}"
        );
        assert!(
            na.contains(&format!("link-address option (2), length 8 (1): {mac1}")),
            "no target link-layer address option with node 1's MAC: {na}"
        );
    }
    assert_eq!(nas.len(), 3, "count = 3 rounds:\n{}", packets.join("\n"));
    let asked: Vec<&String> = packets
        .iter()
        .filter(|p| p.contains("neighbor solicitation") && p.contains(&format!("who has {VIP6}")))
        .collect();
    assert!(asked.is_empty(), "the client had to ask: {asked:?}");

    // Node 1 answers the client's solicitations from now on: the unicast probe of the
    // STALE entry once the client uses it (REACHABLE only by an answer: an echo reply does
    // not confirm reachability) ...
    let reached = wait_until(Duration::from_secs(10), || bed.ping(VIP6));
    assert!(
        reached.is_some(),
        "the client cannot reach {VIP6} on node 1\n{}",
        bed.logs()
    );
    let confirmed = wait_until(Duration::from_secs(5), || {
        bed.client_neigh(VIP6) == Some((mac1.clone(), "REACHABLE".to_owned()))
    });
    assert!(
        confirmed.is_some(),
        "the probe went unanswered: {:?}",
        bed.client_neigh(VIP6)
    );
    // ... and the multicast solicitation of a fresh resolution.
    sh(&[
        "ip",
        "-n",
        &bed.ns("c"),
        "-6",
        "neigh",
        "flush",
        "dev",
        "eth0",
    ]);
    assert!(
        bed.ping(VIP6),
        "no answer after a fresh resolution\n{}",
        bed.logs()
    );
    assert_eq!(bed.client_neigh(VIP6).map(|(m, _)| m), Some(mac1));
}

/// Heartbeats over an IPv6 link-local group joined on eth0; SIGTERM of the master removes
/// its IPv6 address (logged) and the backup takes over at once.
#[test]
fn ipv6_multicast_heartbeats_and_sigterm_release() {
    let Some(mut bed) = bed(
        "ipv6_multicast_heartbeats_and_sigterm_release",
        "m",
        Heartbeats::Multicast,
    ) else {
        return;
    };
    // Node 0 forwards IPv6 on eth0 (as a VS/NAT gateway would): its advertisements say
    // Router, as the kernel's own would.
    sysctl(&bed.ns("n0"), "net.ipv6.conf.eth0.forwarding=1");
    bed.start_pair();
    let heard = wait_until(Duration::from_secs(5), || {
        bed.status(1).is_some_and(|s| {
            s.peer.is_some_and(|p| p.alive && p.state == "master")
                && s.media
                    .iter()
                    .any(|m| m.name == "udp" && m.up && m.accepted > 0)
        })
    });
    assert!(
        heard.is_some(),
        "node 1 does not hear node 0 on {GROUP}\n{}",
        bed.logs()
    );
    // While node 0 stays master (the group carries the heartbeats steadily), its refresh
    // ([garp] refresh_ms = 1000) repeats the burst of unsolicited NAs: four are more than
    // the takeover's burst (three) can have left for the capture.
    let capture = bed.start_capture();
    let refreshed = wait_until(Duration::from_secs(5), || {
        assert!(
            bed.vip6_line(0).is_some() && bed.vip6_line(1).is_none(),
            "{}",
            bed.logs()
        );
        decoded(&capture)
            .iter()
            .filter(|p| {
                p.contains("neighbor advertisement") && p.contains(&format!("tgt is {VIP6}"))
            })
            .count()
            >= 4
    });
    assert!(
        refreshed.is_some(),
        "no refresh burst: {}",
        decoded(&capture).join("\n")
    );
    bed.stop_capture();
    for na in decoded(&capture)
        .iter()
        .filter(|p| p.contains("neighbor advertisement"))
    {
        assert!(
            na.contains("hlim 255") && na.contains("Flags [router, override]"),
            "{na}"
        );
    }
    let stopped = Instant::now();
    bed.terminate(0);
    let log = bed.log(0);
    assert!(
        log.lines().any(|l| l.contains("event=release")
            && l.contains("step=vip")
            && l.contains("why=stop")
            && l.contains(&format!("addr={VIP6}/64"))
            && l.contains("removed=true")),
        "the IPv6 VIP was not removed on SIGTERM\n{log}"
    );
    let t = wait_until(Duration::from_secs(3), || bed.vip6_line(1).is_some());
    assert!(t.is_some(), "the backup never took {VIP6}\n{}", bed.logs());
    let t = stopped.elapsed();
    println!("takeover after SIGTERM: {t:?}");
    assert!(
        t < Duration::from_millis(900),
        "the farewell over the group did not make the backup take over at once: {t:?}"
    );
}

/// Whether node `node`'s eth0 is in the solicited-node group of the VIP (joined by the
/// daemon's neighbour discovery socket while it answers for the VIP).
fn in_vip_group(bed: &Bed, node: &str) -> bool {
    sh(&[
        "ip",
        "-n",
        &bed.ns(node),
        "-6",
        "maddr",
        "show",
        "dev",
        "eth0",
    ])
    .contains("ff02::1:ff00:100")
}

/// Node 1 stops hearing node 0 (its heartbeats dropped on input) and takes over with a newer
/// epoch; node 0, which still hears it, steps down: its IPv6 VIP is removed and it stops
/// answering solicitations for it (leaves the group), while node 1 answers them.
#[test]
fn ipv6_vip_removed_on_standby_and_solicitations_left_to_the_new_master() {
    let Some(mut bed) = bed(
        "ipv6_vip_removed_on_standby_and_solicitations_left_to_the_new_master",
        "s",
        Heartbeats::Unicast,
    ) else {
        return;
    };
    bed.start_pair();
    let joined = wait_until(Duration::from_secs(5), || in_vip_group(&bed, "n0"));
    assert!(
        joined.is_some(),
        "node 0 never joined the VIP's solicited-node group"
    );
    assert!(!in_vip_group(&bed, "n1"), "the backup answers for the VIP");
    let n1 = bed.ns("n1");
    for rule in [
        "add table inet hb6",
        "add chain inet hb6 input { type filter hook input priority 0 ; }",
        &format!("add rule inet hb6 input udp dport {PORT} drop"),
    ] {
        let mut args = vec!["ip", "netns", "exec", &n1, "nft"];
        args.extend(rule.split_whitespace());
        sh(&args);
    }
    let released = wait_until(Duration::from_secs(10), || bed.vip6_line(0).is_none());
    assert!(released.is_some(), "node 0 kept the VIP\n{}", bed.logs());
    assert!(
        bed.log(0).lines().any(|l| l.contains("event=release")
            && l.contains("why=backup")
            && l.contains(&format!("addr={VIP6}/64"))
            && l.contains("removed=true")),
        "{}",
        bed.logs()
    );
    assert!(
        bed.vip6_line(1).is_some(),
        "node 1 does not hold the VIP\n{}",
        bed.logs()
    );
    assert!(
        !in_vip_group(&bed, "n0"),
        "node 0 still answers for the VIP"
    );
    assert!(
        in_vip_group(&bed, "n1"),
        "node 1 does not answer for the VIP"
    );
    // A fresh resolution finds node 1 only.
    assert!(bed.ping(VIP6), "{}", bed.logs());
    assert_eq!(bed.client_neigh(VIP6).map(|(m, _)| m), Some(bed.mac("n1")));
}
