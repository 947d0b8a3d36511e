//! lvs-webmon over real TLS, without a browser and without root: the redirect-only plaintext
//! listener, login and lockout, CSRF, limits against oversized and slow requests, the
//! connection bound, path traversal, security headers and `/metrics`.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{SOON, TOKEN, Webmon, openmetrics, parse_response, read_all, wait_for};

const ADMIN_PW: &str = "admin-password-1";
const VIEWER_PW: &str = "viewer-password-1";
/// The `request_timeout` support's `Webmon::start` configures.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn start(extra: &str) -> Webmon {
    Webmon::start(
        None,
        extra,
        &[
            ("admin", "admin", ADMIN_PW),
            ("viewer", "viewer", VIEWER_PW),
        ],
    )
}

fn plain(port: u16, req: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    String::from_utf8_lossy(&read_all(&mut s)).into_owned()
}

#[test]
fn plain_http_gets_only_a_redirect() {
    let w = start("");
    for req in [
        "GET / HTTP/1.1\r\nHost: console.example:80\r\n\r\n".to_owned(),
        "GET /metrics HTTP/1.1\r\nHost: console.example\r\nAuthorization: Bearer x\r\n\r\n".to_owned(),
        "GET /api/state HTTP/1.1\r\n\r\n".to_owned(),
        "POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 36\r\n\r\nusername=admin&password=admin-passwo".to_owned(),
        format!("GET /static/../../etc/passwd HTTP/1.1\r\nHost: evil\r\nX: {}\r\n\r\n", "a"),
    ] {
        let raw = plain(w.plain_port, &req);
        let r = parse_response(raw.as_bytes()).unwrap_or_else(|| panic!("no response: {raw:?}"));
        assert_eq!(r.status, 301, "{raw}");
        let loc = r.header("location").expect("Location");
        assert!(loc.starts_with("https://"), "{loc}");
        assert!(loc.contains(&format!(":{}/", w.port)), "{loc}");
        assert!(!r.body.contains('{') && !r.body.contains("# EOF") && !r.body.contains("<html"), "{raw}");
        assert_eq!(r.header("set-cookie"), None);
    }
    let r = parse_response(
        plain(
            w.plain_port,
            "GET /x HTTP/1.1\r\nHost: console.example:80\r\n\r\n",
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("https://console.example:{}/x", w.port).as_str())
    );
    // A Host header that would inject a header is not echoed.
    let raw = plain(w.plain_port, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
    assert!(!raw.contains("a b"), "{raw}");
}

#[test]
fn security_headers_on_every_response() {
    let w = start("");
    for path in [
        "/",
        "/login",
        "/static/app.js",
        "/api/state",
        "/nope",
        "/metrics",
    ] {
        let r = w.get(path, None);
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert!(
            r.header("strict-transport-security")
                .is_some_and(|h| h.starts_with("max-age=")),
            "{path}"
        );
    }
    // Pages hold no inline script.
    let (cookie, _) = w.session("viewer", VIEWER_PW);
    for body in [w.get("/login", None).body, w.get("/", Some(&cookie)).body] {
        assert!(
            !body.contains("<script>") && !body.contains("onclick") && !body.contains("style="),
            "{body}"
        );
    }
}

#[test]
fn login_logout_and_sessions() {
    let w = start("");
    let r = w.login("admin", "wrong-password");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.cookie(), None);
    assert!(r.body.contains("Wrong user name or password"), "{}", r.body);
    assert_eq!(w.login("nobody", ADMIN_PW).status, 401);

    let r = w.login("admin", ADMIN_PW);
    assert_eq!(r.status, 303, "{r:?}");
    let set = r.header("set-cookie").expect("cookie").to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = r.cookie().unwrap();
    assert_eq!(w.get("/", Some(&cookie)).status, 200);
    assert_eq!(w.get("/", None).status, 303);
    assert_eq!(w.get("/api/state", None).status, 401);
    let st = w.get("/api/state", Some(&cookie));
    assert_eq!(st.status, 200);
    let v: serde_json::Value = serde_json::from_str(&st.body).expect("json");
    assert!(v["services"].is_array() && v["directors"].is_array(), "{v}");

    let (cookie, csrf) = w.session("admin", ADMIN_PW);
    // Logout needs the CSRF token too.
    let r = w.request(
        "POST",
        "/logout",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "",
    );
    assert_eq!(r.status, 403);
    assert_eq!(w.get("/api/session", Some(&cookie)).status, 200);
    let r = w.request(
        "POST",
        "/logout",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303);
    assert_eq!(w.get("/api/session", Some(&cookie)).status, 401);
    // A made-up cookie is nobody.
    assert_eq!(w.get("/api/state", Some("lvs_session=00ff")).status, 401);
}

