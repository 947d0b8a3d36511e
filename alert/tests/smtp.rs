//! Alerts through lettre's real SMTP transport to a real SMTP server (Python's aiosmtpd) on
//! loopback. Needs the Debian package `python3-aiosmtpd`; fails (does not skip) without it.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_alert::{Alert, AlertConfig, Alerter, MailConfig, ManualClock, StartTls};
use support::{SmtpServer, TempDir, init_log, lines_with, wait_for, write_file};

fn mail_config(port: u16) -> MailConfig {
    MailConfig {
        server: "127.0.0.1".into(),
        port,
        from: "LVS director <lvs@director1.example.org>".into(),
        to: vec!["ops@example.org".into(), "oncall@example.org".into()],
        starttls: None,
        ca_file: None,
        user: None,
        password_file: None,
        timeout_secs: 5,
        max_per_minute: 100,
        subject_prefix: "[lvs]".into(),
        retry_min_ms: 50,
        retry_max_ms: 200,
        queue_size: 100,
    }
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn an_alert_mail_arrives_with_server_service_and_reason() {
    init_log();
    let smtp = SmtpServer::start(None);
    let config = AlertConfig {
        node: Some("director1".into()),
        mail: Some(mail_config(smtp.port)),
        ..AlertConfig::default()
    };
    assert_eq!(
        config.mail.as_ref().unwrap().effective_starttls(),
        StartTls::None
    );
    let alerter = Alerter::start(&config).unwrap();
    alerter.send(Alert::server_down(
        "tcp/10.0.0.1:80",
        "10.0.0.2:80",
        "HTTP status 503",
    ));
    let messages = smtp.wait_messages(1, Duration::from_secs(30));
    assert_eq!(messages.len(), 1, "no mail arrived");
    let mail = &messages[0];
    assert_eq!(
        header(mail, "X-Envelope-To"),
        Some("ops@example.org,oncall@example.org")
    );
    assert_eq!(
        header(mail, "Subject"),
        Some("[lvs] server_down 10.0.0.2:80 in tcp/10.0.0.1:80 (director1)")
    );
    assert!(header(mail, "Message-ID").is_some_and(|id| id.contains(".lvs-alert@director1>")));
    for needle in [
        "server:  10.0.0.2:80",
        "service: tcp/10.0.0.1:80",
        "reason:  HTTP status 503",
    ] {
        assert!(mail.contains(needle), "{needle:?} missing from:\n{mail}");
    }
    assert!(alerter.shutdown(Duration::from_secs(10)));
    assert!(!lines_with(&["event=alert_mail_sent", "what=server_down"]).is_empty());
}

#[test]
fn login_reads_the_password_file() {
    init_log();
    let smtp = SmtpServer::start(Some("lvs:pa ss"));
    let dir = TempDir::new("login");
    let password = dir.path().join("smtp.pass");
    write_file(&password, "pa ss\n", 0o600);
    let config = AlertConfig {
        mail: Some(MailConfig {
            user: Some("lvs".into()),
            password_file: Some(password),
            ..mail_config(smtp.port)
        }),
        ..AlertConfig::default()
    };
    let alerter = Alerter::start(&config).unwrap();
    alerter.send(Alert::server_up("tcp/10.0.0.1:443", "10.0.0.7:443").reason("login test"));
    let messages = smtp.wait_messages(1, Duration::from_secs(30));
    assert_eq!(messages.len(), 1, "no mail arrived");
    assert_eq!(header(&messages[0], "X-Authenticated"), Some("yes"));
    assert!(alerter.shutdown(Duration::from_secs(10)));
}

#[test]
fn a_flapping_server_produces_exactly_one_flapping_mail() {
    init_log();
    let smtp = SmtpServer::start(None);
    let clock = Arc::new(ManualClock::new());
    let config = AlertConfig {
        node: Some("director1".into()),
        flap_changes: 3,
        flap_window_secs: 60,
        stable_after_secs: 120,
        mail: Some(mail_config(smtp.port)),
        ..AlertConfig::default()
    };
    let alerter = Alerter::builder(&config)
        .clock(clock.clone())
        .start()
        .unwrap();
    let (service, server) = ("tcp/10.0.0.1:80", "10.0.0.3:80");
    for i in 0..40 {
        clock.advance(Duration::from_millis(500));
        if i % 2 == 0 {
            alerter.send(Alert::server_down(service, server, "connect refused"));
        } else {
            alerter.send(Alert::server_up(service, server));
        }
    }
    // Syslog got every transition.
    let downs = wait_for(Duration::from_secs(5), || {
        let n = lines_with(&["event=server_down", "server=10.0.0.3:80"]).len();
        (n == 20).then_some(n)
    });
    assert_eq!(downs, Some(20));
    // Mail: 3 changes one by one, then one flapping mail.
    let messages = smtp.wait_messages(4, Duration::from_secs(30));
    assert_eq!(messages.len(), 4);
    // ... and nothing more while it flaps (give stray mails time to arrive).
    assert!(
        wait_for(Duration::from_millis(500), || (smtp.messages().len() > 4)
            .then_some(()))
        .is_none(),
        "more mails while flapping"
    );
    let subjects: Vec<&str> = messages
        .iter()
        .filter_map(|m| header(m, "Subject"))
        .collect();
    let flapping: Vec<&&str> = subjects.iter().filter(|s| s.contains("flapping")).collect();
    assert_eq!(
        flapping,
        [&"[lvs] flapping 10.0.0.3:80 in tcp/10.0.0.1:80 (director1)"]
    );
    assert!(messages[3].contains("state:   flapping"), "{}", messages[3]);
    // Stable again after 120 s of the fake clock without a change: one mail with the last state.
    clock.advance(Duration::from_secs(121));
    let messages = smtp.wait_messages(5, Duration::from_secs(30));
    assert_eq!(messages.len(), 5);
    assert_eq!(
        header(&messages[4], "Subject"),
        Some("[lvs] stable 10.0.0.3:80 in tcp/10.0.0.1:80: up (director1)")
    );
    assert!(alerter.shutdown(Duration::from_secs(10)));
    let all = smtp.messages();
    assert_eq!(all.len(), 5);
    let flapping_mails = all
        .iter()
        .filter(|m| header(m, "Subject").is_some_and(|s| s.contains("flapping")))
        .count();
    assert_eq!(flapping_mails, 1);
}

#[test]
fn an_unreachable_smtp_server_is_retried_and_logged_without_blocking_send() {
    init_log();
    // A port nobody listens on: bound, then closed.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = AlertConfig {
        mail: Some(MailConfig {
            retry_min_ms: 20,
            retry_max_ms: 100,
            ..mail_config(port)
        }),
        ..AlertConfig::default()
    };
    let alerter = Alerter::start(&config).unwrap();
    let mut took = Vec::new();
    for i in 0..200 {
        let alert = Alert::server_down("tcp/10.9.0.1:80", format!("10.9.0.{i}:80"), "timeout");
        let start = Instant::now();
        alerter.send(alert);
        took.push(start.elapsed());
    }
    took.sort();
    let (median, p99, max) = (took[100], took[198], took[199]);
    eprintln!("send(): median {median:?}, 99th percentile {p99:?}, max {max:?}");
    assert!(
        median < Duration::from_micros(200),
        "median send() took {median:?}"
    );
    assert!(
        p99 < Duration::from_millis(1),
        "99th percentile send() took {p99:?}"
    );

    let needle = format!("127.0.0.1:{port}");
    let retried = wait_for(Duration::from_secs(20), || {
        let failed = lines_with(&["event=alert_mail_failed", &needle]);
        let third = failed.iter().any(|l| l.contains(" attempt=3 "));
        third.then_some(failed)
    })
    .expect("no third attempt logged");
    assert!(retried[0].starts_with("WARN: event=alert_mail_failed what=server_down attempt=1 "));
    assert!(retried[0].contains("retry_in_ms=20"), "{}", retried[0]);
    assert!(
        retried
            .iter()
            .any(|l| l.contains("attempt=2 ") && l.contains("retry_in_ms=40"))
    );

    // Still non-blocking while the mail thread is busy retrying.
    let start = Instant::now();
    alerter.send(Alert::server_up("tcp/10.9.0.1:80", "10.9.0.1:80"));
    assert!(
        start.elapsed() < Duration::from_millis(1),
        "{:?}",
        start.elapsed()
    );

    let start = Instant::now();
    alerter.shutdown(Duration::from_millis(300));
    // The retrying mail gets until the deadline (it is dropped there), not less.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "shutdown took {took:?}"
    );
    let dropped = wait_for(Duration::from_secs(5), || {
        let l = lines_with(&["event=alert_mail_dropped", "shutdown deadline"]);
        (!l.is_empty()).then_some(l)
    });
    assert!(dropped.is_some(), "no alert_mail_dropped at the deadline");
}

