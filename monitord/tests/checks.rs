//! Every check kind against real peers in a network namespace, and the engine's concurrency.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use lvs_monitord::checks::{CheckResult, Engine};
use lvs_monitord::config::{CheckKind, DnsCheck, DnsType, HttpCheck};
use lvs_monitord::health::{CheckPolicy, Health, State};

fn b_addr() -> IpAddr {
    B.parse().unwrap()
}

fn http(port: u16, path: &str) -> HttpCheck {
    HttpCheck {
        port,
        path: path.into(),
        host: None,
        status: vec![200],
        body: None,
        body_sha256: None,
        verify: true,
        ca_file: None,
    }
}

/// A small HTTP server in `b` (python's http.server, threaded): `/ok` 200 "all healthy",
/// `/fail` 500, `/other` 200 "something else". With `tls`, HTTPS with that cert and key.
fn python_http(bed: &Testbed, port: u16, tls: Option<(&Path, &Path)>) -> ChildGuard {
    python_http_at(bed, B, port, tls)
}

/// [`python_http`] on `addr` (IPv4 or IPv6) of `b`. Two more pages say what the server saw:
/// `/host` answers `host=<the Host header>;`, `/sni` answers `sni=<the TLS server name, or
/// None when the client sent none>;`.
fn python_http_at(bed: &Testbed, addr: &str, port: u16, tls: Option<(&Path, &Path)>) -> ChildGuard {
    let script = r#"
import http.server, socket, ssl, sys
addr, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        sni = getattr(self.connection, "lvs_sni", None)
        code, body = {
            "/ok": (200, b"all healthy\n"),
            "/fail": (500, b"broken\n"),
            "/host": (200, ("host=%s;\n" % self.headers.get("Host")).encode()),
            "/sni": (200, ("sni=%s;\n" % sni).encode()),
        }.get(self.path, (200, b"something else\n"))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    # Python's default backlog is 5: a sixth check connecting at the same moment would
    # have its SYN dropped and retried only after a second, past its timeout.
    request_queue_size = 64
    address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
srv = S((addr, port), H)
if len(sys.argv) > 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    # Called for every ClientHello; `name` is None when the client sent no server name.
    def on_sni(sock, name, _ctx):
        sock.lvs_sni = name
    ctx.sni_callback = on_sni
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;
    let port_s = port.to_string();
    let mut args = vec!["python3", "-c", script, addr, &port_s];
    let (c, k);
    if let Some((cert, key)) = tls {
        c = cert.display().to_string();
        k = key.display().to_string();
        args.push(&c);
        args.push(&k);
    }
    let guard = bed.b.spawn(&args);
    let at: IpAddr = addr.parse().expect("an IP address");
    wait_port(&bed.a, &SocketAddr::new(at, port).to_string());
    guard
}

#[test]
fn icmp_passes_then_fails_after_fall_when_the_peer_drops_icmp() {
    if !root_or_skip("icmp_passes_then_fails_after_fall_when_the_peer_drops_icmp") {
        return;
    }
    let bed = Testbed::new();
    let b_name = bed.b.name.clone();
    bed.a.run(move || {
        let mut engine = engine();
        let c = check(CheckKind::Icmp, 200, 150, 1, 3);
        let id = engine.add_target(b_addr(), 0, std::slice::from_ref(&c));
        let mut health = Health::new();
        health.add_server(id, vec![CheckPolicy::of(&c)], State::Unknown);
        let mut results = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Up first.
        loop {
            assert!(Instant::now() < deadline, "never up");
            engine
                .poll(Some(Duration::from_millis(100)), &mut results)
                .unwrap();
            let mut up = false;
            for r in results.drain(..) {
                assert!(r.ok, "{r:?}");
                assert_eq!(r.detail, "echo reply");
                up |= health.record(&r.target, r.check, r.ok, &r.detail).is_some();
            }
            if up {
                break;
            }
        }
        assert_eq!(health.state(&id), Some(State::Up));
        // Now the peer drops echo requests.
        let nft = |rule: &str| nft_in(&b_name, rule);
        nft("add table inet lvsmon");
        nft("add chain inet lvsmon input { type filter hook input priority 0; policy accept; }");
        nft("add rule inet lvsmon input icmp type echo-request drop");
        let dropped_at = Instant::now();
        let mut failures = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        let transition = loop {
            assert!(Instant::now() < deadline, "never down");
            engine
                .poll(Some(Duration::from_millis(100)), &mut results)
                .unwrap();
            let mut got = None;
            for r in results.drain(..) {
                if !r.ok {
                    failures += 1;
                    assert_eq!(r.detail, "timeout after 150 ms waiting for the echo reply");
                    assert!(r.latency >= Duration::from_millis(150), "early: {r:?}");
                }
                if let Some(t) = health.record(&r.target, r.check, r.ok, &r.detail) {
                    got = Some(t);
                }
            }
            if let Some(t) = got {
                break t;
            }
        };
        assert_eq!((transition.from, transition.to), (State::Up, State::Down));
        assert_eq!(failures, 3, "down after exactly `fall` failures");
        assert!(
            transition
                .reason
                .starts_with("icmp failed 3 times: timeout"),
            "{}",
            transition.reason
        );
        // 3 failures: at most 1 interval until the next start, 2 more, plus the timeout; at
        // least the 2 intervals between the first and the third plus the third's timeout
        // (less a tick of slack: the first echo may have left just before the rule).
        let took = dropped_at.elapsed();
        assert!(
            took >= Duration::from_millis(2 * 200 + 150 - 50)
                && took < Duration::from_millis(3 * 200 + 150 + 300),
            "{took:?}"
        );
    });
}

