//! Layer-7 hardening, end to end: what a real server receives byte for byte (hop-by-hop
//! fields, client addresses, upgrades, normalised paths), how server connections are shared
//! (NTLM, stray bytes, retries), and the per-service connection cap. The real servers are
//! `raw.py`, which records every byte each of its connections read; one worker thread, so that
//! every client meets the same idle server connections.

mod l7_common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use l7_common::{L7Bed, RS, SOON, VIP, connect, read_all, read_response, send, wait_for};

const PEER: &str = "198.51.100.2";

fn config() -> String {
    format!(
        r#"
[[content_service]]
address = "{VIP}"
port = 80
default_pool = "a"

[[content_service.rule]]
name = "admin"
path_prefix = "/admin"
pool = "b"

[[content_service.rule]]
name = "gets"
methods = ["GET"]
path_prefix = "/m/"
pool = "b"

[[content_service]]
address = "{VIP}"
port = 81
forwarded_for = "append"
default_pool = "a"

[[content_service]]
address = "{VIP}"
port = 82
max_connections = 2
default_pool = "a"

[[pool]]
name = "a"
servers = [{{ address = "{r1}", port = 8081 }}]

[[pool]]
name = "b"
servers = [{{ address = "{r2}", port = 8081 }}]
"#,
        r1 = RS[0],
        r2 = RS[1],
    )
}

/// The testbed with `raw.py` "a" on r1:8081 and "b" on r2:8081: (bed, a's records, b's).
fn bed(test: &str) -> Option<(L7Bed, PathBuf, PathBuf)> {
    let mut bed = L7Bed::start_workers(test, &config(), 1)?;
    let a = bed.raw_server("r1", 8081, "a");
    let b = bed.raw_server("r2", 8081, "b");
    wait_for("the content service", SOON, || {
        (bed.curl(&[&format!("http://{VIP}/ready")]).0 == 0).then_some(())
    });
    Some((bed, a, b))
}

/// Everything the server's connections received, as (connection, bytes), in order.
fn records(dir: &Path) -> Vec<(u32, Vec<u8>)> {
    let mut v: Vec<(u32, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read the records")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let k = p
                .file_name()?
                .to_str()?
                .strip_suffix(".raw")?
                .parse()
                .ok()?;
            Some((k, std::fs::read(&p).ok()?))
        })
        .collect();
    v.sort();
    v
}

/// The request head the server received for `target` (the first one, byte for byte).
fn received(dir: &Path, target: &str) -> String {
    let line = format!(" {target} HTTP/1.1\r\n");
    wait_for(&format!("{target} at the server"), SOON, || {
        records(dir).into_iter().find_map(|(_, bytes)| {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let at = text.find(&line)?;
            let start = text[..at].rfind("\r\n\r\n").map_or(0, |p| p + 4);
            let end = text[at..].find("\r\n\r\n")? + at + 4;
            Some(text[start..end].to_owned())
        })
    })
}

/// One request on a new connection to VIP:`port`: (status, body).
fn once(bed: &L7Bed, port: u16, req: &'static [u8]) -> (u16, String) {
    bed.in_client(move || {
        let mut s = connect(port);
        send(&mut s, req);
        let (status, body, _) = read_response(&mut s, Vec::new());
        (status, body)
    })
}

/// Send `req` on a new connection to VIP:`port`: it must be answered 200, and the server
/// must have received exactly `head` as the head of `target`.
fn forwarded_as(bed: &L7Bed, port: u16, req: &'static [u8], dir: &Path, target: &str, head: &str) {
    let (status, body) = once(bed, port, req);
    assert_eq!(status, 200, "{body}");
    assert_eq!(received(dir, target), head);
}

/// The server connection an answer of `raw.py` came on.
fn conn_of(body: &str) -> String {
    body.split_whitespace()
        .find(|w| w.starts_with("conn="))
        .unwrap_or_else(|| panic!("no conn= in {body:?}"))
        .to_owned()
}

