//! Raft mode for real: three `lvs-lockmgr` daemons in a network namespace of their own (one per
//! test, named with the pid), peers on 127.0.0.1-3 (or on ::1, one port each), clients (`lvs-lockctl` processes and the
//! client library) on the daemons' Unix sockets. Partitions are nftables rules inside that
//! namespace; deleting the namespace at the end removes every trace, even after a failure.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lvs_lockmgr::history::{self, Event, Kind, Op};
use lvs_lockmgr::{LockClient, LockError, LockFlags, LockMode};
use lvs_testsupport::{poll_for, root_or_skip, wait_for};

const DAEMON: &str = env!("CARGO_BIN_EXE_lvs-lockmgr");
const CTL: &str = env!("CARGO_BIN_EXE_lvs-lockctl");
const PORT: u16 = 7470;
const LONG: Duration = Duration::from_secs(60);

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The address family the peers talk over.
#[derive(Clone, Copy)]
enum Family {
    /// 127.0.0.ID, one port: partitions cut by address.
    V4,
    /// ::1, a port per node.
    V6,
}

impl Family {
    fn peer_address(self, id: u64) -> String {
        match self {
            Family::V4 => format!("127.0.0.{id}:{PORT}"),
            Family::V6 => format!("[::1]:{}", PORT + u16::try_from(id).unwrap()),
        }
    }
}

struct Cluster {
    ns: String,
    dir: PathBuf,
    nodes: Vec<Option<Child>>,
    /// The daemons run under libfaketime, each with its clock's offset in `n<ID>/clock`.
    faked_clocks: bool,
}

/// libfaketime (Debian's libfaketime): moves the clocks a process reads (the monotonic one
/// too) by the offset in the file named by FAKETIME_TIMESTAMP_FILE.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

impl Cluster {
    /// Three nodes; `bad_key` gives node 3 a key of its own.
    fn start(tag: &str, bad_key: bool, lease_ms: u64) -> Cluster {
        Cluster::start_over(Family::V4, tag, bad_key, lease_ms)
    }

    /// As [`Cluster::start`], the peers talking over `family`.
    fn start_over(family: Family, tag: &str, bad_key: bool, lease_ms: u64) -> Cluster {
        Cluster::start_with(family, tag, bad_key, lease_ms, false)
    }

    /// As [`Cluster::start_over`]; with `faked_clocks` each daemon's clocks can be moved with
    /// [`Cluster::set_clock`].
    fn start_with(
        family: Family,
        tag: &str,
        bad_key: bool,
        lease_ms: u64,
        faked_clocks: bool,
    ) -> Cluster {
        let ns = format!("lvslk-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&ns);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(&["ip", "netns", "add", &ns]);
        let c = Cluster {
            ns,
            dir,
            nodes: vec![None, None, None],
            faked_clocks,
        };
        sh(&["ip", "-n", &c.ns, "link", "set", "lo", "up"]);
        for (name, key) in [
            ("key", "the shared key of this test cluster"),
            ("bad.key", "some other key, not the cluster's"),
        ] {
            let path = c.dir.join(name);
            std::fs::write(&path, key).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let peers = (1..=3)
            .map(|i| format!("{{ id = {i}, address = \"{}\" }}", family.peer_address(i)))
            .collect::<Vec<_>>()
            .join(", ");
        for id in 1..=3u64 {
            let nd = c.node_dir(id);
            std::fs::create_dir_all(&nd).unwrap();
            let key = if bad_key && id == 3 { "bad.key" } else { "key" };
            std::fs::write(
                nd.join("lockmgr.toml"),
                format!(
                    "node_id = {id}\nstate_dir = \"{}\"\nlease_ms = {lease_ms}\nsnapshot_every = 100\nkey_file = \"{}\"\npeers = [{peers}]\n",
                    nd.join("state").display(),
                    c.dir.join(key).display()
                ),
            )
            .unwrap();
            std::fs::write(nd.join("clock"), "+0\n").unwrap();
        }
        let mut c = c;
        for id in 1..=3 {
            c.spawn(id);
        }
        c
    }

    /// Moves node `id`'s clocks (wall and monotonic) to `offset` from the true time
    /// (libfaketime's syntax: "+3600", "-3600", "+0"), at once.
    fn set_clock(&self, id: u64, offset: &str) {
        assert!(self.faked_clocks);
        let path = self.node_dir(id).join("clock");
        let tmp = self.node_dir(id).join("clock.new");
        std::fs::write(&tmp, format!("{offset}\n")).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    fn node_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("n{id}"))
    }

    fn rundir(&self, id: u64) -> PathBuf {
        self.node_dir(id).join("run")
    }

    fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.node_dir(id).join("log")).unwrap_or_default()
    }

    fn spawn(&mut self, id: u64) {
        let nd = self.node_dir(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(nd.join("log"))
            .unwrap();
        let mut cmd = Command::new("ip");
        if self.faked_clocks {
            // Read at every clock reading: a jump takes effect at once.
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", nd.join("clock"))
                .env("FAKETIME_NO_CACHE", "1");
        }
        let child = cmd
            // A process group of its own, whose parent (this test) is in another group of the
            // session: never an orphaned group, which the kernel would send SIGHUP and SIGCONT
            // when a member exits while another is stopped (a test's SIGSTOP would not hold
            // when the tests run without a controlling job, e.g. under setsid).
            .process_group(0)
            .args(["netns", "exec", &self.ns, DAEMON])
            .args(["-f", "--no-syslog", "--log-level", "info", "--rundir"])
            .arg(self.rundir(id))
            .arg("-c")
            .arg(nd.join("lockmgr.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[idx(id)] = Some(child);
        wait_for("lvs-lockmgr to start", LONG, || {
            LockClient::connect(&self.rundir(id)).ok()
        });
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.nodes[idx(id)].take() {
            let _ = child.kill();
            child.wait().unwrap();
        }
    }

    fn running(&self, id: u64) -> bool {
        self.nodes[idx(id)].is_some()
    }

    /// The leader as node `id` sees it.
    fn leader_seen_by(&self, id: u64) -> Option<u64> {
        let mut c = LockClient::connect(&self.rundir(id)).ok()?;
        c.status().ok()?.leader.map(|n| n.0)
    }

    /// Waits until every running node in `among` agrees on one leader, itself in `among`.
    fn agreed_leader(&self, among: &[u64]) -> u64 {
        wait_for("the nodes to agree on a leader", LONG, || {
            let seen: Vec<Option<u64>> = among
                .iter()
                .filter(|&&i| self.running(i))
                .map(|&i| self.leader_seen_by(i))
                .collect();
            let first = (*seen.first()?)?;
            (among.contains(&first) && seen.iter().all(|s| *s == Some(first))).then_some(first)
        })
    }

    /// Granted locks on `name` as node `id` sees them: (session, token).
    fn holders(&self, id: u64, name: &str) -> Vec<(u64, u64)> {
        let Ok(mut c) = LockClient::connect(&self.rundir(id)) else {
            return Vec::new();
        };
        let Ok(l) = c.list(Some("default")) else {
            return Vec::new();
        };
        l.resources
            .iter()
            .filter(|r| r.name == name.as_bytes())
            .flat_map(|r| r.granted.iter())
            .map(|g| (g.lock.session.0, g.token.unwrap_or(0)))
            .collect()
    }

    fn ctl(&self, id: u64) -> Command {
        let mut c = Command::new(CTL);
        c.arg("--rundir").arg(self.rundir(id));
        c
    }

    /// Cuts node `id` off from the others (both directions), inside the namespace.
    fn partition(&self, id: u64) {
        let rules = format!(
            "table inet lvslk {{\n chain input {{ type filter hook input priority 0; policy accept;\n  ip saddr 127.0.0.{id} ip daddr != 127.0.0.{id} drop\n  ip daddr 127.0.0.{id} ip saddr != 127.0.0.{id} drop\n }}\n}}\n"
        );
        let path = self.dir.join("partition.nft");
        std::fs::write(&path, rules).unwrap();
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "nft",
            "-f",
            path.to_str().unwrap(),
        ]);
    }

    /// Sends `signal` (STOP, CONT) to node `id`'s daemon (`ip netns exec` runs it in its own
    /// process).
    fn signal(&self, id: u64, signal: &str) {
        let pid = self.nodes[idx(id)].as_ref().expect("a running node").id();
        sh(&["kill", &format!("-{signal}"), &pid.to_string()]);
    }

    fn heal(&self) {
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "nft", "delete", "table", "inet", "lvslk",
            ])
            .output();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=3 {
            self.kill(id);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("cluster files kept in {}", self.dir.display());
        }
    }
}

