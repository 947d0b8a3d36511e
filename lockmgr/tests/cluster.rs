//! Raft mode for real: three `lvs-lockmgr` daemons in a network namespace of their own (one per
//! test, named with the pid), peers on 127.0.0.1-3 (or on ::1, one port each), clients (`lvs-lockctl` processes and the
//! client library) on the daemons' Unix sockets. Partitions are nftables rules inside that
//! namespace; deleting the namespace at the end removes every trace, even after a failure.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lvs_lockmgr::{LockClient, LockError, LockMode};
use lvs_testsupport::{root_or_skip, wait_for};

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
}

impl Cluster {
    /// Three nodes; `bad_key` gives node 3 a key of its own.
    fn start(tag: &str, bad_key: bool, lease_ms: u64) -> Cluster {
        Cluster::start_over(Family::V4, tag, bad_key, lease_ms)
    }

    /// As [`Cluster::start`], the peers talking over `family`.
    fn start_over(family: Family, tag: &str, bad_key: bool, lease_ms: u64) -> Cluster {
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
        }
        let mut c = c;
        for id in 1..=3 {
            c.spawn(id);
        }
        c
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
        let child = Command::new("ip")
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

/// One critical section, timed by the command inside it (wall clock, nanoseconds: one clock
/// for every process, read after the grant and before the release, so the interval lies
/// within the time the lock was really held).
#[derive(Debug, Clone)]
struct Section {
    resource: &'static str,
    mode: LockMode,
    token: u64,
    start: u64,
    end: u64,
    /// Shown in failure messages.
    #[allow(dead_code)]
    worker: usize,
}

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
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

/// Runs one lock as an `lvs-lockctl` process; records the critical section from the lines the
/// command prints when it starts and ends. A process that takes too long is killed.
fn one_section(
    c_rundir: &std::path::Path,
    resource: &'static str,
    mode: LockMode,
    worker: usize,
) -> Option<Section> {
    let mode_name = format!("{mode:?}");
    let mut child = Command::new(CTL)
        .arg("--rundir")
        .arg(c_rundir)
        .args([
            "lock",
            resource,
            "--mode",
            &mode_name,
            "--timeout",
            "3",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo S $LVS_LOCK_TOKEN $(date +%s%N); sleep 0.02; echo E $(date +%s%N)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut start = None;
    let mut section = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let mut words = line.split_whitespace();
                let tag = words.next();
                let nums: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
                if tag == Some("S") && nums.len() == 2 {
                    start = Some((nums[1], nums[0]));
                } else if tag == Some("E")
                    && nums.len() == 1
                    && let Some((s, token)) = start
                {
                    let at = nums[0];
                    section = Some(Section {
                        resource,
                        mode,
                        token,
                        start: s,
                        end: at,
                        worker,
                    });
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if section.is_none()
        && let Some((s, token)) = start
    {
        // Started but its end was not seen: count it as held until now (conservative).
        section = Some(Section {
            resource,
            mode,
            token,
            start: s,
            end: wall_ns(),
            worker,
        });
    }
    section
}

fn wall_ns() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos())
}

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
    eprintln!("randomised fault test: seed {seed} (LVS_LOCK_SEED={seed} replays the faults)");
    let mut rng = Rng(seed);
    let mut c = Cluster::start("rand", false, 3000);
    c.agreed_leader(&[1, 2, 3]);
    let sections = Arc::new(Mutex::new(Vec::<Section>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4usize {
        let rundir = c.rundir(u64::try_from(w % 3).unwrap() + 1);
        let sections = Arc::clone(&sections);
        let stop = Arc::clone(&stop);
        let mut wrng = Rng(seed ^ (u64::try_from(w).unwrap() + 1).wrapping_mul(0x9E37_79B9));
        workers.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let resource = if wrng.below(2) == 0 { "r0" } else { "r1" };
                let mode = if wrng.below(3) == 0 {
                    LockMode::PR
                } else {
                    LockMode::EX
                };
                if let Some(s) = one_section(&rundir, resource, mode, w) {
                    sections.lock().unwrap().push(s);
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }));
    }
    let started = Instant::now();
    let mut faults: Vec<String> = Vec::new();
    let mut partitioned: Option<u64> = None;
    while started.elapsed() < Duration::from_secs(40) {
        let node = rng.below(3) + 1;
        let act = rng.below(3) < 2;
        // One fault at a time, so that a majority always exists: undo the current one, or
        // (no fault now) kill or cut off a random node. Sometimes nothing changes.
        let down: Vec<u64> = (1..=3).filter(|&i| !c.running(i)).collect();
        if let Some(p) = partitioned {
            if act {
                c.heal();
                partitioned = None;
                faults.push(format!("heal {p}"));
            }
        } else if !down.is_empty() {
            if act {
                for i in down {
                    c.spawn(i);
                    faults.push(format!("restart {i}"));
                }
            }
        } else if act && rng.below(2) == 0 {
            c.kill(node);
            faults.push(format!("kill {node}"));
        } else if act {
            c.partition(node);
            partitioned = Some(node);
            faults.push(format!("partition {node}"));
        }
        // Let the cluster work a little between faults (a deadline-bounded wait for a leader
        // among the running nodes, then a random pause in ticks of the loop).
        let wait_ms = 1000 + rng.below(3000);
        let until = Instant::now() + Duration::from_millis(wait_ms);
        wait_for("the fault interval", LONG, || {
            (Instant::now() >= until).then_some(())
        });
    }
    c.heal();
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
    let sections = sections.lock().unwrap().clone();
    eprintln!(
        "seed {seed}: faults {faults:?}; {} critical sections",
        sections.len()
    );
    assert!(sections.len() > 10, "too little progress: {sections:?}");
    let mut by_resource: HashMap<&str, Vec<&Section>> = HashMap::new();
    for s in &sections {
        by_resource.entry(s.resource).or_default().push(s);
    }
    for (resource, mut list) in by_resource {
        list.sort_by_key(|s| s.start);
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if b.start >= a.end {
                    continue;
                }
                assert!(
                    a.mode.compatible(b.mode),
                    "seed {seed}: {resource}: {a:?} and {b:?} were held at once"
                );
            }
        }
        // Fencing: a conflicting section that started after another one ended was granted
        // after it, so it carries a larger token.
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if b.start > a.end && !a.mode.compatible(b.mode) {
                    assert!(
                        b.token > a.token,
                        "seed {seed}: {resource}: token went back: {a:?} then {b:?}"
                    );
                }
            }
        }
    }
}