#[test]
fn tcp_open_port_passes_closed_port_fails() {
    if !root_or_skip("tcp_open_port_passes_closed_port_fails") {
        return;
    }
    let bed = Testbed::new();
    let _listener = silent_listener(&bed.b, "10.77.0.2:8080");
    bed.a.run(|| {
        let mut engine = engine();
        let open = engine.add_target(
            b_addr(),
            8080,
            &[check(CheckKind::Tcp { port: 8080 }, 1000, 500, 1, 1)],
        );
        let closed = engine.add_target(
            b_addr(),
            8081,
            &[check(CheckKind::Tcp { port: 8081 }, 1000, 500, 1, 1)],
        );
        let r = first_results(&mut engine, &[open, closed], Duration::from_secs(3));
        assert!(r[0].ok, "{:?}", r[0]);
        assert_eq!(r[0].detail, "connected");
        assert!(!r[1].ok, "{:?}", r[1]);
        assert!(
            r[1].detail.starts_with("connect: Connection refused"),
            "{}",
            r[1].detail
        );
        assert!(
            r[1].latency < Duration::from_millis(400),
            "refusal is immediate: {:?}",
            r[1].latency
        );
    });
}

#[test]
fn syn_probe_open_port_passes_closed_port_fails_and_the_application_sees_nothing() {
    if !root_or_skip(
        "syn_probe_open_port_passes_closed_port_fails_and_the_application_sees_nothing",
    ) {
        return;
    }
    let bed = Testbed::new();
    let listener = silent_listener(&bed.b, "10.77.0.2:8090");
    listener.set_nonblocking(true).expect("nonblocking");
    bed.a.run(|| {
        let mut engine = engine();
        let open = engine.add_target(
            b_addr(),
            8090,
            &[check(CheckKind::Syn { port: 8090 }, 300, 200, 1, 1)],
        );
        let closed = engine.add_target(
            b_addr(),
            8091,
            &[check(CheckKind::Syn { port: 8091 }, 300, 200, 1, 1)],
        );
        // Nobody has this address: no answer at all.
        let silent = engine.add_target(
            "10.77.0.99".parse().unwrap(),
            8090,
            &[check(CheckKind::Syn { port: 8090 }, 300, 200, 1, 1)],
        );
        let r = first_results(&mut engine, &[open, closed, silent], Duration::from_secs(3));
        assert!(r[0].ok, "{:?}", r[0]);
        assert_eq!(r[0].detail, "SYN-ACK: listening");
        assert!(!r[1].ok, "{:?}", r[1]);
        assert!(
            r[1].detail.contains("Connection refused"),
            "{}",
            r[1].detail
        );
        assert!(!r[2].ok, "{:?}", r[2]);
        assert!(
            r[2].detail.starts_with("timeout after 200 ms"),
            "{}",
            r[2].detail
        );
        assert!(
            r[2].latency >= Duration::from_millis(200),
            "early: {:?}",
            r[2]
        );
        // Later runs keep passing (sequence numbers of each run match their own replies).
        let again = first_results(&mut engine, &[open, closed], Duration::from_secs(3));
        assert!(again[0].ok && !again[1].ok, "{again:?}");
    });
    // Half-open: our kernel reset each SYN-ACK, so nothing reached the accept queue.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the application saw a connection: {other:?}"),
    }
}

