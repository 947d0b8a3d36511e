//! Layer 7 over IPv6 (issue 14, part 8), on a dual-stack testbed with curl and real servers:
//! content services on an IPv6 VIP (TLS passthrough: `l7_sni`), pools of IPv6 servers, pools
//! mixing both families (the director is a proxy: it connects to each server in that server's
//! family), an IPv4 VIP in front of IPv6 servers, `[::]` beside `0.0.0.0` on one port, pools
//! edited with `lvsadm -r [addr]:port`, and the client's IPv6 address as each server-facing
//! form writes it, byte for byte (`X-Forwarded-For`, `Forwarded`, PROXY v1 and v2).

mod l7_common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use l7_common::{CLIENT, CLIENT6, L7Bed, RS, RS6, SOON, VIP, VIP6, wait_for};

fn who(body: &str) -> String {
    body.split_whitespace().next().unwrap_or("").to_owned()
}

/// Which servers answered `n` GETs of `url` (curl -6), and how often.
fn spread(bed: &L7Bed, n: usize, args: &[&str]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen.entry(who(&bed.get(args))).or_insert(0) += 1;
    }
    seen
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn routing_config() -> String {
    format!(
        r#"
[[content_service]]
address = "{VIP6}"
port = 80
default_pool = "mixed"

[[content_service.rule]]
name = "static-host"
host = "static.example"
pool = "static6"

[[content_service.rule]]
name = "literal"
host = "[{VIP6}]"
path_prefix = "/literal/"
pool = "three6"

[[content_service.rule]]
name = "app-path"
path_prefix = "/app/"
pool = "app6"

# An IPv4 VIP in front of IPv6 servers.
[[content_service]]
address = "{VIP}"
port = 80
default_pool = "app6"

# One port, both wildcards: IPv6 clients reach the first, IPv4 clients the second.
[[content_service]]
address = "::"
port = 86
default_pool = "static6"

[[content_service]]
address = "0.0.0.0"
port = 86
default_pool = "three4"

[[pool]]
name = "static6"
scheduler = "rr"
servers = [{{ address = "{r1}", port = 8080 }}]

[[pool]]
name = "app6"
scheduler = "rr"
servers = [{{ address = "{r2}", port = 8080 }}]

[[pool]]
name = "three6"
scheduler = "rr"
servers = [{{ address = "{r3}", port = 8080 }}]

[[pool]]
name = "three4"
scheduler = "rr"
servers = [{{ address = "{r3v4}", port = 8080 }}]

[[pool]]
name = "mixed"
scheduler = "rr"
servers = [{{ address = "{r1v4}", port = 8080 }}, {{ address = "{r2}", port = 8080 }}]
"#,
        r1 = RS6[0],
        r2 = RS6[1],
        r3 = RS6[2],
        r1v4 = RS[0],
        r3v4 = RS[2],
    )
}

