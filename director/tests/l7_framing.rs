//! Layer 7: the director and the real server agree on where every message ends (issue 12).
//! Each test sends crafted requests from the client namespace to the real director, to a raw
//! TCP "server" in a real-server namespace that records exactly the bytes it received and
//! answers with crafted responses; it checks what the server got byte for byte and what the
//! client got. Malformed framing is refused (400/501/502) and never reaches the other side;
//! accepted framing reaches it re-encoded in one canonical form.

mod l7_common;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use l7_common::{L7Bed, RS, SOON, VIP, connect, read_all, send, wait_for};

/// Where the raw servers listen.
const RAW_PORT: u16 = 9000;

/// Default pool: the raw server on r1; requests for host a.example: the raw server on r2.
fn config() -> String {
    format!(
        r#"
[[content_service]]
address = "{VIP}"
port = 80
client_address = "none"
client_timeout = 5
server_timeout = 5
default_pool = "raw"

[[content_service.rule]]
name = "a"
host = "a.example"
pool = "a"

[[pool]]
name = "raw"
scheduler = "rr"
servers = [{{ address = "{r1}", port = {RAW_PORT} }}]

[[pool]]
name = "a"
scheduler = "rr"
servers = [{{ address = "{r2}", port = {RAW_PORT} }}]
"#,
        r1 = RS[0],
        r2 = RS[1],
    )
}

/// A response to send, and whether to close the connection after it.
type Scripted = (Vec<u8>, bool);

/// Bytes one server connection received, and whether the director closed it.
#[derive(Debug, Clone, Default)]
struct Conn {
    bytes: Vec<u8>,
    closed: bool,
}

/// A raw HTTP server: records every connection's bytes; answers each whole request it reads
/// (canonical framing only: what the director writes) with the next scripted response, or
/// `200 ok` when none is left. A response scripted with `close` is followed by the close.
#[derive(Clone)]
struct RawServer {
    conns: Arc<Mutex<Vec<Conn>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    /// Close every connection after its first response (no idle connection to reuse).
    close_all: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl RawServer {
    fn start(bed: &L7Bed, node: &str) -> Self {
        let me = RawServer {
            conns: Arc::default(),
            script: Arc::default(),
            close_all: Arc::default(),
            stop: Arc::default(),
        };
        let srv = me.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        bed.spawn_in(node, move || {
            let l = TcpListener::bind(("0.0.0.0", RAW_PORT)).expect("bind the raw server");
            l.set_nonblocking(true).expect("nonblocking");
            let _ = tx.send(());
            while !srv.stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        // Listed in the order of the accept queue: a connection made before
                        // another is listed before it.
                        let idx = {
                            let mut c = srv.conns.lock().expect("lock");
                            c.push(Conn::default());
                            c.len() - 1
                        };
                        let srv = srv.clone();
                        std::thread::spawn(move || srv.serve(s, idx));
                    }
                    // Nothing to accept: look again shortly (and see `stop`).
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv_timeout(SOON).expect("the raw server listens");
        me
    }

    fn serve(&self, mut s: TcpStream, idx: usize) {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        let mut pending = Vec::new();
        let mut buf = [0u8; 65536];
        while !self.stop.load(Ordering::Relaxed) {
            let n = match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue;
                }
                Err(_) => break,
            };
            self.conns.lock().expect("lock")[idx]
                .bytes
                .extend_from_slice(&buf[..n]);
            pending.extend_from_slice(&buf[..n]);
            while let Some(len) = message_len(&pending, false) {
                pending.drain(..len);
                let (resp, close) =
                    self.script
                        .lock()
                        .expect("lock")
                        .pop_front()
                        .unwrap_or_else(|| {
                            if self.close_all.load(Ordering::Relaxed) {
                                (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(), true)
                            } else {
                                (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(), false)
                            }
                        });
                let _ = s.write_all(&resp);
                if close {
                    self.conns.lock().expect("lock")[idx].closed = true;
                    return;
                }
            }
        }
        self.conns.lock().expect("lock")[idx].closed = true;
    }

    fn respond(&self, resp: &[u8], close: bool) {
        self.script
            .lock()
            .expect("lock")
            .push_back((resp.to_vec(), close));
    }

    fn conns(&self) -> Vec<Conn> {
        self.conns.lock().expect("lock").clone()
    }

    /// Everything received, all connections in order.
    fn received(&self) -> Vec<u8> {
        self.conns().into_iter().flat_map(|c| c.bytes).collect()
    }

    /// How much each connection has received so far.
    fn mark(&self) -> Vec<usize> {
        self.conns().iter().map(|c| c.bytes.len()).collect()
    }