#[test]
fn syn_probe_over_ipv6() {
    if !root_or_skip("syn_probe_over_ipv6") {
        return;
    }
    let ns = Netns::new();
    let _listener = ns.run(|| std::net::TcpListener::bind("[::1]:8092").expect("bind [::1]:8092"));
    ns.run(|| {
        let mut engine = engine();
        let lo: IpAddr = "::1".parse().unwrap();
        let open = engine.add_target(
            lo,
            8092,
            &[check(CheckKind::Syn { port: 8092 }, 300, 200, 1, 1)],
        );
        let closed = engine.add_target(
            lo,
            8093,
            &[check(CheckKind::Syn { port: 8093 }, 300, 200, 1, 1)],
        );
        let r = first_results(&mut engine, &[open, closed], Duration::from_secs(3));
        assert!(r[0].ok, "{:?}", r[0]);
        assert!(!r[1].ok, "{:?}", r[1]);
        assert!(
            r[1].detail.contains("Connection refused"),
            "{}",
            r[1].detail
        );
    });
}

#[test]
fn http_status_body_and_timeout() {
    if !root_or_skip("http_status_body_and_timeout") {
        return;
    }
    let bed = Testbed::new();
    let _server = python_http(&bed, 8000, None);
    let _hang = silent_listener(&bed.b, "10.77.0.2:8001");
    bed.a.run(|| {
        let mut engine = engine();
        let t = |k| check(k, 1000, 500, 1, 1);
        let mut ok_body = http(8000, "/ok");
        ok_body.body = Some("healthy".into());
        let mut ok_digest = http(8000, "/ok");
        ok_digest.body_sha256 = Some(sha256_of(b"all healthy\n"));
        let mut wrong_body = http(8000, "/other");
        wrong_body.body = Some("healthy".into());
        let ids = [
            engine.add_target(b_addr(), 8000, &[t(CheckKind::Http(http(8000, "/ok")))]),
            engine.add_target(b_addr(), 8000, &[t(CheckKind::Http(ok_body))]),
            engine.add_target(b_addr(), 8000, &[t(CheckKind::Http(ok_digest))]),
            engine.add_target(b_addr(), 8000, &[t(CheckKind::Http(http(8000, "/fail")))]),
            engine.add_target(b_addr(), 8000, &[t(CheckKind::Http(wrong_body))]),
            engine.add_target(b_addr(), 8001, &[t(CheckKind::Http(http(8001, "/ok")))]),
            engine.add_target(b_addr(), 8002, &[t(CheckKind::Http(http(8002, "/ok")))]),
        ];
        let r = first_results(&mut engine, &ids, Duration::from_secs(5));
        assert!(r[0].ok && r[0].detail == "status 200 OK", "{:?}", r[0]);
        assert!(
            r[1].ok && r[1].detail.starts_with("status 200, body ok"),
            "{:?}",
            r[1]
        );
        assert!(r[2].ok, "{:?}", r[2]);
        assert!(!r[3].ok, "{:?}", r[3]);
        assert_eq!(
            r[3].detail,
            "wrong status: 500 Internal Server Error, expected 200"
        );
        assert!(!r[4].ok, "{:?}", r[4]);
        assert_eq!(
            r[4].detail,
            "wrong body: status 200 but the body does not contain \"healthy\""
        );
        assert!(!r[5].ok, "{:?}", r[5]);
        assert_eq!(r[5].detail, "timeout after 500 ms waiting for the response");
        assert!(r[5].latency >= Duration::from_millis(500));
        assert!(!r[6].ok && r[6].detail.contains("refused"), "{:?}", r[6]);
    });
}