#[test]
fn an_http_service_on_an_ipv6_vip_routes_to_ipv6_and_mixed_pools() {
    let Some(bed) = L7Bed::start_dual(
        "an_http_service_on_an_ipv6_vip_routes_to_ipv6_and_mixed_pools",
        &routing_config(),
    ) else {
        return;
    };
    let vip6 = format!("http://[{VIP6}]");
    let url = |p: &str| format!("{vip6}{p}");
    wait_for("the IPv6 content service to answer", SOON, || {
        let (code, out, _) = bed.curl(&["-6", &url("/app/first")]);
        (code == 0 && who(&out) == "r2").then_some(())
    });

    // Rules by Host name, by the VIP's own IPv6 literal in Host, and by path.
    let out = bed.get(&["-6", "-H", "Host: static.example", &url("/x")]);
    assert!(out.starts_with("r1 GET /x "), "{out}");
    let out = bed.get(&["-6", &url("/literal/y")]);
    assert!(out.starts_with("r3 GET /literal/y "), "{out}");
    let out = bed.get(&["-6", "-H", "Host: [2001:DB8:0::100]:80", &url("/literal/z")]);
    assert!(out.starts_with("r3 GET /literal/z "), "{out}");
    // A malformed IPv6 literal in Host is refused, never routed.
    let (code, out, _) = bed.curl(&[
        "-6",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: [2001:db8::1::2]",
        &url("/"),
    ]);
    assert_eq!((code, out.as_str()), (0, "400"));

    // The default pool mixes an IPv4 and an IPv6 server behind the IPv6 VIP: rr, exactly.
    assert_eq!(
        spread(&bed, 6, &["-6", &url("/mix")]),
        counts(&[("r1", 3), ("r2", 3)])
    );
    // The IPv4 VIP sends IPv4 clients to an IPv6-only pool.
    let out = bed.get(&["-4", &format!("http://{VIP}/four")]);
    assert!(out.starts_with("r2 GET /four "), "{out}");
    // `[::]:86` is IPv6 only: the IPv4 service on `0.0.0.0:86` keeps its IPv4 clients.
    for _ in 0..3 {
        let out = bed.get(&["-6", &format!("http://[{VIP6}]:86/w")]);
        assert!(out.starts_with("r1 "), "IPv6 client of [::]:86: {out}");
        let out = bed.get(&["-4", &format!("http://{VIP}:86/w")]);
        assert!(out.starts_with("r3 "), "IPv4 client of 0.0.0.0:86: {out}");
    }

    // lvsadm lists the IPv6 VIPs and servers bracketed, as ipvsadm does.
    let list = bed.adm("-L -n");
    for want in [
        format!("TCP  [{VIP6}]:80 l7-http"),
        "TCP  [::]:86 l7-http".to_owned(),
        format!("[{}]:8080", RS6[1]),
    ] {
        assert!(list.contains(&want), "{want} in:\n{list}");
    }
    let rules = bed.adm(&format!("--list-rules -t [{VIP6}]:80"));
    assert!(
        rules.contains(&format!("TCP [{VIP6}]:80 http"))
            && rules.contains(
                "rule literal --host [2001:db8::100] --path-prefix /literal/ -> pool three6  hits 2"
            ),
        "{rules}"
    );
    let rules = bed.adm("--list-rules");
    assert!(
        rules.contains(&format!("  -> [{}]:8080  weight 1  up  requests ", RS6[0]))
            && rules.contains(&format!("  -> {}:8080  weight 1  up  requests ", RS[0])),
        "{rules}"
    );

    // Pools edited at run time with bracketed IPv6 servers, rules added to the IPv6 VIP.
    bed.adm(&format!(
        "--add-pool-server --pool app6 -r [{}]:8080",
        RS6[2]
    ));
    assert_eq!(
        spread(&bed, 4, &["-6", &url("/app/x")]),
        counts(&[("r2", 2), ("r3", 2)])
    );
    bed.adm(&format!(
        "--add-rule -t [{VIP6}]:80 --rule added --pool static6 --path-prefix /added/ --before app-path"
    ));
    let out = bed.get(&["-6", &url("/added/a")]);
    assert!(out.starts_with("r1 GET /added/a "), "{out}");
    // A bare IPv6 server (no brackets, so no port) is refused with the reason.
    let out = bed.lvsadm(&["--add-pool-server", "--pool", "app6", "-r", RS6[0]]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("needs its port"),
        "{err}"
    );

    // The monitor's verdict on an IPv6 member: r2 down, app6 is r3 alone; up, both again.
    let set = |healthy: bool| bed.set_health((VIP6, 80), (RS6[1], 8080), healthy);
    set(false);
    assert_eq!(
        spread(&bed, 4, &["-6", &url("/app/x")]),
        counts(&[("r3", 4)])
    );
    assert!(
        bed.adm("--list-rules")
            .contains(&format!("  -> [{}]:8080  weight 1  down  ", RS6[1]))
    );
    set(true);
    wait_for("r2 back in app6", SOON, || {
        (who(&bed.get(&["-6", &url("/app/x")])) == "r2").then_some(())
    });
    bed.adm(&format!(
        "--del-pool-server --pool app6 -r [{}]:8080",
        RS6[1]
    ));
    assert_eq!(
        spread(&bed, 3, &["-6", &url("/app/x")]),
        counts(&[("r3", 3)])
    );
}

