//! The shipped systemd units (etc/systemd/*.service): `systemd-analyze verify` accepts each one
//! without a word, and `systemd-analyze security` scores each one as docs/HARDENING.md says.
//! (Whether the daemons run under them is tested where each daemon is: e.g.
//! director/tests/hardened.rs.)

use std::path::Path;
use std::process::Command;

use lvs_testsupport::workspace_root;

const UNITS: [&str; 5] = [
    "lvs-director",
    "lvs-heartbeatd",
    "lvs-lockmgr",
    "lvs-monitord",
    "lvs-webmon",
];

/// `verify` wants every command of the unit to exist: the daemons are pointed at a stand-in.
#[test]
fn systemd_analyze_verify_accepts_every_unit() {
    let dir = std::env::temp_dir().join(format!("lvs-units-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let standin = dir.join("daemon");
    std::fs::write(&standin, "#!/bin/sh\n").unwrap();
    let mut perm = std::fs::metadata(&standin).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&standin, perm).unwrap();
    let mut problems = Vec::new();
    for name in UNITS {
        let text =
            std::fs::read_to_string(workspace_root().join(format!("etc/systemd/{name}.service")))
                .unwrap();
        let copy = dir.join(format!("{name}.service"));
        let text = text.replace(&format!("/usr/sbin/{name}"), &standin.display().to_string());
        std::fs::write(&copy, text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .expect("run systemd-analyze (package systemd)");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() || !said.trim().is_empty() {
            problems.push(format!("{name}: {}\n{said}", out.status));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The exposure `systemd-analyze security --offline=yes` gives `unit`.
fn exposure(unit: &Path) -> String {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(unit)
        .output()
        .expect("run systemd-analyze (package systemd)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.split_once("Overall exposure level for "))
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
        .to_owned()
}

/// docs/HARDENING.md's table has a row `| lvs-x | before | after | ... |` per unit: `after` is
/// what systemd-analyze says now, and below 3.5 ("OK").
#[test]
fn hardening_doc_has_each_units_score() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/HARDENING.md")).unwrap();
    for name in UNITS {
        let now = exposure(&workspace_root().join(format!("etc/systemd/{name}.service")));
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}.service` |")))
            .unwrap_or_else(|| panic!("docs/HARDENING.md has no row for {name}.service"));
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(
            cols[3], now,
            "{name}: the doc says {}, systemd-analyze {now}",
            cols[3]
        );
        assert!(now.parse::<f64>().unwrap() < 3.5, "{name}: exposure {now}");
    }
}