fn sha256_of(b: &[u8]) -> [u8; 32] {
    // The test's own digest: sha256sum, not the crate's code.
    let dir = DirGuard(tempdir("digest"));
    let f = dir.0.join("body");
    std::fs::write(&f, b).unwrap();
    let out = run("sha256sum", &[f.to_str().unwrap()]);
    let hex = out.split_whitespace().next().unwrap();
    let mut d = [0u8; 32];
    for (i, x) in d.iter_mut().enumerate() {
        *x = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    d
}

fn tempdir(what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let p = std::env::temp_dir().join(format!(
        "lvsmon-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Removes a directory on drop.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA and a leaf certificate for 10.77.0.2, 2001:db8:77::2 and www.lvsmon.test signed by it: (ca.pem, leaf.pem, leaf.key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    // scripts/test.sh installs openssl: its absence is a broken set-up, not a reason to pass.
    assert!(
        Command::new("openssl").arg("version").output().is_ok(),
        "the HTTPS checks need openssl to make their certificates (scripts/test.sh installs it)"
    );
    let p = |n: &str| dir.join(n).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend_from_slice(&ec);
    let (cak, cap) = (p("ca.key"), p("ca.pem"));
    a.extend_from_slice(&[
        "-keyout",
        &cak,
        "-out",
        &cap,
        "-days",
        "2",
        "-subj",
        "/CN=lvsmon test CA",
    ]);
    run("openssl", &a);
    let (lk, lcsr, lp, ext) = (p("leaf.key"), p("leaf.csr"), p("leaf.pem"), p("ext.cnf"));
    let mut a = vec!["req"];
    a.extend_from_slice(&ec);
    a.extend_from_slice(&[
        "-keyout",
        &lk,
        "-out",
        &lcsr,
        "-subj",
        "/CN=lvsmon test server",
    ]);
    run("openssl", &a);
    std::fs::write(
        &ext,
        "subjectAltName=IP:10.77.0.2,IP:2001:db8:77::2,DNS:www.lvsmon.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &lcsr,
            "-CA",
            &cap,
            "-CAkey",
            &cak,
            "-CAcreateserial",
            "-out",
            &lp,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    (cap.into(), lp.into(), lk.into())
}

#[test]
fn https_verify_on_and_off() {
    if !root_or_skip("https_verify_on_and_off") {
        return;
    }
    let dir = DirGuard(tempdir("tls"));
    let (ca, cert, key) = make_certs(&dir.0);
    let bed = Testbed::new();
    let _server = python_http(&bed, 8443, Some((&cert, &key)));
    bed.a.run(|| {
        let mut engine = engine();
        let t = |k| check(CheckKind::Https(k), 1000, 800, 1, 1);
        let mut no_verify = http(8443, "/ok");
        no_verify.verify = false;
        no_verify.body = Some("healthy".into());
        let mozilla = http(8443, "/ok");
        let mut own_ca = http(8443, "/ok");
        own_ca.ca_file = Some(ca.clone());
        let mut by_name = own_ca.clone();
        by_name.host = Some("www.lvsmon.test".into());
        let mut wrong_name = own_ca.clone();
        wrong_name.host = Some("www.example.com".into());
        let mut wrong_status = no_verify.clone();
        wrong_status.path = "/fail".into();
        wrong_status.body = None;
        let ids: Vec<_> = [
            no_verify,
            mozilla,
            own_ca,
            by_name,
            wrong_name,
            wrong_status,
        ]
        .into_iter()
        .map(|h| engine.add_target(b_addr(), 8443, &[t(h)]))
        .collect();
        let r = first_results(&mut engine, &ids, Duration::from_secs(5));
        assert!(
            r[0].ok,
            "verify=false accepts a self-signed chain: {:?}",
            r[0]
        );
        assert!(r[0].detail.starts_with("status 200, body ok"), "{:?}", r[0]);
        assert!(
            !r[1].ok,
            "verify=true refuses an unknown issuer: {:?}",
            r[1]
        );
        assert!(
            r[1].detail
                .starts_with("TLS: invalid peer certificate: UnknownIssuer"),
            "{}",
            r[1].detail
        );
        assert!(r[2].ok, "verify=true with ca_file: {:?}", r[2]);
        assert!(
            r[3].ok,
            "verify=true with ca_file and a DNS name: {:?}",
            r[3]
        );
        assert!(!r[4].ok, "{:?}", r[4]);
        assert!(
            r[4].detail
                .contains("not valid for name \"www.example.com\""),
            "{}",
            r[4].detail
        );
        assert!(
            !r[5].ok && r[5].detail.starts_with("wrong status: 500"),
            "{:?}",
            r[5]
        );
    });
}

/// A DNS responder in `b`: answers `www.lvsmon.test` A with 10.77.0.53 (name compressed with
/// a pointer to the question), NXDOMAIN for anything else. Written by hand here, independent
/// of the crate's encoder.
struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    fn start(bed: &Testbed, addr: &'static str, port: u16) -> Responder {
        let sock = bed
            .b
            .run(move || UdpSocket::bind((addr, port)).expect("bind dns"));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let q = &buf[..n];
                // The question: labels from byte 12, then type and class.
                let mut i = 12;
                let mut labels = Vec::new();
                while i < n && q[i] != 0 {
                    let l = q[i] as usize;
                    labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + l]).into_owned());
                    i += 1 + l;
                }
                let qend = i + 5;
                let found = labels.join(".") == "www.lvsmon.test" && q[i + 1..i + 3] == [0, 1];
                let mut r = Vec::new();
                r.extend_from_slice(&q[..2]);
                r.extend_from_slice(if found { &[0x81, 0x80] } else { &[0x81, 0x83] });
                r.extend_from_slice(&[0, 1, 0, u8::from(found), 0, 0, 0, 0]);
                r.extend_from_slice(&q[12..qend]);
                if found {
                    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 53]);
                }
                let _ = sock.send_to(&r, from);
            }
        });
        Responder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn dns_right_and_wrong_address() {
    dns_right_and_wrong_address_at("dns_right_and_wrong_address", B);
}