/// The services of the client-address test: each names the client its own way, to an IPv6
/// server (`raw6`: raw.py on r1) or an IPv4 one (`raw4`: raw.py on r2).
fn client_address_config() -> String {
    let service = |vip: &str, port: u16, how: &str, pool: &str| {
        format!(
            "[[content_service]]\naddress = \"{vip}\"\nport = {port}\nclient_address = \"{how}\"\ndefault_pool = \"{pool}\"\n\n"
        )
    };
    let mut c = String::new();
    for (vip, port, how, pool) in [
        (VIP6, 81, "proxy-v1", "raw6"),
        (VIP6, 82, "proxy-v2", "raw6"),
        (VIP6, 83, "forwarded", "raw6"),
        (VIP6, 84, "x-forwarded-for", "raw6"),
        (VIP6, 85, "proxy-v1", "raw4"),
        (VIP6, 87, "proxy-v2", "raw4"),
        (VIP, 88, "proxy-v1", "raw6"),
        (VIP, 89, "proxy-v2", "raw6"),
    ] {
        c.push_str(&service(vip, port, how, pool));
    }
    // TLS passthrough tells the server the client's address the same way.
    c.push_str(
        &service(VIP6, 443, "proxy-v2", "raw6")
            .replace("port = 443\n", "port = 443\nmode = \"tls-sni\"\n"),
    );
    c.push_str(&format!(
        r#"[[pool]]
name = "raw6"
scheduler = "rr"
servers = [{{ address = "{r1}", port = 9001 }}]

[[pool]]
name = "raw4"
scheduler = "rr"
servers = [{{ address = "{r2v4}", port = 9001 }}]
"#,
        r1 = RS6[0],
        r2v4 = RS[1],
    ));
    c
}

/// Every connection raw.py recorded in `dir`, as bytes.
fn recorded(dir: &Path) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)
        .expect("the record directory")
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "raw") {
            v.push(std::fs::read(e.path()).expect("a record"));
        }
    }
    v
}

/// The one recorded connection that carries the request for `path`.
fn connection_of(dir: &Path, path: &str) -> Vec<u8> {
    let line = format!("GET {path} HTTP/1.1\r\n");
    let mut found: Vec<Vec<u8>> = recorded(dir)
        .into_iter()
        .filter(|c| c.windows(line.len()).any(|w| w == line.as_bytes()))
        .collect();
    assert_eq!(found.len(), 1, "one connection with {path}");
    found.remove(0)
}

/// The header fields of the request for `path` in `conn`.
fn head_fields(conn: &[u8], path: &str) -> Vec<String> {
    let line = format!("GET {path} ");
    let at = conn
        .windows(line.len())
        .position(|w| w == line.as_bytes())
        .expect("the request");
    let text = String::from_utf8_lossy(&conn[at..]).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    head.split("\r\n").skip(1).map(str::to_owned).collect()
}

fn v2_header(src: (IpAddr, u16), dst: (IpAddr, u16)) -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    match (src.0, dst.0) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h.extend_from_slice(&[0x21, 0x21, 0, 36]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
        }
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.extend_from_slice(&[0x21, 0x11, 0, 12]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
        }
        _ => panic!("one family per connection"),
    }
    h.extend_from_slice(&src.1.to_be_bytes());
    h.extend_from_slice(&dst.1.to_be_bytes());
    h
}

