//! How real servers behind a content service learn the client's address (PROXY protocol v1
//! and v2, `Forwarded`), the monitor's health verdicts applied to pool members, and that the
//! packet data plane's rings stay out of a content service's traffic.

mod l7_common;

use l7_common::{L7Bed, RS, SOON, VIP, wait_for};

fn service(port: u16, client_address: &str, pool: &str) -> String {
    format!(
        r#"
[[content_service]]
address = "{VIP}"
port = {port}
client_address = "{client_address}"
default_pool = "{pool}"
"#
    )
}

fn config() -> String {
    format!(
        r#"{}{}{}
[[pool]]
name = "one"
scheduler = "rr"
servers = [{{ address = "{r1}", port = 8080 }}]

[[pool]]
name = "two"
scheduler = "rr"
servers = [{{ address = "{r2}", port = 8080 }}, {{ address = "{r3}", port = 8080 }}]
"#,
        service(81, "proxy-v1", "one"),
        service(82, "proxy-v2", "one"),
        service(83, "forwarded", "two"),
        r1 = RS[0],
        r2 = RS[1],
        r3 = RS[2],
    )
}

#[test]
fn client_addresses_reach_servers_and_health_applies_to_pools() {
    let Some(bed) = L7Bed::start(
        "client_addresses_reach_servers_and_health_applies_to_pools",
        &config(),
    ) else {
        return;
    };
    let get = |port: u16| bed.get(&[&format!("http://{VIP}:{port}/who")]);
    wait_for("the content services", SOON, || {
        bed.curl(&[&format!("http://{VIP}:81/")])
            .0
            .eq(&0)
            .then_some(())
    });
    let out = get(81);
    assert!(out.contains("proxy=v1:198.51.100.2"), "{out}");
    assert!(
        out.contains("xff=-"),
        "no header with the PROXY protocol: {out}"
    );
    let out = get(82);
    assert!(out.contains("proxy=v2:198.51.100.2"), "{out}");
    let out = get(83);
    assert!(out.contains("fwd=for=198.51.100.2;proto=http"), "{out}");

    // The monitor marks r2 down for the service on 83: pool "two" sends everything to r3;
    // up again, both answer.
    let set = |healthy: bool| bed.set_health((VIP, 83), (RS[1], 8080), healthy);
    set(false);
    for _ in 0..6 {
        let out = get(83);
        assert!(out.starts_with("r3 "), "r2 is down, yet: {out}");
    }
    let list = bed.adm("-L -n");
    assert!(
        list.lines()
            .any(|l| l.contains(&format!("{}:8080", RS[1])) && l.contains(" 0 ")),
        "r2 listed with weight 0: {list}"
    );
    // A reload whose pool names a scheduler no plugin provides is refused as a whole, and
    // the running services go on.
    bed.reload(&config().replace(
        "scheduler = \"rr\"\nservers = [{ address = \"203.0.113.11\"",
        "scheduler = \"nosuch\"\nservers = [{ address = \"203.0.113.11\"",
    ));
    wait_for("the refused reload", SOON, || {
        bed.log_text()
            .contains("content_config_rejected")
            .then_some(())
    });
    assert!(get(81).starts_with("r1 "));
    set(true);
    let mut seen = std::collections::HashSet::new();
    wait_for("r2 back in pool two", SOON, || {
        seen.insert(get(83).split_whitespace().next().unwrap_or("").to_owned());
        seen.contains("r2").then_some(())
    });
}

/// The frames the director's receive rings have taken: SIGUSR1 makes it log them; the
/// `dumps`-th such line (1 is the first).
fn ring_frames(bed: &L7Bed, dumps: usize) -> u64 {
    use nix::sys::signal::{Signal, kill};
    kill(bed.director_pid(), Signal::SIGUSR1).expect("signal the director");
    wait_for("the ring_frames line", SOON, || {
        let log = bed.log_text();
        let line = log
            .lines()
            .filter(|l| l.contains("event=ring_frames "))
            .nth(dumps - 1)?
            .to_owned();
        let n = line.split("frames=").nth(1)?.split_whitespace().next()?;
        n.parse::<u64>().ok()
    })
}

/// A director with content services only: the rings' socket filter keeps every frame out
/// (the content services' traffic is the kernel's). A layer-4 service on the same VIP lets
/// the frames to that VIP in, the content services' among them: the count is real.
#[test]
fn content_services_alone_keep_the_packet_rings_empty() {
    let Some(bed) = L7Bed::start(
        "content_services_alone_keep_the_packet_rings_empty",
        &config(),
    ) else {
        return;
    };
    wait_for("the content services", SOON, || {
        bed.curl(&[&format!("http://{VIP}:83/")])
            .0
            .eq(&0)
            .then_some(())
    });
    let before = ring_frames(&bed, 1);
    // Keep-alive requests (one curl, many URLs) and new connections (one curl each).
    let urls: Vec<String> = (0..50).map(|_| format!("http://{VIP}:83/who")).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let load = || {
        let out = bed.get(&urls);
        assert_eq!(out.matches("fwd=").count(), 50, "{out}");
        for _ in 0..10 {
            bed.get(&[&format!("http://{VIP}:81/")]);
        }
    };
    load();
    let after = ring_frames(&bed, 2);
    // Hundreds of frames crossed the director's interfaces; the rings took none (one may
    // have slipped in between a ring's opening and its filter).
    assert!(
        after == before && after < 10,
        "the rings took {before} then {after} frames"
    );

    bed.adm(&format!("-A -t {VIP}:90 -s rr"));
    load();
    let with_l4 = ring_frames(&bed, 3);
    assert!(
        with_l4 >= after + 50,
        "with a layer-4 service on the VIP the rings take its frames: {after} then {with_l4}"
    );
}
