//! lvs-webmon as a host runs it, not with `-f`: a forking daemon (detaches, pidfile, answers,
//! stops cleanly on SIGTERM) and through its init script `etc/init.d/lvs-webmon` driven by
//! Debian's `start-stop-daemon`, each in a network namespace of its own (as root; SKIPPED
//! loudly otherwise).

use lvs_testsupport::daemon::Running;

/// curl (in the daemon's namespace) gets an HTTP answer over TLS from the console's port.
fn answers(r: &Running<'_>) -> bool {
    std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            r.ns,
            "curl",
            "-sk",
            "-m",
            "5",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code}", "https://127.0.0.1:18443/"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.first().is_some_and(|b| b"2345".contains(b)))
}

/// A self-signed certificate made at the first start, in the scratch directory.
fn config(dir: &std::path::Path) -> String {
    format!(
        "listen = \"127.0.0.1:18443\"\ncert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\n\
         users_file = \"{d}/users\"\n",
        d = dir.display()
    )
}

lvs_testsupport::daemon_tests!(
    "lvs-webmon",
    config = config,
    answers = answers,
    socket = false
);