/// The DNS checks against [`Responder`] on `server`, an address of `b`.
fn dns_right_and_wrong_address_at(test: &str, server: &'static str) {
    if !root_or_skip(test) {
        return;
    }
    let bed = Testbed::new();
    let _dns = Responder::start(&bed, server, 5353);
    let server: IpAddr = server.parse().unwrap();
    bed.a.run(|| {
        let mut engine = engine();
        let d = |name: &str, expect: &[&str], port| {
            check(
                CheckKind::Dns(DnsCheck {
                    port,
                    name: name.into(),
                    qtype: DnsType::A,
                    expect: expect.iter().map(|a| a.parse().unwrap()).collect(),
                }),
                1000,
                500,
                1,
                1,
            )
        };
        let ids = [
            engine.add_target(server, 53, &[d("www.lvsmon.test", &["10.77.0.53"], 5353)]),
            engine.add_target(server, 53, &[d("www.lvsmon.test", &["10.77.0.99"], 5353)]),
            engine.add_target(server, 53, &[d("nx.lvsmon.test", &[], 5353)]),
            engine.add_target(server, 53, &[d("www.lvsmon.test", &[], 5354)]),
        ];
        let r = first_results(&mut engine, &ids, Duration::from_secs(3));
        assert!(r[0].ok, "{:?}", r[0]);
        assert_eq!(r[0].detail, "www.lvsmon.test A 10.77.0.53");
        assert!(!r[1].ok);
        assert_eq!(
            r[1].detail,
            "www.lvsmon.test A is 10.77.0.53, expected 10.77.0.99"
        );
        assert_eq!(r[2].detail, "DNS answer NXDOMAIN");
        assert!(
            !r[3].ok && r[3].detail.contains("refused"),
            "port unreachable: {:?}",
            r[3]
        );
    });
}

#[test]
fn many_targets_are_checked_concurrently_within_one_interval() {
    if !root_or_skip("many_targets_are_checked_concurrently_within_one_interval") {
        return;
    }
    const N: u8 = 150;
    let bed = Testbed::new();
    bed.many_addresses("10.78.0.0/24");
    let _listener = silent_listener(&bed.b, "0.0.0.0:9000");
    bed.a.run(|| {
        let mut engine = engine();
        let started = Instant::now();
        let ids: Vec<_> = (1..=N)
            .map(|i| {
                let addr = IpAddr::from([10, 78, 0, i]);
                engine.add_target(
                    addr,
                    9000,
                    &[
                        check(CheckKind::Tcp { port: 9000 }, 1000, 400, 1, 1),
                        check(CheckKind::Http(http(9000, "/")), 1000, 400, 1, 1),
                    ],
                )
            })
            .collect();
        let all = collect(&mut engine, Duration::from_secs(5), |r| {
            r.len() >= 2 * ids.len()
        });
        let elapsed = started.elapsed();
        assert_eq!(all.len(), 2 * ids.len(), "{all:?}");
        for r in &all {
            if r.check == 0 {
                assert!(r.ok, "{r:?}");
            } else {
                assert_eq!(r.detail, "timeout after 400 ms waiting for the response");
                assert!(r.latency >= Duration::from_millis(400), "early: {r:?}");
            }
        }
        // One after another, the HTTP timeouts alone would take 150 x 0.4 s = 60 s; at the
        // same time, 0.4 s: none gives up before its timeout.
        assert!(
            elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(1000),
            "{N} targets took {elapsed:?}"
        );
        // And the next round comes one interval later, for every target again.
        let more = collect(&mut engine, Duration::from_secs(3), |r| {
            r.len() >= 2 * ids.len()
        });
        assert_eq!(more.len(), 2 * ids.len());
        // Removing targets stops their results.
        for id in &ids {
            assert!(engine.remove_target(*id));
        }
        assert!(engine.is_empty());
        assert_eq!(engine.next_timeout(), None);
    });
}

