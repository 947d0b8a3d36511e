//! lvsadm end to end: a real control socket served by lvs-control's handler (as in
//! lvs-director) on a private run directory, and the real lvsadm binary talking to it.
//!
//! The counters here are fixed figures (to compare listings byte for byte) and the scheduler
//! check knows names only; ipvsadm's `-b` checks are the control state's own, so they hold
//! here as on the director. What only the real director can answer (plugin options, live
//! counters, -Z, rates, templates) is tested against it in `director/tests/lvsadm.rs`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};

use lvs_control::{
    ConfigChange, ControlHandler, ControlState, DestCounters, KnownSchedulers, StatsSource,
};
use lvs_proto::director::IPVS_VERSION;
use lvs_proto::{
    ConnEntry, DestConf, DirectorInfo, Protocol, Rates, Server, ServerConfig, ServerThread,
    ServiceKey, Stats, rundir,
};

/// Fixed, recognisable figures, so the listings can be compared byte for byte.
struct FakeStats;

impl StatsSource for FakeStats {
    fn service(&self, key: &ServiceKey) -> (Stats, Rates) {
        let n = u64::from(key.port);
        (
            Stats {
                conns: n,
                in_pkts: n * 10,
                out_pkts: n * 8,
                in_bytes: n * 1_000_000,
                out_bytes: n * 10_000_000,
            },
            Rates {
                cps: n / 10,
                in_pps: n,
                out_pps: n,
                in_bps: n * 100,
                out_bps: n * 1000,
            },
        )
    }

    fn dest(&self, _service: &ServiceKey, dest: &DestConf) -> DestCounters {
        let IpAddr::V4(a) = dest.addr else {
            return DestCounters::default();
        };
        let n = u32::from(a.octets()[3]);
        DestCounters {
            active_conns: n,
            inactive_conns: n * 2,
            persist_conns: n * 3,
            stats: Stats {
                conns: u64::from(n),
                in_pkts: u64::from(n) * 10,
                out_pkts: u64::from(n) * 8,
                in_bytes: u64::from(n) * 1000,
                out_bytes: u64::from(n) * 123_456_789,
            },
            rates: Rates {
                cps: u64::from(n),
                in_pps: 2,
                out_pps: 3,
                in_bps: 4,
                out_bps: 5,
            },
        }
    }

    fn connections(&self) -> Vec<ConnEntry> {
        vec![ConnEntry {
            protocol: Protocol::Tcp,
            expire_secs: 899,
            state: "ESTABLISHED".into(),
            client: (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 40000),
            virtual_addr: (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80),
            dest: (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80),
            template: false,
        }]
    }

    fn info(&self) -> DirectorInfo {
        DirectorInfo {
            version: IPVS_VERSION.into(),
            conn_table_size: 4096,
            conn_count: 1,
        }
    }
}

/// Where the handler sends changes: a channel the test reads.
type OnChange = Box<dyn FnMut(&ControlState, &[ConfigChange]) + Send>;
type Handler = ControlHandler<FakeStats, KnownSchedulers, OnChange>;

/// A director control socket on a private run directory.
struct Director {
    dir: PathBuf,
    server: Option<ServerThread<Handler>>,
    changes: Receiver<Vec<ConfigChange>>,
}

