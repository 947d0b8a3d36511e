//! Connection sync end to end: two real directors on one LAN (the testbed's `d` and a second
//! one, `d2`, added to the same bridge), a real client with many long-lived TCP connections
//! through the VIP, and real HTTP servers. The standby learns every connection (by bulk
//! resync when it starts late, then by updates), and after the roles are switched over the
//! control socket and the VIP is moved, every connection goes on exchanging data with no
//! reset. Forged, replayed and truncated datagrams are rejected and counted.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{CLIENT, Lines, RS, SOON, Testbed, VIP, must, sh, text, wait_for};
use lvs_conntrack::{Endpoint, Forward, Proto, State, SyncEntry};
use lvs_director::sync::wire::{self, AuthKey, Builder, Echoes, Header, Kind};
use lvs_proto::director::SyncStatus;
use lvs_proto::{Client, HaRole, Request, Response, Role};

const D1: &str = "203.0.113.1";
const D2: &str = "203.0.113.2";
const KEY: &str = "a test key for connection sync\n";
const LONG: Duration = Duration::from_secs(60);

/// Many keep-alive HTTP connections in one process: opens N to the VIP and GETs on each
/// (all requests first, then all answers), then again for each `get` line on stdin, printing
/// `OK n ERR kinds`.
const MANY_CLIENT: &str = r#"
import socket, sys
vip, n, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
socks = []
def answer(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise EOFError()
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            raise EOFError()
        body += d
def rnd(group):
    ok, errs, sent = 0, [], []
    for s in group:
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
            sent.append(s)
        except Exception as e:
            errs.append(type(e).__name__)
    for s in sent:
        try:
            answer(s)
            ok += 1
        except Exception as e:
            errs.append(type(e).__name__)
    print("OK", ok, "ERR", ",".join(errs) or "-", flush=True)
def more(k):
    new = []
    for i in range(k):
        s = socket.create_connection((vip, 80), timeout=timeout)
        new.append(s)
    socks.extend(new)
    rnd(new)
more(n)
for line in sys.stdin:
    w = line.split()
    if w and w[0] == "get":
        rnd(socks)
    elif w and w[0] == "open":
        more(int(w[1]))
    else:
        break
"#;

/// The key file both directors read (mode 0600).
fn key_file(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("sync.key");
    std::fs::write(&p, KEY).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// `[sync]` for one director: unicast to `peers`, or the multicast group on eth0 when
/// `peers` is empty. IPv6 peers make the socket an IPv6 one (`[::]:8848`). Each director has
/// a state directory of its own (`state`, made here): its sync id and boot generation live
/// there.
fn sync_section(key: &Path, peers: &[&str], state: &Path) -> String {
    std::fs::create_dir_all(state).unwrap();
    let v6 = peers.iter().any(|p| p.contains(':'));
    let to = if peers.is_empty() {
        "multicast = \"239.7.7.7:8848\"\ninterface = \"eth0\"".to_owned()
    } else {
        let list: Vec<String> = peers
            .iter()
            .map(|p| {
                if v6 {
                    format!("\"[{p}]:8848\"")
                } else {
                    format!("\"{p}:8848\"")
                }
            })
            .collect();
        format!("peers = [{}]", list.join(", "))
    };
    let listen = if v6 { "[::]:8848" } else { "0.0.0.0:8848" };
    format!(
        "[sync]\nlisten = \"{listen}\"\n{to}\nkey_file = \"{}\"\nsync_id = 7\nstate_dir = \"{}\"\n",
        key.display(),
        state.display()
    )
}

/// How the two directors of [`failover`] sync.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// IPv4 unicast, each to the other's address.
    Unicast,
    /// The IPv4 multicast group on eth0.
    Multicast,
    /// IPv6 unicast, each to the other's IPv6 address on the LAN (IPv4 connections: the
    /// entries' family is not the transport's).
    UnicastV6,
}

/// The directors' and the router's IPv6 addresses on the LAN (added by [`add_v6`]).
const D1_6: &str = "2001:db8:7::1";
const D2_6: &str = "2001:db8:7::2";
const RT_6: &str = "2001:db8:7::fe";

/// Gives `dev` in `ns` the IPv6 address `addr`/64, usable at once (no duplicate detection
/// on a LAN of our own).
fn add_v6(ns: &str, dev: &str, addr: &str) {
    must(&[
        "ip",
        "-n",
        ns,
        "addr",
        "add",
        &format!("{addr}/64"),
        "dev",
        dev,
        "nodad",
    ]);
}

/// The second director: its namespace on the testbed's bridge and its process; both go on
/// drop, even when the test fails.
struct Second {
    ns: String,
    sw: String,
    rundir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Second {
    fn new(tb: &Testbed) -> Second {
        let ns = tb.ns("d2");
        let rundir = tb.rundir.join("d2");
        std::fs::create_dir_all(&rundir).unwrap();
        let s = Second {
            ns: ns.clone(),
            sw: tb.ns("sw"),
            log: rundir.join("director.log"),
            rundir,
            child: None,
        };
        let _ = sh(&["ip", "netns", "del", &ns]);
        must(&["ip", "netns", "add", &ns]);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        must(&[
            "ip", "-n", &s.sw, "link", "add", "d2-lan", "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        must(&[
            "ip", "-n", &s.sw, "link", "set", "d2-lan", "master", "br0", "up",
        ]);
        for (n, dev) in [(&s.sw, "d2-lan"), (&ns, "eth0")] {
            let _ = sh(&[
                "ip", "netns", "exec", n, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro",
                "off",
            ]);
        }
        must(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{D2}/24"),
            "dev",
            "eth0",
        ]);
        must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        must(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            "203.0.113.254",
        ]);
        s
    }

    fn start(&mut self, extra: &str) {
        let config = self.rundir.join("director.toml");
        std::fs::write(&config, format!("workers = 2\n{extra}\n")).unwrap();
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(env!("CARGO_BIN_EXE_lvs-director"))
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&self.rundir)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the second lvs-director");
        self.child = Some(child);
        wait_for("the second director's control socket", common::SOON, || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("second lvs-director exited ({st}):\n{}", self.log_text());
            }
            self.lvsadm(&["-L", "-n"]).status.success().then_some(())
        });
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the director with SIGTERM; it must exit cleanly.
    fn stop(&mut self) {
        if let Some(c) = self.child.take()
            && let Err(e) = common::sigterm_director(c, common::SOON)
        {
            panic!("{e}\n{}", self.log_text());
        }
    }

    fn lvsadm(&self, args: &[&str]) -> Output {
        common::lvsadm_at(&self.rundir, args)
    }

    fn adm(&self, args: &str) -> String {
        let v: Vec<&str> = args.split_whitespace().collect();
        let out = self.lvsadm(&v);
        assert!(
            out.status.success(),
            "lvsadm(d2) {args}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Let d2 know the router's MAC before it has to route replies (best effort: without
    /// it, the first reply is dropped while the director resolves it, and TCP retransmits).
    fn warm_arp(&self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "ping", "-c1", "-W2", RT])
            .output();
    }

    /// The same service and real servers as the testbed's director (`sched`, `fwd`).
    fn same_service(&self, sched: &str, fwd: &str) {
        self.adm(&format!("-A -t {VIP}:80 {sched}"));
        for rs in RS {
            self.adm(&format!("-a -t {VIP}:80 -r {rs}:80 {fwd} -w 1"));
        }
    }

    fn mac(&self) -> String {
        must(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .trim()
        .to_owned()
    }
}