/// `curl -g -6 -k -i` of `url`: the status line and headers.
fn curl6(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-g", "-6", "-k", "-s", "-i", "-m", "10", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn served_over_ipv6_loopback() {
    let w = Webmon::start_on(
        std::net::Ipv6Addr::LOCALHOST.into(),
        None,
        "",
        &[("admin", "admin", ADMIN_PW)],
    );
    let (cookie, _) = w.session("admin", ADMIN_PW);
    let st = w.get("/api/state", Some(&cookie));
    assert_eq!(st.status, 200, "{st:?}");
    let v: serde_json::Value = serde_json::from_str(&st.body).expect("json");
    assert!(v["services"].is_array(), "{v}");

    // Any HTTPS client reaches it by the bracketed address; the plaintext listener sends
    // browsers to the same bracketed address.
    let page = curl6(&format!("https://[::1]:{}/login", w.port));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let redirect = curl6(&format!("http://[::1]:{}/x", w.plain_port));
    let location = format!("location: https://[::1]:{}/x", w.port);
    assert!(
        redirect.to_ascii_lowercase().contains(&location),
        "{redirect}"
    );
}

/// `listen = "[::]:PORT"` answers over both families (IPv4 as mapped addresses, unless the
/// host sets net.ipv6.bindv6only, which makes such a socket IPv6-only).
#[test]
fn the_ipv6_wildcard_serves_both_families() {
    let w = Webmon::start_on(std::net::Ipv6Addr::UNSPECIFIED.into(), None, "", &[]);
    let page = curl6(&format!("https://[::1]:{}/login", w.port));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let v6only =
        std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|s| s.trim() == "1");
    if v6only {
        println!("net.ipv6.bindv6only is 1: the IPv4 half is not checked");
        return;
    }
    let out = std::process::Command::new("curl")
        .args(["-4", "-k", "-s", "-i", "-m", "10"])
        .arg(format!("https://127.0.0.1:{}/login", w.port))
        .output()
        .expect("curl");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with("HTTP/1.1 200"), "{page} {out:?}");
}

#[test]
fn lockout_per_user_and_per_address() {
    let w = start("max_failures_user = 3\nmax_failures_addr = 6\nlockout = 600\n");
    for _ in 0..3 {
        assert_eq!(w.login("admin", "guess").status, 401);
    }
    // Locked: even the right password is refused now.
    let r = w.login("admin", ADMIN_PW);
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
    assert_eq!(r.cookie(), None);
    // Another user from the same address still gets in (3 failures < 6)...
    assert_eq!(w.login("viewer", VIEWER_PW).status, 303);
    // ... until the address itself reaches its limit.
    for name in ["x1", "x2", "x3"] {
        assert_eq!(w.login(name, "guess").status, 401);
    }
    assert_eq!(w.login("viewer", VIEWER_PW).status, 429);
    assert!(w.log().contains("event=login_lockout"), "{}", w.log());
}

