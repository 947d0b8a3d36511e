//! TLS passthrough routed by SNI: curl (`--resolve`) speaks real TLS to two pools of HTTPS
//! servers through a `tls-sni` content service on VIP:443; the director reads only the
//! ClientHello's server name and never decrypts. Over IPv4, and on an IPv6 VIP with one pool of
//! an IPv6 server and one of an IPv4 server.

mod l7_common;

use l7_common::{L7Bed, RS, RS6, SOON, VIP, VIP6, wait_for};

/// The service on `vip`:443: `a.example` to pool `tls-a` (`a`:8443), `*.b.example` to
/// `tls-b` (`b`:8443).
fn config(vip: &str, a: &str, b: &str) -> String {
    format!(
        r#"
[[content_service]]
address = "{vip}"
port = 443
mode = "tls-sni"
client_address = "none"

[[content_service.rule]]
name = "a"
host = "a.example"
pool = "tls-a"

[[content_service.rule]]
name = "b"
host = "*.b.example"
pool = "tls-b"

[[pool]]
name = "tls-a"
scheduler = "rr"
servers = [{{ address = "{a}", port = 8443 }}]

[[pool]]
name = "tls-b"
scheduler = "rr"
servers = [{{ address = "{b}", port = 8443 }}]
"#
    )
}

/// HTTPS servers on r1 (`a.example`) and r2 (`www.b.example`), then names routed by the
/// service at `vip` (as curl and lvsadm write it: IPv6 bracketed), reached with curl `family`.
fn routes_by_server_name(mut bed: L7Bed, vip: &str, family: &str) {
    let (ca, ka) = bed.cert("a.example");
    let (cb, kb) = bed.cert("www.b.example");
    bed.server("r1", 8443, Some((&ca, &ka)));
    bed.server("r2", 8443, Some((&cb, &kb)));
    let fetch = |name: &str, cert: &std::path::Path| {
        let resolve = format!("{name}:443:{vip}");
        let url = format!("https://{name}/hello");
        let cacert = cert.to_str().expect("utf-8 path").to_owned();
        bed.curl(&[family, "--resolve", &resolve, "--cacert", &cacert, &url])
    };
    wait_for("the TLS service to answer", SOON, || {
        let (code, out, _) = fetch("a.example", &ca);
        (code == 0).then_some(out)
    });
    for _ in 0..3 {
        // The certificate is checked against the name, so each answer also proves the TLS
        // session ended at the right server.
        let (code, out, err) = fetch("a.example", &ca);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("r1 GET /hello"), "{out}");
        let (code, out, err) = fetch("www.b.example", &cb);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("r2 GET /hello"), "{out}");
    }
    // A name no rule knows, with no default pool: the connection is closed, nothing else.
    let (code, _, _) = fetch("c.example", &ca);
    assert_ne!(code, 0);
    let list = bed.adm("-L -n");
    assert!(
        list.contains(&format!("TCP  {vip}:443 l7-tls-sni")),
        "{list}"
    );
    assert!(
        list.contains("a->tls-a=") && list.contains("b->tls-b=3"),
        "{list}"
    );
}

#[test]
fn tls_connections_are_routed_by_server_name() {
    let Some(bed) = L7Bed::start(
        "tls_connections_are_routed_by_server_name",
        &config(VIP, RS[0], RS[1]),
    ) else {
        return;
    };
    routes_by_server_name(bed, VIP, "-4");
}

/// TLS passthrough on an IPv6 VIP, to an IPv6 server and (pool `tls-b`) an IPv4 one.
#[test]
fn tls_passthrough_on_an_ipv6_vip_is_routed_by_server_name() {
    let Some(bed) = L7Bed::start_dual(
        "tls_passthrough_on_an_ipv6_vip_is_routed_by_server_name",
        &config(VIP6, RS6[0], RS[1]),
    ) else {
        return;
    };
    routes_by_server_name(bed, &format!("[{VIP6}]"), "-6");
}