impl Director {
    fn start(name: &str) -> Director {
        let dir = std::env::temp_dir().join(format!("lvsadm-e2e-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        rundir::ensure(&dir, None).unwrap();
        let server = Server::bind(ServerConfig::new("director", &dir)).unwrap();
        let (tx, changes) = mpsc::channel();
        let on_change: OnChange = Box::new(move |_: &ControlState, c: &[ConfigChange]| {
            let _ = tx.send(c.to_vec());
        });
        let handler = ControlHandler::new(
            ControlState::new(),
            FakeStats,
            KnownSchedulers::new(["rr", "wrr", "wlc", "sh"]),
            on_change,
        );
        Director {
            server: Some(server.spawn(handler).unwrap()),
            dir,
            changes,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        lvsadm(&self.dir, args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        lvsadm(&self.dir, args, Some(stdin))
    }

    /// Runs lvsadm and insists on success with no output on stderr.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "lvsadm {args:?}");
        r.stdout
    }

    /// Everything the dataplane was told so far.
    fn drain_changes(&self) -> Vec<ConfigChange> {
        let mut all = Vec::new();
        // The handler reports before it answers, so by now everything is queued.
        while let Ok(batch) = self.changes.try_recv() {
            all.extend(batch);
        }
        all
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn lvsadm(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvsadm"))
        .arg("--rundir")
        .arg(dir)
        .args(args)
        .env_remove(rundir::ENV_VAR)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().expect("lvsadm exited, not killed"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// The web farm most tests start from.
fn configure(d: &Director) {
    d.ok(&["-A", "-t", "192.0.2.1:80", "-s", "rr"]);
    d.ok(&[
        "-a",
        "-t",
        "192.0.2.1:80",
        "-r",
        "10.0.0.3:8080",
        "-m",
        "-w",
        "2",
    ]);
    d.ok(&["-a", "-t", "192.0.2.1:80", "-r", "10.0.0.2:80", "-m"]);
    d.ok(&["-A", "-u", "192.0.2.1:53", "-s", "wlc", "-p", "60"]);
    d.ok(&[
        "-a",
        "-u",
        "192.0.2.1:53",
        "-r",
        "10.0.0.4",
        "-g",
        "-x",
        "100",
        "-y",
        "10",
    ]);
}

const LIST: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.1:80 rr
  -> 10.0.0.2:80                  Masq    1      2          4         
  -> 10.0.0.3:8080                Masq    2      3          6         
UDP  192.0.2.1:53 wlc persistent 60
  -> 10.0.0.4:53                  Route   1      4          8         
";

#[test]
fn add_list_and_tell_the_dataplane() {
    let d = Director::start("list");
    configure(&d);
    assert_eq!(d.ok(&["-L", "-n"]), LIST);
    // No arguments: list, as ipvsadm does (without -n: names where /etc/services has them).
    assert_eq!(d.ok(&[]), d.ok(&["-L"]));
    assert!(
        d.ok(&[]).contains("\nTCP  192.0.2.1:http rr\n"),
        "{}",
        d.ok(&[])
    );
    let changes = d.drain_changes();
    assert_eq!(changes.len(), 5);
    assert!(matches!(&changes[0], ConfigChange::ServiceAdded(c) if c.scheduler == "rr"));
    assert!(
        matches!(&changes[4], ConfigChange::DestAdded { dest, .. } if dest.upper_threshold == 100)
    );
    // One service: no version header.
    assert_eq!(
        d.ok(&["-L", "-n", "-t", "192.0.2.1:80"]),
        LIST.lines()
            .skip(1)
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
}

#[test]
fn list_formats() {
    let d = Director::start("formats");
    configure(&d);
    assert_eq!(
        d.ok(&["-L", "-n", "--stats"]),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.1:80                       80      800      640 80000000  800000K
  -> 10.0.0.2:80                         2       20       16     2000  246913K
  -> 10.0.0.3:8080                       3       30       24     3000  370370K
UDP  192.0.2.1:53                       53      530      424 53000000  530000K
  -> 10.0.0.4:53                         4       40       32     4000  493827K
"
    );
    assert_eq!(
        d.ok(&["-L", "-n", "--stats", "--exact", "-t", "192.0.2.1:80"]),
        "\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.1:80                       80      800      640 80000000 800000000
  -> 10.0.0.2:80                         2       20       16     2000 246913578
  -> 10.0.0.3:8080                       3       30       24     3000 370370367
"
    );
    assert_eq!(
        d.ok(&["-Ln", "--rate"]),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  192.0.2.1:80                        8       80       80     8000    80000
  -> 10.0.0.2:80                         2        2        3        4        5
  -> 10.0.0.3:8080                       3        2        3        4        5
UDP  192.0.2.1:53                        5       53       53     5300    53000
  -> 10.0.0.4:53                         4        2        3        4        5
"
    );
    assert_eq!(
        d.ok(&["-L", "-n", "--thresholds"]),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.0.2.1:80 rr
  -> 10.0.0.2:80                  0          0          2          4         
  -> 10.0.0.3:8080                0          0          3          6         
UDP  192.0.2.1:53 wlc persistent 60
  -> 10.0.0.4:53                  100        10         4          8         
"
    );
    assert_eq!(
        d.ok(&["-L", "-n", "--persistent-conn"]),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  192.0.2.1:80 rr
  -> 10.0.0.2:80                  1         6           2          4         
  -> 10.0.0.3:8080                2         9           3          6         
UDP  192.0.2.1:53 wlc persistent 60
  -> 10.0.0.4:53                  1         12          4          8         
"
    );
    assert_eq!(
        d.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(
        d.ok(&["-L", "-n", "-c"]),
        "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.51.100.7:40000 192.0.2.1:80       10.0.0.2:80
"
    );
}

#[test]
fn edit_and_delete() {
    let d = Director::start("edit");
    configure(&d);
    d.ok(&[
        "-E",
        "-t",
        "192.0.2.1:80",
        "-s",
        "wrr",
        "-p",
        "120",
        "-M",
        "255.255.255.0",
    ]);
    d.ok(&[
        "-e",
        "-t",
        "192.0.2.1:80",
        "-r",
        "10.0.0.3:8080",
        "-m",
        "-w",
        "5",
    ]);
    d.ok(&["-d", "-t", "192.0.2.1:80", "-r", "10.0.0.2:80"]);
    d.ok(&["-D", "-u", "192.0.2.1:53"]);
    assert_eq!(
        d.ok(&["-L", "-n"]),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.1:80 wrr persistent 120 mask 255.255.255.0
  -> 10.0.0.3:8080                Masq    5      3          6         
"
    );
    let changes = d.drain_changes();
    let tail = &changes[changes.len() - 4..];
    assert!(matches!(tail[0], ConfigChange::ServiceEdited(_)));
    assert!(matches!(tail[1], ConfigChange::DestEdited { dest, .. } if dest.weight == 5));
    assert!(matches!(
        tail[2],
        ConfigChange::DestDeleted { port: 80, .. }
    ));
    assert!(matches!(tail[3], ConfigChange::ServiceDeleted(k) if k.port == 53));
    d.ok(&["-Z"]);
    d.ok(&["-Z", "-t", "192.0.2.1:80"]);
    d.ok(&["-C"]);
    assert_eq!(
        d.ok(&["-L", "-n"]),
        LIST.lines()
            .take(3)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    assert_eq!(
        d.drain_changes(),
        vec![
            ConfigChange::Zero(None),
            ConfigChange::Zero(Some(ServiceKey {
                protocol: Protocol::Tcp,
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                port: 80
            })),
            ConfigChange::Cleared
        ]
    );
}

#[test]
fn errors_and_exit_codes_are_ipvsadm_s() {
    let d = Director::start("errors");
    configure(&d);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-A", "-t", "192.0.2.1:80"],
            255,
            "Service already exists\n",
        ),
        (&["-E", "-t", "192.0.2.9:80"], 255, "No such service\n"),
        (&["-D", "-t", "192.0.2.9:80"], 255, "No such service\n"),
        (&["-Z", "-t", "192.0.2.9:80"], 255, "No such service\n"),
        (
            &["-a", "-t", "192.0.2.9:80", "-r", "10.0.0.2"],
            255,
            "Service not defined\n",
        ),
        (
            &["-a", "-t", "192.0.2.1:80", "-r", "10.0.0.2:80", "-m"],
            255,
            "Destination already exists\n",
        ),
        (
            &["-e", "-t", "192.0.2.1:80", "-r", "10.0.0.9:80", "-m"],
            255,
            "No such destination\n",
        ),
        (
            &["-d", "-t", "192.0.2.1:80", "-r", "10.0.0.9:80"],
            255,
            "No such destination\n",
        ),
        (&["-L", "-n", "-t", "192.0.2.9:80"], 1, "No such service\n"),
        (
            &["-A", "-t", "192.0.2.300:80"],
            2,
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-a", "-t", "192.0.2.1:80", "-r", "10.0.0"],
            2,
            "illegal real server address[:port] specified\n",
        ),
        (
            &["-A", "-t", "192.0.2.1"],
            2,
            "Zero port specified for non-persistent service\n",
        ),
        (
            &["-a", "-t", "192.0.2.1:80", "-r", "10.0.0.5", "-w", "70000"],
            2,
            "illegal weight specified\n",
        ),
        (
            &["-A", "-f", "0"],
            2,
            "invalid fwmark value `0' specified\n",
        ),
        (&["-A", "-6", "-f", "1"], 2, "-6 used before -f\n"),
        (
            &["-A", "-t", "192.0.2.2:80", "-s", "nosuch"],
            255,
            "Scheduler or persistence engine not found\n",
        ),
        // ipvsadm's -b checks are the control state's, the real director's too.
        (
            &["-A", "-t", "192.0.2.2:80", "-s", "rr", "-b", "sh-port"],
            2,
            "incompatible scheduler flag `sh-port'\n",
        ),
        (
            &["-A", "-t", "192.0.2.2:80", "-s", "sh", "-b", "port"],
            2,
            "invalid scheduler flag `port'\n",
        ),
        (
            &["-L", "-c", "--stats"],
            2,
            "options conflicts in the list command\n",
        ),
        // The kernel's refusals, in ipvsadm's words.
        (
            &["-a", "-t", "192.0.2.1:80", "-r", "224.0.0.5:80", "-m"],
            255,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
        (
            &["-a", "-t", "192.0.2.1:80", "-r", "0.0.0.0:80", "-m"],
            255,
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
        ),
        (
            &[
                "-e",
                "-t",
                "192.0.2.1:80",
                "-r",
                "10.0.0.2:80",
                "-m",
                "-x",
                "5",
                "-y",
                "10",
            ],
            255,
            "Numerical result out of range\n",
        ),
        // popt's errors after the command: the message alone, 255.
        (&["-L", "-Q"], 255, "-Q: unknown option\n"),
        (&["-L", "-nQ"], 255, "-nQ: unknown option\n"),
        (&["-A", "-t"], 255, "-t: missing argument\n"),
        (
            &["-C", "--clear=now"],
            255,
            "--clear=now: option does not take an argument\n",
        ),
        // A second command is an option the first does not have.
        (
            &["-A", "-E", "-t", "192.0.2.1:80"],
            2,
            "invalid option `-E'\n",
        ),
        (&["foo", "-C"], 2, "unexpected argument foo\n"),
        (
            &[
                "-a",
                "-t",
                "192.0.2.1:80",
                "-r",
                "10.0.0.2",
                "-m",
                "--tun-type",
                "ipip",
            ],
            2,
            "Tunnel options conflict with forward method\n",
        ),
        (
            &[
                "-a",
                "-t",
                "192.0.2.1:80",
                "-r",
                "10.0.0.2",
                "-i",
                "--tun-type",
                "gue",
            ],
            2,
            "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
        ),
        (
            &["-L", "--timeout", "--persistent-conn"],
            2,
            "options conflicts in the list command\n",
        ),
    ];
    for (args, code, stderr) in cases {
        let r = d.run(args);
        assert_eq!(
            (r.code, r.stderr.as_str(), r.stdout.as_str()),
            (*code, *stderr, ""),
            "lvsadm {args:?}"
        );
    }
    // Without a command first: only the "Try" line, with the program as it was invoked.
    let exe = env!("CARGO_BIN_EXE_lvsadm");
    let try_line = format!("Try `{exe} -h' or '{exe} --help' for more information.\n");
    for args in [
        &["-Q"][..],
        &["-t", "192.0.2.1:80", "-A"],
        &["-n"],
        &["word"],
    ] {
        let r = d.run(args);
        assert_eq!(
            (r.code, r.stderr.as_str(), r.stdout.as_str()),
            (255, try_line.as_str(), ""),
            "lvsadm {args:?}"
        );
    }
    // GUE and GRE pass ipvsadm's checks, then are refused: the data plane has IP-in-IP only.
    let r = d.run(&[
        "-a",
        "-t",
        "192.0.2.1:80",
        "-r",
        "10.0.0.9",
        "-i",
        "--tun-type",
        "gre",
        "--tun-csum",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .starts_with("GRE encapsulation (--tun-type gre) is not supported by lvs-rs yet"),
        "{r:?}"
    );
    // Nothing of that changed the configuration.
    assert_eq!(d.ok(&["-L", "-n"]), LIST);
}

#[test]
fn save_clear_restore_round_trips() {
    let d = Director::start("restore");
    configure(&d);
    d.ok(&[
        "-A",
        "-t",
        "192.0.2.2:0",
        "-s",
        "sh",
        "-b",
        "sh-port",
        "-p",
        "-M",
        "255.255.0.0",
    ]);
    d.ok(&["-a", "-t", "192.0.2.2:0", "-r", "10.0.0.7", "-i", "-w", "0"]);
    let saved = d.ok(&["-S", "-n"]);
    assert_eq!(
        saved,
        "\
-A -t 192.0.2.1:80 -s rr
-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1
-a -t 192.0.2.1:80 -r 10.0.0.3:8080 -m -w 2
-A -t 192.0.2.2:0 -s sh -p 300 -M 255.255.0.0 -b sh-port
-a -t 192.0.2.2:0 -r 10.0.0.7:0 -i -w 0 --tun-type ipip
-A -u 192.0.2.1:53 -s wlc -p 60
-a -u 192.0.2.1:53 -r 10.0.0.4:53 -g -w 1 -x 100 -y 10
"
    );
    let listed = d.ok(&["-L", "-n"]);
    d.ok(&["-C"]);
    assert_eq!(d.ok(&["-S"]), "");
    let r = d.run_with_stdin(&["-R"], &saved);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.as_str()), (0, "", ""));
    assert_eq!(d.ok(&["-S", "-n"]), saved);
    assert_eq!(d.ok(&["-L", "-n"]), listed);
    // Without -n, -S names ports (and hosts) as listings do; -R reads the names back.
    let named = d.ok(&["-S"]);
    assert!(
        named.starts_with(
            "-A -t 192.0.2.1:http -s rr\n-a -t 192.0.2.1:http -r 10.0.0.2:http -m -w 1\n"
        ),
        "{named}"
    );
    assert!(
        named.contains("\n-A -u 192.0.2.1:domain -s wlc -p 60\n"),
        "{named}"
    );
    d.ok(&["-C"]);
    let r = d.run_with_stdin(&["-R"], &named);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.as_str()), (0, "", ""));
    assert_eq!(d.ok(&["-S", "-n"]), saved);
}

/// Host and service names as ipvsadm takes and shows them: `-t`/`-r` accept names from
/// `/etc/hosts` (`localhost`) and `/etc/services` (`http`, `domain`); without `-n`, `-L`,
/// `-L -c` and `-S` print them.
#[test]
fn host_and_service_names_without_numeric() {
    let d = Director::start("names");
    d.ok(&["-A", "-t", "localhost:http", "-s", "rr"]);
    d.ok(&["-a", "-t", "localhost:http", "-r", "10.0.0.2:www", "-m"]);
    d.ok(&["-A", "-u", "localhost:domain", "-s", "rr"]);
    assert_eq!(
        d.ok(&["-S", "-n"]),
        "-A -t 127.0.0.1:80 -s rr\n-a -t 127.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n-A -u 127.0.0.1:53 -s rr\n"
    );
    assert_eq!(
        d.ok(&["-S"]),
        "-A -t localhost:http -s rr\n-a -t localhost:http -r 10.0.0.2:http -m -w 1\n-A -u localhost:domain -s rr\n"
    );
    assert_eq!(
        d.ok(&["-L"]),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  localhost:http rr
  -> 10.0.0.2:http                Masq    1      2          4         
UDP  localhost:domain rr
"
    );
    assert_eq!(
        d.ok(&["-L", "-c"]),
        "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.51.100.7:40000 192.0.2.1:http     10.0.0.2:http
"
    );
    // The persistence-engine title of ipvsadm 1.31 (lvs-rs has no engines: no such column
    // is filled).
    assert_eq!(
        d.ok(&["-L", "-n", "-c", "--persistent-conn"]),
        "\
IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
TCP 14:59  ESTABLISHED 198.51.100.7:40000 192.0.2.1:80       10.0.0.2:80
"
    );
    let r = d.run(&["-A", "-t", "no-such-host.invalid:http"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "illegal virtual server address[:port] specified\n")
    );
    let r = d.run(&["-A", "-t", "localhost:no-such-service"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "illegal virtual server address[:port] specified\n")
    );
}

/// A save file as ipvsadm 1.31 writes it (`ipvsadm-save -n`): NAT, DR and tunnelled servers
/// (`--tun-type ipip`), persistence with a netmask, scheduler flags; with lvs-rs's `-x`/`-y`
/// at the end of a line. `-R` then `-S -n` gives the same file, and `-L --tun-info` shows
/// the tunnels.
#[test]
fn ipvsadm_1_31_save_file_round_trips() {
    let d = Director::start("ipvsadm-save");
    const FILE: &str = "\
-A -t 192.0.2.10:80 -s wrr
-a -t 192.0.2.10:80 -r 10.0.1.11:8080 -m -w 3
-a -t 192.0.2.10:80 -r 10.0.1.12:8080 -m -w 1 -x 500 -y 400
-A -t 192.0.2.10:443 -s wlc -p 1800 -M 255.255.255.0
-a -t 192.0.2.10:443 -r 10.0.1.11:443 -g -w 1
-a -t 192.0.2.10:443 -r 10.0.1.12:443 -g -w 1
-A -t 192.0.2.20:0 -s sh -p 300 -M 255.255.0.0 -b sh-fallback,sh-port
-a -t 192.0.2.20:0 -r 198.51.100.21:0 -i -w 1 --tun-type ipip
-a -t 192.0.2.20:0 -r 198.51.100.22:0 -i -w 2 --tun-type ipip -x 1000 -y 800
-A -u 192.0.2.53:53 -s rr
-a -u 192.0.2.53:53 -r 10.0.1.31:53 -g -w 1
-a -u 192.0.2.53:53 -r 10.0.1.32:53 -i -w 1 --tun-type ipip
-A -f 1 -s rr -p 300
-a -f 1 -r 10.0.1.11:0 -m -w 1
-a -f 1 -r 10.0.1.12:0 -g -w 2
-A -f 2 -6 -s wlc
-a -f 2 -6 -r [2001:db8::11]:0 -g -w 1
";
    let r = d.run_with_stdin(&["-R"], FILE);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.as_str()), (0, "", ""));
    assert_eq!(d.ok(&["-S", "-n"]), FILE);
    let tun = d.ok(&["-L", "-n", "--tun-info", "-t", "192.0.2.20:0"]);
    assert_eq!(
        tun,
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.0.2.20:0 sh (sh-fallback,sh-port) persistent 300 mask 255.255.0.0
  -> 198.51.100.21:0              Tunnel  ipip          1      21         42        
  -> 198.51.100.22:0              Tunnel  ipip          2      22         44        
"
    );
    assert!(
        d.ok(&["-L", "-n", "--tun-info", "-t", "192.0.2.10:80"])
            .contains("\n  -> 10.0.1.11:8080               Masq    n/a           3 "),
    );
}

/// ipvsadm's IPv6 command lines through the real binary: bracketed services and real
/// servers, the listing, a save that `-R` restores to the same configuration, and the
/// refusals (mixed families, malformed brackets) with ipvsadm's messages and exit codes.
#[test]
fn ipv6_add_list_save_restore() {
    let d = Director::start("ipv6");
    let vip = "[2001:db8::1]:80";
    d.ok(&["-A", "-t", vip, "-s", "wlc", "-p", "120", "-M", "64"]);
    d.ok(&[
        "-a",
        "-t",
        vip,
        "-r",
        "[2001:db8::10]:8080",
        "-m",
        "-w",
        "3",
    ]);
    d.ok(&["-a", "-t", vip, "-r", "2001:db8::11", "-g"]);
    d.ok(&["-A", "-u", "192.0.2.1:53", "-s", "rr"]);
    d.ok(&["-a", "-u", "192.0.2.1:53", "-r", "192.0.2.12:53", "-i"]);
    let listed = d.ok(&["-L", "-n"]);
    // The header and title lines are the IPv4 listing's.
    let (head, body) = listed.split_at(LIST.find("TCP").unwrap());
    assert_eq!(head, &LIST[..head.len()]);
    assert_eq!(
        body,
        "\
UDP  192.0.2.1:53 rr
  -> 192.0.2.12:53                Tunnel  1      12         24        
TCP  [2001:db8::1]:80 wlc persistent 120 mask 64
  -> [2001:db8::10]:8080          Masq    3      0          0         
  -> [2001:db8::11]:80            Route   1      0          0         
"
    );
    let saved = d.ok(&["-S", "-n"]);
    assert_eq!(
        saved,
        "\
-A -u 192.0.2.1:53 -s rr
-a -u 192.0.2.1:53 -r 192.0.2.12:53 -i -w 1 --tun-type ipip
-A -t [2001:db8::1]:80 -s wlc -p 120 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 3
-a -t [2001:db8::1]:80 -r [2001:db8::11]:80 -g -w 1
"
    );
    for (args, stderr) in [
        (
            &["-a", "-t", vip, "-r", "10.0.0.2:80", "-m"][..],
            "Different address family is allowed only for tunneling servers\n",
        ),
        (
            &["-a", "-t", vip, "-r", "[2001:db8::13:80", "-m"][..],
            "illegal real server address[:port] specified\n",
        ),
        (
            &["-A", "-t", "[fe80::1%lo]:80"][..],
            "illegal virtual server address[:port] specified\n",
        ),
        (
            &["-A", "-t", "[2001:db8::2]:80", "-6"][..],
            "-6 used before -f\n",
        ),
    ] {
        let r = d.run(args);
        assert_eq!(
            (r.code, r.stderr.as_str(), r.stdout.as_str()),
            (2, stderr, ""),
            "lvsadm {args:?}"
        );
    }
    // IPVS accepts a tunnel server of the other family; the director does not tunnel across
    // families, so it refuses one rather than list a server it never forwards to.
    let r = d.run(&["-a", "-u", "192.0.2.1:53", "-r", "[2001:db8::12]:53", "-i"]);
    assert!(
        r.stderr
            .starts_with("Different address family tunneling is not supported by lvs-director"),
        "{r:?}"
    );
    assert_ne!(r.code, 0);
    d.ok(&["-C"]);
    let r = d.run_with_stdin(&["-R"], &saved);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.as_str()), (0, "", ""));
    assert_eq!(d.ok(&["-S", "-n"]), saved);
    assert_eq!(d.ok(&["-L", "-n"]), listed);
    d.ok(&["-d", "-t", vip, "-r", "[2001:db8::11]:80"]);
    d.ok(&["-D", "-u", "192.0.2.1:53"]);
    assert_eq!(
        d.ok(&["-S", "-n"]),
        "-A -t [2001:db8::1]:80 -s wlc -p 120 -M 64\n\
         -a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 3\n"
    );
}

/// `-R` as ipvsadm's restore: line by line, the lines before a failing one stay applied. A
/// line ipvsadm rejects while reading it stops the restore (exit 2); a line the director
/// refuses is reported and the restore goes on, the exit code being the last line's.
#[test]
fn restore_applies_line_by_line_as_ipvsadm() {
    let d = Director::start("restore-errors");
    let bad = "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.2 -w many\n-A -t 192.0.2.2:80 -s rr\n";
    let r = d.run_with_stdin(&["-R"], bad);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "illegal weight specified\n")
    );
    assert_eq!(
        d.ok(&["-S", "-n"]),
        "-A -t 192.0.2.1:80 -s rr\n",
        "the line before stays, the one after is not read"
    );
    // Line 2 is refused by the director: the rest still goes in; the last line succeeded.
    d.ok(&["-C"]);
    let dup = "-A -t 192.0.2.1:80 -s rr\n-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m\n";
    let r = d.run_with_stdin(&["-R"], dup);
    assert_eq!((r.code, r.stderr.as_str()), (0, "Service already exists\n"));
    assert_eq!(
        d.ok(&["-S", "-n"]),
        "-A -t 192.0.2.1:80 -s rr\n-a -t 192.0.2.1:80 -r 10.0.0.2:80 -m -w 1\n"
    );
    // The last line refused: its exit code.
    let r = d.run_with_stdin(&["-R"], "# comment\n\n-A -t 192.0.2.1:80 -s rr\n");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (255, "Service already exists\n")
    );
    // An unknown option is popt's error: reported, and the restore goes on.
    let r = d.run_with_stdin(
        &["-R"],
        "-D -t 192.0.2.1:80 --frobnicate\n-D -t 192.0.2.1:80\n",
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (0, "--frobnicate: unknown option\n")
    );
    assert_eq!(d.ok(&["-S", "-n"]), "");
    // A line without a command ends it with the "Try" line.
    let exe = env!("CARGO_BIN_EXE_lvsadm");
    let r = d.run_with_stdin(&["-R"], "-n\n-A -t 192.0.2.1:80 -s rr\n");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            255,
            format!("Try `{exe} -h' or '{exe} --help' for more information.\n").as_str()
        )
    );
    assert_eq!(d.ok(&["-S", "-n"]), "");
}