// ---- The same checks over IPv6 (2001:db8:77::1 -> 2001:db8:77::2 on the same veth pair) ----

fn b6_addr() -> IpAddr {
    B6.parse().unwrap()
}

/// `nft` in namespace `ns`, asserted.
fn nft_in(ns: &str, rule: &str) {
    run("ip", &["netns", "exec", ns, "nft", rule]);
}

/// Polls until `n` results came or `limit` passed; every one of them.
fn next_results(engine: &mut Engine, n: usize, limit: Duration) -> Vec<CheckResult> {
    let r = collect(engine, limit, |r| r.len() >= n);
    assert!(r.len() >= n, "{n} results expected within {limit:?}: {r:?}");
    r
}

#[test]
fn icmpv6_echo_passes_ignores_other_icmpv6_and_fails_when_dropped_or_rejected() {
    if !root_or_skip("icmpv6_echo_passes_ignores_other_icmpv6_and_fails_when_dropped_or_rejected") {
        return;
    }
    let bed = Testbed::new();
    let (a_name, b_name) = (bed.a.name.clone(), bed.b.name.clone());
    // Other ICMPv6 on the same host while we check: somebody else's pings to the same peer
    // (echo replies with another identifier), the peer pinging us (echo requests), and
    // neighbour discovery (the caches flushed, so solicitations and advertisements flow).
    let _their_ping = bed
        .a
        .spawn(&["ping", "-6", "-q", "-i", "0.05", "-c", "100", B6]);
    let _peer_ping = bed
        .b
        .spawn(&["ping", "-6", "-q", "-i", "0.05", "-c", "100", A6]);
    bed.a.run(move || {
        let mut engine = engine();
        let c = check(CheckKind::Icmp, 200, 150, 1, 3);
        let id = engine.add_target(b6_addr(), 0, std::slice::from_ref(&c));
        let mut health = Health::new();
        health.add_server(id, vec![CheckPolicy::of(&c)], State::Unknown);
        // Ten runs, every one answered: the noise neither fails nor doubles a result.
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(6);
        while seen < 10 {
            assert!(Instant::now() < deadline, "only {seen} echo replies");
            if seen == 5 {
                run(
                    "ip",
                    &["netns", "exec", &a_name, "ip", "-6", "neigh", "flush", "dev", "va"],
                );
            }
            let r = next_results(&mut engine, 1, Duration::from_secs(2));
            for r in r {
                assert!(r.ok, "{r:?}");
                assert_eq!(r.detail, "echo reply");
                health.record(&r.target, r.check, r.ok, &r.detail);
                seen += 1;
            }
        }
        assert_eq!(health.state(&id), Some(State::Up));

        // The peer drops echo requests: down after exactly `fall` timeouts.
        nft_in(&b_name, "add table inet lvsmon");
        nft_in(
            &b_name,
            "add chain inet lvsmon input { type filter hook input priority 0; policy accept; }",
        );
        nft_in(
            &b_name,
            "add rule inet lvsmon input icmpv6 type echo-request drop",
        );
        let mut failures = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        let transition = loop {
            assert!(Instant::now() < deadline, "never down");
            let mut got = None;
            for r in next_results(&mut engine, 1, Duration::from_secs(2)) {
                if !r.ok {
                    failures += 1;
                    assert_eq!(r.detail, "timeout after 150 ms waiting for the echo reply");
                    assert!(r.latency >= Duration::from_millis(150), "early: {r:?}");
                }
                got = got.or(health.record(&r.target, r.check, r.ok, &r.detail));
            }
            if let Some(t) = got {
                break t;
            }
        };
        assert_eq!((transition.from, transition.to), (State::Up, State::Down));
        assert_eq!(failures, 3, "down after exactly `fall` failures");

        // Rejected with "administratively prohibited": the error quoting our request fails
        // the run at once, not at its timeout.
        nft_in(&b_name, "flush chain inet lvsmon input");
        nft_in(
            &b_name,
            "add rule inet lvsmon input icmpv6 type echo-request reject with icmpv6 type admin-prohibited",
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let r = loop {
            assert!(Instant::now() < deadline, "no rejection seen");
            let r = next_results(&mut engine, 1, Duration::from_secs(2));
            if let Some(r) = r.into_iter().find(|r| r.detail.starts_with("destination")) {
                break r;
            }
        };
        assert!(!r.ok);
        assert_eq!(r.detail, "destination unreachable (ICMP type 1 code 1)");
        assert!(r.latency < Duration::from_millis(150), "{r:?}");
    });
}

#[test]
fn tcp_connect_and_syn_probe_over_ipv6() {
    if !root_or_skip("tcp_connect_and_syn_probe_over_ipv6") {
        return;
    }
    let bed = Testbed::new();
    let listener = silent_listener(&bed.b, &format!("[{B6}]:8090"));
    listener.set_nonblocking(true).expect("nonblocking");
    bed.a.run(|| {
        let mut engine = engine();
        // One connect run each within the test (the accept count below relies on it).
        let tcp = |port| [check(CheckKind::Tcp { port }, 30_000, 500, 1, 1)];
        let syn = |port| [check(CheckKind::Syn { port }, 300, 200, 1, 1)];
        let nobody: IpAddr = "2001:db8:77::99".parse().unwrap();
        let ids = [
            engine.add_target(b6_addr(), 8090, &tcp(8090)),
            engine.add_target(b6_addr(), 8091, &tcp(8091)),
            engine.add_target(b6_addr(), 8090, &syn(8090)),
            engine.add_target(b6_addr(), 8091, &syn(8091)),
            // Nobody has this address: neighbour discovery fails, no answer at all.
            engine.add_target(nobody, 8090, &syn(8090)),
        ];
        let r = first_results(&mut engine, &ids, Duration::from_secs(3));
        assert_eq!((r[0].ok, r[0].detail.as_str()), (true, "connected"));
        assert!(
            !r[1].ok && r[1].detail.starts_with("connect: Connection refused"),
            "{:?}",
            r[1]
        );
        // The SYN-ACK and the RST answer a segment whose checksum we computed over the IPv6
        // pseudo-header: the peer's kernel would have dropped it silently otherwise.
        assert_eq!(
            (r[2].ok, r[2].detail.as_str()),
            (true, "SYN-ACK: listening")
        );
        assert!(
            !r[3].ok && r[3].detail == "connect: Connection refused (RST to the SYN)",
            "{:?}",
            r[3]
        );
        assert!(
            !r[4].ok && r[4].detail.starts_with("timeout after 200 ms"),
            "{:?}",
            r[4]
        );
        // Later runs keep matching their own replies.
        let again = first_results(&mut engine, &ids[2..4], Duration::from_secs(3));
        assert!(again[0].ok && !again[1].ok, "{again:?}");
    });
    // The connect checks reached the accept queue; the SYN probes never did (our kernel reset
    // each SYN-ACK). Exactly the connect checks' connections are there.
    let mut accepted = 0;
    while listener.accept().is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, 1, "only the connect check completed a handshake");
}