fn idx(id: u64) -> usize {
    usize::try_from(id - 1).unwrap()
}

/// A lock held by an `lvs-lockctl` process on node `id` until it is killed: the process and
/// the token it was granted.
fn hold(c: &Cluster, id: u64, name: &str) -> (Child, u64) {
    let mut child = c
        .ctl(id)
        .args(["lock", name, "--mode", "EX", "--", "sh", "-c"])
        .arg("echo $LVS_LOCK_TOKEN; read x")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(LONG).expect("the lock was not granted");
    let token = line.trim().parse().expect("a token");
    (child, token)
}

/// A lock of a node that went silent at `silent` was handed to another client no sooner
/// than its lease allows: `lease_ms` after the node's last heartbeat, which it sends every
/// third of a lease, at most every second (one more second of slack).
fn assert_not_before_the_lease(silent: Instant, lease_ms: u64) {
    let after = silent.elapsed();
    println!("the lock changed hands {after:?} after its node fell silent (lease {lease_ms} ms)");
    let min = Duration::from_millis(lease_ms - lease_ms.div_ceil(3).min(1000) - 1000);
    assert!(
        after >= min,
        "the lock changed hands {after:?} after its node fell silent (lease {lease_ms} ms)"
    );
}

/// Runs `lvs-lockctl lock` on node `id` (a no-wait try unless `wait`), giving the token.
fn try_token(c: &Cluster, id: u64, name: &str, extra: &[&str]) -> Option<u64> {
    let out = c
        .ctl(id)
        .args(["lock", name])
        .args(extra)
        .args(["--", "sh", "-c", "echo $LVS_LOCK_TOKEN"])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .flatten()
}