#[test]
fn set_timeouts() {
    let d = Director::start("set");
    d.ok(&["--set", "60", "0", "30"]);
    assert_eq!(
        d.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 60 120 30\n"
    );
    let r = d.run(&["--set", "60", "0"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "--set option requires 3 timeout values\n")
    );
    assert_eq!(
        d.drain_changes(),
        vec![ConfigChange::TimeoutsChanged(lvs_proto::Timeouts {
            tcp: 60,
            tcp_fin: 120,
            udp: 30
        })]
    );
}

#[test]
fn director_not_running() {
    let dir = std::env::temp_dir().join(format!("lvsadm-e2e-{}-absent", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let r = lvsadm(&dir, &["-L", "-n"], None);
    assert_eq!(r.code, 2, "{r:?}");
    let socket = rundir::socket_path(&dir, "director");
    assert!(
        r.stderr.starts_with(&format!(
            "Can't initialize ipvs: cannot connect to {}",
            socket.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("is lvs-director running"), "{}", r.stderr);
    // Help, version and bad command lines need no director.
    let r = lvsadm(&dir, &["-h"], None);
    assert_eq!(r.code, 0);
    // The program as invoked, as ipvsadm names itself.
    let exe = env!("CARGO_BIN_EXE_lvsadm");
    assert!(
        r.stdout
            .contains(&format!("Usage:\n  {exe} -A|E -t|u service-address")),
        "{}",
        r.stdout
    );
    let r = lvsadm(&dir, &["-v"], None);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("lvsadm v"), "{}", r.stdout);
    let r = lvsadm(&dir, &["-A", "-t", "nowhere:80"], None);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "illegal virtual server address[:port] specified\n")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rundir_comes_from_the_environment_without_the_flag() {
    let d = Director::start("env");
    let r = Command::new(env!("CARGO_BIN_EXE_lvsadm"))
        .args(["-S"])
        .env(rundir::ENV_VAR, &d.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

/// `scripts/lvsadm-save` and `scripts/lvsadm-restore` (the ipvsadm-save and ipvsadm-restore
/// of lvsadm), run by `sh` with lvsadm in PATH and the director in `$LVS_RUNDIR`.
#[test]
fn save_and_restore_wrappers() {
    let d = Director::start("wrappers");
    configure(&d);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let bin = Path::new(env!("CARGO_BIN_EXE_lvsadm")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let wrapper = |name: &str, args: &[&str], stdin: &str| {
        let mut child = Command::new("sh")
            .arg(scripts.join(name))
            .args(args)
            .env("PATH", &path)
            .env(rundir::ENV_VAR, &d.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    };
    let saved = wrapper("lvsadm-save", &["-n"], "");
    assert_eq!((saved.code, saved.stderr.as_str()), (0, ""));
    assert_eq!(saved.stdout, d.ok(&["-S", "-n"]));
    assert_eq!(wrapper("lvsadm-save", &[], "").stdout, d.ok(&["-S"]));
    let r = wrapper("lvsadm-save", &["-x"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("lvsadm-save: Script to save the director's virtual services"),
        "{r:?}"
    );
    // Restore replaces the table (lvsadm -C first) and leaves comment lines out.
    let input = "# saved by lvsadm-save\n-A -t 192.0.2.9:80 -s rr\n# a server\n-a -t 192.0.2.9:80 -r 10.0.0.9:80 -m -w 4\n";
    let r = wrapper("lvsadm-restore", &[], input);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.as_str()), (0, "", ""));
    assert_eq!(
        d.ok(&["-S", "-n"]),
        "-A -t 192.0.2.9:80 -s rr\n-a -t 192.0.2.9:80 -r 10.0.0.9:80 -m -w 4\n"
    );
    let r = wrapper("lvsadm-restore", &[], &saved.stdout);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(d.ok(&["-S", "-n"]), saved.stdout);
    // The exit code is lvsadm -R's.
    let r = wrapper(
        "lvsadm-restore",
        &[],
        "-A -t 192.0.2.9:80 -s rr\n-A -t 192.0.2.9:80 -s rr\n",
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (255, "Service already exists\n")
    );
}