impl Drop for Second {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            // A cleanup: an unclean exit shows in the log printed below when the test failed.
            let _ = common::sigterm_director(c, common::SOON);
        }
        if std::thread::panicking() {
            eprintln!("--- second director log ---\n{}", self.log_text());
        }
        let _ = sh(&["ip", "-n", &self.sw, "link", "del", "d2-lan"]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

fn control(rundir: &Path) -> Client {
    Client::connect(&rundir.join("director.sock"), Role::Other).expect("connect to a director")
}

fn set_role(rundir: &Path, role: HaRole) {
    assert_eq!(
        control(rundir).request(Request::SetRole { role }).unwrap(),
        Response::Ok
    );
}

fn status(rundir: &Path) -> SyncStatus {
    match control(rundir).request(Request::SyncStatus).unwrap() {
        Response::Sync(s) => s,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The client's connections a director lists as ESTABLISHED.
fn established(list: &str) -> usize {
    common::parse_conns(list)
        .iter()
        .filter(|c| c.state == "ESTABLISHED" && c.source.starts_with(CLIENT))
        .count()
}

/// [`MANY_CLIENT`] on the client with `n` connections open and answered: its output and
/// input.
fn clients(tb: &mut Testbed, n: usize) -> (Lines, std::process::ChildStdin) {
    let h = tb.spawn(
        "c",
        &["python3", "-c", MANY_CLIENT, VIP, &n.to_string(), "30"],
    );
    let mut lines = Lines::new(tb.helper(h));
    let input = tb.helper(h).stdin.take().expect("stdin");
    assert_eq!(lines.next_line(), format!("OK {n} ERR -"));
    (lines, input)
}

/// The client's established connections: client, virtual and real server of each.
fn identity(list: &str) -> std::collections::BTreeSet<(String, String, String)> {
    common::parse_conns(list)
        .into_iter()
        .filter(|c| c.state == "ESTABLISHED" && c.source.starts_with(CLIENT))
        .map(|c| (c.source, c.virt, c.dest))
        .collect()
}

fn round(input: &mut std::process::ChildStdin, lines: &mut Lines, cmd: &str) -> String {
    writeln!(input, "{cmd}").unwrap();
    input.flush().unwrap();
    lines.next_line()
}

/// Move the VIP (and, for NAT, the real servers' next hop) from `d` to `d2`, as the heartbeat
/// daemon would: address off the old one, on the new one, the router's neighbour entry to
/// the new MAC.
fn move_vip(tb: &Testbed, second: &Second, nat: bool) {
    must(&[
        "ip",
        "-n",
        &tb.ns("d"),
        "addr",
        "del",
        &format!("{VIP}/32"),
        "dev",
        "eth0",
    ]);
    must(&[
        "ip",
        "-n",
        &second.ns,
        "addr",
        "add",
        &format!("{VIP}/32"),
        "dev",
        "eth0",
    ]);
    let mac = second.mac();
    must(&[
        "ip",
        "-n",
        &tb.ns("rt"),
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &mac,
        "dev",
        "eth1",
        "nud",
        "permanent",
    ]);
    if nat {
        for i in 1..=3 {
            must(&[
                "ip",
                "-n",
                &tb.ns(&format!("r{i}")),
                "route",
                "replace",
                "default",
                "via",
                D2,
            ]);
        }
    }
}

/// Send raw bytes to d2's sync port from the router's namespace (a host on the LAN).
fn send_raw(tb: &Testbed, bytes: &[u8]) {
    send_raw_to(tb, bytes, D2);
}

/// Send raw bytes to `dst`'s sync port (IPv4 or IPv6) from the router's namespace (from a
/// port of its own).
fn send_raw_to(tb: &Testbed, bytes: &[u8], dst: &str) {
    let path = tb.rundir.join("raw.bin");
    std::fs::write(&path, bytes).unwrap();
    let out = tb.exec(
        "rt",
        &[
            "python3",
            "-c",
            "import socket,sys; \
             f=socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET; \
             s=socket.socket(f, socket.SOCK_DGRAM); \
             s.sendto(open(sys.argv[1],'rb').read(), (sys.argv[2], 8848))",
            path.to_str().unwrap(),
            dst,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn fake_entry() -> SyncEntry {
    SyncEntry {
        proto: Proto::Tcp,
        client: Endpoint::v4([198, 51, 100, 99], 4242),
        virt: Endpoint::v4([203, 0, 113, 100], 80),
        dest: Endpoint::v4([203, 0, 113, 11], 80),
        forward: Forward::Nat,
        state: State::Established,
        flags: 0,
        timeout_ms: 900_000,
        persist_secs: 0,
    }
}

fn datagram(key: &[u8], kind: Kind, sender: u64, seq: u64, record: bool) -> Vec<u8> {
    let mut b = Builder::default();
    b.start(&Header {
        kind,
        sync_id: 7,
        flags: 0,
        sender,
        generation: 1,
        seq,
        bulk_id: 0,
        chunk: 0,
        count: 0,
        reply_to: None,
        echoes: Echoes::default(),
    });
    if record {
        b.push(&fake_entry());
    }
    b.seal(&AuthKey::from_bytes(key).unwrap()).to_vec()
}

/// Forged, replayed and truncated datagrams at the standby (at its address `d2`): counted,
/// and the table is left alone.
fn rejections(tb: &Testbed, second: &Second, d2: &str) {
    let before = status(&second.rundir);
    send_raw_to(
        tb,
        &datagram(b"not the right key at all", Kind::Updates, 99, 1, true),
        d2,
    );
    let good = datagram(KEY.trim_end().as_bytes(), Kind::Keepalive, 0x5eed, 1, false);
    send_raw_to(tb, &good, d2);
    send_raw_to(tb, &good, d2);
    let cut = datagram(KEY.trim_end().as_bytes(), Kind::Updates, 0x5eed, 2, true);
    // Shorter than a magic and a MAC (cut anywhere later, the MAC fails instead).
    send_raw_to(tb, &cut[..20], d2);
    let after = wait_for("the rejections counted", common::SOON, || {
        let s = status(&second.rundir);
        (s.rejected_mac > before.rejected_mac
            && s.rejected_replay > before.rejected_replay
            && s.rejected_truncated > before.rejected_truncated)
            .then_some(s)
    });
    assert_eq!(after.rejected_mac, before.rejected_mac + 1, "{after:?}");
    assert_eq!(
        after.rejected_replay,
        before.rejected_replay + 1,
        "{after:?}"
    );
    assert_eq!(
        after.rejected_truncated,
        before.rejected_truncated + 1,
        "{after:?}"
    );
    let list = second.adm("-L -n -c");
    assert!(
        !list.contains("198.51.100.99"),
        "a rejected datagram changed the table:\n{list}"
    );
}

/// `sched`: the scheduler options of the service on both directors (`-p` makes the
/// persistence templates travel too).
/// `transport`: how the directors sync.
fn failover(test: &str, mode: &str, fwd: &str, sched: &str, transport: Transport) {
    let dir = std::env::temp_dir().join(format!("lvs-sync-{}-{test}", std::process::id()));
    let key = key_file(&dir);
    let (to_d1, to_d2): (&[&str], &[&str]) = match transport {
        Transport::Multicast => (&[], &[]),
        Transport::Unicast => (&[D1], &[D2]),
        Transport::UnicastV6 => (&[D1_6], &[D2_6]),
    };
    let Some(mut tb) = Testbed::start_with(test, mode, &sync_section(&key, to_d2, &dir.join("d1")))
    else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let nat = mode == "nat";
    let mut second = Second::new(&tb);
    if transport == Transport::UnicastV6 {
        add_v6(&tb.ns("d"), "eth0", D1_6);
        add_v6(&second.ns, "eth0", D2_6);
        add_v6(&tb.ns("rt"), "eth1", RT_6);
    }
    tb.service("-t", 80, sched, fwd, &[1, 1, 1]);
    second.warm_arp();

    // Connections before the standby exists: it must get them by bulk resync.
    let first = 60;
    let (mut lines, mut input) = clients(&mut tb, first);

    second.start(&sync_section(&key, to_d1, &dir.join("d2")));
    second.same_service(sched, fwd);
    set_role(&second.rundir, HaRole::Standby);
    let st = wait_for("the standby to report its table synced", LONG, || {
        let s = status(&second.rundir);
        s.synced.then_some(s)
    });
    assert!(st.bulk_complete && !st.active, "{st:?}");
    // The bulk resync brought the whole table: exactly the primary's connections, each to
    // the same real server, not merely as many.
    let primary = identity(&tb.adm("-L -n -c"));
    assert_eq!(primary.len(), first, "{primary:?}");
    wait_for(
        "the standby to hold the primary's connections",
        LONG,
        || (identity(&second.adm("-L -n -c")) == primary).then_some(()),
    );
    assert!(second.adm("-L --daemon").starts_with("backup sync daemon"));
    assert!(tb.adm("-L --daemon").starts_with("master sync daemon"));
    if transport == Transport::UnicastV6 {
        assert!(
            second.adm("-L --daemon").contains(&format!(
                "(listen=[::]:8848, peers=[{D1_6}]:8848, syncid=7)"
            )),
            "{}",
            second.adm("-L --daemon")
        );
    }

    // More connections while the standby listens: sent as updates.
    let more = 60;
    let total = first + more;
    assert_eq!(
        round(&mut input, &mut lines, &format!("open {more}")),
        format!("OK {more} ERR -")
    );
    wait_for("the standby to hold every connection", LONG, || {
        (established(&second.adm("-L -n -c")) >= total).then_some(())
    });
    assert_eq!(established(&tb.adm("-L -n -c")), total);

    rejections(
        &tb,
        &second,
        if transport == Transport::UnicastV6 {
            D2_6
        } else {
            D2
        },
    );

    // Takeover: the standby becomes active, the VIP moves, the old one steps down.
    set_role(&second.rundir, HaRole::Active);
    move_vip(&tb, &second, nat);
    set_role(&tb.rundir, HaRole::Standby);
    for _ in 0..2 {
        let got = round(&mut input, &mut lines, "get");
        assert_eq!(
            got,
            format!("OK {total} ERR -"),
            "connections lost at failover; the new director:\n{}\n{}",
            second.adm("-L -n --stats"),
            second.log_text()
        );
    }
    // The new active director carried the traffic.
    let stats = second.adm("-L -n --stats");
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("TCP") && l.split_whitespace().nth(3) != Some("0")),
        "{stats}"
    );
    let s = status(&second.rundir);
    if std::env::var_os("LVS_SYNC_TEST_VERBOSE").is_some() {
        eprintln!(
            "{}\n{}\n{}",
            second.adm("-L --daemon"),
            stats,
            second.log_text()
        );
    }
    assert!(s.active && s.entries_applied >= total as u64, "{s:?}");
    if sched.contains("-p") {
        // The client's template came over with its connections: a new connection after the
        // takeover goes to the same real server.
        let conns = common::parse_conns(&second.adm("-L -n -c"));
        let template = conns
            .iter()
            .find(|c| c.source == format!("{CLIENT}:0"))
            .unwrap_or_else(|| panic!("no template on the new director: {conns:?}"));
        let i = RS
            .iter()
            .position(|r| *r == template.dest_addr())
            .expect("a known server");
        assert_eq!(tb.curl(), common::NAMES[i]);
    }
    // The old primary, standby now, runs [sync]'s daemon as ipvsadm's backup: lvsadm sees
    // it as one, and can stop it.
    refused(
        &tb.rundir,
        "--start-daemon backup",
        "Daemon has already run (the one of [sync] in lvs-director's configuration file)",
    );
    refused(&tb.rundir, "--stop-daemon master", "No daemon is running");
    tb.adm("--stop-daemon backup");
    assert_eq!(tb.adm("-L --daemon"), "");
    drop(input);
    drop(second);
    drop(tb);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nat_connections_survive_a_failover_with_bulk_resync_and_updates() {
    failover(
        "nat_connections_survive_a_failover_with_bulk_resync_and_updates",
        "nat",
        "-m",
        "-s rr",
        Transport::Unicast,
    );
}

/// The same over IPv6: the directors sync over an IPv6 socket to each other's IPv6 address
/// (the bulk request names its IPv6 source, which must be a configured peer), the IPv4
/// connections survive the failover, and forged IPv6 datagrams are counted.
#[test]
fn nat_connections_survive_a_failover_synced_over_ipv6() {
    failover(
        "nat_connections_survive_a_failover_synced_over_ipv6",
        "nat",
        "-m",
        "-s rr",
        Transport::UnicastV6,
    );
}

#[test]
fn dr_connections_survive_a_failover_with_persistence_over_multicast() {
    failover(
        "dr_connections_survive_a_failover_with_persistence_over_multicast",
        "dr",
        "-g",
        "-s rr -p 300",
        Transport::Multicast,
    );
}

/// The router: a host on the LAN that both directors list as a sync peer, so that it
/// receives what they send, as a third party would.
const RT: &str = "203.0.113.254";

/// Records every datagram arriving at UDP port 8848: a 2-byte length, then the bytes.
const RECORDER: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8848))
with open(sys.argv[1], "wb") as f:
    while True:
        d = s.recv(65535)
        f.write(struct.pack("!H", len(d)) + d)
        f.flush()
"#;

/// The datagrams of a recording that open under `key`, with their headers.
fn recorded(file: &Path, key: &AuthKey) -> Vec<(Header, Vec<u8>)> {
    let data = std::fs::read(file).unwrap_or_default();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= data.len() {
        let n = usize::from(u16::from_be_bytes([data[i], data[i + 1]]));
        let Some(d) = data.get(i + 2..i + 2 + n) else {
            break;
        };
        if let Ok(o) = wire::open(d, key) {
            out.push((o.header, d.to_vec()));
        }
        i += 2 + n;
    }
    out
}

fn stop_helper(tb: &mut Testbed, h: usize) {
    let c = tb.helper(h);
    let _ = c.kill();
    let _ = c.wait();
}

/// Datagrams the active director sent during its previous run (recorded on the LAN, with
/// real connection entries) are refused by a standby that heard its current run, and put
/// nothing into its table; a standby's bulk request replayed from another host is not
/// answered there. After the standby restarts, the active director's updates of its current
/// run recorded before are refused too, while its new ones are applied.
#[test]
fn datagrams_of_an_earlier_run_and_foreign_bulk_requests_are_refused() {
    let test = "datagrams_of_an_earlier_run_and_foreign_bulk_requests_are_refused";
    let dir = std::env::temp_dir().join(format!("lvs-sync-{}-stale", std::process::id()));
    let key = key_file(&dir);
    let k = AuthKey::from_bytes(KEY.trim_end().as_bytes()).unwrap();
    let Some(mut tb) =
        Testbed::start_with(test, "nat", &sync_section(&key, &[D2, RT], &dir.join("d1")))
    else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);

    // The first run of d: connections, whose updates the router records.
    let run1 = tb.rundir.join("run1.rec");
    let rec = tb.spawn("rt", &["python3", "-c", RECORDER, run1.to_str().unwrap()]);
    let updates = wait_for("d's updates recorded on the router", LONG, || {
        tb.curl();
        let u: Vec<Vec<u8>> = recorded(&run1, &k)
            .into_iter()
            .filter(|(h, _)| h.kind == Kind::Updates && h.count > 0)
            .map(|(_, d)| d)
            .collect();
        (!u.is_empty()).then_some(u)
    });
    stop_helper(&mut tb, rec);

    // Its second run (an empty table), and a standby that hears it.
    tb.restart_director();
    let run2 = tb.rundir.join("run2.rec");
    let rec = tb.spawn("rt", &["python3", "-c", RECORDER, run2.to_str().unwrap()]);
    let mut second = Second::new(&tb);
    second.start(&sync_section(&key, &[D1, RT], &dir.join("d2")));
    second.same_service("-s rr", "-m");
    set_role(&second.rundir, HaRole::Standby);
    wait_for("the standby to report its table synced", LONG, || {
        status(&second.rundir).synced.then_some(())
    });

    // The first run's updates, replayed from the router: refused as stale.
    let before = status(&second.rundir);
    for u in &updates {
        send_raw(&tb, u);
    }
    let after = wait_for("the replayed updates counted", SOON, || {
        let s = status(&second.rundir);
        (s.rejected_replay >= before.rejected_replay + updates.len() as u64).then_some(s)
    });
    assert_eq!(after.entries_applied, before.entries_applied, "{after:?}");
    assert!(
        second
            .log_text()
            .contains("event=sync_rejected reason=\"stale generation\""),
        "{}",
        second.log_text()
    );
    let list = second.adm("-L -n -c");
    assert!(
        !list.contains(CLIENT),
        "entries of d's earlier run were put into the standby's table:\n{list}"
    );

    // d2's bulk request as the router got it, replayed from the router to d: d names the
    // reason and sends the router no table (only its keepalives: the router is its peer).
    let request = wait_for("d2's bulk request recorded on the router", SOON, || {
        recorded(&run2, &k)
            .into_iter()
            .find(|(h, _)| h.kind == Kind::BulkRequest)
    });
    assert_eq!(
        request.0.reply_to,
        Some(format!("{D2}:8848").parse().unwrap())
    );
    stop_helper(&mut tb, rec);
    let run3 = tb.rundir.join("run3.rec");
    let rec = tb.spawn("rt", &["python3", "-c", RECORDER, run3.to_str().unwrap()]);
    send_raw_to(&tb, &request.1, D1);
    wait_for("d to refuse the foreign bulk request", SOON, || {
        tb.log_text()
            .contains("event=sync_rejected reason=\"unknown requester\"")
            .then_some(())
    });
    let got = wait_for(
        "two keepalives of d at the router after the request",
        SOON,
        || {
            let r = recorded(&run3, &k);
            (r.iter().filter(|(h, _)| h.kind == Kind::Keepalive).count() >= 2).then_some(r)
        },
    );
    stop_helper(&mut tb, rec);
    assert!(
        got.iter()
            .all(|(h, _)| !matches!(h.kind, Kind::BulkChunk | Kind::BulkEnd)),
        "d sent its table to the router: {:?}",
        got.iter().map(|(h, _)| h.kind).collect::<Vec<_>>()
    );

    // Connections through d while the standby listens (d's second run starts without the
    // service): their updates, recorded on the router, echo the standby's generation.
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    let run4 = tb.rundir.join("run4.rec");
    let rec = tb.spawn("rt", &["python3", "-c", RECORDER, run4.to_str().unwrap()]);
    wait_for("the router to record d's keepalives", SOON, || {
        let r = recorded(&run4, &k);
        r.iter()
            .any(|(h, _)| h.kind == Kind::Keepalive)
            .then_some(())
    });
    let conns = 5;
    let client = tb.spawn(
        "c",
        &["python3", "-c", MANY_CLIENT, VIP, &conns.to_string(), "30"],
    );
    let mut lines = Lines::new(tb.helper(client));
    assert_eq!(lines.next_line(), format!("OK {conns} ERR -"));
    wait_for("the standby to hold the connections", LONG, || {
        (established(&second.adm("-L -n -c")) == conns).then_some(())
    });
    let captured = wait_for("d's updates of them recorded on the router", SOON, || {
        let u: Vec<Vec<u8>> = recorded(&run4, &k)
            .into_iter()
            .filter(|(h, _)| h.kind == Kind::Updates && h.count > 0)
            .map(|(_, d)| d)
            .collect();
        let established = u
            .iter()
            .flat_map(|d| wire::open(d, &k).unwrap().records().collect::<Vec<_>>())
            .filter(|e| e.as_ref().is_ok_and(|e| e.state == State::Established))
            .count();
        (established >= conns).then_some(u)
    });
    stop_helper(&mut tb, rec);
    // The client goes: its connections close, on d and (by updates) on the standby.
    stop_helper(&mut tb, client);
    drop(lines);
    wait_for("d to list none of them as established", LONG, || {
        (established(&tb.adm("-L -n -c")) == 0).then_some(())
    });
    // The standby restarts while d's datagrams cannot reach it (d's own bulk reply, which
    // would echo its new generation, among them): the recorded updates, replayed from the
    // router, are unconfirmed, and nothing is applied.
    second.stop();
    let ns = second.ns.clone();
    let nft = |args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", &ns, "nft"];
        v.extend_from_slice(args);
        must(&v);
    };
    nft(&["add", "table", "inet", "synctest"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "synctest",
        "input",
        "{ type filter hook input priority -10 ; }",
    ]);
    nft(&[
        "add", "rule", "inet", "synctest", "input", "ip", "saddr", D1, "udp", "dport", "8848",
        "drop",
    ]);
    second.start(&sync_section(&key, &[D1, RT], &dir.join("d2")));
    second.same_service("-s rr", "-m");
    set_role(&second.rundir, HaRole::Standby);
    let replay = |what: &str| {
        let before = status(&second.rundir);
        for u in &captured {
            send_raw(&tb, u);
        }
        let after = wait_for(what, SOON, || {
            let s = status(&second.rundir);
            (s.rejected_replay >= before.rejected_replay + captured.len() as u64).then_some(s)
        });
        assert_eq!(after.entries_applied, before.entries_applied, "{after:?}");
        let list = second.adm("-L -n -c");
        assert_eq!(
            established(&list),
            0,
            "replayed updates made closed connections established again:\n{list}"
        );
        after
    };
    replay("the replayed updates counted as unconfirmed");
    assert!(
        second
            .log_text()
            .contains("event=sync_rejected reason=unconfirmed "),
        "{}",
        second.log_text()
    );
    assert!(!status(&second.rundir).bulk_complete);
    // d reaches it again: its next bulk request is answered with the echo, and d's table
    // (those connections closing, none established) arrives.
    nft(&["delete", "table", "inet", "synctest"]);
    wait_for(
        "the restarted standby to report its table synced",
        LONG,
        || status(&second.rundir).synced.then_some(()),
    );
    assert_eq!(established(&second.adm("-L -n -c")), 0);
    // Replayed again, now that d's window is open: still refused, below what d sent since.
    let after = replay("the replayed updates counted again");
    // The live director's new updates are applied.
    tb.curl();
    wait_for("an update of d's new connection applied", SOON, || {
        (status(&second.rundir).entries_applied > after.entries_applied).then_some(())
    });
    drop(second);
    drop(tb);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[sync]` that only gives the key and state directory: no daemon until lvsadm starts one.
fn key_only_section(key: &Path, state: &Path) -> String {
    std::fs::create_dir_all(state).unwrap();
    format!(
        "[sync]\nautostart = false\nkey_file = \"{}\"\nstate_dir = \"{}\"\n",
        key.display(),
        state.display()
    )
}

/// `lvsadm ARGS` on `rundir` that must fail as ipvsadm fails: exit 255 and `message` alone.
fn refused(rundir: &Path, args: &str, message: &str) {
    let out = common::lvsadm_at(rundir, &args.split_whitespace().collect::<Vec<_>>());
    assert_eq!(
        (out.status.code(), text(&out.stderr), text(&out.stdout)),
        (Some(255), format!("{message}\n"), String::new()),
        "lvsadm {args}"
    );
}

/// ipvsadm's way, on two running directors with a key but no sync: `--start-daemon master`
/// on the one forwarding, `--start-daemon backup` on the other; the backup learns the
/// master's connections (by bulk resync, then by updates) over the kernel's default group,
/// authenticated; `-L --daemon` prints ipvsadm's lines; ipvsadm's refusals word for word;
/// `--stop-daemon` stops them.
#[test]
fn daemons_started_and_stopped_with_lvsadm_sync_the_connections() {
    let test = "daemons_started_and_stopped_with_lvsadm_sync_the_connections";
    let dir = std::env::temp_dir().join(format!("lvs-sync-{}-lvsadm", std::process::id()));
    let key = key_file(&dir);
    let Some(mut tb) = Testbed::start_with(test, "nat", &key_only_section(&key, &dir.join("d1")))
    else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let mut second = Second::new(&tb);
    tb.service("-t", 80, "-s rr", "-m", &[1, 1, 1]);
    assert_eq!(
        tb.adm("-L --daemon"),
        "",
        "no daemon yet: nothing, as ipvsadm"
    );
    assert!(!status(&tb.rundir).enabled);
    second.warm_arp();

    // Connections before any daemon: the backup gets them by bulk resync.
    let first = 20;
    let (mut lines, mut input) = clients(&mut tb, first);

    second.start(&key_only_section(&key, &dir.join("d2")));
    second.same_service("-s rr", "-m");
    set_role(&second.rundir, HaRole::Standby);

    tb.adm("--start-daemon master");
    const DEFAULTS: &str =
        "(mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)";
    assert_eq!(
        tb.adm("-L --daemon"),
        format!("master sync daemon {DEFAULTS}\n")
    );
    second.adm("--start-daemon backup --mcast-interface eth0");
    assert_eq!(
        second.adm("-L --daemon"),
        format!("backup sync daemon {DEFAULTS}\n")
    );
    // ipvsadm's refusals: the kernel's EEXIST, ENODEV (checked first) and ESRCH.
    refused(
        &tb.rundir,
        "--start-daemon master",
        "Daemon has already run",
    );
    refused(
        &tb.rundir,
        "--start-daemon master --mcast-interface nosuch0",
        "No such device",
    );
    refused(
        &tb.rundir,
        "--start-daemon backup",
        "Daemon has already run (lvs-director runs one sync daemon at a time, and its master \
         sync daemon runs: stop it first with --stop-daemon master)",
    );
    refused(&tb.rundir, "--stop-daemon backup", "No daemon is running");

    let primary = identity(&tb.adm("-L -n -c"));
    assert_eq!(primary.len(), first, "{primary:?}");
    wait_for("the backup to hold the master's connections", LONG, || {
        (identity(&second.adm("-L -n -c")) == primary).then_some(())
    });
    let more = 20;
    assert_eq!(
        round(&mut input, &mut lines, &format!("open {more}")),
        format!("OK {more} ERR -")
    );
    wait_for("the backup to hold every connection", LONG, || {
        (established(&second.adm("-L -n -c")) >= first + more).then_some(())
    });
    let s = status(&second.rundir);
    assert!(s.enabled && !s.active && s.rejected_mac == 0, "{s:?}");

    tb.adm("--stop-daemon master");
    assert_eq!(tb.adm("-L --daemon"), "");
    assert!(!status(&tb.rundir).enabled);
    second.adm("--stop-daemon backup");
    assert_eq!(second.adm("-L --daemon"), "");
    refused(
        &second.rundir,
        "--stop-daemon backup",
        "No daemon is running",
    );
    // Started again after a stop: the rings came back from the stopped thread.
    tb.adm("--start-daemon master --syncid 9 --mcast-port 8849 --mcast-ttl 2");
    assert_eq!(
        tb.adm("-L --daemon"),
        "master sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8849, ttl=2)\n"
    );
    tb.adm("--stop-daemon master");

    // ipvsadm 1.31's IPv6 group (neither ipvsadm nor the kernel has an IPv6 default): the
    // same, over ff02::51 on eth0, 20 bytes less per datagram.
    for ns in [tb.ns("d"), second.ns.clone()] {
        wait_for("a usable link-local address on eth0", LONG, || {
            let list = must(&["ip", "-n", &ns, "-6", "addr", "show", "dev", "eth0"]);
            (list.contains("fe80::") && !list.contains("tentative")).then_some(())
        });
    }
    tb.adm("--start-daemon master --mcast-group ff02::51");
    second.adm("--start-daemon backup --mcast-group ff02::51");
    const V6: &str = "(mcast=eth0, syncid=0, maxlen=1452, group=ff02::51, port=8848, ttl=1)";
    assert_eq!(tb.adm("-L --daemon"), format!("master sync daemon {V6}\n"));
    assert_eq!(
        second.adm("-L --daemon"),
        format!("backup sync daemon {V6}\n")
    );
    let last = 10;
    assert_eq!(
        round(&mut input, &mut lines, &format!("open {last}")),
        format!("OK {last} ERR -")
    );
    wait_for(
        "the IPv6 backup to hold the new connections too",
        LONG,
        || (identity(&second.adm("-L -n -c")) == identity(&tb.adm("-L -n -c"))).then_some(()),
    );
    assert_eq!(established(&second.adm("-L -n -c")), first + more + last);
    drop(input);
    second.stop();
    drop(second);
    drop(tb);
    let _ = std::fs::remove_dir_all(&dir);
}
