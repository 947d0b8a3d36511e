//! Content switching changed at run time with lvsadm (`--add-pool`, `--add-rule`,
//! `--del-rule` ...): requests follow the new rules at once, and a keep-alive client
//! connection opened before the change stays open across it.

mod l7_common;

use std::sync::mpsc;

use l7_common::{L7Bed, RS, SOON, VIP, connect, read_response, send, wait_for};

fn who(body: &str) -> &str {
    body.split_whitespace().next().unwrap_or("")
}

/// One content service on VIP:80: everything goes to the default pool `static` (r1).
fn config() -> String {
    format!(
        r#"
[[content_service]]
address = "{VIP}"
port = 80
default_pool = "static"

[[pool]]
name = "static"
scheduler = "rr"
servers = [{{ address = "{r1}", port = 8080 }}]
"#,
        r1 = RS[0]
    )
}

/// `lvsadm ARGS` that must fail: (exit code, stderr).
fn refused(bed: &L7Bed, args: &[&str]) -> (i32, String) {
    let out = bed.lvsadm(args);
    assert!(!out.status.success(), "lvsadm {args:?} was accepted");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rules_and_pools_change_at_run_time_under_open_connections() {
    let Some(bed) = L7Bed::start(
        "rules_and_pools_change_at_run_time_under_open_connections",
        &config(),
    ) else {
        return;
    };
    let url = |p: &str| format!("http://{VIP}{p}");
    wait_for("the content service to answer", SOON, || {
        let (code, out, _) = bed.curl(&[&url("/img/first")]);
        (code == 0 && who(&out) == "r1").then_some(())
    });

    // A keep-alive client: one connection, a request per path sent from the test.
    let (to_client, paths) = mpsc::channel::<String>();
    let (answers, from_client) = mpsc::channel::<(u16, String)>();
    let client = bed.spawn_client(move || {
        let mut s = connect(80);
        let mut rest = Vec::new();
        for path in paths {
            send(
                &mut s,
                format!("GET {path} HTTP/1.1\r\nHost: www.example\r\n\r\n").as_bytes(),
            );
            let (status, body, r) = read_response(&mut s, std::mem::take(&mut rest));
            rest = r;
            if answers.send((status, body)).is_err() {
                break;
            }
        }
    });
    let ask = |path: &str| {
        to_client.send(path.into()).expect("client thread alive");
        from_client
            .recv_timeout(SOON)
            .expect("an answer on the kept-alive connection")
    };
    let (status, body) = ask("/img/k1");
    assert_eq!((status, who(&body)), (200, "r1"), "{body}");

    // A pool of r2 and r3, and a rule sending /img to it.
    let pool = format!("{}:8080", RS[1]);
    bed.adm(&format!("--add-pool --pool images -s rr -r {pool}"));
    bed.adm(&format!(
        "--add-pool-server --pool images -r {}:8080 -w 2",
        RS[2]
    ));
    bed.adm(&format!(
        "--add-rule -t {VIP}:80 --rule img --path-prefix /img --pool images"
    ));
    let out = bed.get(&[&url("/img/x")]);
    assert!(matches!(who(&out), "r2" | "r3"), "/img/x went to {out}");
    let out = bed.get(&[&url("/other")]);
    assert_eq!(who(&out), "r1", "{out}");
    // The connection opened before the change uses the new rule for its next request.
    let (status, body) = ask("/img/k2");
    assert_eq!(status, 200);
    assert!(matches!(who(&body), "r2" | "r3"), "{body}");
    // --before puts a rule ahead of another: the first match wins.
    bed.adm(&format!(
        "--add-rule -t {VIP}:80 --rule gif --path-regex \\.gif$ --pool static --before img"
    ));
    assert_eq!(who(&bed.get(&[&url("/img/a.gif")])), "r1");

    let list = bed.adm("--list-rules");
    assert!(
        list.contains("rule gif --path-regex \\.gif$ -> pool static")
            && list.contains("rule img --path-prefix /img -> pool images")
            && list.find("rule gif") < list.find("rule img")
            && list.contains(&format!("-> {pool}  weight 1  up"))
            && list.contains(&format!("-> {}:8080  weight 2  up", RS[2]))
            && list.contains("default -> pool static"),
        "{list}"
    );
    let listing = bed.adm("-L -n");
    assert!(listing.contains("images:rr"), "{listing}");

    // Clear errors, ipvsadm's exit codes, and nothing changed by a refused command.
    let (code, err) = refused(&bed, &["--del-pool", "--pool", "images"]);
    assert_eq!(code, 255);
    assert!(err.contains("still used by rule \"img\""), "{err}");
    let svc = format!("{VIP}:80");
    let (code, err) = refused(
        &bed,
        &["--add-rule", "-t", &svc, "--rule", "x", "--pool", "nope"],
    );
    assert_eq!(code, 255);
    assert!(err.contains("unknown pool \"nope\""), "{err}");
    let (code, err) = refused(
        &bed,
        &[
            "--add-rule",
            "-t",
            &svc,
            "--rule",
            "x",
            "--path-regex",
            "(",
            "--pool",
            "static",
        ],
    );
    assert_eq!(code, 255);
    assert!(err.contains("bad --path-regex"), "{err}");
    let (code, err) = refused(&bed, &["--add-rule", "-t", &svc, "--pool", "static"]);
    assert_eq!(code, 2);
    assert!(err.contains("'--rule'"), "{err}");
    let (code, err) = refused(
        &bed,
        &[
            "--add-rule",
            "-t",
            "192.0.2.9:80",
            "--rule",
            "x",
            "--pool",
            "static",
        ],
    );
    assert_eq!(code, 255);
    assert!(err.contains("not a content service"), "{err}");
    let (code, err) = refused(
        &bed,
        &["--add-pool", "--pool", "p2", "-s", "nosuch", "-r", &pool],
    );
    assert_eq!(code, 255);
    assert!(err.contains("nosuch"), "{err}");
    let (code, _) = refused(&bed, &["--frobnicate-rule"]);
    assert_eq!(code, 255);
    assert!(matches!(who(&bed.get(&[&url("/img/y")])), "r2" | "r3"));

    // Delete the rules: /img goes to the default pool again, on the old connection too.
    bed.adm(&format!("--del-rule -t {VIP}:80 --rule img"));
    bed.adm(&format!("--del-rule -t {VIP}:80 --rule gif"));
    assert_eq!(who(&bed.get(&[&url("/img/z")])), "r1");
    let (status, body) = ask("/img/k3");
    assert_eq!((status, who(&body)), (200, "r1"), "{body}");
    bed.adm(&format!("--del-pool-server --pool images -r {pool}"));
    bed.adm("--del-pool --pool images");
    let list = bed.adm("--list-rules");
    assert!(
        !list.contains("images") && !list.contains("rule "),
        "{list}"
    );

    drop(to_client);
    client.join().expect("the kept-alive client ends cleanly");
    assert!(
        bed.log_text()
            .contains("event=content_edited change=add_rule"),
        "{}",
        bed.log_text()
    );
}

/// lvs-monitord, killed when dropped (even when the test panics).
struct Monitord(std::process::Child);

impl Drop for Monitord {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn monitord_takes_a_dead_pool_member_out_of_its_pool() {
    let config = format!(
        r#"
[[content_service]]
address = "{VIP}"
port = 80
default_pool = "app"

[[pool]]
name = "app"
scheduler = "rr"
servers = [{{ address = "{r2}", port = 8080 }}, {{ address = "{r3}", port = 8080 }}]
"#,
        r2 = RS[1],
        r3 = RS[2]
    );
    let Some(mut bed) = L7Bed::start("monitord_takes_a_dead_pool_member_out_of_its_pool", &config)
    else {
        return;
    };
    let url = format!("http://{VIP}/x");
    wait_for("both pool members to answer", SOON, || {
        let names: Vec<String> = (0..4)
            .map(|_| who(&bed.curl(&[&url]).1).to_owned())
            .collect();
        (names.iter().any(|n| n == "r2") && names.iter().any(|n| n == "r3")).then_some(())
    });

    // monitord with no configuration of its own: it finds the pool members in the
    // director's listing and gives each a TCP connect check.
    let cfg = bed.rundir.join("monitord.toml");
    std::fs::write(
        &cfg,
        "interval = \"500ms\"\ntimeout = \"400ms\"\nfall = 2\nrise = 1\n",
    )
    .expect("write monitord.toml");
    let log = std::fs::File::create(bed.rundir.join("monitord.log")).expect("monitord log");
    let bin = lvs_testsupport::sibling_bin(env!("CARGO_BIN_EXE_lvs-director"), "lvs-monitord");
    let _monitord = Monitord(
        std::process::Command::new("ip")
            .args(["netns", "exec", &bed.ns("d")])
            .arg(bin)
            .args(["-f", "--no-syslog", "--rundir"])
            .arg(&bed.rundir)
            .arg("-c")
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lvs-monitord"),
    );
    let log_path = bed.rundir.join("monitord.log");
    let monitord_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("monitord to find both pool members", SOON, || {
        (monitord_log().matches("server_discovered").count() >= 2).then_some(())
    });

    bed.kill_server("r3", 8080);
    let down = format!("-> {}:8080  weight 1  down", RS[2]);
    wait_for("monitord to mark r3 down at the director", SOON, || {
        bed.adm("--list-rules").contains(&down).then_some(())
    });
    // Every request now goes to the member left, none fails.
    for _ in 0..6 {
        let out = bed.get(&[&url]);
        assert_eq!(who(&out), "r2", "{out}\n{}", monitord_log());
    }
    let health = bed.adm("-L -n");
    assert!(
        health.contains(&format!("{}:8080", RS[2])),
        "the dead member is still listed (weight 0): {health}"
    );
}