#[test]
fn hop_by_hop_fields_stay_behind() {
    let Some((bed, a, _b)) = bed("hop_by_hop_fields_stay_behind") else {
        return;
    };
    const REQ: &[u8] = b"GET /hop HTTP/1.1\r\nHost: h.example\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Keep: yes\r\n\r\n";
    forwarded_as(
        &bed,
        80,
        REQ,
        &a,
        "/hop",
        &format!(
            "GET /hop HTTP/1.1\r\nHost: h.example\r\nX-Keep: yes\r\nX-Forwarded-For: {PEER}\r\nConnection: keep-alive\r\n\r\n"
        ),
    );
    // Naming a field every recipient needs as hop-by-hop is refused.
    let (status, _) = once(
        &bed,
        80,
        b"POST /cl HTTP/1.1\r\nHost: h.example\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(status, 400);
}

#[test]
fn client_supplied_addresses_are_replaced_or_appended_to() {
    let Some((bed, a, _b)) = bed("client_supplied_addresses_are_replaced_or_appended_to") else {
        return;
    };
    // The default, forwarded_for = "replace": only the address the director saw.
    forwarded_as(
        &bed,
        80,
        b"GET /replaced HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Keep: yes\r\n\r\n",
        &a,
        "/replaced",
        &format!(
            "GET /replaced HTTP/1.1\r\nHost: h.example\r\nX-Keep: yes\r\nX-Forwarded-For: {PEER}\r\nConnection: keep-alive\r\n\r\n"
        ),
    );
    // forwarded_for = "append": the client's chain is kept, the director's entry appended.
    forwarded_as(
        &bed,
        81,
        b"GET /appended HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\r\n",
        &a,
        "/appended",
        &format!(
            "GET /appended HTTP/1.1\r\nHost: h.example\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6, {PEER}\r\nConnection: keep-alive\r\n\r\n"
        ),
    );
}

#[test]
fn an_h2c_upgrade_does_not_escape_routing() {
    let Some((bed, a, b)) = bed("an_h2c_upgrade_does_not_escape_routing") else {
        return;
    };
    let out = bed.in_client(|| {
        let mut s = connect(80);
        send(
            &mut s,
            b"GET /h2 HTTP/1.1\r\nHost: h.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        );
        let (s1, b1, rest) = read_response(&mut s, Vec::new());
        // The same connection is still HTTP/1.1, routed request by request.
        send(&mut s, b"GET /admin/x HTTP/1.1\r\nHost: h.example\r\n\r\n");
        let (s2, b2, _) = read_response(&mut s, rest);
        (s1, b1, s2, b2)
    });
    assert_eq!((out.0, out.2), (200, 200), "{out:?}");
    assert!(out.1.starts_with("a "), "{out:?}");
    assert!(
        out.3.starts_with("b "),
        "the next request is routed: {out:?}"
    );
    assert_eq!(
        received(&a, "/h2"),
        format!(
            "GET /h2 HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: {PEER}\r\nConnection: keep-alive\r\n\r\n"
        )
    );
    received(&b, "/admin/x");
    // WebSocket is allowed by default: Upgrade reaches the server.
    forwarded_as(
        &bed,
        80,
        b"GET /ws HTTP/1.1\r\nHost: h.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        &a,
        "/ws",
        &format!(
            "GET /ws HTTP/1.1\r\nHost: h.example\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: {PEER}\r\nConnection: upgrade\r\n\r\n"
        ),
    );
    // A server switching protocols unasked gets no tunnel: 502.
    let (status, _) = once(&bed, 80, b"GET /switch HTTP/1.1\r\nHost: h.example\r\n\r\n");
    assert_eq!(status, 502);
}

#[test]
fn rules_match_the_normalised_path_and_the_server_gets_it() {
    let Some((bed, a, b)) = bed("rules_match_the_normalised_path_and_the_server_gets_it") else {
        return;
    };
    for (target, pool, seen) in [
        ("/static/../admin", "b", "/admin"),
        (
            "/static/%2e%2E/admin/%7Eme?q=/../x",
            "b",
            "/admin/~me?q=/../x",
        ),
        ("/static/..%2fadmin", "a", "/static/..%2Fadmin"),
        ("/./m/x", "b", "/m/x"),
    ] {
        let url = format!("http://{VIP}{target}");
        let out = bed.get(&["--path-as-is", &url]);
        assert!(out.starts_with(&format!("{pool} ")), "{target}: {out}");
        let dir = if pool == "a" { &a } else { &b };
        assert!(
            received(dir, seen).starts_with(&format!("GET {seen} HTTP/1.1\r\n")),
            "{target}"
        );
    }
    // Methods are case-sensitive: `get` is not `GET` (rule "gets" does not match).
    let (status, body) = once(
        &bed,
        80,
        b"get /m/lower HTTP/1.1\r\nHost: h.example\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.starts_with("a conn="), "{body}");
    // A broken escape is refused.
    let (status, _) = once(&bed, 80, b"GET /a%zz HTTP/1.1\r\nHost: h.example\r\n\r\n");
    assert_eq!(status, 400);
}

#[test]
fn an_ntlm_bound_server_connection_serves_no_other_client() {
    let Some((bed, a, _b)) = bed("an_ntlm_bound_server_connection_serves_no_other_client") else {
        return;
    };
    let (first, other, second) = bed.in_client(|| {
        let mut alice = connect(80);
        send(&mut alice, b"GET /ntlm HTTP/1.1\r\nHost: h.example\r\n\r\n");
        let (status, first, rest) = read_response(&mut alice, Vec::new());
        assert_eq!(status, 401, "{first}");
        // Bob comes while Alice's NTLM handshake is half done.
        let mut bob = connect(80);
        send(&mut bob, b"GET /bob HTTP/1.1\r\nHost: h.example\r\n\r\n");
        let (status, other, _) = read_response(&mut bob, Vec::new());
        assert_eq!(status, 200, "{other}");
        send(
            &mut alice,
            b"GET /ntlm-2 HTTP/1.1\r\nHost: h.example\r\nAuthorization: NTLM TlRMTVNTUAADAAAA\r\n\r\n",
        );
        let (_, second, _) = read_response(&mut alice, rest);
        (first, other, second)
    });
    assert_ne!(
        conn_of(&first),
        conn_of(&other),
        "Bob got Alice's connection"
    );
    assert_eq!(
        conn_of(&first),
        conn_of(&second),
        "Alice keeps her authenticated connection"
    );
    // And after Alice left, her connection is not handed to anyone either.
    let (_, later) = once(&bed, 80, b"GET /later HTTP/1.1\r\nHost: h.example\r\n\r\n");
    assert_ne!(conn_of(&first), conn_of(&later));
    received(&a, "/later");
    // Negotiate credentials sent unasked (Kerberos) bind the connection they ride as well.
    let (carol, dave) = bed.in_client(|| {
        let mut carol = connect(80);
        send(
            &mut carol,
            b"GET /kerberos HTTP/1.1\r\nHost: h.example\r\nAuthorization: Negotiate YIIJ\r\n\r\n",
        );
        let (_, carol_body, _) = read_response(&mut carol, Vec::new());
        let mut dave = connect(80);
        send(&mut dave, b"GET /dave HTTP/1.1\r\nHost: h.example\r\n\r\n");
        let (_, dave_body, _) = read_response(&mut dave, Vec::new());
        (carol_body, dave_body)
    });
    assert_ne!(
        conn_of(&carol),
        conn_of(&dave),
        "Dave got Carol's connection"
    );
}

#[test]
fn stray_bytes_on_an_idle_server_connection_make_a_fresh_one() {
    let Some((bed, a, _b)) = bed("stray_bytes_on_an_idle_server_connection_make_a_fresh_one")
    else {
        return;
    };
    let (_, first) = once(&bed, 80, b"GET /stray HTTP/1.1\r\nHost: h.example\r\n\r\n");
    let k = conn_of(&first)["conn=".len()..].to_owned();
    wait_for("the stray bytes to be sent", SOON, || {
        a.join(format!("{k}.stray")).exists().then_some(())
    });
    let (status, next) = once(&bed, 80, b"GET /next HTTP/1.1\r\nHost: h.example\r\n\r\n");
    assert_eq!(status, 200);
    assert!(next.starts_with("a conn="), "{next}");
    assert_ne!(
        conn_of(&first),
        conn_of(&next),
        "the dirty connection was reused"
    );
}

#[test]
fn a_failed_request_is_sent_again_only_when_idempotent() {
    let Some((bed, a, _b)) = bed("a_failed_request_is_sent_again_only_when_idempotent") else {
        return;
    };
    let count = |what: &str| -> usize {
        records(&a)
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).matches(what).count())
            .sum()
    };
    // An idle connection to reuse, then a POST on it, which the server drops unanswered.
    once(&bed, 80, b"GET /warm-1 HTTP/1.1\r\nHost: h.example\r\n\r\n");
    let (status, body) = once(
        &bed,
        80,
        b"POST /hangup-reused HTTP/1.1\r\nHost: h.example\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 502, "{body}");
    assert_eq!(count("POST /hangup-reused"), 1, "the POST was sent again");
    // A GET in the same place is sent once more, on a new connection, and answered.
    once(&bed, 80, b"GET /warm-2 HTTP/1.1\r\nHost: h.example\r\n\r\n");
    let (status, body) = once(
        &bed,
        80,
        b"GET /hangup-reused HTTP/1.1\r\nHost: h.example\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(" n=1 GET /hangup-reused"), "{body}");
    assert_eq!(count("GET /hangup-reused"), 2);
}

#[test]
fn beyond_the_connection_cap_clients_get_503() {
    let Some((bed, _a, _b)) = bed("beyond_the_connection_cap_clients_get_503") else {
        return;
    };
    let (held, refused) = bed.in_client(|| {
        let held: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = connect(82);
                send(&mut s, b"GET /held HTTP/1.1\r\nHost: h.example\r\n\r\n");
                assert_eq!(read_response(&mut s, Vec::new()).0, 200);
                s
            })
            .collect();
        let refused: Vec<String> = (0..3)
            .map(|_| {
                let mut s = connect(82);
                send(&mut s, b"GET /more HTTP/1.1\r\nHost: h.example\r\n\r\n");
                read_all(&mut s)
            })
            .collect();
        (held, refused)
    });
    for r in &refused {
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(r.contains("Connection: close"), "{r}");
    }
    let log = bed.log_text();
    assert_eq!(
        log.matches("event=l7_connection_cap_reached").count(),
        1,
        "one event per burst: {log}"
    );
    assert!(log.contains(&format!("service={VIP}:82 max_connections=2")));
    let listing = bed.adm("-L -n");
    assert!(listing.contains(" refused 3"), "{listing}");
    // One client leaves: the next is served.
    drop(held);
    wait_for("a place under the cap", SOON, || {
        (once(&bed, 82, b"GET /again HTTP/1.1\r\nHost: h.example\r\n\r\n").0 == 200).then_some(())
    });
    // The other services have no cap.
    assert_eq!(
        once(&bed, 80, b"GET /x HTTP/1.1\r\nHost: h.example\r\n\r\n").0,
        200
    );
}
