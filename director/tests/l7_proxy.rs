//! How real servers behind a content service learn the client's address (PROXY protocol v1
//! and v2, `Forwarded`), and the monitor's health verdicts applied to pool members.

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