#[test]
fn http_https_and_script_over_ipv6_bracket_the_host_and_send_no_sni_for_an_address() {
    if !root_or_skip(
        "http_https_and_script_over_ipv6_bracket_the_host_and_send_no_sni_for_an_address",
    ) {
        return;
    }
    let dir = DirGuard(tempdir("tls6"));
    let (ca, cert, key) = make_certs(&dir.0);
    let bed = Testbed::new();
    let _http80 = python_http_at(&bed, B6, 80, None);
    let _http8000 = python_http_at(&bed, B6, 8000, None);
    let _https = python_http_at(&bed, B6, 8443, Some((&cert, &key)));
    bed.a.run(|| {
        let mut engine = engine();
        let t = |k| [check(k, 1000, 800, 1, 1)];
        let with_body = |port, path: &str, body: &str| {
            let mut h = http(port, path);
            h.body = Some(body.into());
            h
        };
        let mut own_ca = with_body(8443, "/sni", "sni=None;");
        own_ca.ca_file = Some(ca.clone());
        let mut by_name = with_body(8443, "/sni", "sni=www.lvsmon.test;");
        by_name.ca_file = Some(ca.clone());
        by_name.host = Some("www.lvsmon.test".into());
        let failing = http(8000, "/fail");
        // A script check doing the same over IPv6: the address comes bare, the script adds
        // the brackets a URL needs.
        let curl = dir.0.join("curl6");
        std::fs::write(
            &curl,
            "#!/bin/sh\nexec curl -sS -f -m 1 \"http://[$LVS_SERVER_ADDR]:$LVS_SERVER_PORT/ok\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&curl, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let script = CheckKind::Script(lvs_monitord::config::ScriptCheck {
            command: curl,
            args: vec![],
        });
        let ids = [
            engine.add_target(
                b6_addr(),
                80,
                &t(CheckKind::Http(with_body(
                    80,
                    "/host",
                    "host=[2001:db8:77::2];",
                ))),
            ),
            engine.add_target(
                b6_addr(),
                8000,
                &t(CheckKind::Http(with_body(
                    8000,
                    "/host",
                    "host=[2001:db8:77::2]:8000;",
                ))),
            ),
            engine.add_target(b6_addr(), 8000, &t(CheckKind::Http(failing))),
            // Verified against the certificate's IPv6 address, and no SNI sent for it.
            engine.add_target(b6_addr(), 8443, &t(CheckKind::Https(own_ca))),
            // A host name is sent as SNI, and verified.
            engine.add_target(b6_addr(), 8443, &t(CheckKind::Https(by_name))),
            engine.add_target(b6_addr(), 8000, &t(script)),
        ];
        let r = first_results(&mut engine, &ids, Duration::from_secs(5));
        for (i, r) in r.iter().enumerate() {
            if i == 2 {
                assert!(!r.ok, "{r:?}");
                assert_eq!(
                    r.detail,
                    "wrong status: 500 Internal Server Error, expected 200"
                );
            } else if i == 5 {
                assert_eq!(
                    (r.ok, r.detail.as_str()),
                    (true, "exit status 0: all healthy")
                );
            } else {
                assert!(r.ok, "check {i}: {r:?}");
                assert!(r.detail.starts_with("status 200, body ok"), "{r:?}");
            }
        }
    });
}