#[test]
fn leader_killed_new_leader_keeps_every_lock_and_tokens_increase() {
    if !root_or_skip("leader_killed_new_leader_keeps_every_lock_and_tokens_increase") {
        return;
    }
    let mut c = Cluster::start("kill", false, 8000);
    let leader = c.agreed_leader(&[1, 2, 3]);
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    // A lock held through each follower, and one through the leader.
    let mut held = Vec::new();
    let mut max_token = 0;
    for &f in &followers {
        let name = format!("held-{f}");
        let (child, token) = hold(&c, f, &name);
        let owners = c.holders(f, &name);
        assert_eq!(owners.len(), 1, "{owners:?}");
        max_token = max_token.max(token);
        held.push((name, owners[0].0, child));
    }
    let (mut on_leader, t) = hold(&c, leader, "on-leader");
    max_token = max_token.max(t);

    let killed = Instant::now();
    c.kill(leader);
    let new_leader = c.agreed_leader(&followers);
    assert_ne!(new_leader, leader);
    for (name, session, _) in &held {
        for &f in &followers {
            let h = wait_for("the replicated state on every survivor", LONG, || {
                let h = c.holders(f, name);
                (!h.is_empty()).then_some(h)
            });
            assert_eq!(h.len(), 1, "{name} on node {f}: {h:?}");
            assert_eq!(h[0].0, *session, "{name} changed holders on node {f}");
        }
    }
    // The dead node's client loses its lock after the lease, to a survivor's client.
    let t = wait_for("the dead node's lease to run out", LONG, || {
        try_token(&c, followers[0], "on-leader", &["--nowait"])
    });
    assert_not_before_the_lease(killed, 8000);
    assert!(t > max_token, "token {t} after {max_token}");
    max_token = t;
    let t = try_token(&c, followers[1], "fresh", &["--timeout", "30"]).expect("a grant");
    assert!(t > max_token, "token {t} after {max_token}");
    max_token = t;

    // Enough traffic while it is down that the others compact their logs past its last entry:
    // it can only catch up from a snapshot.
    let applied = |id: u64| {
        LockClient::connect(&c.rundir(id))
            .ok()
            .and_then(|mut cl| cl.status().ok())
            .map_or(0, |s| s.applied_index)
    };
    let target = applied(new_leader) + 250;
    let mut i = 0;
    while applied(new_leader) < target {
        assert!(try_token(&c, followers[i % 2], "busy", &["--timeout", "30"]).is_some());
        i += 1;
    }
    // The old leader comes back, catches up and serves with larger tokens still.
    c.spawn(leader);
    wait_for("the restarted node to catch up", LONG, || {
        (c.holders(leader, &held[0].0).first().map(|h| h.0) == Some(held[0].1)).then_some(())
    });
    wait_for(
        "the restarted node to install the leader's snapshot",
        LONG,
        || {
            c.log(leader)
                .contains("event=lock_snapshot_installed")
                .then_some(())
        },
    );
    assert_eq!(c.leader_seen_by(leader), Some(new_leader));
    let t = try_token(&c, leader, "after-restart", &["--timeout", "30"]).expect("a grant");
    assert!(t > max_token, "token {t} after {max_token}");
    for (name, _, child) in &mut held {
        assert_eq!(
            try_token(&c, leader, name, &["--nowait"]),
            None,
            "{name} was free"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = on_leader.kill();
    let _ = on_leader.wait();
}

/// Peers over IPv6: a leader is elected, a lock taken through one node excludes a client of
/// another, and passes on when released.
#[test]
fn peers_over_ipv6_elect_a_leader_and_grant_a_lock() {
    if !root_or_skip("peers_over_ipv6_elect_a_leader_and_grant_a_lock") {
        return;
    }
    let c = Cluster::start_over(Family::V6, "v6", false, 3000);
    let leader = c.agreed_leader(&[1, 2, 3]);
    let others: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let (mut held, token) = hold(&c, others[0], "over-v6");
    wait_for("the lock replicated over IPv6", LONG, || {
        (c.holders(others[1], "over-v6").len() == 1).then_some(())
    });
    assert_eq!(try_token(&c, others[1], "over-v6", &["--nowait"]), None);
    // Its command ends at end of input (`read` fails there), and lvs-lockctl releases the
    // lock as the command exits.
    drop(held.stdin.take());
    held.wait().unwrap();
    let t = wait_for("the lock released over IPv6", LONG, || {
        try_token(&c, leader, "over-v6", &["--nowait"])
    });
    assert!(t > token, "token {t} after {token}");
}

#[test]
fn partitioned_leader_grants_nothing_majority_carries_on() {
    if !root_or_skip("partitioned_leader_grants_nothing_majority_carries_on") {
        return;
    }
    let c = Cluster::start("part", false, 3000);
    let old = c.agreed_leader(&[1, 2, 3]);
    let majority: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    let (mut holder, t0) = hold(&c, old, "a");
    let first_holder = c.holders(old, "a")[0];
    let mut max_token = t0;

    let cut = Instant::now();
    c.partition(old);
    // The minority side cannot commit: a try-lock is refused, promptly and plainly; a waiting
    // lock waits.
    let asked = Instant::now();
    let mut minority_try = c
        .ctl(old)
        .args(["lock", "b", "--nowait", "--", "echo", "GRANTED"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut minority_wait = c
        .ctl(old)
        .args(["lock", "w", "--", "echo", "GRANTED"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for("the minority's try-lock to answer", LONG, || {
        minority_try.try_wait().unwrap()
    });
    let answered = asked.elapsed();
    let output = minority_try.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("the minority's try-lock answered after {answered:?}: {stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("GRANTED"),
        "the minority granted a lock"
    );
    assert_eq!(status.code(), Some(75), "exit code of no quorum: {stderr}");
    assert!(
        stderr.contains("no quorum: the lock cluster cannot commit"),
        "{stderr}"
    );
    assert!(
        answered <= nowait_bound() + SLACK,
        "answered after {answered:?}, the bound is {:?}",
        nowait_bound()
    );
    assert!(c.log(old).contains("event=lock_no_quorum "));
    // Now the node has known no leader for longer than an election: the answer comes at once.
    let asked = Instant::now();
    let output = c
        .ctl(old)
        .args(["lock", "b", "--nowait", "--", "echo", "GRANTED"])
        .output()
        .unwrap();
    let answered = asked.elapsed();
    assert_eq!(output.status.code(), Some(75), "{output:?}");
    assert!(
        answered < nowait_bound() / 2,
        "a node long without a leader took {answered:?} to say so"
    );
    assert!(
        minority_wait.try_wait().unwrap().is_none(),
        "a blocking lock in the minority ended"
    );
    let new_leader = c.agreed_leader(&majority);
    assert!(majority.contains(&new_leader));
    let t = try_token(&c, majority[0], "b", &["--timeout", "30"]).expect("majority grants");
    assert!(t > max_token);
    max_token = t;
    // The cut-off node's client loses "a" after the lease; the majority gets it.
    let t = wait_for("the minority's lease to run out", LONG, || {
        try_token(&c, majority[1], "a", &["--nowait"])
    });
    assert_not_before_the_lease(cut, 3000);
    assert!(t > max_token, "token {t} after {max_token}");
    max_token = t;

    c.heal();
    wait_for("the old leader to follow the new one", LONG, || {
        c.leader_seen_by(old).filter(|&l| l != old)
    });
    // The waiting lock ends refused: its node was cut off longer than half a lease, so every
    // client of it must reconnect rather than trust what the catch-up applies.
    let status = wait_for("the minority's waiting lock to end", LONG, || {
        minority_wait.try_wait().unwrap()
    });
    let output = minority_wait.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("GRANTED"),
        "the minority granted a lock"
    );
    assert!(stderr.contains("cut off from the cluster"), "{stderr}");
    // Neither request of the minority left a lock behind, though both reached the log.
    for name in ["b", "w"] {
        let t = wait_for("the minority's requests to leave no lock", LONG, || {
            try_token(&c, majority[0], name, &["--nowait"])
        });
        assert!(t > max_token, "token {t} after {max_token}");
        max_token = t;
    }
    // The holder's session expired while cut off: the healed node agrees it is gone.
    let (session, _) = first_holder;
    wait_for("the healed node to drop the expired holder", LONG, || {
        (c.leader_seen_by(old).is_some() && !c.holders(old, "a").iter().any(|h| h.0 == session))
            .then_some(())
    });
    let _ = holder.kill();
    let _ = holder.wait();
    let t = try_token(&c, old, "c", &["--timeout", "30"]).expect("the healed node serves");
    assert!(t > max_token, "token {t} after {max_token}");
}

/// How long a try-lock may wait for a cluster that cannot commit (the daemon's default tick).
fn nowait_bound() -> Duration {
    lvs_lockmgr::nowait::Bounds::for_tick(Duration::from_millis(100)).deadline
}

/// Starting `lvs-lockctl`, the daemon's tick, a loaded machine.
const SLACK: Duration = Duration::from_millis(2000);

#[test]
fn a_cut_off_follower_refuses_a_try_lock_in_time_and_undoes_its_late_grant() {
    if !root_or_skip("a_cut_off_follower_refuses_a_try_lock_in_time_and_undoes_its_late_grant") {
        return;
    }
    // A long lease: the cut is shorter than half of it, so the node's clients stay connected.
    let c = Cluster::start("late", false, 20_000);
    let leader = c.agreed_leader(&[1, 2, 3]);
    let f = (1..=3).find(|&i| i != leader).unwrap();
    let mut client = LockClient::connect(&c.rundir(f)).unwrap();
    let g = client
        .try_lock("default", "warm", LockMode::EX)
        .expect("the session is committed");
    client.unlock(g.handle, None).unwrap();

    c.partition(f);
    let asked = Instant::now();
    let err = client
        .try_lock("default", "x", LockMode::EX)
        .expect_err("a cut-off follower granted a lock");
    let answered = asked.elapsed();
    println!("the cut-off follower's try-lock answered after {answered:?}: {err}");
    assert!(matches!(err, LockError::NoQuorum(_)), "{err}");
    assert!(
        answered <= nowait_bound() + SLACK,
        "answered after {answered:?}, the bound is {:?}",
        nowait_bound()
    );

    c.heal();
    // The request reaches the leader after all (its node sends it again): the grant the
    // client was never told of is released at once.
    wait_for("the late grant to be undone", LONG, || {
        c.log(f)
            .contains("event=lock_no_quorum_late_grant")
            .then_some(())
    });
    wait_for("x to be free", LONG, || {
        c.holders(leader, "x").is_empty().then_some(())
    });
    // The session lives on and can have the lock now.
    let g = client
        .try_lock("default", "x", LockMode::EX)
        .expect("x is free for the session again");
    assert_eq!(c.holders(f, "x").len(), 1);
    client.unlock(g.handle, None).unwrap();
}

#[test]
fn a_peer_with_the_wrong_key_is_refused() {
    if !root_or_skip("a_peer_with_the_wrong_key_is_refused") {
        return;
    }
    let c = Cluster::start("key", true, 3000);
    let leader = c.agreed_leader(&[1, 2]);
    assert!(leader == 1 || leader == 2);
    wait_for("the refusal to be logged", LONG, || {
        (c.log(1).contains("event=lock_peer_refused")
            || c.log(2).contains("event=lock_peer_refused"))
        .then_some(())
    });
    wait_for("node 3 to log the refusal too", LONG, || {
        c.log(3).contains("event=lock_peer_refused").then_some(())
    });
    assert_eq!(
        c.leader_seen_by(3),
        None,
        "node 3 joined with the wrong key"
    );
    // The two good nodes are a majority and serve.
    assert!(try_token(&c, 1, "x", &["--timeout", "30"]).is_some());
    // Node 3 grants nothing: it cannot reach a leader.
    let mut child = c
        .ctl(3)
        .args(["lock", "y", "--", "echo", "GRANTED"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(try_token(&c, 2, "y", &["--timeout", "30"]).is_some());
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("GRANTED"));
}

#[test]
fn mutual_exclusion_across_nodes_no_update_lost() {
    if !root_or_skip("mutual_exclusion_across_nodes_no_update_lost") {
        return;
    }
    let c = Cluster::start("mutex", false, 3000);
    c.agreed_leader(&[1, 2, 3]);
    let counter = c.dir.join("counter");
    std::fs::write(&counter, "0\n").unwrap();
    let per_client = 15;
    let script = format!(
        "for i in $(seq {per_client}); do {ctl} --rundir \"$1\" lock counter --mode EX -- sh -c 'n=$(cat {f}); echo $((n+1)) > {f}' || exit 1; done",
        ctl = CTL,
        f = counter.display()
    );
    // Two client processes on each node.
    let children: Vec<Child> = (1..=3u64)
        .flat_map(|id| [id, id])
        .map(|id| {
            Command::new("sh")
                .args(["-c", &script, "worker"])
                .arg(c.rundir(id))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let n: u64 = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, 6 * per_client);

    // The whole cluster crashes and comes back: the log on disk keeps every grant, so the
    // tokens go on from where they were.
    let before = try_token(&c, 1, "counter", &["--timeout", "30"]).expect("a grant");
    let mut c = c;
    for id in 1..=3 {
        c.kill(id);
    }
    for id in 1..=3 {
        c.spawn(id);
    }
    c.agreed_leader(&[1, 2, 3]);
    let after = try_token(&c, 2, "counter", &["--timeout", "30"]).expect("a grant");
    assert!(
        after > before,
        "token {after} after a restart, {before} before"
    );
}

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
/// The value of `key=` in an event line.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// Eight clients on the three nodes lock and unlock at once: every node's log writer puts the
/// Raft entries that arrive during one fsync into the next (fewer fsyncs than entries).
#[test]
fn raft_entries_arriving_during_one_fsync_share_the_next() {
    if !root_or_skip("raft_entries_arriving_during_one_fsync_share_the_next") {
        return;
    }
    let c = Cluster::start("group", false, 3000);
    c.agreed_leader(&[1, 2, 3]);
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let rundir = c.rundir(i % 3 + 1);
            std::thread::spawn(move || {
                let mut cl = LockClient::connect(&rundir).unwrap();
                let name = format!("group-{i}");
                for _ in 0..40 {
                    let g = cl
                        .lock("default", &name, LockMode::EX, LockFlags::NONE, None)
                        .unwrap();
                    cl.unlock(g.handle, None).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for id in 1..=3 {
        c.signal(id, "USR1");
        let line = wait_for("the lock_state line", LONG, || {
            c.log(id)
                .lines()
                .find(|l| l.contains("event=lock_state "))
                .map(str::to_owned)
        });
        let (entries, syncs) = (field(&line, "applied_index"), field(&line, "log_syncs"));
        eprintln!("node {id}: {entries} entries, {syncs} fsyncs");
        assert!(entries >= 8 * 40 * 2 / 8, "{line}");
        assert!(syncs >= 1 && syncs < entries, "node {id}: {line}");
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where the clients of the randomised run write what they saw (one clock for all: the test's
/// monotonic clock since the run started).
struct Recorder {
    started: Instant,
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        client: u64,
        kind: Kind,
        op: Op,
        resource: &str,
        mode: LockMode,
        token: Option<u64>,
        value: Option<(String, bool)>,
        error: Option<String>,
    ) {
        let time_ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let (value, valid) = value.map_or((None, None), |(v, ok)| (Some(v), Some(ok)));
        self.events.lock().unwrap().push(Event {
            client,
            kind,
            op,
            resource: resource.to_owned(),
            mode: mode.name().to_owned(),
            token,
            value,
            valid: valid.filter(|_| op == Op::Lock),
            error,
            time_ns,
        });
    }
}

/// How a failed call ended: not done (a denial, a timeout), or unknown (the connection broke:
/// the daemon may have done it).
fn outcome(e: &LockError) -> Kind {
    match e {
        LockError::Proto(_) | LockError::Refused(_) => Kind::Unknown,
        _ => Kind::Fail,
    }
}

fn value_text(v: &lvs_lockmgr::ValueBlock) -> String {
    let end = v
        .bytes
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(v.bytes.len());
    String::from_utf8_lossy(&v.bytes[..end]).into_owned()
}

/// One client of the randomised run: locks r0 or r1 (EX or PR, with the value block) through
/// node `rundir`'s daemon, holds it a moment, releases it (an EX holder writing a value of its
/// own), each step recorded; reconnects when its connection breaks.
fn history_client(
    rundir: &std::path::Path,
    client: u64,
    rng: &mut Rng,
    rec: &Recorder,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut conn: Option<LockClient> = None;
    let mut seq = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            // The node may be down for a fault: try again for a while, then look at `stop`.
            conn = poll_for(Duration::from_secs(1), || LockClient::connect(rundir).ok());
            continue;
        };
        let resource = if rng.below(2) == 0 { "r0" } else { "r1" };
        let mode = if rng.below(3) == 0 {
            LockMode::PR
        } else {
            LockMode::EX
        };
        rec.record(
            client,
            Kind::Invoke,
            Op::Lock,
            resource,
            mode,
            None,
            None,
            None,
        );
        let g = match c.lock(
            "default",
            resource,
            mode,
            LockFlags::VALBLK,
            Some(Duration::from_secs(3)),
        ) {
            Ok(g) => g,
            Err(e) => {
                let kind = outcome(&e);
                rec.record(
                    client,
                    kind,
                    Op::Lock,
                    resource,
                    mode,
                    None,
                    None,
                    Some(e.to_string()),
                );
                if kind == Kind::Unknown {
                    conn = None;
                }
                continue;
            }
        };
        let read = g.lvb.as_ref().map(|v| (value_text(v), v.valid));
        rec.record(
            client,
            Kind::Ok,
            Op::Lock,
            resource,
            mode,
            Some(g.token),
            read,
            None,
        );
        // The workload's hold time, not a wait for a condition: a holder that keeps its lock a
        // while gives overlapping grants, if any, the time to show in the history.
        std::thread::sleep(Duration::from_millis(20));
        seq += 1;
        let write = (mode == LockMode::EX).then(|| format!("c{client}.{seq}"));
        let lvb = write.as_ref().map(|w| {
            let mut b = [0u8; lvs_lockmgr::LVB_LEN];
            b[..w.len()].copy_from_slice(w.as_bytes());
            b
        });
        let written = write.map(|w| (w, true));
        rec.record(
            client,
            Kind::Invoke,
            Op::Unlock,
            resource,
            mode,
            Some(g.token),
            written,
            None,
        );
        match c.unlock(g.handle, lvb) {
            Ok(()) => rec.record(
                client,
                Kind::Ok,
                Op::Unlock,
                resource,
                mode,
                None,
                None,
                None,
            ),
            Err(e) => {
                let kind = outcome(&e);
                rec.record(
                    client,
                    kind,
                    Op::Unlock,
                    resource,
                    mode,
                    None,
                    None,
                    Some(e.to_string()),
                );
                conn = None;
            }
        }
    }
}

/// Random faults (SIGKILL and restart, a node cut off by nftables, a node's daemon stopped with
/// SIGSTOP and continued), one at a time, under six clients; every operation the clients saw
/// goes into a history that `lvs_lockmgr::history` checks: mutual exclusion per mode, tokens
/// increasing, nothing granted twice, value blocks as the last EX holder wrote them.
/// `LVS_LOCK_SOAK_SECONDS` sets the length of the run (30 s by default; scripts/bench/lock.sh
/// --soak runs it longer), `LVS_LOCK_HISTORY` where the history is kept.
#[test]
fn randomised_faults_never_break_mutual_exclusion() {
    if !root_or_skip("randomised_faults_never_break_mutual_exclusion") {
        return;
    }
    let seed = std::env::var("LVS_LOCK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let d = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            (d.as_secs().wrapping_mul(1_000_000_007) ^ u64::from(d.subsec_nanos())) | 1
        });
    let run = Duration::from_secs(
        std::env::var("LVS_LOCK_SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    eprintln!("randomised fault test: seed {seed} (LVS_LOCK_SEED={seed} replays the faults)");
    let mut rng = Rng(seed);
    let mut c = Cluster::start("rand", false, 3000);
    c.agreed_leader(&[1, 2, 3]);
    let rec = Arc::new(Recorder {
        started: Instant::now(),
        events: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6u64 {
        let rundir = c.rundir(w % 3 + 1);
        let rec = Arc::clone(&rec);
        let stop = Arc::clone(&stop);
        let mut wrng = Rng(seed ^ (w + 1).wrapping_mul(0x9E37_79B9));
        workers.push(std::thread::spawn(move || {
            history_client(&rundir, w + 1, &mut wrng, &rec, &stop);
        }));
    }
    let started = Instant::now();
    let mut faults: Vec<String> = Vec::new();
    let mut partitioned: Option<u64> = None;
    let mut paused: Option<u64> = None;
    while started.elapsed() < run {
        let node = rng.below(3) + 1;
        let act = rng.below(3) < 2;
        // One fault at a time, so that a majority always exists: undo the current one, or
        // (no fault now) kill, cut off or stop a random node. Sometimes nothing changes.
        let down: Vec<u64> = (1..=3).filter(|&i| !c.running(i)).collect();
        if let Some(p) = partitioned {
            if act {
                c.heal();
                partitioned = None;
                faults.push(format!("heal {p}"));
            }
        } else if let Some(p) = paused {
            if act {
                c.signal(p, "CONT");
                paused = None;
                faults.push(format!("continue {p}"));
            }
        } else if !down.is_empty() {
            if act {
                for i in down {
                    c.spawn(i);
                    faults.push(format!("restart {i}"));
                }
            }
        } else if act {
            match rng.below(3) {
                0 => {
                    c.kill(node);
                    faults.push(format!("kill {node}"));
                }
                1 => {
                    c.partition(node);
                    partitioned = Some(node);
                    faults.push(format!("partition {node}"));
                }
                _ => {
                    c.signal(node, "STOP");
                    paused = Some(node);
                    faults.push(format!("stop {node}"));
                }
            }
        }
        // Let the cluster work a little between faults (a random pause in ticks of the loop).
        let wait_ms = 1000 + rng.below(3000);
        let until = Instant::now() + Duration::from_millis(wait_ms);
        wait_for("the fault interval", LONG, || {
            (Instant::now() >= until).then_some(())
        });
    }
    c.heal();
    if let Some(p) = paused {
        c.signal(p, "CONT");
    }
    for i in 1..=3 {
        if !c.running(i) {
            c.spawn(i);
        }
    }
    c.agreed_leader(&[1, 2, 3]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let events = rec.events.lock().unwrap().clone();
    let path = std::env::var_os("LVS_LOCK_HISTORY")
        .map_or_else(|| c.dir.join("history.jsonl"), PathBuf::from);
    let text: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(&path, &text).unwrap();
    // The checker reads the file, as it would a history from elsewhere.
    let events = history::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    eprintln!("seed {seed}: faults {faults:?}");
    eprintln!(
        "history: {} events, {} bytes in {}",
        events.len(),
        text.len(),
        path.display()
    );
    match history::check(&events) {
        Ok(summary) => {
            eprintln!("checker: {summary}");
            assert!(summary.grants > 10, "too little progress: {summary}");
            // The checker is not blind on this history: the last grant given the first one's
            // token is caught.
            let mut forged = events.clone();
            let grants: Vec<usize> = (0..forged.len())
                .filter(|&i| forged[i].kind == Kind::Ok && forged[i].op == Op::Lock)
                .collect();
            let (first, last) = (grants[0], grants[grants.len() - 1]);
            forged[last].token = forged[first].token;
            assert!(history::check(&forged).is_err(), "a forged history passed");
        }
        Err(violations) => {
            for v in &violations {
                eprintln!("checker: {v}");
            }
            panic!(
                "seed {seed}: the history breaks the lock service's rules ({} violations, first: {}); history kept in {}",
                violations.len(),
                violations[0],
                path.display()
            );
        }
    }
}

/// A write to the shared storage of the fencing tests, as the storage saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredWrite {
    object: String,
    token: u64,
    data: String,
    accepted: bool,
}

/// The shared storage of the fencing tests: a TCP server on 127.0.0.1 that keeps, per object,
/// the highest fencing token it has accepted and refuses a write with a smaller one. One line
/// per connection, `WRITE <object> <token> <data>`, answered `OK` or `REFUSED <highest>`.
struct Storage {
    port: u16,
    writes: Arc<Mutex<Vec<StoredWrite>>>,
}

impl Storage {
    fn start() -> Storage {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let writes = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&writes);
        std::thread::spawn(move || {
            let mut highest: HashMap<String, u64> = HashMap::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(LONG));
                let mut line = String::new();
                if BufReader::new(&conn).read_line(&mut line).is_err() {
                    continue;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                let answer = match words.as_slice() {
                    ["WRITE", object, token, data] => match token.parse::<u64>() {
                        Ok(token) => {
                            let top = highest.entry((*object).to_owned()).or_default();
                            let accepted = token >= *top;
                            let answer = if accepted {
                                *top = token;
                                "OK".to_owned()
                            } else {
                                format!("REFUSED {top}")
                            };
                            log.lock().unwrap().push(StoredWrite {
                                object: (*object).to_owned(),
                                token,
                                data: (*data).to_owned(),
                                accepted,
                            });
                            answer
                        }
                        Err(_) => "ERROR bad token".to_owned(),
                    },
                    _ => "ERROR bad request".to_owned(),
                };
                use std::io::Write;
                let _ = writeln!(conn, "{answer}");
            }
        });
        Storage { port, writes }
    }

    /// A shell line (bash, for /dev/tcp) writing `$1` to `object` under `$LVS_LOCK_TOKEN` and
    /// printing the storage's answer.
    fn write_line(&self, object: &str) -> String {
        format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; echo \"WRITE {object} $LVS_LOCK_TOKEN $1\" >&3; read -r answer <&3; echo \"$answer\"",
            port = self.port
        )
    }

    fn writes(&self) -> Vec<StoredWrite> {
        self.writes.lock().unwrap().clone()
    }
}

/// A process group (an `lvs-lockctl` and the command it runs), killed as a whole when dropped,
/// stopped or not.
struct Group(Child);

impl Group {
    fn signal(&self, signal: &str) {
        sh(&[
            "kill",
            &format!("-{signal}"),
            "--",
            &format!("-{}", self.0.id()),
        ]);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .output();
        let _ = self.0.wait();
    }
}

/// Reads the lines of `out` into a channel, so that a test can wait for each with a deadline.
fn lines_of(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The classic case for fencing tokens: the holder of an EX lock stalls (here its whole node,
/// the client and its lvs-lockmgr, is stopped) longer than its lease, the lock goes to another
/// client, which writes; then the first wakes up and writes with its old token. The storage
/// refuses that write. A stopped client alone would keep its lock: leases are its node's, and
/// its node is alive.
#[test]
fn a_paused_holder_wakes_up_and_its_stale_write_is_refused_by_the_fencing_token() {
    if !root_or_skip("a_paused_holder_wakes_up_and_its_stale_write_is_refused_by_the_fencing_token")
    {
        return;
    }
    let lease_ms = 3000;
    let c = Cluster::start("fence", false, lease_ms);
    let storage = Storage::start();
    let leader = c.agreed_leader(&[1, 2, 3]);
    let paused = (1..=3).find(|&i| i != leader).unwrap();
    let mut a = c
        .ctl(paused)
        .args(["lock", "fenced", "--mode", "EX", "--", "bash", "-c"])
        .arg(format!(
            "echo $LVS_LOCK_TOKEN; read -r go; {}",
            storage.write_line("fenced")
        ))
        .args(["holder", "from-the-paused-holder"])
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut a_in = a.stdin.take().unwrap();
    let a_out = lines_of(a.stdout.take().unwrap());
    let a = Group(a);
    let t_a: u64 = a_out
        .recv_timeout(LONG)
        .expect("the first client's grant")
        .trim()
        .parse()
        .unwrap();

    // The holder's node stalls, the client first (it is about to write).
    a.signal("STOP");
    c.signal(paused, "STOP");
    let stalled = Instant::now();
    let b = c
        .ctl(leader)
        .args(["lock", "fenced", "--mode", "EX", "--timeout", "60", "--"])
        .args(["bash", "-c", &storage.write_line("fenced")])
        .args(["writer", "from-the-new-holder"])
        .output()
        .unwrap();
    assert!(b.status.success(), "{b:?}");
    assert_not_before_the_lease(stalled, lease_ms);
    assert_eq!(String::from_utf8_lossy(&b.stdout).trim(), "OK", "{b:?}");

    // The holder wakes up (its node still stalled: it asks nobody) and writes.
    use std::io::Write;
    writeln!(a_in, "go").unwrap();
    a.signal("CONT");
    let answer = a_out
        .recv_timeout(LONG)
        .expect("the storage's answer to the woken holder");
    c.signal(paused, "CONT");
    let writes = storage.writes();
    println!("storage: {writes:?}; the woken holder was answered {answer:?}");
    assert_eq!(writes.len(), 2, "{writes:?}");
    let (new, stale) = (&writes[0], &writes[1]);
    assert!(
        new.accepted && new.data == "from-the-new-holder",
        "{writes:?}"
    );
    assert!(new.token > t_a, "{writes:?}");
    assert_eq!(
        (stale.token, stale.accepted, stale.data.as_str()),
        (t_a, false, "from-the-paused-holder"),
        "{writes:?}"
    );
    assert_eq!(answer, format!("REFUSED {}", new.token));
    // Its node comes back and disconnects it (cut off longer than half a lease): the lock
    // is gone, and the storage has the new holder's data.
    wait_for("the woken node to agree on the leader", LONG, || {
        (c.leader_seen_by(paused) == Some(leader)).then_some(())
    });
    let mut a = a;
    let status = wait_for("the stale holder's lvs-lockctl to end", LONG, || {
        a.0.try_wait().unwrap()
    });
    println!("the stale holder's lvs-lockctl ended: {status}");
    assert!(c.holders(leader, "fenced").is_empty());
}

/// The leader's daemon stops for several election timeouts (a long GC pause, a stalled VM) with
/// a client's request waiting in its socket, then goes on. The others elect a new leader, which
/// grants the lock to another client; the woken old leader grants nothing on its own: it steps
/// down, and its client gets the lock only after the new holder released it, with a larger
/// token (or loses its session). Clients of the old leader then go through the new one.
#[test]
fn a_paused_leader_steps_down_and_grants_nothing_after_the_new_leader() {
    if !root_or_skip("a_paused_leader_steps_down_and_grants_nothing_after_the_new_leader") {
        return;
    }
    // A lease longer than the pause: the old leader's sessions outlive it.
    let c = Cluster::start("pause", false, 30_000);
    let old = c.agreed_leader(&[1, 2, 3]);
    let followers: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    let (mut x, t_x) = hold(&c, followers[0], "p");
    let mut on_old = LockClient::connect(&c.rundir(old)).unwrap();
    let warm = on_old
        .try_lock("default", "warm", LockMode::EX)
        .expect("the old leader's session is committed");
    on_old.unlock(warm.handle, None).unwrap();

    c.signal(old, "STOP");
    let stopped = Instant::now();
    // The request waits in the stopped daemon's socket.
    let handle = on_old
        .request("default", "p", LockMode::EX, LockFlags::NONE, None)
        .unwrap();
    let new = c.agreed_leader(&followers);
    println!("node {new} leads after {:?}", stopped.elapsed());
    // x passes p on, through the new leader, to a client of the other follower.
    drop(x.stdin.take());
    x.wait().unwrap();
    let (mut y, t_y) = hold(&c, followers[1], "p");
    assert!(t_y > t_x, "token {t_y} after {t_x}");
    // Several election timeouts (1 to 2 s each) in all.
    let until = stopped + Duration::from_secs(8);
    wait_for("the pause to last", LONG, || {
        (Instant::now() >= until).then_some(())
    });
    c.signal(old, "CONT");
    let resumed = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = on_old.wait(handle);
        let _ = tx.send((r, Instant::now(), on_old));
    });
    wait_for("the old leader to follow the new one", LONG, || {
        (c.leader_seen_by(old) == Some(new)).then_some(())
    });
    let log = c.log(old);
    let roles: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=lock_raft_role"))
        .collect();
    let led = roles.iter().rposition(|l| l.contains("role=leader"));
    let stepped_down = roles.iter().rposition(|l| l.contains("role=follower"));
    assert!(led < stepped_down, "no step-down logged:\n{log}");
    println!(
        "the old leader follows node {new} {:?} after SIGCONT",
        resumed.elapsed()
    );
    // y holds p, alone, on every node (the old leader catches up to that); the old leader's
    // client has nothing.
    for id in 1..=3 {
        wait_for("y alone holding p on every node", LONG, || {
            let h = c.holders(id, "p");
            (h.len() == 1 && h[0].1 == t_y).then_some(())
        });
    }
    // Its request may have been refused meanwhile (its node drops clients it cannot answer
    // truthfully), never granted.
    let early = rx.try_recv().ok();
    if let Some((Ok(g), _, _)) = &early {
        panic!("the old leader's client got p while y held it: {g:?}");
    }
    let released = Instant::now();
    drop(y.stdin.take());
    y.wait().unwrap();
    let (answer, at, _client) = early.unwrap_or_else(|| {
        rx.recv_timeout(LONG)
            .expect("the old leader's client was never answered")
    });
    match answer {
        Ok(g) => {
            println!("the old leader's client got p with token {}", g.token);
            assert!(at > released, "granted before y released p");
            assert!(g.token > t_y, "token {} after {t_y}", g.token);
        }
        Err(e) => println!("the old leader's client lost its request: {e}"),
    }
    // A new client of the old leader is served through the new one, with a larger token.
    let t = try_token(&c, old, "after-the-pause", &["--timeout", "30"]).expect("a grant");
    assert!(t > t_y, "token {t} after {t_y}");
    assert_eq!(c.agreed_leader(&[1, 2, 3]), new);
}

/// The clocks of one node jump, an hour forward and back, then an hour back and forward (the
/// monotonic clock the leases use, and the wall clock), first on the leader, then on a
/// follower, under four clients. Leases stay safe: the history is consistent with a lock
/// service (no incompatible holders at once, tokens increasing), no session expires, and while
/// the leader's clock jumps no client loses anything. A follower whose clock jumps forward
/// more than half a lease believes it was cut off that long and disconnects its clients (they
/// reconnect; their locks were released, not expired).
#[test]
fn clock_jumps_on_the_leader_or_a_follower_leave_leases_safe() {
    if !root_or_skip("clock_jumps_on_the_leader_or_a_follower_leave_leases_safe") {
        return;
    }
    if !std::path::Path::new(LIBFAKETIME).exists() {
        panic!("{LIBFAKETIME} is missing: apt-get install libfaketime (scripts/test.sh does)");
    }
    let c = Cluster::start_with(Family::V4, "clock", false, 3000, true);
    let leader = c.agreed_leader(&[1, 2, 3]);
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let rec = Arc::new(Recorder {
        started: Instant::now(),
        events: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let rundir = c.rundir(w % 3 + 1);
            let (rec, stop) = (Arc::clone(&rec), Arc::clone(&stop));
            let mut rng = Rng(0x5EED ^ (w + 1).wrapping_mul(0x9E37_79B9));
            std::thread::spawn(move || history_client(&rundir, w + 1, &mut rng, &rec, &stop))
        })
        .collect();
    let now_ns = |rec: &Recorder| u64::try_from(rec.started.elapsed().as_nanos()).unwrap();
    // (node, from, to) of each phase, in the recorder's time.
    let mut phases = Vec::new();
    for node in [leader, follower] {
        let from = now_ns(&rec);
        for offset in ["+3600", "+0", "-3600", "+0"] {
            c.set_clock(node, offset);
            // More than a lease on each side of every jump.
            let until = Instant::now() + Duration::from_millis(4000);
            wait_for("the jump's interval", LONG, || {
                (Instant::now() >= until).then_some(())
            });
        }
        phases.push((node, from, now_ns(&rec)));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let events = rec.events.lock().unwrap().clone();
    let summary = history::check(&events).unwrap_or_else(|v| {
        panic!("the history breaks the lock service's rules: {v:?}");
    });
    eprintln!("checker: {summary}");
    for e in &events {
        let error = e.error.as_deref().unwrap_or_default();
        assert!(
            !error.contains("session expired"),
            "a clock jump ended a lease: {e:?}"
        );
    }
    let (_, from, to) = phases[0];
    let during = |from: u64, to: u64| {
        events
            .iter()
            .filter(move |e| e.time_ns >= from && e.time_ns <= to)
    };
    let lost: Vec<&Event> = during(from, to)
        .filter(|e| e.kind == Kind::Unknown || e.kind == Kind::Fail)
        .collect();
    assert!(lost.is_empty(), "while the leader's clock jumped: {lost:?}");
    for (node, from, to) in phases {
        let grants = during(from, to)
            .filter(|e| e.kind == Kind::Ok && e.op == Op::Lock)
            .count();
        eprintln!("node {node}'s clock jumped: {grants} grants meanwhile");
        assert!(grants > 10, "node {node}'s jumps stopped the clients");
    }
    assert_eq!(c.agreed_leader(&[1, 2, 3]), leader);
    // Their own clocks back to true time, the nodes grant with larger tokens still.
    let max = events.iter().filter_map(|e| e.token).max().unwrap_or(0);
    let t = try_token(&c, follower, "after-the-jumps", &["--timeout", "30"]).expect("a grant");
    assert!(t > max, "token {t} after {max}");
}