    /// The connections that received bytes (or were opened) after `mark`: their new bytes,
    /// and whether the director closed them.
    fn since(&self, mark: &[usize]) -> Vec<Conn> {
        self.conns()
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| match mark.get(i) {
                Some(&n) if c.bytes.len() == n => None,
                Some(&n) => Some(Conn {
                    bytes: c.bytes[n..].to_vec(),
                    closed: c.closed,
                }),
                None => Some(c),
            })
            .collect()
    }

    /// Wait until the director closed every connection it used after `mark`.
    fn wait_closed_since(&self, mark: &[usize]) {
        wait_for("the director to close its server connections", SOON, || {
            self.since(mark).iter().all(|c| c.closed).then_some(())
        });
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.stop) <= 2 {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// The length of the first whole message in `b`, framed canonically (CRLF lines, one
/// `Content-Length` or `Transfer-Encoding: chunked` with plain `hex CRLF data CRLF` chunks,
/// no trailers); `None` until it is all there. `bodiless`: a response to HEAD.
fn message_len(b: &[u8], bodiless: bool) -> Option<usize> {
    let head = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&b[..head]).to_ascii_lowercase();
    let status = text
        .strip_prefix("http/1.1 ")
        .and_then(|t| t.get(..3))
        .unwrap_or("");
    if bodiless || status.starts_with('1') || status == "204" || status == "304" {
        return Some(head);
    }
    if text.contains("\r\ntransfer-encoding: chunked\r\n") {
        let mut p = head;
        loop {
            let eol = b[p..].windows(2).position(|w| w == b"\r\n")?;
            let n = usize::from_str_radix(std::str::from_utf8(&b[p..p + eol]).ok()?, 16).ok()?;
            p += eol + 2;
            if n == 0 {
                return (b.len() >= p + 2).then_some(p + 2);
            }
            p += n + 2;
            if b.len() < p {
                return None;
            }
        }
    }
    let cl = text
        .split("\r\ncontent-length: ")
        .nth(1)
        .and_then(|t| t.split("\r\n").next())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (b.len() >= head + cl).then_some(head + cl)
}

/// Send `req` on a new client connection and read until the director closes it.
fn once(bed: &L7Bed, req: &[u8]) -> String {
    let req = req.to_vec();
    bed.in_client(move || {
        let mut s = connect(80);
        send(&mut s, &req);
        read_all(&mut s)
    })
}

