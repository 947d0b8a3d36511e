//! The line servers and the client of the active-active tests (scripts/lib, which the bench
//! and the demo run too): every real server answers each line with its name, so a connection
//! that changed server, or ended, is seen.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A real server: `python3 -c SERVER NAME` answers each line with NAME on port 80 (IPv4 and
/// IPv6), and prints `ready` once it listens.
pub const SERVER: &str = include_str!("../../scripts/lib/line_server.py");

/// The client: `python3 -c CLIENT VIP TIMEOUT`, driven by `open N` and `round` on its stdin,
/// each answered by one JSON line that [`Round::parse`] reads.
pub const CLIENT: &str = include_str!("../../scripts/lib/line_client.py");

/// One answer of the client, parsed.
#[derive(Debug, Default)]
pub struct Round {
    /// Answers from the server the connection began on.
    pub ok: usize,
    /// Answers from another server.
    pub moved: usize,
    /// Connections that ended since the last round, by the server they began on.
    pub lost: BTreeMap<String, usize>,
    /// Answers by server name.
    pub names: BTreeMap<String, usize>,
    /// Connections opened (`open` only).
    pub opened: usize,
}

impl Round {
    /// The few fields of the client's flat JSON line: `"key": number` and `"key": {...}` of
    /// string keys and numbers.
    pub fn parse(line: &str) -> Round {
        let num = |key: &str| -> usize {
            let at = line.find(&format!("\"{key}\": ")).expect(key) + key.len() + 4;
            line[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let map = |key: &str| -> BTreeMap<String, usize> {
            let at = line.find(&format!("\"{key}\": {{")).expect(key) + key.len() + 5;
            let body = &line[at..at + line[at..].find('}').unwrap()];
            body.split(", ")
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once(": ").unwrap();
                    (k.trim_matches('"').to_owned(), v.parse().unwrap())
                })
                .collect()
        };
        Round {
            ok: num("ok"),
            moved: num("moved"),
            lost: map("lost"),
            names: map("names"),
            opened: num("opened"),
        }
    }

    /// Every one of `alive` connections answered, each by the server it began on.
    pub fn all_kept(&self, alive: usize) -> bool {
        self.ok == alive && self.moved == 0 && self.lost.is_empty()
    }

    /// Of `alive` connections, exactly `gone` ended, all of them `server`'s; every other one
    /// answered by the server it began on. Else a panic naming `step`.
    pub fn assert_only_lost(&self, server: &str, gone: usize, alive: usize, step: &str) {
        assert_eq!(
            (
                self.ok,
                self.moved,
                self.lost.get(server).copied(),
                self.lost.len()
            ),
            (alive - gone, 0, Some(gone), 1),
            "{step}: {self:?}"
        );
    }

    /// [`Round::all_kept`], or a panic naming `step`.
    pub fn assert_all_kept(&self, alive: usize, step: &str) {
        assert!(
            self.all_kept(alive),
            "{step}: {self:?} (want all {alive} answered by their own server)"
        );
    }
}

/// (connections scheduled, packets forwarded) from the TCP service's row of
/// `lvsadm -L -n --stats --exact -t VIP:PORT`.
pub fn carried(listing: &str) -> (u64, u64) {
    let row = listing
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap_or_else(|| panic!("no service row in\n{listing}"));
    let f: Vec<&str> = row.split_whitespace().collect();
    let n = |k: usize| -> u64 { f[k].parse().expect("a counter") };
    (n(2), n(3))
}

/// `args` started in namespace `ns`, once it printed `ready` (as [`SERVER`] does).
pub fn spawn_ready(ns: &str, args: &[&str]) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a helper (ip netns exec)");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut ready)
        .expect("read the helper's first line");
    assert_eq!(ready.trim(), "ready", "{args:?} started in {ns}");
    child
}

/// [`SERVER`] in namespace `ns`, answering with `name`.
pub fn start_server(ns: &str, name: &str) -> Child {
    spawn_ready(ns, &["python3", "-c", SERVER, name])
}

/// [`CLIENT`] running in a network namespace; killed when dropped.
#[derive(Debug)]
pub struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    /// The client in namespace `ns`, to `vip` (IPv4 or IPv6) port 80, each connection
    /// opened with a timeout of 10 s.
    pub fn start(ns: &str, vip: &str) -> Client {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", CLIENT, vip, "10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the client (ip netns exec python3)");
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Client {
            child,
            stdin,
            stdout,
        }
    }

    /// `open N` or `round`: the client's answer.
    pub fn command(&mut self, cmd: &str) -> Round {
        writeln!(self.stdin, "{cmd}").expect("write to the client");
        self.stdin.flush().expect("write to the client");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the client");
        assert!(!line.is_empty(), "the client died");
        Round::parse(&line)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
