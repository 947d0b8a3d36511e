//! Layer-7 content switching when things go wrong: oversized and malformed requests, no
//! server, slow clients and servers, a server dying mid-response, and a slowloris client that
//! must not hold up anyone else. Each answer is checked as a real client sees it.

mod l7_common;

use std::io::Write;
use std::time::{Duration, Instant};

use l7_common::{L7Bed, SOON, VIP, connect, http_config, read_all, read_response, send, wait_for};

fn status_of(bed: &L7Bed, args: &[&str]) -> String {
    let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    a.extend_from_slice(args);
    bed.curl(&a).1
}

#[test]
fn errors_and_limits_are_answered_and_nothing_hangs() {
    let Some(bed) = L7Bed::start(
        "errors_and_limits_are_answered_and_nothing_hangs",
        &http_config("app"),
    ) else {
        return;
    };
    let url = |p: &str| format!("http://{VIP}{p}");
    wait_for("the content service to answer", SOON, || {
        (status_of(&bed, &["-H", "Host: static.example", &url("/")]) == "200").then_some(())
    });

    // 431: too many header lines (limit 40), and a head larger than 4096 bytes.
    let mut many: Vec<String> = (0..60).map(|i| format!("X-H{i}: {i}")).collect();
    many.push(url("/app/"));
    let mut args: Vec<&str> = Vec::new();
    for h in &many[..60] {
        args.push("-H");
        args.push(h);
    }
    args.push(&many[60]);
    assert_eq!(status_of(&bed, &args), "431");
    let big = format!("X-Big: {}", "a".repeat(5000));
    assert_eq!(status_of(&bed, &["-H", &big, &url("/app/")]), "431");

    // 400: not HTTP, and a request with both Content-Length and chunked framing.
    let answers = bed.in_client(|| {
        let mut s = connect(80);
        send(&mut s, b"GARBAGE\x01\x02 here\r\n\r\n");
        let a = read_all(&mut s);
        let mut s = connect(80);
        send(
            &mut s,
            b"POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        let b = read_all(&mut s);
        (a, b)
    });
    assert!(answers.0.starts_with("HTTP/1.1 400"), "{}", answers.0);
    assert!(answers.1.starts_with("HTTP/1.1 400"), "{}", answers.1);

    // 503: the pool's only server refuses connections.
    assert_eq!(status_of(&bed, &[&url("/dead/x")]), "503");

    // 504: the server does not answer within server_timeout (3 s).
    assert_eq!(status_of(&bed, &[&url("/sleep/15")]), "504");

    // 408: a client that never finishes its request head (client_timeout 3 s).
    let answer = bed.in_client(|| {
        let mut s = connect(80);
        send(&mut s, b"GET /app/ HTTP/1.1\r\nHost: x\r\n");
        read_all(&mut s)
    });
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A server dying in the middle of a response: the client's connection is closed (curl
    // reports a transfer cut short), promptly, and the director goes on serving.
    let t = Instant::now();
    let (code, _, err) = bed.curl(&["-o", "/dev/null", &url("/die")]);
    assert!(code == 18 || code == 56, "curl exit {code}: {err}");
    assert!(
        t.elapsed() < Duration::from_secs(25),
        "the cut response hung"
    );
    assert_eq!(
        status_of(&bed, &["-H", "Host: static.example", &url("/")]),
        "200"
    );

    // Slowloris: a client trickling its head one byte at a time holds up no one else, and is
    // eventually answered 408 and closed.
    let slow = bed.spawn_client(|| {
        let mut s = connect(80);
        let req = b"GET /app/slow HTTP/1.1\r\nHost: x\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n";
        for b in req {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        read_all(&mut s)
    });
    for i in 0..10 {
        assert_eq!(
            status_of(
                &bed,
                &[
                    "-H",
                    "Host: static.example",
                    &url(&format!("/while-slow/{i}"))
                ]
            ),
            "200"
        );
    }
    let answer = slow.join().expect("slow client");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "slowloris got {answer:?}"
    );

    // After all that, keep-alive still works on a fresh connection.
    let (status, body) = bed.in_client(|| {
        let mut s = connect(80);
        send(&mut s, b"GET /app/end HTTP/1.1\r\nHost: x\r\n\r\n");
        let (st, body, _) = read_response(&mut s, Vec::new());
        (st, body)
    });
    assert_eq!(status, 200, "{body}");
    let list = bed.adm("-L -n");
    eprintln!("{list}");
    assert!(list.contains("l7-http"), "{list}");
}