/// Send `req` and read `n` whole responses (`head`: which answer a HEAD request) and then
/// whatever comes until the close or a short quiet time.
fn responses(bed: &L7Bed, req: &[u8], heads: &[bool]) -> Vec<Vec<u8>> {
    let req = req.to_vec();
    let heads = heads.to_vec();
    bed.in_client(move || {
        let mut s = connect(80);
        send(&mut s, &req);
        let mut got = Vec::new();
        let mut pending = Vec::new();
        let mut buf = [0u8; 65536];
        for bodiless in heads {
            loop {
                if let Some(n) = message_len(&pending, bodiless) {
                    got.push(pending.drain(..n).collect());
                    break;
                }
                let n = s.read(&mut buf).expect("read a response");
                assert!(
                    n > 0,
                    "closed before a whole response: {:?}",
                    String::from_utf8_lossy(&pending)
                );
                pending.extend_from_slice(&buf[..n]);
            }
        }
        got
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The director answers `req` itself with `status`.
fn assert_refused(bed: &L7Bed, req: &[u8], status: u16) {
    let answer = once(bed, req);
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{:?}: {answer}",
        text(req)
    );
}

/// No server was reached.
fn assert_untouched(servers: &[&RawServer]) {
    for srv in servers {
        assert!(
            srv.conns().is_empty(),
            "a server was reached: {:?}",
            text(&srv.received())
        );
    }
}

/// `req` is answered 200 by `srv`, which got exactly `want` (all it ever got).
fn assert_forwarded(bed: &L7Bed, srv: &RawServer, req: &[u8], want: &str) {
    let answer = once(bed, req);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(text(&srv.received()), want);
}

#[test]
fn chunked_requests_are_read_strictly_and_re_encoded() {
    let Some(bed) = L7Bed::start(
        "chunked_requests_are_read_strictly_and_re_encoded",
        &config(),
    ) else {
        return;
    };
    let srv = RawServer::start(&bed, "r1");
    // Every request on a new server connection: the accept order then tells which
    // connections were made before a probe request.
    srv.close_all.store(true, Ordering::Relaxed);

    // Extensions, a quoted string and a trailer: accepted; the server gets chunks of the
    // director's own, with no extension and no trailer, then the next request.
    let answer = once(
        &bed,
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
5;a=\"b c\"\r\nhello\r\n6; x=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n\
GET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let conns = srv.conns();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(
        text(&conns[0].bytes),
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
    assert_eq!(
        text(&conns[1].bytes),
        "GET /two HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
    );

    // Each leniency of issue 12, with a request hidden behind it: 400 to the client, the
    // server connection (if the head went out at all) closed before the body's end, the
    // hidden request never forwarded.
    let head = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let forwarded_head = head.replace("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n");
    let hidden = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let probe = b"GET /probe HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    for (what, body) in [
        ("bare LF after the size", "5\nhello\r\n0\r\n\r\n"),
        ("junk after the size", "5 junk\r\nhello\r\n0\r\n\r\n"),
        (
            "a control character in an extension",
            "5;a\x01b\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a bare LF in an extension",
            "5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n",
        ),
        ("a CR inside the size line", "5\r\rhello\r\n0\r\n\r\n"),
        ("a bare LF ending a trailer", "0\r\nX-T: 1\n\r\n"),
        ("a bare LF ending the body", "0\r\n\n"),
        (
            "too many size digits",
            "00000000000000005\r\nhello\r\n0\r\n\r\n",
        ),
    ] {
        let mark = srv.mark();
        let answer = once(&bed, format!("{head}{body}{hidden}").as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        // A request after it: once the server has it, it has accepted every connection made
        // for the bad one.
        assert!(once(&bed, probe).starts_with("HTTP/1.1 200"));
        srv.wait_closed_since(&mark);
        let got = srv.since(&mark);
        let (probes, others): (Vec<_>, Vec<_>) =
            got.iter().partition(|c| text(&c.bytes).contains("/probe"));
        assert_eq!(probes.len(), 1, "{what}: {got:?}");
        for c in others {
            assert!(
                c.bytes.is_empty() || text(&c.bytes) == forwarded_head,
                "{what}: the server got {:?}",
                text(&c.bytes)
            );
        }
    }
}

#[test]
fn transfer_codings_other_than_chunked_are_refused() {
    let Some(bed) = L7Bed::start("transfer_codings_other_than_chunked_are_refused", &config())
    else {
        return;
    };
    let srv = RawServer::start(&bed, "r1");
    for (te, status) in [
        ("Transfer-Encoding: identity, chunked\r\n", 501),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ("Transfer-Encoding: chunked, chunked\r\n", 501),
        ("Transfer-Encoding: ,chunked\r\n", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            400,
        ),
        ("Transfer-Encoding: chunked;q=1\r\n", 400),
    ] {
        let req = format!(
            "POST /x HTTP/1.1\r\nHost: h\r\n{te}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        assert_refused(&bed, req.as_bytes(), status);
    }
    // HTTP/1.0 has no transfer codings (RFC 9112 §6.1).
    assert_refused(
        &bed,
        b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    assert_untouched(&[&srv]);

    // A field name with `_` is dropped (`Transfer_Encoding` must not reach a server that
    // would read it as Transfer-Encoding); the body is framed by Content-Length alone.
    assert_forwarded(
        &bed,
        &srv,
        b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\nX_Y: 1\r\nConnection: close\r\n\r\nhello",
        "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
    );
}

#[test]
fn content_length_is_digits_only_and_forwarded_once() {
    let Some(bed) = L7Bed::start(
        "content_length_is_digits_only_and_forwarded_once",
        &config(),
    ) else {
        return;
    };
    let srv = RawServer::start(&bed, "r1");
    for cl in [
        "Content-Length: +5\r\n",
        "Content-Length: -5\r\n",
        "Content-Length: 5\u{a0}\r\n",
        "Content-Length: \u{2002}5\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\nContent-Length: 05\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let req = format!("POST /x HTTP/1.1\r\nHost: h\r\n{cl}\r\nhello");
        assert_refused(&bed, req.as_bytes(), 400);
    }
    assert_untouched(&[&srv]);
    // Repeated with the same value (spaces around it aside): one canonical field.
    assert_forwarded(
        &bed,
        &srv,
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\ncontent-length:\t005 \r\nConnection: close\r\n\r\nhello",
        "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
    );
}

#[test]
fn hosts_and_absolute_targets_route_one_way() {
    let Some(bed) = L7Bed::start("hosts_and_absolute_targets_route_one_way", &config()) else {
        return;
    };
    let r1 = RawServer::start(&bed, "r1");
    let r2 = RawServer::start(&bed, "r2");
    for req in [
        &b"GET / HTTP/1.1\r\nHost: h\r\nHost: a.example\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.example\r\nhost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n",
        b"GET https://a.example/x HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_refused(&bed, req, 400);
    }
    assert_untouched(&[&r1, &r2]);
    // The absolute-form target names the authority (RFC 9112 §3.2.2): routed by it, sent in
    // origin-form with one Host field that says the same.
    assert_forwarded(
        &bed,
        &r2,
        b"GET http://a.example/x?y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        "GET /x?y HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_untouched(&[&r1]);
    assert_forwarded(
        &bed,
        &r1,
        b"GET http://h/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    );
}

#[test]
fn response_framing_is_checked_and_re_encoded() {
    let Some(bed) = L7Bed::start("response_framing_is_checked_and_re_encoded", &config()) else {
        return;
    };
    let srv = RawServer::start(&bed, "r1");
    let two = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";

    // Both Transfer-Encoding and Content-Length: the client gets chunked framing of our own
    // and no Content-Length; that server connection is not used again.
    srv.respond(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        false,
    );
    let got = responses(&bed, two, &[false, false]);
    assert_eq!(
        text(&got[0]),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    assert_eq!(
        text(&got[1]),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    );
    wait_for("the first server connection closed", SOON, || {
        srv.conns().first().is_some_and(|c| c.closed).then_some(())
    });
    let conns = srv.conns();
    assert_eq!(
        conns.len(),
        2,
        "the /2 request rode the conflicted connection"
    );
    assert_eq!(
        text(&conns[0].bytes),
        "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
    );

    // Malformed lengths and codings from the server: 502, and the client never sees them.
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        srv.respond(bad, true);
        let answer = once(&bed, b"GET /bad HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(
            answer.starts_with("HTTP/1.1 502"),
            "{}: {answer}",
            text(bad)
        );
    }

    // A chunked response with junk after a size: the client gets the head, then the close,
    // never the junk nor an end of body the server did not send.
    srv.respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n",
        false,
    );
    let answer = once(&bed, b"GET /junk HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    );

    // An HTTP/1.0 client knows no chunked coding: it gets the data alone, ended by the close.
    srv.respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
        false,
    );
    let answer = once(&bed, b"GET /old HTTP/1.0\r\nHost: h\r\n\r\n");
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world"
    );

    // Responses to HEAD, and 204 and 304, have no body whatever their fields say.
    srv.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false);
    srv.respond(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        false,
    );
    srv.respond(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        false,
    );
    let got = responses(
        &bed,
        b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\nDELETE /d HTTP/1.1\r\nHost: h\r\n\r\nGET /e HTTP/1.1\r\nHost: h\r\n\r\n",
        &[true, false, false, false],
    );
    assert_eq!(
        text(&got[0]),
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    );
    assert_eq!(
        text(&got[1]),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
    );
    assert_eq!(text(&got[2]), "HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(
        text(&got[3]),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    );
}

#[test]
fn response_heads_keep_their_bytes_and_are_never_cut() {
    let Some(bed) = L7Bed::start(
        "response_heads_keep_their_bytes_and_are_never_cut",
        &config(),
    ) else {
        return;
    };
    let srv = RawServer::start(&bed, "r1");
    // 20,000 bytes of Latin-1 in a field: a head re-coded as text would triple and be cut at
    // the buffer's end (32 KiB), turning the body's lines into header fields.
    let mut resp = b"HTTP/1.1 200 \xc9t\xe9\r\nX-Latin: ".to_vec();
    resp.extend(std::iter::repeat_n(0xe9u8, 20_000));
    let body = b"X-Injected: from body";
    resp.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    resp.extend_from_slice(body);
    srv.respond(&resp, false);
    let got = bed.in_client(|| {
        let mut s = connect(80);
        send(
            &mut s,
            b"GET /latin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        );
        let mut v = Vec::new();
        let _ = s.read_to_end(&mut v);
        v
    });
    let mut want = resp.clone();
    let at = want.len() - body.len() - 2;
    want.splice(at..at, b"Connection: close\r\n".iter().copied());
    assert!(
        got == want,
        "the client got {:?}",
        text(&got[..got.len().min(200)])
    );

    // A head that fits the server-side buffer but not, re-created, the client-side one: 502,
    // never a truncated head.
    // (`Content-Length:0` grows by the space of its canonical form.)
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length:0\r\nX-Fill: ".to_vec();
    resp.extend(std::iter::repeat_n(b'f', 32 * 1024 - resp.len() - 4));
    resp.extend_from_slice(b"\r\n\r\n");
    assert_eq!(resp.len(), 32 * 1024);
    srv.respond(&resp, false);
    let answer = once(&bed, b"GET /fill HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 502"),
        "{}",
        &answer[..answer.len().min(200)]
    );
}

/// A message as h11 read it: (method, body).
type H11Msg = (String, Vec<u8>);

/// h11 (Python; Debian package python3-h11) reading `inputs` as a server would, each on its
/// own: per input, its whole messages, and whether it refused.
fn h11_read(inputs: &[Vec<u8>]) -> Vec<(Vec<H11Msg>, bool)> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", include_str!("../l7/testdata/h11_reference.py")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start /usr/bin/python3 (with python3-h11)");
    let mut lines = String::new();
    for i in inputs {
        let hex: String = i.iter().map(|b| format!("{b:02x}")).collect();
        lines.push_str(&hex);
        lines.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let out = child.wait_with_output().expect("h11 output");
    writer.join().expect("writer").expect("write to h11");
    let out = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(out.lines().count(), inputs.len(), "h11 answered {out:?}");
    out.lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let refused = w.next() == Some("error");
            let msgs = w
                .map(|m| {
                    let mut f = m.split(':');
                    let method = f.next().unwrap_or("").to_owned();
                    let hex = f.next().unwrap_or("");
                    let body = (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                        .collect();
                    (method, body)
                })
                .collect();
            (msgs, refused)
        })
        .collect()
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap_or(0)
    }
}

/// The differential test end to end: random request streams (valid and malformed pieces,
/// one byte changed in half of them) go through the real director; every message the server
/// gets must read, by h11, as the message h11 reads at the same place in what the client sent.
#[test]
fn servers_get_only_messages_the_client_sent() {
    let Some(bed) = L7Bed::start(
        "servers_get_only_messages_the_client_sent",
        &config().replace("client_timeout = 5", "client_timeout = 1"),
    ) else {
        return;
    };
    let srv = RawServer::start(&bed, "r1");
    srv.close_all.store(true, Ordering::Relaxed);
    let pieces: [&[u8]; 8] = [
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        b"POST /l HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /g HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST /d HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nxyz",
        b"POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n",
        b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n",
        b"PUT /e HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    ];
    let noise = b"\r\n ;0a\t:,\"";
    let sentinel = b"GET /end HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let probe = b"GET /probe HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut streams = Vec::new();
    let mut received = Vec::new();
    for _ in 0..150 {
        let mut s: Vec<u8> = (0..1 + rng.below(3))
            .flat_map(|_| pieces[rng.below(pieces.len())].to_vec())
            .collect();
        let at = rng.below(s.len());
        let b = noise[rng.below(noise.len())];
        match rng.below(6) {
            0 => s[at] = b,
            1 => s.insert(at, b),
            2 => {
                s.remove(at);
            }
            _ => {}
        }
        let mark = srv.mark();
        let mut all = s.clone();
        all.extend_from_slice(sentinel);
        let _ = once(&bed, &all);
        assert!(once(&bed, probe).starts_with("HTTP/1.1 200"));
        srv.wait_closed_since(&mark);
        // One request per server connection (close_all), in the order the director sent them.
        let got: Vec<Vec<u8>> = srv
            .since(&mark)
            .into_iter()
            .map(|c| c.bytes)
            .filter(|b| !text(b).starts_with("GET /probe ") && !text(b).starts_with("GET /end "))
            .collect();
        // h11 reads what the director read, the sentinel too.
        streams.push(all);
        received.push(got);
    }
    let theirs = h11_read(&streams);
    let flat: Vec<Vec<u8>> = received.iter().flatten().cloned().collect();
    let at_server = h11_read(&flat);
    let mut k = 0;
    let mut forwarded = 0;
    for (i, got) in received.iter().enumerate() {
        let (client_msgs, _) = &theirs[i];
        let mut n = 0;
        for bytes in got {
            let (msgs, refused) = &at_server[k];
            k += 1;
            assert!(
                !refused,
                "h11 refuses what the server got: {:?}",
                text(bytes)
            );
            // A head sent before its body was found bad is no message.
            let Some(m) = msgs.first() else { continue };
            assert!(
                client_msgs.get(n) == Some(m),
                "stream {:?}: the server got message {n} as {:?}; h11 read the client's as {:?}",
                text(&streams[i]),
                m,
                client_msgs.get(n)
            );
            n += 1;
            forwarded += 1;
        }
    }
    let refused = theirs.iter().filter(|(_, r)| *r).count();
    eprintln!("{forwarded} messages forwarded; h11 refused {refused} of 150 streams");
    assert!(
        forwarded > 100 && refused > 20,
        "{forwarded} messages went through, h11 refused {refused} streams"
    );
}
