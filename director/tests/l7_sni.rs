//! TLS passthrough routed by SNI: curl (`--resolve`) speaks real TLS to two pools of HTTPS
//! servers through a `tls-sni` content service on VIP:443; the director reads only the
//! ClientHello's server name and never decrypts.

mod l7_common;

use l7_common::{L7Bed, RS, SOON, VIP, wait_for};

fn config() -> String {
    format!(
        r#"
[[content_service]]
address = "{VIP}"
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
servers = [{{ address = "{r1}", port = 8443 }}]

[[pool]]
name = "tls-b"
scheduler = "rr"
servers = [{{ address = "{r2}", port = 8443 }}]
"#,
        r1 = RS[0],
        r2 = RS[1],
    )
}

#[test]
fn tls_connections_are_routed_by_server_name() {
    let Some(mut bed) = L7Bed::start("tls_connections_are_routed_by_server_name", &config()) else {
        return;
    };
    let (ca, ka) = bed.cert("a.example");
    let (cb, kb) = bed.cert("www.b.example");
    bed.server("r1", 8443, Some((&ca, &ka)));
    bed.server("r2", 8443, Some((&cb, &kb)));
    let fetch = |name: &str, cert: &std::path::Path| {
        let resolve = format!("{name}:443:{VIP}");
        let url = format!("https://{name}/hello");
        let cacert = cert.to_str().expect("utf-8 path").to_owned();
        bed.curl(&["--resolve", &resolve, "--cacert", &cacert, &url])
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
        list.contains(&format!("TCP  {VIP}:443 l7-tls-sni")),
        "{list}"
    );
    assert!(
        list.contains("a->tls-a=") && list.contains("b->tls-b="),
        "{list}"
    );
}