#[test]
fn state_changes_need_csrf_and_the_admin_role() {
    let w = start("");
    let (cookie, csrf) = w.session("admin", ADMIN_PW);
    let body = r#"{"service":"tcp/192.0.2.10:80","server":"10.0.0.1:80"}"#;
    let json = ("Content-Type", "application/json");
    // No token, a wrong token, a foreign Origin: refused before anything is done.
    let r = w.request(
        "POST",
        "/api/action/drain",
        &[("Cookie", &cookie), json],
        body,
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("CSRF"), "{}", r.body);
    let r = w.request(
        "POST",
        "/api/action/drain",
        &[("Cookie", &cookie), json, ("X-CSRF-Token", "0000")],
        body,
    );
    assert_eq!(r.status, 403);
    let r = w.request(
        "POST",
        "/api/action/drain",
        &[
            ("Cookie", &cookie),
            json,
            ("X-CSRF-Token", &csrf),
            ("Origin", "https://evil.example"),
        ],
        body,
    );
    assert_eq!(r.status, 403);
    // With the token the action is tried: no director runs here, so the daemon's error comes back.
    let r = w.request(
        "POST",
        "/api/action/drain",
        &[("Cookie", &cookie), json, ("X-CSRF-Token", &csrf)],
        body,
    );
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.body.contains("lvs-director"), "{}", r.body);
    // Bad input is a 400 with a reason.
    let r = w.request(
        "POST",
        "/api/action/weight",
        &[("Cookie", &cookie), json, ("X-CSRF-Token", &csrf)],
        r#"{"service":"nonsense","server":"x"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("PROTO/VIP:PORT"), "{}", r.body);
    // No session at all.
    let r = w.request(
        "POST",
        "/api/action/drain",
        &[json, ("X-CSRF-Token", &csrf)],
        body,
    );
    assert_eq!(r.status, 401);
    // A viewer with a valid token of their own is still refused.
    let (vcookie, vcsrf) = w.session("viewer", VIEWER_PW);
    let r = w.request(
        "POST",
        "/api/action/drain",
        &[("Cookie", &vcookie), json, ("X-CSRF-Token", &vcsrf)],
        body,
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("viewers"), "{}", r.body);
    assert!(
        w.log().contains("event=action_refused user=viewer"),
        "{}",
        w.log()
    );
    assert!(
        w.log()
            .contains("event=admin_action user=admin action=drain"),
        "{}",
        w.log()
    );
}

