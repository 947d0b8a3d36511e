//! Layer-7 content switching over HTTP, end to end: curl and raw clients in the client
//! namespace, the director terminating TCP on VIP:80, real servers of our own behind it.

mod l7_common;

use std::io::Read;
use std::time::Duration;

use l7_common::{L7Bed, SOON, VIP, connect, http_config, pattern, read_response, send, wait_for};

/// The answering server's name (the first word of a `servers.py` answer).
fn who(body: &str) -> &str {
    body.split_whitespace().next().unwrap_or("")
}

fn is_app(name: &str) -> bool {
    name == "r2" || name == "r3"
}

#[test]
fn http_requests_are_routed_streamed_and_kept_alive() {
    let Some(bed) = L7Bed::start(
        "http_requests_are_routed_streamed_and_kept_alive",
        &http_config("app"),
    ) else {
        return;
    };
    let url = |p: &str| format!("http://{VIP}{p}");
    wait_for("the content service to answer", SOON, || {
        let (code, out, _) = bed.curl(&["-H", "Host: static.example", &url("/")]);
        (code == 0 && who(&out) == "r1").then_some(())
    });

    // Routing by host, path prefix, header, regex and method; the client's address is passed on.
    let out = bed.get(&["-H", "Host: static.example", &url("/index.html")]);
    assert!(
        out.starts_with("r1 GET /index.html xff=198.51.100.2"),
        "{out}"
    );
    for (args, path) in [
        (vec![], "/app/x"),
        (vec!["-H", "X-Pool: app"], "/other"),
        (vec![], "/api/v2/users"),
        (vec!["-X", "DELETE"], "/thing"),
    ] {
        let mut a: Vec<&str> = args.clone();
        let u = url(path);
        a.push(&u);
        let out = bed.get(&a);
        assert!(is_app(who(&out)), "{path} {args:?} went to {out}");
    }
    // HTTP/1.0 clients, and HEAD (a length but no body) on a kept-alive connection.
    let out = bed.get(&["-0", "-H", "Host: static.example", &url("/old")]);
    assert!(out.starts_with("r1 GET /old"), "{out}");
    let out = bed.get(&[
        "-I",
        &url("/big/1000"),
        "--next",
        "-H",
        "Host: static.example",
        &url("/after-head"),
    ]);
    assert!(
        out.contains("Content-Length: 1000") && out.contains("r1 GET /after-head"),
        "{out}"
    );
    let (_, out, _) = bed.curl(&["-o", "/dev/null", "-w", "%{http_code}", &url("/nothing")]);
    assert_eq!(out, "404", "no rule matched and no default pool");
    // The pool's own scheduler (wrr, equal weights) spreads requests over its members.
    let names: Vec<String> = (0..6)
        .map(|_| who(&bed.get(&[&url("/app/rr")])).to_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "r2") && names.iter().any(|n| n == "r3"),
        "{names:?}"
    );

    // Keep-alive: requests on one connection alternate between the pools.
    let seen = bed.in_client(|| {
        let mut s = connect(80);
        let mut seen = Vec::new();
        let mut rest = Vec::new();
        for i in 0..6 {
            let req = if i % 2 == 0 {
                format!("GET /k{i} HTTP/1.1\r\nHost: static.example\r\n\r\n")
            } else {
                format!("GET /app/k{i} HTTP/1.1\r\nHost: x\r\n\r\n")
            };
            send(&mut s, req.as_bytes());
            let (status, body, r) = read_response(&mut s, std::mem::take(&mut rest));
            rest = r;
            seen.push((status, body));
        }
        seen
    });
    for (i, (status, body)) in seen.iter().enumerate() {
        assert_eq!(*status, 200, "{body}");
        if i % 2 == 0 {
            assert_eq!(who(body), "r1", "request {i}: {body}");
        } else {
            assert!(is_app(who(body)), "request {i}: {body}");
        }
        assert!(body.contains(&format!("k{i} ")), "request {i} got {body}");
    }

    // Pipelining: six requests in one write; the answers come back in order.
    let seen = bed.in_client(|| {
        let mut s = connect(80);
        let mut all = String::new();
        for i in 0..6 {
            if i % 2 == 0 {
                all.push_str(&format!(
                    "GET /p{i} HTTP/1.1\r\nHost: static.example\r\n\r\n"
                ));
            } else {
                all.push_str(&format!("GET /app/p{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
            }
        }
        send(&mut s, all.as_bytes());
        let mut rest = Vec::new();
        let mut seen = Vec::new();
        for _ in 0..6 {
            let (status, body, r) = read_response(&mut s, std::mem::take(&mut rest));
            rest = r;
            seen.push((status, body));
        }
        seen
    });
    for (i, (status, body)) in seen.iter().enumerate() {
        assert_eq!(*status, 200);
        assert!(
            body.contains(&format!("/p{i} ")),
            "answer {i} out of order: {body}"
        );
        assert_eq!(who(body) == "r1", i % 2 == 0, "answer {i}: {body}");
    }

    // A client that asks to close gets its whole answer, then the end of the stream, while it
    // keeps its own side open (the director closes without waiting for it: nothing is left
    // unread that a reset could answer).
    const CLOSING: usize = 3_000_000;
    let got = bed.in_client(|| {
        let mut s = connect(80);
        send(
            &mut s,
            format!("GET /big/{CLOSING} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let mut all = Vec::new();
        s.read_to_end(&mut all).expect("read to the end");
        all
    });
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&got[..end]);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("Connection: close"),
        "{head}"
    );
    assert!(
        got[end..] == pattern(CLOSING)[..],
        "the body, whole and exact"
    );

    // Large downloads, with Content-Length and chunked, byte-exact.
    const BIG: usize = 20_000_000;
    let expected = pattern(BIG);
    for kind in ["big", "chunked"] {
        let file = bed.rundir.join(format!("down-{kind}"));
        let f = file.to_str().expect("utf-8 path");
        bed.get(&["-o", f, &url(&format!("/{kind}/{BIG}"))]);
        let got = std::fs::read(&file).expect("read the download");
        assert_eq!(got.len(), BIG, "{kind}: length");
        assert!(got == expected, "{kind}: the bytes differ");
    }

    // Large uploads, with Content-Length (curl sends Expect: 100-continue) and chunked.
    let up = bed.rundir.join("upload");
    let body: Vec<u8> = (0..BIG)
        .map(|i| u8::try_from(i * 7 % 256).unwrap_or(0))
        .collect();
    std::fs::write(&up, &body).expect("write the upload");
    let sum = std::process::Command::new("sha256sum")
        .arg(&up)
        .output()
        .expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    let at = format!("@{}", up.display());
    for extra in [vec![], vec!["-H", "Transfer-Encoding: chunked"]] {
        let mut a = vec!["--data-binary", at.as_str()];
        a.extend_from_slice(&extra);
        let u = url("/upload");
        a.push(&u);
        let out = bed.get(&a);
        assert_eq!(out.trim(), format!("r1 {sum} {BIG}"), "upload {extra:?}");
    }

    // WebSocket: the upgrade is passed through and the connection becomes a byte tunnel.
    let echoed = bed.in_client(|| {
        let mut s = connect(80);
        send(
            &mut s,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut b).expect("read the 101"), 1, "closed: {head:?}");
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        let mut out = Vec::new();
        for round in 0..3 {
            let msg = format!("hello l7 {round}");
            let mask = [1u8, 2, 3, 4];
            let mut frame = vec![0x81, 0x80 | u8::try_from(msg.len()).expect("short")];
            frame.extend_from_slice(&mask);
            frame.extend(msg.bytes().enumerate().map(|(i, c)| c ^ mask[i % 4]));
            send(&mut s, &frame);
            let mut h = [0u8; 2];
            s.read_exact(&mut h).expect("echo head");
            let mut p = vec![0u8; usize::from(h[1] & 0x7f)];
            s.read_exact(&mut p).expect("echo payload");
            out.push(String::from_utf8_lossy(&p).into_owned());
        }
        out
    });
    assert_eq!(echoed, ["hello l7 0", "hello l7 1", "hello l7 2"]);

    // One VIP: the content service on 80 and an IP-load-balanced service on 8080.
    bed.adm(&format!("-A -t {VIP}:8080 -s rr"));
    bed.adm(&format!("-a -t {VIP}:8080 -r {}:8080 -m", l7_common::RS[2]));
    wait_for("the IP-LB service on 8080", SOON, || {
        let (code, out, _) = bed.curl(&[&format!("http://{VIP}:8080/lb")]);
        (code == 0 && out.starts_with("r3 GET /lb")).then_some(())
    });
    assert!(who(&bed.get(&["-H", "Host: static.example", &url("/")])) == "r1");
    let refused = bed.lvsadm(&["-A", "-t", &format!("{VIP}:80"), "-s", "rr"]);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("content service"),
        "an IP-LB service on the content service's port: {refused:?}"
    );
    let list = bed.adm("-L -n");
    assert!(list.contains(&format!("TCP  {VIP}:8080 rr")), "{list}");
    assert!(list.contains(&format!("TCP  {VIP}:80 l7-http")), "{list}");
    assert!(list.contains("static-host->static="), "{list}");
    // Saved rules are for lvsadm -R: the content service (from the TOML file) is not in them.
    let saved = bed.adm("-S -n");
    assert!(
        saved.contains(&format!("-A -t {VIP}:8080")) && !saved.contains("l7-"),
        "{saved}"
    );
    assert!(
        list.contains(&format!("{}:8080", l7_common::RS[0])),
        "{list}"
    );

    // Reload: the app-path rule moves to the static pool; an open keep-alive connection stays
    // and its next request follows the new rule.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<String>();
    let client = bed.spawn_client(move || {
        let mut s = connect(80);
        send(&mut s, b"GET /app/before HTTP/1.1\r\nHost: x\r\n\r\n");
        let (_, body, rest) = read_response(&mut s, Vec::new());
        back_tx.send(body).expect("report");
        rx.recv_timeout(Duration::from_secs(120)).expect("go on");
        send(&mut s, b"GET /app/after HTTP/1.1\r\nHost: x\r\n\r\n");
        let (_, body, _) = read_response(&mut s, rest);
        body
    });
    let before = back_rx.recv_timeout(SOON).expect("first answer");
    assert!(is_app(who(&before)), "{before}");
    bed.reload(&http_config("static"));
    wait_for("the new rules", SOON, || {
        (who(&bed.get(&[&url("/app/probe")])) == "r1").then_some(())
    });
    tx.send(()).expect("go on");
    let after = client.join().expect("client");
    assert_eq!(
        who(&after),
        "r1",
        "the kept-alive connection after the reload: {after}"
    );
}