#[test]
fn dns_over_ipv6() {
    // Over UDP to [2001:db8:77::2]:5353; ICMPv6 port unreachable refuses the closed port.
    dns_right_and_wrong_address_at("dns_over_ipv6", B6);
}

/// Drops CAP_NET_RAW from the calling thread's effective capabilities (capabilities are per
/// thread on Linux): the thread can no longer open raw sockets, as a monitord run without the
/// privilege.
fn drop_net_raw_in_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version-3 header reads two data structs into `data`.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_RAW);
    // SAFETY: capset reads the header and two data structs; pid 0 is this thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn without_cap_net_raw_icmp_and_icmpv6_use_ping_sockets() {
    if !root_or_skip("without_cap_net_raw_icmp_and_icmpv6_use_ping_sockets") {
        return;
    }
    let bed = Testbed::new();
    // Unprivileged ICMP datagram sockets (both families) for every group in `a`.
    bed.a.exec(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ping_group_range=0 2147483647",
    ]);
    bed.a.run(|| {
        drop_net_raw_in_this_thread();
        let raw = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet6,
            nix::sys::socket::SockType::Raw,
            nix::sys::socket::SockFlag::empty(),
            nix::sys::socket::SockProtocol::IcmpV6,
        );
        assert!(raw.is_err(), "raw sockets are refused now");
        let mut engine = engine();
        let icmp = [check(CheckKind::Icmp, 300, 200, 1, 1)];
        let nobody: IpAddr = "2001:db8:77::99".parse().unwrap();
        let ids = [
            engine.add_target(b_addr(), 0, &icmp),
            engine.add_target(b6_addr(), 0, &icmp),
            engine.add_target(nobody, 0, &icmp),
        ];
        let r = first_results(&mut engine, &ids, Duration::from_secs(3));
        assert_eq!((r[0].ok, r[0].detail.as_str()), (true, "echo reply"));
        assert_eq!((r[1].ok, r[1].detail.as_str()), (true, "echo reply"));
        assert!(!r[2].ok, "{:?}", r[2]);
        // Later runs keep matching (the kernel's identifier, our sequence numbers).
        let again = first_results(&mut engine, &ids[..2], Duration::from_secs(3));
        assert!(again.iter().all(|r| r.ok), "{again:?}");
    });
}