#[test]
fn oversized_requests_are_cut_off() {
    let w = start("");
    // Headers beyond max_header_bytes (4096).
    let req = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let raw = w.raw(req.as_bytes());
    let r = parse_response(&raw).expect("a response");
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"));
    // Endless headers without an end are cut off too, not buffered: a 431 once they pass
    // max_header_bytes, long before the 100 KB the client would send.
    let mut s = w.connect();
    let head = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    let fields = (0..100).map(|i| format!("X-{i}: {}\r\n", "z".repeat(1000)).into_bytes());
    let rest = send_until_answered(&mut s, std::iter::once(head).chain(fields));
    let r = parse_response(&rest)
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&rest)));
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"));
    // A body beyond max_body_bytes (8192).
    let raw = w.raw(
        b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\nusername=",
    );
    assert_eq!(parse_response(&raw).expect("a response").status, 413);
    // Too many headers.
    let mut req = String::from("GET / HTTP/1.1\r\n");
    for i in 0..100 {
        req.push_str(&format!("X-{i}: 1\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(
        parse_response(&w.raw(req.as_bytes()))
            .expect("a response")
            .status,
        431
    );
    // Chunked bodies are refused rather than parsed.
    let raw = w.raw(b"POST /login HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(parse_response(&raw).expect("a response").status, 411);
}

/// Sends `pieces` one at a time over `s`, looking for an answer after each one (a 50 ms
/// read timeout paces them); once the server answers, reads on until it closes and returns
/// all it said. Fails if the server never answers, or closes without a word.
fn send_until_answered(s: &mut support::Tls, pieces: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s.sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    for (i, piece) in pieces.into_iter().enumerate() {
        // A failed write means the server is gone: what it said before is still readable.
        let wrote = s.write_all(&piece).and_then(|()| s.flush()).is_ok();
        match s.read(&mut buf) {
            Ok(n) => {
                said.extend_from_slice(&buf[..n]);
                s.sock.set_read_timeout(Some(SOON)).unwrap();
                said.extend(read_all(s));
                return said;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the connection failed after {i} pieces: {e}"),
        }
        assert!(wrote, "cut off without an answer after {i} pieces");
    }
    panic!("no answer to any of the pieces");
}

#[test]
fn slow_clients_are_cut_off() {
    let w = start("");
    // The window every cut-off must fall in, from before the connect: not before
    // request_timeout, and not much after it.
    let in_window = |since: Instant, what: &str| {
        let t = since.elapsed();
        assert!(
            t >= REQUEST_TIMEOUT - Duration::from_millis(100)
                && t < REQUEST_TIMEOUT + Duration::from_secs(6),
            "{what} after {t:?} (request_timeout {REQUEST_TIMEOUT:?})"
        );
    };
    // Half a request, then silence: closed after request_timeout (2 s) with a 408.
    let opened = Instant::now();
    let mut s = w.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    s.flush().unwrap();
    let raw = read_all(&mut s);
    in_window(opened, "the half request's 408 and close");
    let r = parse_response(&raw).expect("a 408 before the close");
    assert_eq!(r.status, 408);
    // A TCP connection that never starts TLS is closed too.
    let opened = Instant::now();
    let mut t = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    t.set_read_timeout(Some(SOON)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(t.read(&mut buf).expect("closed, not timed out"), 0);
    in_window(opened, "the silent TCP connection's close");
    // Dripping one byte at a time does not extend the deadline: it runs from the accept,
    // whatever arrives meanwhile. Specified outcome: a 408 at request_timeout (2 s) after the
    // connection opened: not before (the deadline is not cut short) and long before the drip
    // would end (about 20 s).
    let opened = Instant::now();
    let mut s = w.connect();
    let drip = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
        .iter()
        .chain([b'a'; 400].iter())
        .map(|b| vec![*b]);
    let raw = send_until_answered(&mut s, drip);
    in_window(opened, "the dripping connection's 408 and close");
    let r = parse_response(&raw).unwrap_or_else(|| panic!("not a response: {raw:?}"));
    assert_eq!(r.status, 408, "{raw:?}");
}

#[test]
fn connections_are_bounded() {
    // Idle connections must outlive the whole check: a long request timeout.
    let w = start("max_connections = 3\nrequest_timeout = 120\n");
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", w.port)).unwrap())
        .collect();
    // Wait until the daemon has accepted them, then the next is closed at once.
    wait_for("a connection beyond the limit to be closed", SOON, || {
        let mut t = TcpStream::connect(("127.0.0.1", w.port)).ok()?;
        t.set_read_timeout(Some(Duration::from_millis(1500))).ok()?;
        let mut b = [0u8; 1];
        matches!(t.read(&mut b), Ok(0)).then_some(())
    });
    drop(idle);
    // After they go (closed or timed out), new clients are served again.
    wait_for("service after the idle connections are gone", SOON, || {
        let raw = w.raw(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        parse_response(&raw).filter(|r| r.status == 200).map(|_| ())
    });
}

#[test]
fn no_path_traversal() {
    let w = start("");
    let (cookie, _) = w.session("viewer", VIEWER_PW);
    for path in [
        "/static/../../../../etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/..%2f..%2fCargo.toml",
        "/static/..\\..\\etc\\passwd",
        "//etc/passwd",
        "/static/app.js/../../../etc/passwd",
        "/etc/passwd",
        "/static/",
        "/static/webmon.toml",
    ] {
        let r = w.get(path, Some(&cookie));
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.status);
        assert!(
            !r.body.contains("root:") && !r.body.contains("[package]"),
            "{path}"
        );
    }
    assert_eq!(w.get("/static/app.js", None).status, 200);
}

#[test]
fn metrics_need_the_token_and_are_openmetrics() {
    let w = start("");
    let r = w.get("/metrics", None);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    assert!(!r.body.contains("# EOF"));
    let r = w.request(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer wrong-token-wrong-token")],
        "",
    );
    assert_eq!(r.status, 401);
    // A session cookie is not enough either.
    let (cookie, _) = w.session("admin", ADMIN_PW);
    assert_eq!(w.get("/metrics", Some(&cookie)).status, 401);
    let r = w.request(
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text"))
    );
    let n = openmetrics::check(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
    assert!(n >= 4, "{}", r.body);
    assert!(
        r.body.contains("lvs_daemon_up{daemon=\"director\"} 0"),
        "{}",
        r.body
    );
}

#[test]
fn add_user_reads_the_password_from_stdin_and_checks_it() {
    let w = start("");
    let cfg = w.dir.join("webmon.toml");
    let e = support::add_user(&cfg, "carol", "admin", "short").unwrap_err();
    assert!(e.contains("too short"), "{e}");
    let e = support::add_user(&cfg, "bad name", "admin", "long-enough-pw").unwrap_err();
    assert!(e.contains("bad user name"), "{e}");
    support::add_user(&cfg, "carol", "admin", "carol-password").unwrap();
    let users = std::fs::read_to_string(w.dir.join("users")).unwrap();
    assert!(users.contains("carol admin $argon2id$"), "{users}");
    assert!(!users.contains("carol-password"));
    // The running daemon picks the new user up without a restart.
    assert_eq!(w.login("carol", "carol-password").status, 303);
}

#[test]
fn bad_config_is_refused_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("lvs-webmon-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("webmon.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:1\"\nmax_connections = 0\n").unwrap();
    let out = std::process::Command::new(support::bin())
        .arg("--check-config")
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("webmon.toml:2:"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let w = start("");
    let raw = w.raw(
        b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\nGET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw);
    let first = text.find("HTTP/1.1 200").expect("the first answer");
    let second = text.find("HTTP/1.1 404").expect("the second answer");
    assert!(first < second, "{text}");
}

#[test]
fn sighup_reloads_and_a_bad_file_changes_nothing() {
    let w = start("");
    let cfg = w.dir.join("webmon.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(w.child.id()).unwrap());
    let metrics = |token: &str| {
        w.request(
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        )
        .status
    };
    // A bad file: refused with its line, the old settings stay.
    std::fs::write(&cfg, format!("{good}\nlockout = -1\n")).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("event=config_rejected", SOON, || {
        w.log().contains("event=config_rejected").then_some(())
    });
    assert!(
        w.log().contains("webmon.toml") && w.log().contains("line="),
        "{}",
        w.log()
    );
    assert_eq!(metrics(TOKEN), 200);
    // A good one with a new token: the old token stops working, the new one works.
    let new_token = "another-metrics-token-42";
    std::fs::write(&cfg, good.replace(TOKEN, new_token)).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("the new token", SOON, || {
        (metrics(new_token) == 200).then_some(())
    });
    assert_eq!(metrics(TOKEN), 401);
}

/// `openssl s_client` offering exactly one protocol version (`-tls1`, `-tls1_1`, `-tls1_2`),
/// with the legacy security level so that OpenSSL itself is willing to speak TLS 1.0 and 1.1
/// (Debian's default level 2 would refuse them in the client, proving nothing about the
/// server). `-msg` prints every handshake message, so the output shows what was offered and
/// what came back.
fn s_client(port: u16, version: &str) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            "localhost",
            version,
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
            "-msg",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client (scripts/test.sh installs openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tls_1_3_and_1_2_only() {
    let w = start("");
    for (v, want) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let (status, got) = w.get_with(w.client_config(&[v]), "/login");
        assert_eq!((status, got), (200, Some(want)));
    }
    // rustls cannot even offer older versions: openssl can. The control first: the same
    // invocation with -tls1_2 completes its handshake, so a failure below is not the
    // client's (a missing legacy cipher, a security level refusing the version).
    let (ok, text) = s_client(w.port, "-tls1_2");
    assert!(
        ok && text.contains("Protocol  : TLSv1.2") && text.contains("New, TLSv1.2, Cipher is"),
        "openssl s_client -tls1_2 did not complete a handshake:\n{text}"
    );
    for (flag, name) in [("-tls1_1", "TLS 1.1"), ("-tls1", "TLS 1.0")] {
        let (ok, text) = s_client(w.port, flag);
        // The client really offered the old version: its ClientHello went out as one...
        assert!(
            text.contains(&format!(">>> {name}, Handshake")) && text.contains("ClientHello"),
            "openssl {flag} sent no {name} ClientHello:\n{text}"
        );
        // ...and the server ended the handshake with a fatal alert (not a client-side
        // "no protocols available", not a timeout): no cipher was agreed.
        assert!(!ok, "{name} was accepted:\n{text}");
        let alert = text
            .lines()
            .find(|l| l.starts_with("<<< ") && l.contains("Alert") && l.contains("fatal"))
            .unwrap_or_else(|| panic!("no fatal alert from the server for {name}:\n{text}"));
        assert!(text.contains("Cipher is (NONE)"), "{text}");
        assert!(!text.contains("no protocols available"), "{text}");
        println!("{name} ClientHello refused by lvs-webmon: {alert}");
    }
}