/// A certificate for 127.0.0.1 (not a CA), made with the `openssl` command.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the STARTTLS test needs the openssl command (Debian package openssl)");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

#[test]
fn starttls_required_checks_the_certificate() {
    init_log();
    let dir = TempDir::new("tls");
    let (cert, key) = certificate(dir.path());
    let smtp = SmtpServer::start_with(None, Some((&cert, &key)));

    // Trusting the certificate (ca_file): the mail goes over TLS.
    let config = AlertConfig {
        mail: Some(MailConfig {
            starttls: Some(StartTls::Required),
            ca_file: Some(cert.clone()),
            ..mail_config(smtp.port)
        }),
        ..AlertConfig::default()
    };
    let alerter = Alerter::start(&config).unwrap();
    alerter.send(Alert::server_down(
        "tcp/10.0.0.1:25",
        "10.0.0.8:25",
        "tls test",
    ));
    let messages = smtp.wait_messages(1, Duration::from_secs(30));
    assert_eq!(messages.len(), 1, "no mail arrived");
    assert_eq!(header(&messages[0], "X-TLS"), Some("yes"));
    assert!(alerter.shutdown(Duration::from_secs(10)));

    // Not trusting it: refused, logged, retried, never sent in clear.
    let config = AlertConfig {
        mail: Some(MailConfig {
            starttls: Some(StartTls::Required),
            ..mail_config(smtp.port)
        }),
        ..AlertConfig::default()
    };
    let alerter = Alerter::start(&config).unwrap();
    alerter.send(Alert::server_down(
        "tcp/10.0.0.1:25",
        "10.0.0.9:25",
        "untrusted",
    ));
    let needle = format!("127.0.0.1:{}", smtp.port);
    let failed = wait_for(Duration::from_secs(20), || {
        let l = lines_with(&["event=alert_mail_failed", &needle, "attempt=2 "]);
        (!l.is_empty()).then_some(l)
    })
    .expect("no retried TLS failure logged");
    assert!(
        failed[0].contains("invalid peer certificate"),
        "{}",
        failed[0]
    );
    alerter.shutdown(Duration::from_millis(100));
    assert_eq!(smtp.messages().len(), 1);
}
