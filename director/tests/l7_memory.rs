//! What idle keep-alive client connections cost the director: N clients each make one request
//! and keep their connection open; the director's resident memory is read before and after.
//! N is 2,000 here (`LVS_L7_IDLE_N` for the figure in the docs: 10,000).

mod l7_common;

use std::io::Read;
use std::net::TcpStream;

use l7_common::{L7Bed, RS, SOON, VIP, connect, read_response, send, wait_for};

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[test]
fn idle_keep_alive_connections_cost_little_memory() {
    let config = format!(
        r#"
[[content_service]]
address = "{VIP}"
port = 80
idle_timeout = 300
default_pool = "one"

[[pool]]
name = "one"
servers = [{{ address = "{r1}", port = 8080 }}]
"#,
        r1 = RS[0]
    );
    let Some(bed) = L7Bed::start("idle_keep_alive_connections_cost_little_memory", &config) else {
        return;
    };
    let n: usize = std::env::var("LVS_L7_IDLE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let pid = bed.director_pid().as_raw();
    wait_for("the content service", SOON, || {
        (bed.curl(&[&format!("http://{VIP}/")]).0 == 0).then_some(())
    });
    // Warm up: the workers' allocator arenas and the idle server connections exist before the
    // first figure.
    for _ in 0..50 {
        bed.get(&[&format!("http://{VIP}/warm")]);
    }
    let before = rss_kib(pid);
    // In batches of 100 (connect all, send all, read all): one at a time, each waits a
    // round of delayed acknowledgements.
    let conns: Vec<TcpStream> = bed.in_client(move || {
        let mut all = Vec::with_capacity(n);
        while all.len() < n {
            let mut batch: Vec<TcpStream> =
                (0..100.min(n - all.len())).map(|_| connect(80)).collect();
            for s in &mut batch {
                send(s, b"GET /idle HTTP/1.1\r\nHost: a.example\r\n\r\n");
            }
            for mut s in batch {
                let (status, body, rest) = read_response(&mut s, Vec::new());
                assert_eq!(status, 200, "{body}");
                assert!(rest.is_empty());
                all.push(s);
            }
        }
        all
    });
    let after = rss_kib(pid);
    let per_conn = (after.saturating_sub(before) as f64) / (n as f64);
    eprintln!(
        "figure=l7_idle_rss connections={n} rss_before_kib={before} rss_after_kib={after} per_connection_kib={per_conn:.1}"
    );
    // Every connection is still open and usable.
    let mut last = conns.into_iter().last().expect("connections");
    bed.in_client(move || {
        send(&mut last, b"GET /again HTTP/1.1\r\nHost: a.example\r\n\r\n");
        let (status, _, _) = read_response(&mut last, Vec::new());
        assert_eq!(status, 200);
        let mut b = [0u8; 1];
        last.set_nonblocking(true).expect("nonblocking");
        assert!(last.read(&mut b).is_err(), "nothing more was sent");
    });
    assert!(
        per_conn < 16.0,
        "an idle keep-alive connection costs {per_conn:.1} KiB of resident memory"
    );
}