#[test]
fn ipv6_client_addresses_reach_the_servers_in_each_form() {
    let Some(mut bed) = L7Bed::start_dual(
        "ipv6_client_addresses_reach_the_servers_in_each_form",
        &client_address_config(),
    ) else {
        return;
    };
    let raw6 = bed.raw_server("r1", 9001, "r1");
    let raw4 = bed.raw_server("r2", 9001, "r2");
    // The client's source port is chosen (curl --local-port), so every header is known in
    // full. Each request has a port of its own: the service's port plus 40000.
    let fetch = |family: &str, vip: &str, port: u16, path: &str, extra: &[&str]| {
        let host = if vip.contains(':') {
            format!("[{vip}]")
        } else {
            vip.to_owned()
        };
        let local = (40000 + port).to_string();
        let url = format!("http://{host}:{port}{path}");
        let mut args = vec![family, "--local-port", &local];
        args.extend_from_slice(extra);
        args.push(&url);
        bed.get(&args)
    };
    wait_for("the IPv6 content services", SOON, || {
        let (code, _, _) = bed.curl(&["-6", &format!("http://[{VIP6}]:84/ready")]);
        (code == 0).then_some(())
    });
    let c6: IpAddr = CLIENT6.parse().expect("client");
    let v6: IpAddr = VIP6.parse().expect("vip");
    let c4: IpAddr = CLIENT.parse().expect("client");
    let v4: IpAddr = VIP.parse().expect("vip");

    // PROXY v1: TCP6, bare addresses, to an IPv6 server and to an IPv4 one alike.
    for (port, dir) in [(81, &raw6), (85, &raw4)] {
        let path = format!("/v1-{port}");
        let out = fetch("-6", VIP6, port, &path, &[]);
        assert!(out.contains(&format!("GET {path}")), "{out}");
        let want = format!(
            "PROXY TCP6 {CLIENT6} {VIP6} {} {port}\r\nGET {path} HTTP/1.1\r\n",
            40000 + port
        );
        let conn = connection_of(dir, &path);
        assert!(
            conn.starts_with(want.as_bytes()),
            "{want:?} vs {:?}",
            String::from_utf8_lossy(&conn)
        );
    }
    // PROXY v2: the client's family (AF_INET6, a 36-byte address block), to either server.
    for (port, dir) in [(82, &raw6), (87, &raw4)] {
        let path = format!("/v2-{port}");
        fetch("-6", VIP6, port, &path, &[]);
        let mut want = v2_header((c6, 40000 + port), (v6, port));
        assert_eq!(want.len(), 16 + 36);
        want.extend_from_slice(format!("GET {path} HTTP/1.1\r\n").as_bytes());
        let conn = connection_of(dir, &path);
        assert!(
            conn.starts_with(&want),
            "{:?}",
            &conn[..want.len().min(conn.len())]
        );
    }
    // An IPv4 client through an IPv4 VIP to an IPv6 server: TCP4 / AF_INET, as before.
    let out = fetch("-4", VIP, 88, "/v1-88", &[]);
    assert!(out.contains("GET /v1-88"), "{out}");
    let conn = connection_of(&raw6, "/v1-88");
    let want = format!("PROXY TCP4 {CLIENT} {VIP} 40088 88\r\nGET /v1-88 HTTP/1.1\r\n");
    assert!(
        conn.starts_with(want.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&conn)
    );
    fetch("-4", VIP, 89, "/v2-89", &[]);
    let mut want = v2_header((c4, 40089), (v4, 89));
    want.extend_from_slice(b"GET /v2-89 HTTP/1.1\r\n");
    assert!(connection_of(&raw6, "/v2-89").starts_with(&want));

    // TLS passthrough with PROXY v2: the header, then the client's ClientHello untouched
    // (raw.py speaks no TLS, so curl gives up; what the server received is what counts).
    let (code, _, _) = bed.curl(&[
        "-6",
        "--max-time",
        "3",
        "--local-port",
        "40443",
        "--resolve",
        &format!("a.example:443:[{VIP6}]"),
        "https://a.example/",
    ]);
    assert_ne!(code, 0, "raw.py is no TLS server");
    let want = v2_header((c6, 40443), (v6, 443));
    wait_for("the PROXY header and the ClientHello at r1", SOON, || {
        recorded(&raw6)
            .iter()
            .any(|c| c.starts_with(&want) && c.get(want.len()) == Some(&0x16))
            .then_some(())
    });

    // Forwarded (RFC 7239): quoted and bracketed; X-Forwarded-For: the bare address. What
    // the client sent itself is replaced (the default `forwarded_for`).
    let spoof = [
        "-H",
        "X-Forwarded-For: 192.0.2.9",
        "-H",
        "Forwarded: for=\"[2001:db8:9::9]\"",
    ];
    for (port, path, want) in [
        (
            83,
            "/fwd",
            format!("Forwarded: for=\"[{CLIENT6}]\";proto=http"),
        ),
        (84, "/xff", format!("X-Forwarded-For: {CLIENT6}")),
    ] {
        fetch("-6", VIP6, port, path, &spoof);
        let fields = head_fields(&connection_of(&raw6, path), path);
        let address_fields: Vec<&String> = fields
            .iter()
            .filter(|f| {
                let l = f.to_ascii_lowercase();
                l.starts_with("forwarded:") || l.starts_with("x-forwarded-for:")
            })
            .collect();
        assert_eq!(address_fields, [&want], "{fields:?}");
        assert!(
            fields.contains(&format!("Host: [{VIP6}]:{port}")),
            "{fields:?}"
        );
    }
}
